"""Addresses to places, from the city's own data: a gazetteer of its current wards and communes.

A submission with an address and no position (Open311's `address_string` without lat/long, or the app's
`address` alone) is placed in the ward or commune its address names. The gazetteer is `admin_areas`: the
current areas (valid_to IS NULL) of the most specific tier, each known by

- its official name, with the level word, e.g. "Phường An Cựu" (the ward file's `name`),
- its English name, e.g. "An Cuu Ward" (`name_en`),
- its name without the level word, e.g. "An Cựu" (the ward file's `short_name`).

Names and address are compared as `hue_search_key` makes them (lower(unaccent(...)), the officers' search
key, migration 0004), word by word: "phuong an cuu", "P. An Cựu" and "AN CUU WARD" all name the same ward,
"A Lưới 1" never matches inside "A Lưới 10". A name with its level word (Vietnamese or English) is more
specific than a bare name: if the address has one, bare names are not considered (so in
"đường Kim Long, phường Hương An" the street named like another ward does not count). Of the rest, a name
inside a longer matched name does not count either. One ward left is the answer; none, or two different
wards, is an error that asks for a position or one ward's name.

The place is the ward's representative point (ST_PointOnSurface: inside the ward, unlike a centroid) and
its accuracy the distance from that point to the ward's farthest point: the report is somewhere within
that circle, and nothing more precise is claimed. Such a location is approximate (routing never treats it
as a position to compare with others; see services/routing.py).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from sqlalchemy import func, select, text

from ..errors import ApiError
from ..extensions import db
from ..models import AdminArea
from . import areas

# The current areas of the deepest tier, with their names as search keys, and the address's key.
GAZETTEER_SQL = text("""
SELECT a.id, a.name, a.name_en,
       hue_search_key(a.name) AS name_key, hue_search_key(a.name_en) AS en_key,
       hue_search_key(a.properties ->> 'short_name') AS short_key,
       hue_search_key(CAST(:address AS text)) AS address_key
FROM admin_areas a
WHERE a.valid_to IS NULL
  AND a.tier = (SELECT max(tier) FROM admin_areas WHERE valid_to IS NULL)
ORDER BY a.name, a.id
""")

# A ward's representative point and the distance from it to the ward's farthest point (metres, on the
# spheroid).
PLACE_SQL = text("""
SELECT ST_Y(s.p) AS lat, ST_X(s.p) AS lon, ST_Length(ST_LongestLine(s.p, s.geom)::geography) AS reach_m
FROM (SELECT ST_PointOnSurface(geom) AS p, geom FROM admin_areas WHERE id = :id) AS s
""")

# The errors of an address that names no single ward or commune.
NOT_LOCATED = ("address_not_found", "address_ambiguous")

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Place:
    """Where an address puts a report: a ward, its representative point and how far off that may be."""

    ward_id: int
    ward_name: str
    lat: float
    lon: float
    accuracy_m: float


@dataclass(frozen=True)
class _Match:
    ward_id: int
    start: int
    end: int  # (word positions in the address, end exclusive)
    explicit: bool  # the name came with its level word


def words(key: str | None) -> tuple[str, ...]:
    return tuple(_WORD.findall(key or ""))


def _occurrences(needle: tuple[str, ...], haystack: tuple[str, ...]):
    n = len(needle)
    if n == 0:
        return
    for i in range(len(haystack) - n + 1):
        if haystack[i:i + n] == needle:
            yield i, i + n


def match_wards(address_key: str, names: list[tuple[int, str | None, str | None, str | None]]) -> set[int]:
    """The wards an address (as a search key) names: `names` are (ward id, official name key, English name
    key, short name key). An empty set: none; more than one: ambiguous."""
    address = words(address_key)
    found: list[_Match] = []
    for ward_id, name_key, en_key, short_key in names:
        for key, explicit in ((name_key, True), (en_key, True), (short_key, False)):
            found += [_Match(ward_id, s, e, explicit) for s, e in _occurrences(words(key), address)]
    if any(m.explicit for m in found):
        found = [m for m in found if m.explicit]
    kept = [m for m in found
            if not any(o.ward_id != m.ward_id and o.start <= m.start and m.end <= o.end
                       and (o.end - o.start) > (m.end - m.start) for o in found)]
    return {m.ward_id for m in kept}


def locate(address: str, city: areas.CityInfo) -> Place:
    """The place an address names (its ward); ApiError 422 `address_not_found` or `address_ambiguous`."""
    rows = db.session.execute(GAZETTEER_SQL, {"address": address}).mappings().all()
    if not rows:
        raise ApiError(503, "not_configured", "No wards are loaded yet (flask seed).",
                       message_vi="Chưa nạp dữ liệu phường/xã.")
    wards = {row["id"]: row for row in rows}
    matched = match_wards(rows[0]["address_key"],
                          [(r["id"], r["name_key"], r["en_key"], r["short_key"]) for r in rows])
    example = rows[0]
    ask = (f"Send the position (latitude and longitude), or name one ward or commune of {city.name_en} in "
           f"the address, e.g. '{example['name']}' or '{example['name_en']}'.")
    ask_vi = (f"Hãy gửi vị trí (vĩ độ và kinh độ), hoặc ghi rõ một phường/xã của {city.name} trong địa chỉ, "
              f"ví dụ “{example['name']}”.")
    if not matched:
        raise ApiError(422, "address_not_found", f"The address names no ward or commune. {ask}",
                       message_vi=f"Địa chỉ không có tên phường/xã nào. {ask_vi}",
                       fields={"address": ["No ward or commune named."]})
    if len(matched) > 1:
        names = ", ".join(sorted(wards[w]["name"] for w in matched))
        raise ApiError(422, "address_ambiguous", f"The address names more than one ward or commune ({names}). "
                                                 f"{ask}",
                       message_vi=f"Địa chỉ có tên nhiều phường/xã ({names}). {ask_vi}",
                       fields={"address": [f"More than one ward or commune named: {names}."]})
    [ward_id] = matched
    place = db.session.execute(PLACE_SQL, {"id": ward_id}).one()
    return Place(ward_id=ward_id, ward_name=wards[ward_id]["name"], lat=place.lat, lon=place.lon,
                 accuracy_m=float(math.ceil(place.reach_m)))


def covers(ward_id: int, lat: float, lon: float) -> bool:
    """Is the point in the ward (or on its boundary)?"""
    return bool(db.session.scalar(select(func.ST_Covers(AdminArea.geom, areas.point(lon, lat)))
                                  .where(AdminArea.id == ward_id)))
