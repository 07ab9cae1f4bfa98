"""Derivatives benchmark: our Pillow pipeline beside libvips on the phone photos in ../shared/data/photos.

    python bench/derivatives.py [--repeat 9]      (or: make bench)

For each photo, the time to make the public derivatives (a 1600 px display image and a 320 px
thumbnail, upright, JPEG quality 82, no metadata) with hue_reports.services.photos.render_derivatives
and with libvips (pyvips `thumbnail`: shrink-on-load, autorotate; the same sizes and quality, metadata
stripped). Best of --repeat runs; each engine runs in its own process so that its peak memory is its
own. libvips from the pyvips-binary wheel has no HEVC decoder, so HEIC photos have Pillow figures only.
Goal: Pillow at most 1.5x libvips's time on the phone photos.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import record  # noqa: E402

from hue_reports.devstack import shared_data  # noqa: E402

PHOTOS = shared_data() / "photos"
# Phones (and one camera, for contrast): the photos residents send.
FILES = ["jpg/mobile/HMD_Nokia_8.3_5G.jpg", "jpg/mobile/jolla.jpg", "jpg/hdr/iphone_hdr_YES.jpg",
         "jpg/hdr/iphone_hdr_NO.jpg", "heic/mobile/iphone_13_pro_max.HEIC", "heic/mobile/HMD_Nokia_8.3_5G.heif",
         "jpg/hdr/canon_hdr_YES.jpg"]
PHONES = {f for f in FILES if "canon" not in f}


def pillow(data: bytes) -> None:
    from hue_reports.services.photos import render_derivatives

    render_derivatives(io.BytesIO(data))


def libvips(data: bytes) -> None:
    import pyvips

    display = pyvips.Image.thumbnail_buffer(data, 1600, size="down").copy_memory()
    display.jpegsave_buffer(Q=82, keep="none")
    display.thumbnail_image(320).jpegsave_buffer(Q=82, keep="none")


def child(engine: str, repeat: int) -> None:
    """Time one engine on every photo; print {file: best milliseconds or null}."""
    if engine == "libvips":
        import pyvips

        pyvips.cache_set_max(0)  # no cached results between repeats
    render = {"pillow": pillow, "libvips": libvips}[engine]
    results = {}
    for name in FILES:
        data = (PHOTOS / name).read_bytes()
        try:
            render(data)  # warm up (imports, codecs)
        except Exception:  # libvips without HEVC
            results[name] = None
            continue
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            render(data)
            best = min(best, time.perf_counter() - started)
        results[name] = best * 1000
    print(json.dumps(results))


def run_engine(engine: str, repeat: int) -> tuple[dict, float]:
    """(results, peak RSS in MB) of one engine in its own process."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", engine, "--repeat", str(repeat)],
                            stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{engine} benchmark failed")
    return json.loads(out), usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--child", choices=["pillow", "libvips"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.repeat)
        return 0
    ours, ours_peak = run_engine("pillow", args.repeat)
    theirs, theirs_peak = run_engine("libvips", args.repeat)
    print(f"\nDerivatives benchmark: display 1600 px + thumbnail 320 px, best of {args.repeat}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'photo':<42}{'pillow ms':>11}{'libvips ms':>12}{'ratio':>8}")
    ratios = []
    for name in FILES:
        mine, floor = ours[name], theirs[name]
        ratio = mine / floor if floor else None
        if ratio and name in PHONES:
            ratios.append(ratio)
        floor_text = f"{floor:>12.1f}" if floor else f"{'(no HEVC)':>12}"
        ratio_text = f"{ratio:>7.2f}x" if ratio else f"{'':>8}"
        print(f"{name + ('' if name in PHONES else ' (camera)'):<42}{mine:>11.1f}{floor_text}{ratio_text}")
        record("derivatives", f"display + thumbnail, {name}", mine, floor, "ms", peak_mb=ours_peak)
    print(f"{'peak RSS of the process (MB)':<42}{ours_peak:>11.1f}{theirs_peak:>12.1f}")
    print(f"worst phone photo: {max(ratios):.2f}x libvips's time (goal: at most 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
