"""Addresses to places, from the city's own data: a gazetteer of its current wards and communes.

A submission with an address and no position (Open311's `address_string` without lat/long, or the app's
`address` alone) is placed in the ward or commune its address names. The gazetteer is `admin_areas`: the
current areas (valid_to IS NULL) of the most specific tier, each known by

- its official name, with the level word, e.g. "Phường An Cựu" (the ward file's `name`),
- its English name, e.g. "An Cuu Ward" (`name_en`),
- its name without the level word, e.g. "An Cựu" (the ward file's `short_name`).

Names and address are compared as `hue_search_key` makes them (lower(unaccent(...)), the officers' search
key, migration 0004), word by word: "phuong an cuu", "P. An Cựu" and "AN CUU WARD" all name the same ward,
"A Lưới 1" never matches inside "A Lưới 10". A name with a ward's or commune's word ("phường", "xã",
"thị trấn", "P.", "Ward", ...) is more specific than a bare name: if the address has one, bare names are not
considered (so in "đường Kim Long, phường Hương An" the street named like another ward does not count). Of
the rest, a name inside a longer matched name does not count either. One ward left is the answer; none, or
two different wards, is an error that asks for a position or one ward's name.

Residents still write addresses of before the 2025 merger. A name right after another level's word
("huyện", "thị xã", "thành phố", "tỉnh", "District", ...: LEVEL_WORDS) is not a ward's: "huyện Phú Vang",
the old district, is far larger than Xã Phú Vang. A ward's or commune's word followed by no current ward's
name ("xã Phú Diên") names an old one: then no bare name elsewhere is taken instead (none found), unless a
current ward is named with its word as well.

The place is the ward's representative point (ST_PointOnSurface: inside the ward, unlike a centroid) and
its accuracy the distance from that point to the ward's farthest point: the report is somewhere within
that circle, and nothing more precise is claimed. Such a location is approximate (routing never treats it
as a position to compare with others; see services/routing.py).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy import func, select, text

from ..errors import ApiError
from ..extensions import db
from ..models import AdminArea
from . import areas

# The current areas of the deepest tier, with their names as search keys, and each word of the address as
# a search key (in the order written).
GAZETTEER_SQL = text("""
SELECT a.id, a.name, a.name_en,
       hue_search_key(a.name) AS name_key, hue_search_key(a.name_en) AS en_key,
       hue_search_key(a.properties ->> 'short_name') AS short_key,
       (SELECT array_agg(hue_search_key(w) ORDER BY n)
        FROM unnest(CAST(:words AS text[])) WITH ORDINALITY AS t(w, n)) AS word_keys
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
# What may stand between a level word and its name: spaces, a dot ("P.Vỹ Dạ", "TP. Huế") or a colon.
_JOINING = re.compile(r"[\s.:]*")

# Level words, as written (lower case, with diacritics). A ward's or commune's word: its name follows
# ("xã Phú Diên"), or in English precedes it ("Vy Da Ward"); followed by no current ward's name, it names
# an unknown (old) one. Abbreviations, with their dot, make a name definite but name nothing on their own
# ("P.302" is a room). Any other level's word (an old district, town or city, the province) makes the
# name next to it no ward's: "huyện Phú Vang" is not Xã Phú Vang. Vietnamese words come before the name;
# English ones after it, or before it.
WARD_BEFORE = (("thị", "trấn"), ("phường",), ("xã",))
WARD_AFTER = (("ward",), ("commune",))
WARD_ABBREVIATIONS = (("tt",), ("p",), ("x",))
OTHER_BEFORE = (("thị", "xã"), ("thành", "phố"), ("huyện",), ("quận",), ("tỉnh",), ("tp",), ("tx",))
OTHER_ABBREVIATIONS = (("h",), ("q",))
OTHER_EITHER = (("district",), ("town",), ("city",), ("province",))
# (kind, forms, with a dot, lenient): in the order tried ("thị xã" before "xã"). In an address written with
# diacritics a ward's word must be written so ("xa", far, is not "xã"); another level's word may also be
# written without any (a wrong name next to it is only not taken).
LEVEL_WORDS = (("other_before", OTHER_BEFORE, False, True), ("ward_before", WARD_BEFORE, False, False),
               ("ward_after", WARD_AFTER, False, False), ("other_either", OTHER_EITHER, False, True),
               ("ward_abbreviation", WARD_ABBREVIATIONS, True, False),
               ("other_before", OTHER_ABBREVIATIONS, True, True))


@dataclass(frozen=True)
class Place:
    """Where an address puts a report: a ward, its representative point and how far off that may be."""

    ward_id: int
    ward_name: str
    lat: float
    lon: float
    accuracy_m: float


@dataclass(frozen=True)
class Word:
    """A word of the address: its search key, as written (lower case), and what follows it."""

    key: str
    written: str
    joined: bool  # only spaces, dots or a colon up to the next word
    dotted: bool  # a dot right after it


@dataclass(frozen=True)
class _Match:
    ward_id: int
    start: int
    end: int  # (word positions in the address, end exclusive)
    explicit: bool  # the name came with its level word


@dataclass(frozen=True)
class _Level:
    start: int
    end: int
    kind: str  # a kind of LEVEL_WORDS


def words(key: str | None) -> tuple[str, ...]:
    return tuple(_WORD.findall(key or ""))


def written_words(address: str) -> list[tuple[str, str]]:
    """The address's words as written (NFC, lower case), each with what follows it up to the next word."""
    text_ = unicodedata.normalize("NFC", address).lower()
    found = list(_WORD.finditer(text_))
    return [(m.group(), text_[m.end():found[i + 1].start()] if i + 1 < len(found) else text_[m.end():])
            for i, m in enumerate(found)]


def address_words(written: list[tuple[str, str]], keys: list[str | None]) -> list[Word]:
    """The address's words with their search keys (`keys`: hue_search_key of each written word)."""
    out: list[Word] = []
    for (word, after), key in zip(written, keys, strict=True):
        parts = words(key)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            out.append(Word(part, word, joined=not last or bool(_JOINING.fullmatch(after)),
                            dotted=last and after.lstrip().startswith(".")))
    return out


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word.replace("đ", "d"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _levels(address: list[Word]) -> list[_Level]:
    """The level words of the address, left to right."""
    accented = any(w.key != w.written for w in address)

    def at(i: int, form: tuple[str, ...], lenient: bool) -> bool:
        if i + len(form) > len(address):
            return False
        for j, part in enumerate(form):
            word = address[i + j]
            if word.key != _fold(part) or not (
                    word.written == part or (word.written == word.key and (lenient or not accented))):
                return False
            if j < len(form) - 1 and not word.joined:
                return False
        return True

    found: list[_Level] = []
    i = 0
    while i < len(address):
        level = next((_Level(i, i + len(form), kind) for kind, forms, dotted, lenient in LEVEL_WORDS
                      for form in forms
                      if at(i, form, lenient) and (not dotted or address[i + len(form) - 1].dotted)), None)
        if level is None:
            i += 1
        else:
            found.append(level)
            i = level.end
    return found


def _occurrences(needle: tuple[str, ...], haystack: tuple[str, ...]):
    n = len(needle)
    if n == 0:
        return
    for i in range(len(haystack) - n + 1):
        if haystack[i:i + n] == needle:
            yield i, i + n


def match_wards(address: list[Word], names: list[tuple[int, str | None, str | None, str | None]]) -> set[int]:
    """The wards an address names: `names` are (ward id, official name key, English name key, short name
    key). An empty set: none (or an unknown ward named); more than one: ambiguous."""
    keys = tuple(w.key for w in address)
    levels = _levels(address)
    other_words = {i for lv in levels if lv.kind.startswith("other") for i in range(lv.start, lv.end)}
    # The level words a name may follow (joined to the next word), and those a name may precede.
    ending = {lv.end: lv.kind for lv in levels if lv.end < len(address) and address[lv.end - 1].joined}
    starting = {lv.start: lv.kind for lv in levels if lv.start > 0 and address[lv.start - 1].joined}
    found: list[_Match] = []
    for ward_id, name_key, en_key, short_key in names:
        for key, full in ((name_key, True), (en_key, True), (short_key, False)):
            for s, e in _occurrences(words(key), keys):
                before, after = ending.get(s), starting.get(e)
                if other_words.intersection(range(s, e)) or not full and (
                        before in ("other_before", "other_either") or after == "other_either"):
                    continue  # an old district's, town's or city's name, or the province's ("thị xã Hương Trà")
                explicit = full or before in ("ward_before", "ward_abbreviation") or after == "ward_after"
                found.append(_Match(ward_id, s, e, explicit))
    if any(m.explicit for m in found):
        found = [m for m in found if m.explicit]
    elif "ward_before" in ending.values() or "ward_after" in starting.values():
        # A ward's or commune's word next to no current one's name ("xã Phú Diên", "Phu Dien Commune"): an
        # old one, not to be replaced by a name found elsewhere in the address.
        return set()
    kept = [m for m in found
            if not any(o.ward_id != m.ward_id and o.start <= m.start and m.end <= o.end
                       and (o.end - o.start) > (m.end - m.start) for o in found)]
    return {m.ward_id for m in kept}


def locate(address: str, city: areas.CityInfo) -> Place:
    """The place an address names (its ward); ApiError 422 `address_not_found` or `address_ambiguous`."""
    written = written_words(address)
    rows = db.session.execute(GAZETTEER_SQL, {"words": [w for w, _ in written]}).mappings().all()
    if not rows:
        raise ApiError(503, "not_configured", "No wards are loaded yet (flask seed).",
                       message_vi="Chưa nạp dữ liệu phường/xã.")
    wards = {row["id"]: row for row in rows}
    matched = match_wards(address_words(written, rows[0]["word_keys"] or []),
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
