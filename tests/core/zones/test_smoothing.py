"""The smoothing's promises on arcs: points stay in their squares, nodes stay, each arc keeps
its area, the levels respect the area limit. Oracles: the exact points, the shoelace formula."""

import numpy as np
import pytest
from raster_clustering.core.zones import smoothing
from raster_clustering.core.zones.arcs import densify, split_arcs
from raster_clustering.core.zones.smoothing import (
    CORRIDOR_PX,
    LEVEL_ITERATIONS,
    area_changes,
    choose_levels,
    corner_mask,
    smooth,
)
from zone_oracles import all_nodes, concatenated, numbered_zones, pixel_rings


def arcs_of(classes, connectivity=8):
    zones = numbered_zones(classes, classes > 0, connectivity)
    rings, owners = pixel_rings(zones)
    arcs = split_arcs(densify(*concatenated(rings)), np.array(all_nodes(zones), dtype=np.int64),
                      zones.shape[1])
    return arcs, owners


def shoelace(points):
    x, y = points[:, 0], points[:, 1]
    return 0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


@pytest.fixture(scope="module")
def blobs():
    rows, cols = np.indices((30, 36))
    classes = 1 + ((np.hypot(rows - 14, cols - 17) // 6) % 3).astype(int)
    classes[rows + cols < 6] = 0
    return arcs_of(classes)


@pytest.mark.parametrize("level", [1, 2, 3])
def test_points_stay_in_their_squares_and_nodes_stay(blobs, level):
    arcs, _ = blobs
    moved = smooth(arcs, np.full(len(arcs.key), LEVEL_ITERATIONS[level]))[
        LEVEL_ITERATIONS[level]]
    offset = np.abs(moved - arcs.points)
    assert offset.max() <= CORRIDOR_PX + 1e-12
    ends = np.concatenate([arcs.start[:-1][~arcs.closed], arcs.start[1:][~arcs.closed] - 1])
    np.testing.assert_array_equal(moved[ends], arcs.points[ends])
    assert offset.max() > 0.1  # it does smooth


def test_each_arc_encloses_little_area_with_its_exact_form(blobs, monkeypatch):
    arcs, _ = blobs
    moved = smooth(arcs, np.full(len(arcs.key), LEVEL_ITERATIONS[3]))[LEVEL_ITERATIONS[3]]
    change, _ = area_changes(arcs, moved)
    closed = np.flatnonzero(arcs.closed)
    for index in closed:  # closed arcs: compare the ring areas by the shoelace formula
        points = slice(arcs.start[index], arcs.start[index + 1])
        assert shoelace(moved[points]) - shoelace(arcs.points[points].astype(float)) == (
            pytest.approx(-change[index], abs=1e-9))
    # Sideways, the arcs moved by under 1/200 px on average; plain Laplacian smoothing (the
    # same without the area correction) moves them by far more, as the zones shrink.
    lengths = arcs.lengths
    long_arcs = lengths > 6
    assert (np.abs(change[long_arcs]) / lengths[long_arcs]).max() < 0.005
    monkeypatch.setattr(smoothing, "_keep_area", lambda walk, points, smoothing: points.copy())
    plain = smooth(arcs, np.full(len(arcs.key), LEVEL_ITERATIONS[3]))[LEVEL_ITERATIONS[3]]
    plain_change, _ = area_changes(arcs, plain)
    assert np.abs(plain_change).sum() > 20 * np.abs(change).sum()


def test_levels_keep_every_zone_within_the_area_limit_and_the_outline_exact():
    # Arc 10 is shared by zones 1 and 2, arc 20 by zones 2 and 3, arc 30 is on the outline.
    keys = np.array([10, 10, 20, 20, 30])
    zones = np.array([1, 2, 2, 3, 3])
    weights = np.array([1, -1, 1, -1, 1])
    changes = np.array([[0.5, 4.0]] * 2 + [[0.1, 0.2]] * 2 + [[5.0, 5.0]])
    levels = choose_levels(keys, zones, weights, changes, np.array([100, 100, 10]), level=2)
    np.testing.assert_array_equal(levels.keys, [10, 20, 30])
    np.testing.assert_array_equal(levels.shared, [True, True, False])
    # At level 2, arc 10 changes zones 1 and 2 by 4 % and 3.8 %: their arcs go down a level.
    np.testing.assert_array_equal(levels.levels, [1, 1, 0])
    np.testing.assert_allclose(levels.zone_change, [0.005, -0.004, -0.01])
    assert np.abs(levels.zone_change).max() <= smoothing.AREA_CHANGE_LIMIT


def test_straight_runs_lose_their_points_the_same_way_in_both_directions():
    rng = np.random.default_rng(0)
    ring = np.array([[0, 0], [1, 0], [2, 0], [3, 0], [3, 1], [3, 2], [2.5, 2.2], [1, 2.0000000001],
                     [0, 2], [0, 1]])
    ring = ring + rng.normal(0, 1e-12, ring.shape) * (np.arange(10) == 7)[:, None]
    keep = corner_mask(ring, np.array([0, len(ring)]))
    np.testing.assert_array_equal(keep, [True, False, False, True, False, True, True, True,
                                         True, False])
    backwards = corner_mask(ring[::-1].copy(), np.array([0, len(ring)]))
    np.testing.assert_array_equal(backwards, keep[::-1])
