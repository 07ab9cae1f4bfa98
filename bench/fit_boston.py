"""Fit the benchmark generator's lifecycles to Boston's real 311 history of 2015, and write the fit.

    python bench/fit_boston.py [CSV.gz] [--out bench/boston_fit.json]

The file (121,145 service requests, ../shared/data/boston311_2015_full.csv.gz, see its SOURCE.md) is not
shipped: this script recomputes `bench/boston_fit.json`, which is, and `bench/generate.py` reads only that.
Default input: $HUE_SHARED_DATA/boston311_2015_full.csv.gz, else ../shared/data beside the checkout.

Each Boston request is given one of our categories by its REASON and TYPE (MAPPING below; a reason that
is not a problem in the street, such as a call-centre enquiry, a comment on an employee or a survey, is
left out, as are lost-and-found animals, which Boston never closes in this system). Then, per category
group (our `groups` in categories.yaml: the kind of work), from the requests of that group:

* `quantiles`: the empirical quantile table of open -> close hours of the closed requests (PROBS), which
  `generate.py` samples by inverse transform (piecewise linear between the points);
* `on_time`: the share of closed requests closed by their target (Boston counts a request without a
  target as on time, as its OnTime_Status does);
* `stalled`: the share of requests opened in the first half of 2015 still open when the file was taken
  (six months and more later): work that is never done;
* `duplicates`, `rejected`: the share closed as a duplicate, and as invalid / no basis / no violation.

And per category its share of the mapped requests (`category_share`; a category no Boston request maps
to gets FLOOR_SHARE). The whole file's own figures (the targets the generated set is compared with) are
recorded in `targets`.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import re
import sys
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "boston_fit.json"
PROBS = [round(p, 3) for p in [*np.arange(0, 0.99, 0.01), *np.arange(0.99, 1.0, 0.001), 1.0]]
FLOOR_SHARE = 0.003
FORMAT = "%m/%d/%Y %I:%M:%S %p"
STALLED_BEFORE = datetime(2015, 7, 1)

# Boston REASON -> our category; (REASON, TYPE) overrides. None: not a problem in the street (left out).
REASONS: dict[str, str | None] = {
    "Highway Maintenance": "road_damage", "Pothole": "road_damage", "Bridge Maintenance": "bridge_culvert_damage",
    "Signs & Signals": "traffic_sign_damage", "Operations": "traffic_sign_damage",
    "Traffic Management & Engineering": "traffic_signal_fault", "Parking Complaints": "illegal_parking",
    "Office of The Parking Clerk": "illegal_parking", "Valet": "illegal_parking",
    "Enforcement & Abandoned Vehicles": "illegal_parking",
    "Graffiti": "illegal_advertising", "Abandoned Bicycle": "sidewalk_encroachment",
    "Code Enforcement": "sidewalk_encroachment", "Weights and Measures": "street_vending",
    "Consumer Affairs Issues": "street_vending",
    "Building": "unpermitted_construction",
    "Street Cleaning": "uncollected_waste", "Sanitation": "uncollected_waste", "Recycling": "uncollected_waste",
    "Environmental Services": "pollution", "Health": "pollution", "Air Pollution Control": "pollution",
    "Generic Noise Disturbance": "noise", "Noise Disturbance": "noise", "Massport": "noise",
    "Neighborhood Services Issues": "noise",
    "Street Lights": "street_light_out",
    "Trees": "tree_pruning", "Park Maintenance & Safety": "park_damage", "Cemetery": "park_damage",
    "Boston Bikes": "park_damage",
    "Catchbasin": "blocked_drain", "Fire Hydrant": "water_main_burst", "Water Issues": "water_main_burst",
    "Needle Program": "social_vice", "Investigations and Enforcement": "social_vice",
    "Administrative & General Requests": "other", "General Request": "other",
    # not problems in the street (indoor living conditions), or never closed in this system (other agencies')
    "Housing": None, "Fire Department": None, "MBTA": None,
    "Employee & General Comments": None, "Call Inquiry": None, "Notification": None, "Disability": None,
    "Survey": None, "Alert Boston": None, "Participatory Budgeting Idea Collection": None, "Metrolist": None,
    "Programs": None, "Billing": None, "Administration": None, "Animal Issues": None,
}
TYPES: dict[tuple[str, str], str] = {
    ("Highway Maintenance", "Sidewalk Repair (Make Safe)"): "sidewalk_damage",
    ("Highway Maintenance", "Sidewalk Repair"): "sidewalk_damage",
    ("Highway Maintenance", "Sidewalk Repair (Internal)"): "sidewalk_damage",
    ("Highway Maintenance", "Empty Litter Basket"): "uncollected_waste",
    ("Highway Maintenance", "PWD Graffiti"): "illegal_advertising",
    ("Highway Maintenance", "News Boxes"): "sidewalk_encroachment",
    ("Highway Maintenance", "Contractor Complaints"): "construction_materials",
    ("Highway Maintenance", "Work Hours-Loud Noise Complaints"): "noise",
    ("Highway Maintenance", "Utility Call-In"): "manhole_cover",
    ("Signs & Signals", "Traffic Signal Inspection"): "traffic_signal_fault",
    ("Signs & Signals", "Traffic Signal Repair"): "traffic_signal_fault",
    ("Building", "Unsafe Dangerous Conditions"): "unsafe_construction",
    ("Building", "Contractors Complaint"): "construction_materials",
    ("Street Cleaning", "Pick up Dead Animal"): "dead_animal",
    ("Street Cleaning", "Request for Snow Plowing (Emergency Responder)"): "road_obstruction",
    ("Environmental Services", "Trash on Vacant Lot"): "illegal_dumping",
    ("Environmental Services", "Overflowing or Un-kept Dumpster"): "uncollected_waste",
    ("Code Enforcement", "Illegal Dumping"): "illegal_dumping",
    ("Code Enforcement", "Construction Debris"): "construction_materials",
    ("Street Lights", "Street Light Knock Downs"): "dangerous_wiring",
    ("Street Lights", "Major System Failure"): "dangerous_wiring",
    ("Trees", "Tree Emergencies"): "fallen_tree",
    ("Housing", "No Utilities Residential - Water"): "water_outage",
    ("Health", "No Utilities - Food Establishment - Water"): "water_outage",
    ("Administrative & General Requests", "Misc. Snow Complaint"): "road_obstruction",
}
REJECTED_CLOSURES = ("Case Invalid", "NOBASE", "NOVIO", "No Violation")
DUPLICATE_CLOSURES = ("Duplicate", "exists already", "duplicate")


def default_csv() -> Path:
    shared = os.environ.get("HUE_SHARED_DATA")
    base = Path(shared) if shared else ROOT.parent / "shared" / "data"
    return base / "boston311_2015_full.csv.gz"


def category_groups() -> dict[str, str]:
    import yaml

    data = yaml.safe_load((ROOT / "hue_reports/data/hue/categories.yaml").read_text(encoding="utf-8"))
    return {c["code"]: g["code"] for g in data["groups"] for c in g["categories"]}


def parse(value: str) -> datetime | None:
    return datetime.strptime(value, FORMAT) if value else None


def summary(hours: np.ndarray, on_time: int, closed: int) -> dict[str, float]:
    return {"closed": int(closed), "median_hours": round(float(np.median(hours)), 1),
            "p90_hours": round(float(np.quantile(hours, 0.9)), 1), "on_time": round(on_time / closed, 4)}


def fit(path: Path) -> dict:
    groups_of = category_groups()
    per_group: dict[str, dict] = defaultdict(lambda: {"hours": [], "on_time": 0, "early": 0, "early_open": 0,
                                                      "duplicates": 0, "rejected": 0, "n": 0})
    categories: Counter[str] = Counter()
    all_hours, all_on_time, left_out = [], 0, Counter()
    with gzip.open(path, "rt", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            opened, closed = parse(row["OPEN_DT"]), parse(row["CLOSED_DT"])
            done = row["CASE_STATUS"] == "Closed" and closed is not None
            if done:
                all_hours.append(max(0.0, (closed - opened).total_seconds() / 3600))
                all_on_time += row["OnTime_Status"] != "OVERDUE"
            reason = row["REASON"]
            category = TYPES.get((reason, row["TYPE"]), REASONS.get(reason, "other"))
            if category is None:
                left_out[reason] += 1
                continue
            categories[category] += 1
            g = per_group[groups_of[category]]
            g["n"] += 1
            if opened < STALLED_BEFORE:
                g["early"] += 1
                g["early_open"] += not done
            if done:
                g["hours"].append(max(0.0, (closed - opened).total_seconds() / 3600))
                g["on_time"] += row["OnTime_Status"] != "OVERDUE"
                closure = row["CLOSURE_REASON"]
                g["duplicates"] += any(k in closure for k in DUPLICATE_CLOSURES)
                g["rejected"] += any(k in closure for k in REJECTED_CLOSURES)
    mapped = sum(categories.values())
    shares = {c: max(FLOOR_SHARE, categories[c] / mapped) for c in groups_of}
    total = sum(shares.values())
    fitted_groups = {}
    mapped_hours, mapped_on_time = [], 0
    for name in sorted(per_group):
        g = per_group[name]
        hours = np.array(g["hours"])
        mapped_hours.append(hours)
        mapped_on_time += g["on_time"]
        fitted_groups[name] = {
            "requests": g["n"], **summary(hours, g["on_time"], len(hours)),
            "stalled": round(g["early_open"] / g["early"], 4),
            "duplicates": round(g["duplicates"] / len(hours), 4), "rejected": round(g["rejected"] / len(hours), 4),
            "quantiles": [round(float(q), 3) for q in np.quantile(hours, PROBS)],
        }
    missing = sorted(set(groups_of.values()) - set(fitted_groups))
    if missing:
        raise SystemExit(f"no Boston request maps to the group(s) {', '.join(missing)}: extend MAPPING")
    together = np.concatenate(mapped_hours)
    return {
        "source": "City of Boston 311 Service Requests opened in 2015 (boston311_2015_full.csv.gz, "
                  "ODC PDDL); recomputed by: python bench/fit_boston.py",
        "targets": {"whole_file": summary(np.array(all_hours), all_on_time, len(all_hours)),
                    "mapped_requests": summary(together, mapped_on_time, len(together))},
        "left_out": dict(left_out.most_common()),
        "probs": PROBS,
        "category_share": {c: round(shares[c] / total, 5) for c in sorted(shares)},
        "groups": fitted_groups,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", nargs="?", type=Path, default=default_csv())
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if not args.csv.exists():
        raise SystemExit(f"{args.csv} not found (set HUE_SHARED_DATA or pass the file)")
    result = fit(args.csv)
    text = json.dumps(result, indent=1, ensure_ascii=False)
    # (number lists on one line)
    text = re.sub(r"\[[-0-9.,\s]+\]", lambda m: " ".join(m.group(0).split()), text)
    args.out.write_text(text + "\n", encoding="utf-8")
    t = result["targets"]
    print(f"whole file: {t['whole_file']}\nmapped requests: {t['mapped_requests']}")
    for name, g in result["groups"].items():
        print(f"{name:<20} n={g['requests']:>6} closed={g['closed']:>6} median={g['median_hours']:>7} h "
              f"p90={g['p90_hours']:>7} h on time={g['on_time']:.2f} stalled={g['stalled']:.2f} "
              f"dup={g['duplicates']:.3f} rej={g['rejected']:.3f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
