"""Zone boundaries as arcs: rings of zone polygons on the pixel grid, cut at the nodes (where
three zones meet), each arc in one canonical form whichever zone's ring it is read from.

A boundary shared by two zones appears in both zones' rings, in opposite directions and from
different starting points. Put in canonical form (a fixed direction and start), it becomes the
same sequence of grid points in both, so anything computed from it (the smoothing) gives the
same coordinates, bit for bit, on both sides: neighbouring zones still meet exactly.

Points are grid points (column, row) of the pixel grid: (0, 0) is the top-left corner of the
raster, (width, height) its bottom-right corner. Rings here hold one point per unit step along
the pixel edges and no closing point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import RasterClusteringError

# Direction code of a unit step (d_col, d_row), looked up at (d_col + 1) + 3 · (d_row + 1).
_STEP_CODE = np.array([-1, 3, -1, 2, -1, 0, -1, 1, -1])


class _PointRuns:
    """Runs of points, one after the other: `start` says where each run (ring, arc) begins."""

    start: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.start)

    @property
    def run_of_point(self) -> np.ndarray:
        """The run (ring, arc) each point belongs to."""
        return np.repeat(np.arange(len(self.start) - 1), self.lengths)


@dataclass(frozen=True)
class RingBatch(_PointRuns):
    """Rings on the pixel grid, one point per unit step, without the closing point.

    Attributes:
        points: int64 (N, 2) grid points (column, row), ring after ring.
        start: int64 (R + 1,) where each ring's points start (and one past the last).
    """

    points: np.ndarray
    start: np.ndarray


def densify(corners: np.ndarray, start: np.ndarray) -> RingBatch:
    """Rings given by their corners with a point at every unit step: the form in which shared
    boundaries match point for point.

    Args:
        corners: int64 (N, 2) grid points of closed rings (each ring's last point repeats its
            first), ring after ring, joined by horizontal or vertical segments (pixel edges),
            as GDAL's polygonizer writes them.
        start: int64 (R + 1,) where each ring starts in `corners`.

    Raises:
        RasterClusteringError: a segment is neither horizontal nor vertical.
    """
    starts_segment = np.ones(len(corners), dtype=bool)
    starts_segment[start[1:] - 1] = False
    index = np.flatnonzero(starts_segment)
    steps = corners[index + 1] - corners[index]
    if np.any((steps[:, 0] != 0) & (steps[:, 1] != 0)):
        raise RasterClusteringError("a zone boundary does not follow the pixel edges")
    lengths = np.abs(steps).sum(axis=1)
    along = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    points = (np.repeat(corners[index], lengths, axis=0)
              + along[:, None] * np.repeat(np.sign(steps), lengths, axis=0))
    segment_ring = np.repeat(np.arange(len(start) - 1), np.diff(start))[index]
    ring_lengths = np.bincount(segment_ring, weights=lengths, minlength=len(start) - 1)
    ring_start = np.concatenate([[0], np.cumsum(ring_lengths)]).astype(np.int64)
    return RingBatch(points.astype(np.int64), ring_start)


def point_keys(points: np.ndarray, width: int) -> np.ndarray:
    """int64 key row · (width + 1) + column of each grid point (as `zone_raster.grid_nodes`)."""
    return points[:, 1].astype(np.int64) * (width + 1) + points[:, 0]


@dataclass(frozen=True)
class Arcs(_PointRuns):
    """The arcs of a RingBatch, each in canonical form.

    An open arc runs from a node to a node (maybe the same one) and holds both. A closed arc is
    a whole ring without a node (an island inside a single zone, or the ring around one) and
    holds each point once. Canonical form: an open arc starts at the end whose (key, next key)
    is smaller; a closed arc starts at its smallest key and goes towards the smaller of that
    point's neighbours. The key of an arc, 4 · (key of its first point) + (direction of its
    first step), names it uniquely: every pixel edge belongs to one arc.

    Attributes:
        points: int64 (M, 2) grid points of the arcs in canonical order, arc after arc.
        start: int64 (A + 1,) where each arc's points start.
        closed: bool (A,).
        key: int64 (A,).
        ring: int64 (A,) the ring of each arc.
        forward: bool (A,) whether the ring runs through the arc in its canonical direction.
        ring_point: int64 (M,) the index in the RingBatch of each arc point.
    """

    points: np.ndarray
    start: np.ndarray
    closed: np.ndarray
    key: np.ndarray
    ring: np.ndarray
    forward: np.ndarray
    ring_point: np.ndarray


def split_arcs(rings: RingBatch, nodes: np.ndarray, width: int) -> Arcs:
    """Cut the rings at the nodes and put every arc in canonical form.

    Args:
        rings: the rings, densified.
        nodes: sorted int64 keys of the nodes (`zone_raster.grid_nodes`).
        width: the raster's width in pixels (for the keys).
    """
    keys = point_keys(rings.points, width)
    lengths = rings.lengths
    ring_start = rings.start[:-1]
    ring_of_point = rings.run_of_point
    local = np.arange(len(keys)) - ring_start[ring_of_point]
    is_node = np.isin(keys, nodes, assume_unique=False)

    # Open arcs: from each node of a ring to the next one (the last node to the first).
    node_index = np.flatnonzero(is_node)
    node_ring = ring_of_point[node_index]
    first_of_ring = np.ones(len(node_index), dtype=bool)
    first_of_ring[1:] = node_ring[1:] != node_ring[:-1]
    last_of_ring = np.ones(len(node_index), dtype=bool)
    last_of_ring[:-1] = first_of_ring[1:]
    nodes_per_ring = np.diff(np.append(np.flatnonzero(first_of_ring), len(node_index)))
    open_first = np.repeat(local[node_index][first_of_ring], nodes_per_ring)
    offset = local[node_index] - open_first  # from the ring's first node, in the ring's order
    following = np.where(last_of_ring, lengths[node_ring], np.roll(offset, -1))
    open_length = following - offset + 1
    open_ring = node_ring

    # Closed arcs: rings without a node.
    with_node = np.zeros(len(lengths), dtype=bool)
    with_node[node_ring] = True
    closed_ring = np.flatnonzero(~with_node)

    arc_ring = np.concatenate([open_ring, closed_ring])
    arc_length = np.concatenate([open_length, lengths[closed_ring]])
    closed = np.concatenate([np.zeros(len(open_ring), dtype=bool),
                             np.ones(len(closed_ring), dtype=bool)])
    arc_start = np.concatenate([[0], np.cumsum(arc_length)]).astype(np.int64)
    n_points = int(arc_start[-1])
    arc_of_point = np.repeat(np.arange(len(arc_ring)), arc_length)
    along = np.arange(n_points) - arc_start[:-1][arc_of_point]
    # Position in the ring of each arc point, in the ring's direction.
    shift = np.concatenate([open_first + offset, np.zeros(len(closed_ring), dtype=np.int64)])
    ring_local = (shift[arc_of_point] + along) % lengths[arc_ring][arc_of_point]
    ring_point = ring_start[arc_ring][arc_of_point] + ring_local
    arc_keys = keys[ring_point]

    forward = np.ones(len(arc_ring), dtype=bool)
    canonical_along = along.copy()
    first, last = arc_start[:-1], arc_start[1:] - 1
    is_open = ~closed
    # Open arcs: reverse when the far end's (key, next key) is the smaller.
    o_first, o_last = first[is_open], last[is_open]
    reverse = ((arc_keys[o_last] < arc_keys[o_first])
               | ((arc_keys[o_last] == arc_keys[o_first])
                  & (arc_keys[o_last - 1] < arc_keys[o_first + 1])))
    forward[is_open] = ~reverse
    # Closed arcs: start at the smallest key, towards its smaller neighbour.
    if closed.any():
        c_arcs = np.flatnonzero(closed)
        c_mask = closed[arc_of_point]
        c_points = np.flatnonzero(c_mask)
        order = np.lexsort((arc_keys[c_points], arc_of_point[c_points]))
        sorted_arcs = arc_of_point[c_points][order]
        first_sorted = np.ones(len(order), dtype=bool)
        first_sorted[1:] = sorted_arcs[1:] != sorted_arcs[:-1]
        smallest = along[c_points][order][first_sorted]  # position of the smallest key
        n = arc_length[c_arcs]
        base = arc_start[c_arcs]
        after = arc_keys[base + (smallest + 1) % n]
        before = arc_keys[base + (smallest - 1) % n]
        forward[c_arcs] = after < before
        sign = np.where(forward[c_arcs], 1, -1)
        position_of_arc = np.zeros(len(arc_ring), dtype=np.int64)
        position_of_arc[c_arcs] = np.arange(len(c_arcs))
        arc_index = position_of_arc[arc_of_point[c_points]]
        canonical_along[c_points] = (smallest[arc_index] + sign[arc_index] * along[c_points]) % n[
            arc_index]
    open_points = ~closed[arc_of_point]
    reversed_point = open_points & ~forward[arc_of_point]
    canonical_along[reversed_point] = (arc_length[arc_of_point] - 1 - along)[reversed_point]
    canonical = arc_start[:-1][arc_of_point] + canonical_along
    ring_point = ring_point[canonical]
    points = rings.points[ring_point]
    first_step = points[arc_start[:-1] + 1] - points[arc_start[:-1]]
    key = keys[ring_point[arc_start[:-1]]] * 4 + _STEP_CODE[(first_step[:, 0] + 1)
                                                           + 3 * (first_step[:, 1] + 1)]
    return Arcs(points, arc_start, closed, key, arc_ring, forward, ring_point)
