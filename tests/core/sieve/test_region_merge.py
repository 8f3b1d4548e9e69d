"""The sieve's exact step on the region graph, without GDAL: merge rules, strips, the promise.

Oracles: hand-worked graphs, scipy.ndimage.label (tests/helpers.py) and the same raster in one
strip.
"""

from dataclasses import dataclass

import numpy as np
import pytest
from helpers import label_regions, small_regions_with_neighbours
from hypothesis import given, settings
from hypothesis import strategies as st
from raster_clustering.core.engine import run_scope
from raster_clustering.core.errors import CancelledError
from raster_clustering.core.progress import Progress
from raster_clustering.core.sieve import region_merge
from raster_clustering.core.sieve.region_merge import (
    _first_pixels,
    merge_small_regions,
    resolve_merges,
)


@dataclass(frozen=True, eq=False)
class ArrayStrips:
    """Strips of in-memory classes, as merge_small_regions's jobs open them."""

    classes: np.ndarray
    valid: np.ndarray
    scope: str = "tests"

    def open(self):
        return self

    def read(self, first, n_rows):
        return self.classes[first : first + n_rows], self.valid[first : first + n_rows]


def merged(classes, valid=None, *, min_pixels, connectivity=8, strip_rows=256, row_areas=None):
    """merge_small_regions on arrays, in strips of `strip_rows`; pixel areas 1 by default."""
    valid = classes != 0 if valid is None else valid
    row_areas = np.ones(classes.shape[0]) if row_areas is None else np.asarray(row_areas, float)
    result = np.full_like(classes, 255)
    written = []

    def write(strip, first):
        result[first : first + len(strip)] = strip
        written.append(first)

    with run_scope() as scope:
        merge_small_regions(
            ArrayStrips(classes, valid, scope), write,
            row_areas_m2=row_areas, min_area_m2=min_pixels, connectivity=connectivity,
            strip_rows=strip_rows,
        )
    assert written == list(range(0, classes.shape[0], strip_rows))
    return result


def graph(edges):
    return np.array(edges, dtype=np.int64).reshape(-1, 2)


# ----------------------------------------------------------------------------- the rounds


def test_small_region_follows_the_chain_of_largest_neighbours_to_a_large_one():
    # Regions 1..5: A(6) touches B(10) and E(8); B touches C(24, large); E touches F(48, large).
    # A's largest neighbour B is small, B's is C: A goes to C's class, like B (GDAL's rule).
    region_class = np.array([0, 11, 12, 13, 14, 15])
    area = np.array([0.0, 6, 10, 24, 8, 48])
    edges = graph([(1, 2), (1, 4), (2, 3), (4, 5)])
    final = resolve_merges(region_class, area, edges, min_area_m2=11)
    np.testing.assert_array_equal(final, [0, 13, 13, 13, 15, 15])


def test_pair_of_small_regions_alone_becomes_the_larger():
    final = resolve_merges(np.array([0, 1, 2]), np.array([0.0, 3, 4]), graph([(1, 2)]), 10)
    np.testing.assert_array_equal(final, [0, 2, 2])


def test_equal_small_regions_tie_to_the_one_starting_first():
    final = resolve_merges(np.array([0, 7, 5]), np.array([0.0, 3, 3]), graph([(1, 2)]), 10)
    np.testing.assert_array_equal(final, [0, 7, 7])
    final = resolve_merges(np.array([0, 7, 5]), np.array([0.0, 3, 3]), graph([(1, 2)]), 10,
                           region_start=np.array([0, 40, 12]))
    np.testing.assert_array_equal(final, [0, 5, 5])


@pytest.mark.parametrize("labels", [
    [[1, 1, 0, 2], [0, 3, 3, 2]],  # reading order, as scipy numbers them
    [[2, 2, 0, 3], [0, 1, 1, 3]],  # any other order: the fallback
])
def test_first_pixel_of_each_label(labels):
    labels = np.array(labels, np.int32)
    starts = _first_pixels(labels, labels > 0, 3)
    expected = [int(np.flatnonzero(labels.ravel() == label)[0]) for label in (1, 2, 3)]
    np.testing.assert_array_equal(starts, expected)


def test_isolated_small_region_and_large_regions_keep_their_class():
    # 1 (small) is alone; 2 and 3 are large and touch: nothing changes.
    final = resolve_merges(np.array([0, 1, 2, 3]), np.array([0.0, 2, 50, 60]), graph([(2, 3)]),
                           10)
    np.testing.assert_array_equal(final, [0, 1, 2, 3])


def test_small_regions_fused_by_a_merge_may_then_be_large_enough():
    # 1 (4 px) and 2 (4 px) of class 1 do not touch; 3 (3 px, class 2) touches both; 4 (5 px,
    # class 3) touches 2. Nothing is large (10). Largest neighbours: 1 -> 3, 3 -> 1 (a tie with
    # 2, the first labelled wins), 2 -> 4, 4 -> 2. Round 1: 1 absorbs 3 (class 1, 7 px) and 4
    # absorbs 2 (class 3, 9 px). Round 2: those two are each other's largest: 9 px absorbs 7.
    final = resolve_merges(np.array([0, 1, 1, 2, 3]), np.array([0.0, 4, 4, 3, 5]),
                           graph([(1, 3), (2, 3), (2, 4)]), 10)
    np.testing.assert_array_equal(final, [0, 3, 3, 3, 3])


def test_regions_of_exactly_min_area_are_kept():
    final = resolve_merges(np.array([0, 1, 2]), np.array([0.0, 0.3 * 10, 0.09 * 30]),
                           graph([(1, 2)]), 2.7)
    np.testing.assert_array_equal(final, [0, 1, 2])


# ----------------------------------------------------------------------------- strips


def test_region_split_by_every_strip_boundary_is_one_region():
    classes = np.ones((12, 5), np.uint8)
    classes[:, 2] = 2  # a 12-pixel line of class 2 down the middle, one row per strip
    for strip_rows in (1, 5, 12):
        np.testing.assert_array_equal(merged(classes, min_pixels=12, strip_rows=strip_rows),
                                      classes)
        assert not (merged(classes, min_pixels=13, strip_rows=strip_rows) == 2).any()


@pytest.mark.parametrize("connectivity", [4, 8])
def test_diagonal_contact_across_a_strip_boundary(connectivity):
    classes = np.zeros((2, 6), np.uint8)
    classes[0, 0:4] = 1
    classes[1, 4:6] = 2  # touches class 1 only by a corner, in the next strip
    after = merged(classes, min_pixels=3, connectivity=connectivity, strip_rows=1)
    assert (after[1, 4:6] == (1 if connectivity == 8 else 2)).all()


def test_true_area_of_rows_decides():
    classes = np.ones((4, 4), np.uint8)
    classes[3, 0:2] = 2  # 2 pixels of area 3 each: 6 m²
    classes[0, 0:2] = 3  # 2 pixels of area 1 each: 2 m²
    after = merged(classes, min_pixels=5, row_areas=[1, 1, 1, 3], strip_rows=2)
    assert (after == 2).sum() == 2 and not (after == 3).any()


def test_nodata_keeps_its_input_values_and_is_never_merged_into():
    classes = np.array([[9, 9, 1, 1, 1], [9, 9, 2, 1, 1]], np.uint8)
    valid = classes != 9
    after = merged(classes, valid, min_pixels=3, strip_rows=1)
    np.testing.assert_array_equal(after, [[9, 9, 1, 1, 1], [9, 9, 1, 1, 1]])


def test_cancelling_stops_before_the_next_strip():
    classes = np.ones((10, 3), np.uint8)
    calls = []

    def is_cancelled():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(CancelledError):
        merge_small_regions(ArrayStrips(classes, np.ones((10, 3), bool)),
                            lambda strip, first: pytest.fail("nothing may be written"),
                            row_areas_m2=np.ones(10), min_area_m2=3, connectivity=8,
                            strip_rows=2, steps=Progress(is_cancelled=is_cancelled))
    assert len(calls) == 4, "stopped at the first check that saw the cancel"


@st.composite
def small_rasters(draw):
    rows, cols = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    classes = rng.integers(0, draw(st.integers(2, 6)), size=(rows, cols)).astype(np.uint8)
    return classes


@settings(max_examples=150, deadline=None)
@given(classes=small_rasters(), min_pixels=st.integers(1, 40),
       connectivity=st.sampled_from([4, 8]), strip_rows=st.integers(1, 6))
def test_property_every_small_region_is_alone_and_strips_do_not_matter(
        classes, min_pixels, connectivity, strip_rows):
    valid = classes != 0
    after = merged(classes, min_pixels=min_pixels, connectivity=connectivity,
                   strip_rows=strip_rows)
    whole = merged(classes, min_pixels=min_pixels, connectivity=connectivity,
                   strip_rows=classes.shape[0])
    np.testing.assert_array_equal(after, whole)
    np.testing.assert_array_equal(after[~valid], classes[~valid])
    assert (after[valid] != 0).all()
    labels = label_regions(classes, valid, connectivity)
    large = np.bincount(labels.ravel()) >= min_pixels
    kept = valid & large[labels]
    np.testing.assert_array_equal(after[kept], classes[kept])
    assert len(small_regions_with_neighbours(after, valid, connectivity=connectivity,
                                             min_size=min_pixels)) == 0


@settings(max_examples=60, deadline=None)
@given(classes=small_rasters(), min_pixels=st.integers(1, 40),
       connectivity=st.sampled_from([4, 8]), strip_rows=st.integers(1, 6))
def test_labelling_all_classes_at_once_gives_the_same_result(
        classes, min_pixels, connectivity, strip_rows):
    one_by_one = merged(classes, min_pixels=min_pixels, connectivity=connectivity,
                        strip_rows=strip_rows)
    limit = region_merge._MAX_CLASSES_LABELLED_ONE_BY_ONE
    region_merge._MAX_CLASSES_LABELLED_ONE_BY_ONE = 0  # every strip through the graph
    try:
        at_once = merged(classes, min_pixels=min_pixels, connectivity=connectivity,
                         strip_rows=strip_rows)
    finally:
        region_merge._MAX_CLASSES_LABELLED_ONE_BY_ONE = limit
    np.testing.assert_array_equal(at_once, one_by_one)


@pytest.mark.parametrize("connectivity", [4, 8])
def test_segment_ids_by_the_thousand(connectivity):
    # 2,500 segments of 4 x 4 pixels, each with its own id, some split into specks.
    rng = np.random.default_rng(7)
    classes = np.kron(np.arange(1, 2501, dtype=np.int32).reshape(50, 50),
                      np.ones((4, 4), np.int32))
    specks = rng.random(classes.shape) < 0.05
    classes[specks] = rng.integers(1, 2501, int(specks.sum()))
    valid = rng.random(classes.shape) > 0.02
    after = merged(classes, valid, min_pixels=10, connectivity=connectivity, strip_rows=64)
    assert len(np.unique(classes[valid])) > region_merge._MAX_CLASSES_LABELLED_ONE_BY_ONE
    np.testing.assert_array_equal(after[~valid], classes[~valid])
    labels = label_regions(classes, valid, connectivity)
    large = np.bincount(labels.ravel()) >= 10
    kept = valid & large[labels]
    np.testing.assert_array_equal(after[kept], classes[kept])
    assert len(small_regions_with_neighbours(after, valid, connectivity=connectivity,
                                             min_size=10)) == 0


@settings(max_examples=100, deadline=None)
@given(classes=small_rasters(), connectivity=st.sampled_from([4, 8]),
       strip_rows=st.integers(1, 6))
def test_connected_regions_are_scipys_numbered_by_class_then_first_pixel(
        classes, connectivity, strip_rows):
    from zone_oracles import numbered_zones

    valid = classes != 0
    strips = list(region_merge.row_strips(classes.shape[0], strip_rows))

    def read(first, n):
        return classes[first:first + n], valid[first:first + n]

    with run_scope() as scope:
        regions = region_merge.connected_regions(ArrayStrips(classes, valid, scope), strips,
                                                 connectivity=connectivity)
    numbers = np.concatenate([region_merge.region_numbers(regions, index, *read(first, n))
                              for index, (first, n) in enumerate(strips)])
    expected = numbered_zones(classes, valid, connectivity)
    np.testing.assert_array_equal(numbers, expected)
    assert regions.count == expected.max()
    first_pixel = {zone: classes.ravel()[index] for index, zone in
                   reversed(list(enumerate(expected.ravel())))}
    assert [regions.region_class[zone] for zone in range(1, regions.count + 1)] == [
        first_pixel[zone] for zone in range(1, regions.count + 1)]
