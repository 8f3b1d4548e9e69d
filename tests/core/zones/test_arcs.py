"""Rings cut into arcs at the nodes; shared arcs identical from both sides. Oracles: pixel edges
enumerated from the raster, and brute-force node tests on each grid point."""

import numpy as np
import pytest
from raster_clustering.core.zones.arcs import densify, point_keys, split_arcs
from zone_oracles import all_nodes, brute_force_nodes, concatenated, numbered_zones, pixel_rings


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("connectivity", [4, 8])
def test_nodes_and_shared_arcs(seed, connectivity):
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 4, (9, 11))
    zones = numbered_zones(classes, classes > 0, connectivity)
    nodes = np.array(all_nodes(zones), dtype=np.int64)
    np.testing.assert_array_equal(nodes, brute_force_nodes(zones))
    corner_rings, owners = pixel_rings(zones)
    rings = densify(*concatenated(corner_rings))
    assert len(rings.points) == sum(len(ring) - 1 for ring in corner_rings)
    arcs = split_arcs(rings, nodes, zones.shape[1])
    # Every ring point is in some arc; open arcs end at nodes, closed ones hold none.
    assert set(arcs.ring_point.tolist()) == set(range(len(rings.points)))
    keys = point_keys(arcs.points, zones.shape[1])
    is_node = np.isin(keys, nodes)
    firsts, lasts = arcs.start[:-1], arcs.start[1:] - 1
    assert is_node[firsts[~arcs.closed]].all() and is_node[lasts[~arcs.closed]].all()
    interior = np.ones(len(keys), dtype=bool)
    interior[firsts[~arcs.closed]] = interior[lasts[~arcs.closed]] = False
    assert not is_node[interior].any()
    # An arc between two zones comes twice, point for point; one on the outline comes once.
    by_key = {}
    for index, key in enumerate(arcs.key):
        points = arcs.points[arcs.start[index]:arcs.start[index + 1]]
        owner = owners[arcs.ring[index]]
        by_key.setdefault(int(key), []).append((owner, points, bool(arcs.forward[index])))
    for occurrences in by_key.values():
        assert len(occurrences) in (1, 2)
        if len(occurrences) == 2:
            (zone_a, points_a, forward_a), (zone_b, points_b, forward_b) = occurrences
            assert zone_a != zone_b
            np.testing.assert_array_equal(points_a, points_b)
            assert forward_a != forward_b  # the two zones run along it in opposite directions
    # Steps are unit steps along the pixel edges.
    steps = np.abs(np.diff(arcs.points, axis=0)).sum(axis=1)
    within = np.ones(len(steps), dtype=bool)
    within[arcs.start[1:-1] - 1] = False
    assert (steps[within] == 1).all()


def test_a_ring_without_nodes_is_one_closed_arc_from_its_smallest_point():
    zones = np.zeros((5, 5), dtype=np.int64)
    zones[1:4, 1:4] = 1
    zones[2, 2] = 2  # an island: its ring and the hole around it have no node
    corner_rings, owners = pixel_rings(zones)
    nodes = np.array(all_nodes(zones), dtype=np.int64)
    arcs = split_arcs(densify(*concatenated(corner_rings)), nodes, 5)
    island = [i for i in range(len(arcs.key)) if arcs.closed[i]
              and 2 in {owners[arcs.ring[i]]}]
    assert len(island) == 1
    points = arcs.points[arcs.start[island[0]]:arcs.start[island[0] + 1]]
    np.testing.assert_array_equal(points, [[2, 2], [3, 2], [3, 3], [2, 3]])
    assert arcs.closed.sum() == 3  # the outline, and the island's ring from either side
