"""The map grid's cell arithmetic (services/mapgrid.py), against the plain definitions."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from hue_reports.services import mapgrid


def centre(level: int, mx: int, my: int) -> tuple[float, float]:
    """A cell's centre in WGS84, by the inverse web-mercator formulas."""
    cells = 2 ** level
    lon = (mx + 0.5) / cells * 360.0 - 180.0
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (my + 0.5) / cells))))
    return lon, lat


boxes = st.tuples(st.floats(107.0, 108.0), st.floats(16.0, 16.8), st.floats(0.0005, 0.05), st.floats(0.0005, 0.05))


@settings(max_examples=300, deadline=None)
@given(box=boxes, level=st.integers(10, 19))
def test_the_cells_whose_centre_is_in_a_box(box, level):
    lon, lat, width, height = box
    bbox = (lon, lat, lon + width, lat + height)
    whole = mapgrid.range_of_bbox(bbox, level)
    inner = mapgrid.range_of_centres(bbox, level)
    size = 360.0 / 2 ** level
    inside = {(mx, my) for mx in range(whole.mx0, whole.mx1 + 1) for my in range(whole.my0, whole.my1 + 1)
              if bbox[0] <= centre(level, mx, my)[0] <= bbox[2] and bbox[1] <= centre(level, mx, my)[1] <= bbox[3]}
    got = {(mx, my) for mx in range(inner.mx0, inner.mx1 + 1) for my in range(inner.my0, inner.my1 + 1)}
    wide = width >= size * 1.001
    tall = (mapgrid._y_m(lat) - mapgrid._y_m(lat + height)) >= mapgrid.WORLD_M / 2 ** level * 1.001
    if wide and tall:
        assert got == inside
    else:  # (narrower than a cell along an axis: the cells touching it, along that axis)
        assert inside <= got
        assert got <= {(mx, my) for mx in range(whole.mx0, whole.mx1 + 1) for my in range(whole.my0, whole.my1 + 1)}
