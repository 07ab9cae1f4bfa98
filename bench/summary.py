"""Print the summary table of `make bench` from the rows the benchmarks recorded (bench/common.record).

    python bench/summary.py FILE
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path


def number(value: float | None, unit: str = "") -> str:
    if value is None:
        return ""
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
    return f"{text} {unit}".rstrip()


def table(rows: list[dict]) -> str:
    head = ("benchmark", "figure", "value", "floor", "ratio", "peak RSS")
    lines = [[r["benchmark"], r["figure"], number(r["value"], r["unit"]), number(r["floor"], r["unit"]),
              f"{r['ratio']:.2f}x" if r["ratio"] else "", f"{r['peak_mb']:.0f} MB" if r["peak_mb"] else ""]
             for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += ["| " + " | ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in
                              enumerate(zip(line, widths, strict=True))) + " |" for line in lines]
    return "\n".join(out)


def main() -> int:
    path = Path(sys.argv[1])
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    print(f"\nSummary of `make bench` ({date.today()}; ratio: our cost over the floor's, the same work done "
          "directly; peak RSS: the benchmark's Python processes, not the database servers)")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
