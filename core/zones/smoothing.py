"""Smoothing of zone boundaries that keeps their topology by construction.

A pixel boundary is known only to within half a pixel: the true edge of a field or a soil zone
runs somewhere between the centres of the pixels on either side. So each grid point of a
boundary arc may move inside its own square of half a pixel around it (a little less, see
CORRIDOR_PX), and nowhere else. These squares tile the plane, and a grid point belongs to one
arc only unless it is a node, which never moves. Hence:

- two arcs cannot cross or touch (each stays inside its own squares), nor can an arc cross
  itself: a segment between two consecutive points stays in the rectangle of their two squares;
- at a node, each arc leaves within 45° of its own pixel edge, so the arcs keep their order;
- the region swept by an arc lies in its squares, which hold no other arc: no island or hole
  is jumped over, swallowed or changes zone.

The zones after smoothing are therefore the same planar map as before (no gap, no overlap, the
same holes), whatever the smoothing does inside the squares. Within them, the smoothing is
Laplacian (each point moves towards the mean of its two neighbours along the arc, nodes fixed),
repeated, each time followed by clamping into the point's square: the boundary relaxes towards
the smoothest curve the pixels allow. More repetitions smooth over longer stretches.

Every shared arc is smoothed once, in its canonical form (`arcs`), so both zones get the same
coordinates. The area a zone gains or loses is the sum over its arcs of the area between the
exact and the smoothed arc; `choose_levels` lowers the smoothing of arcs until no zone changes
by more than AREA_CHANGE_LIMIT.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .arcs import Arcs

#: Laplacian repetitions of each SMOOTHING level (0 = exact pixel edges).
LEVEL_ITERATIONS = (0, 1, 3, 8)
#: How far (in pixels, along each axis) a grid point may move: below 0.5, so that the squares of
#: neighbouring points keep a gap and arcs never touch.
CORRIDOR_PX = 0.45
#: Largest change of a zone's area, as a fraction of it, that smoothing may cause.
AREA_CHANGE_LIMIT = 0.03
# Relative tolerance under which a point lies on the line of its neighbours (straight runs).
_COLLINEAR_TOLERANCE = 1e-9


@dataclass(frozen=True)
class _Walk:
    """How the points of arcs follow one another (computed once per batch of arcs).

    Attributes:
        exact: float64 (M, 2) the arcs' grid points.
        arc_of_point: int64 (M,).
        previous, following: int64 (M,) the points before and after each point on its arc
            (around a closed arc; a fixed end point has itself).
        movable: bool (M,) all but the end points (nodes) of open arcs.
        here, there: int64 (S,) the two points of each segment; arc_of_segment: its arc.
    """

    exact: np.ndarray
    arc_of_point: np.ndarray
    previous: np.ndarray
    following: np.ndarray
    movable: np.ndarray
    here: np.ndarray
    there: np.ndarray
    arc_of_segment: np.ndarray
    n_arcs: int

    @classmethod
    def of(cls, arcs: Arcs) -> _Walk:
        arc_of_point = arcs.run_of_point
        index = np.arange(len(arcs.points))
        first = arcs.start[:-1][arc_of_point]
        n = arcs.lengths[arc_of_point]
        along = index - first
        closed = arcs.closed[arc_of_point]
        movable = closed | ((along > 0) & (along < n - 1))
        previous = np.where(movable, np.where(closed, first + (along - 1) % n, index - 1), index)
        after = np.where(closed, first + (along + 1) % n, index + 1)
        following = np.where(movable, after, index)
        has_segment = closed | (along < n - 1)
        return cls(arcs.points.astype(np.float64), arc_of_point, previous, following, movable,
                   index[has_segment], after[has_segment], arc_of_point[has_segment],
                   len(arcs.key))


def smooth(arcs: Arcs, iterations: np.ndarray, *, record: Sequence[int] = ()
           ) -> dict[int, np.ndarray]:
    """The arcs' points after Laplacian smoothing within their squares, each arc then shifted
    sideways to keep its area (`_keep_area`).

    Args:
        arcs: arcs in canonical form.
        iterations: int (A,) repetitions for each arc (0 leaves it exact).
        record: iteration counts after which to keep the points; by default only the last
            (the largest of `iterations`).

    Returns:
        {iteration count: float64 (M, 2) points}, one entry per recorded count.
    """
    walk = _Walk.of(arcs)
    exact = walk.exact
    limit = np.where(walk.movable, np.asarray(iterations)[walk.arc_of_point], 0)
    total = int(limit.max()) if len(limit) else 0
    wanted = sorted(set(record) | ({total} if not record else set()))
    points = exact.copy()
    kept = {0: points.copy()} if 0 in wanted else {}
    for iteration in range(1, max(wanted, default=0) + 1):
        active = np.flatnonzero(limit >= iteration)
        if len(active):
            moved = (0.25 * points[walk.previous[active]] + 0.5 * points[active]
                     + 0.25 * points[walk.following[active]])
            points[active] = _clamped(moved, exact[active])
        if iteration in wanted:
            kept[iteration] = _keep_area(walk, points, limit > 0)
    return kept


def _clamped(points: np.ndarray, exact: np.ndarray) -> np.ndarray:
    return np.clip(points, exact - CORRIDOR_PX, exact + CORRIDOR_PX)


def _keep_area(walk: _Walk, smoothed: np.ndarray, smoothing: np.ndarray) -> np.ndarray:
    """The smoothed arcs shifted sideways so that each encloses no area with its exact form.

    Laplacian smoothing cuts convex corners and fills concave ones; over a whole zone the
    convex ones win and the zone shrinks. Moving each arc's points along the arc's normal by
    one distance per arc (found by Newton's method, the area being nearly linear in it) makes
    the area between the exact and the smoothed arc zero, so neither zone beside it gains or
    loses area; the squares (`_clamped`) still bound every point, which may leave a remainder.

    Args:
        smoothing: bool (M,) the points being smoothed (movable, of arcs smoothed at all).
    """
    result = smoothed.copy()
    tangent = smoothed[walk.following] - smoothed[walk.previous]
    length = np.hypot(tangent[:, 0], tangent[:, 1])
    usable = np.flatnonzero(smoothing & (length > 0))
    normal = np.zeros_like(tangent)
    normal[usable] = np.column_stack([-tangent[usable, 1], tangent[usable, 0]]) / length[
        usable, None]
    exact = walk.exact[usable]
    arc = walk.arc_of_point[usable]
    for _ in range(2):
        area, _ = _area_changes(walk, result)
        probe, _ = _area_changes(walk, result + normal)
        slope = probe - area
        with np.errstate(divide="ignore", invalid="ignore"):
            shift = np.where(np.abs(slope) > 1e-9, -area / slope, 0.0)
        result[usable] = _clamped(result[usable] + shift[arc, None] * normal[usable], exact)
    return result


def area_changes(arcs: Arcs, smoothed: np.ndarray, row_areas_m2: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """The signed area between each exact arc and its smoothed form, in pixels and in m².

    The region between them is cut into the quadrilaterals of corresponding segments; each one
    counts with the pixel area of its row, so the areas in m² hold in geographic CRSs too.

    Returns:
        float64 (A,) in pixel units, the area of the loop (exact arc forwards, smoothed arc
        backwards) in canonical direction; and the same in m² (None without `row_areas_m2`).
    """
    return _area_changes(_Walk.of(arcs), smoothed, row_areas_m2)


def _area_changes(walk: _Walk, smoothed: np.ndarray, row_areas_m2: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    exact, here, there = walk.exact, walk.here, walk.there
    diagonal_a = smoothed[there] - exact[here]
    diagonal_b = smoothed[here] - exact[there]
    quad = 0.5 * (diagonal_a[:, 0] * diagonal_b[:, 1] - diagonal_a[:, 1] * diagonal_b[:, 0])
    pixels = np.bincount(walk.arc_of_segment, weights=quad, minlength=walk.n_arcs)
    if row_areas_m2 is None:
        return pixels, None
    mid_row = (exact[here, 1] + exact[there, 1] + smoothed[here, 1] + smoothed[there, 1]) / 4
    row = np.clip(np.floor(mid_row).astype(np.int64), 0, len(row_areas_m2) - 1)
    square_metres = np.bincount(walk.arc_of_segment, weights=quad * row_areas_m2[row],
                                minlength=walk.n_arcs)
    return pixels, square_metres


def ring_area_weights(arcs: Arcs, ring_sign: np.ndarray) -> np.ndarray:
    """±1 per arc: how its canonical area change adds to the area of its ring's zone.

    Args:
        ring_sign: ±1 per ring: +1 when the ring's signed area (on the grid's axes) adds to its
            zone's area (a shell turning one way, a hole the other), -1 otherwise.
    """
    # Replacing the exact part of a ring by the smoothed one changes the ring's signed area by
    # minus the area of the loop (exact forwards, smoothed backwards) in the ring's direction.
    return ring_sign[arcs.ring] * np.where(arcs.forward, -1, 1)


@dataclass(frozen=True)
class ArcLevels:
    """The smoothing level of every arc (see `choose_levels`).

    Attributes:
        keys: int64 (a,) sorted arc keys.
        levels: int64 (a,) level of each arc.
        shared: bool (a,) whether the arc lies between two zones (else on the outer boundary).
        zone_change: float64 (n,) relative area change of each zone 1..n at these levels.
    """

    keys: np.ndarray
    levels: np.ndarray
    shared: np.ndarray
    zone_change: np.ndarray

    def of(self, arc_keys: np.ndarray) -> np.ndarray:
        """The levels of the arcs with these keys; 0 for arcs `choose_levels` did not see
        (those that cannot move: a single step between two nodes)."""
        if not len(self.keys):
            return np.zeros(len(arc_keys), dtype=np.int64)
        position = np.minimum(np.searchsorted(self.keys, arc_keys), len(self.keys) - 1)
        return np.where(self.keys[position] == arc_keys, self.levels[position], 0)


def choose_levels(keys: np.ndarray, zones: np.ndarray, weights: np.ndarray,
                  changes: np.ndarray, zone_pixels: np.ndarray, *, level: int,
                  limit: float = AREA_CHANGE_LIMIT) -> ArcLevels:
    """The smoothing level of every arc, so that no zone's area changes by more than `limit`.

    Every arc shared by two zones starts at `level`; arcs on the outer boundary of the zones
    (against nodata or the raster's edge) stay exact, so the zones still cover exactly the
    classified pixels and keep the area's holes. While a zone changes too much, each of its
    arcs goes down one level; a zone with only exact arcs does not change, so this ends.

    Args:
        keys: int64 (m,) arc key of each occurrence of an arc in a zone's ring.
        zones: int64 (m,) the zone (1..n) of each occurrence.
        weights: ±1 (m,) see `ring_area_weights`.
        changes: float64 (m, level) the arc's area change in pixels at levels 1..level.
        zone_pixels: int64 (n,) pixels of each zone.
        level: the level asked for, 1..3.
        limit: largest relative area change of a zone.
    """
    arc_keys, first_row, arc_of_row, counts = np.unique(
        keys, return_index=True, return_inverse=True, return_counts=True)
    shared = counts == 2
    arc_level = np.where(shared, level, 0)
    by_level = np.concatenate([np.zeros((len(arc_keys), 1)),
                               changes[first_row].astype(np.float64)], axis=1)
    del first_row
    size = np.maximum(zone_pixels, 1).astype(np.float64)
    while True:
        change = by_level[np.arange(len(arc_keys)), arc_level][arc_of_row] * weights
        relative = np.bincount(zones - 1, weights=change, minlength=len(zone_pixels)) / size
        too_much = np.abs(relative) > limit
        if not too_much.any():
            return ArcLevels(arc_keys, arc_level, shared, relative)
        lower = np.zeros(len(arc_keys), dtype=bool)
        lower[arc_of_row[too_much[zones - 1]]] = True
        arc_level[lower & (arc_level > 0)] -= 1


def corner_mask(points: np.ndarray, ring_start: np.ndarray) -> np.ndarray:
    """Which points of the rings to keep: all but those on the straight line of their
    neighbours (the unit steps of a straight pixel edge), so rings hold only their corners.

    The test is symmetric in the direction of travel, so a shared arc keeps the same points in
    both zones' rings.
    """
    ring_of_point = np.repeat(np.arange(len(ring_start) - 1), np.diff(ring_start))
    first = ring_start[:-1][ring_of_point]
    n = np.diff(ring_start)[ring_of_point]
    along = np.arange(len(points)) - first
    incoming = points - points[first + (along - 1) % n]
    outgoing = points[first + (along + 1) % n] - points
    cross = incoming[:, 0] * outgoing[:, 1] - incoming[:, 1] * outgoing[:, 0]
    dot = (incoming * outgoing).sum(axis=1)
    scale = np.abs(incoming).sum(axis=1) + np.abs(outgoing).sum(axis=1)
    return (np.abs(cross) > _COLLINEAR_TOLERANCE * scale) | (dot <= 0)
