"""Merge regions smaller than an area into their neighbours, on the graph of touching regions.

The sieve's exact step (see `sieve.py`): GDAL's sieve does most of the work, and this module
finishes what GDAL cannot, by true area (rows of different pixel areas, geographic CRS) and for
groups of small regions that no large region touches. It streams: the raster is read in strips
of rows twice, and memory grows with the number of regions, not with the raster's size.

1. Label: within each strip (a block job, `label_strip`), scipy labels the connected pixels of
   each class; a region crossing strips gets one label per strip, joined here, in strip order,
   through the rows where strips meet. Each label's area
   is the sum of its rows' pixel areas, and every pair of touching labels is an edge.
2. Resolve, in rounds on the graph (every round first fuses touching nodes of one class):
   - GDAL's rule: a small node (area < MIN_AREA) follows its largest neighbour, that one's
     largest neighbour if it is small too, and so on; if the chain reaches a large node, the
     small node takes its class.
   - When no chain reaches a large node, what is left small with neighbours lies in patches
     (bounded by nodata or the raster edge) without any large node. Every chain there ends in
     two small nodes that are each other's largest neighbour; the larger of the two absorbs its
     chains, as if it were large. The merged nodes may now be large and absorb the rest in the
     next round.
   Rounds end when no small node has a neighbour, so every region left smaller than MIN_AREA
   is alone in its patch of valid pixels. Large regions never lose a pixel. Of two regions of
   equal area, the one whose first pixel (top row first, then left) comes first counts as the
   larger, so the result does not depend on the strips.
3. Write: the strips are labelled again, identically (`relabel_strip`), each label gets its
   final class, and the strips are written here in order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..engine import current_executor, opened
from ..errors import RasterClusteringError
from ..progress import Progress

# Relative tolerance of area comparisons, so that a region of exactly MIN_AREA is kept despite
# rounding (0.3 m pixels: 2.7 / 0.09 = 30.000000000000004).
AREA_RTOL = 1e-9
_MAX_LABELS = 2**31  # pairs of labels are packed into one int64 key
_KEY_SHIFT = np.int64(32)
# Above this many classes in a strip, labelling them all at once is faster than one by one.
_MAX_CLASSES_LABELLED_ONE_BY_ONE = 24



class StripReader(Protocol):
    """What `merge_small_regions` reads: the classes and validity of strips of rows."""

    def read(self, first: int, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """(classes, valid) of rows first..first + n_rows - 1: an integer array of the classes
        and a bool array, False on nodata, both of shape (n_rows, columns)."""


class Strips(Protocol):
    """A descriptor of a StripReader, as block jobs open it (see `engine.cache`)."""

    scope: str

    def open(self) -> StripReader:
        """Open the classes (and their validity)."""


def merge_small_regions(
    strips: Strips,
    write_strip: Callable[[np.ndarray, int], None],
    *,
    row_areas_m2: np.ndarray,
    min_area_m2: float,
    connectivity: int,
    strip_rows: int = 256,
    steps: Progress | None = None,
) -> None:
    """Write the classes with every region under `min_area_m2` merged as the module describes.

    Both passes over the strips are block jobs (`label_strip`, `relabel_strip`) on the current
    executor; the graph of regions is merged and resolved here, and the strips are written
    here, in order.

    Args:
        strips: the classes to sieve, opened by the jobs.
        write_strip: (classes, first row) -> None, called once per strip, top to bottom, with
            an array of the input's type; nodata pixels hold their input values.
        row_areas_m2: float64 (rows,), the area of one pixel of each row.
        min_area_m2: smallest region area to keep, m² (> 0).
        connectivity: 4 or 8.
        strip_rows: rows per strip.
        steps: progress and cancellation (checked between strips).
    """
    steps = steps or Progress()
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    strip_list = list(row_strips(len(row_areas_m2), strip_rows))
    job = _StripJob(strips, structure, row_areas_m2)
    graph = _region_graph(current_executor().map_blocks(label_strip, job, strip_list,
                                                        steps=steps.span(0.0, 0.45)), structure)
    final_class = resolve_merges(
        graph.region_class, graph.region_area, graph.edges, min_area_m2, graph.region_start
    )
    steps(0.5)
    relabelling = _Relabelling(job, graph.region_class, final_class)
    items = [(first, n_rows, graph.strip_first_label[index], graph.strip_first_label[index + 1])
             for index, (first, n_rows) in enumerate(strip_list)]
    for (first, _, _, _), result in zip(items, current_executor().map_blocks(
            relabel_strip, relabelling, items, steps=steps.span(0.5, 1.0)), strict=True):
        write_strip(result, first)


@dataclass(frozen=True, eq=False)
class _StripJob:
    """What a strip job needs: the classes, the connectivity's structure, the rows' areas, and
    whether to find the pairs of touching labels within each strip (the sieve's graph; without
    them only the seams join labels, all that numbering regions needs)."""

    strips: Strips
    structure: np.ndarray
    row_areas_m2: np.ndarray
    pairs_within_strips: bool = True


class _StripRegions(NamedTuple):
    """The regions of one strip, labelled 1..n within it: class, area in m² and first pixel's
    flat index in the raster of each; the pairs of touching labels; the labels of its first
    and last rows (0 on nodata), to join it with its neighbours."""

    region_class: np.ndarray
    region_area: np.ndarray
    region_start: np.ndarray
    edges: np.ndarray
    first_row: np.ndarray
    last_row: np.ndarray


def label_strip(job: _StripJob, strip: tuple[int, int]) -> _StripRegions:
    """Block job: the regions of strip (first row, row count), labelled from 1."""
    first, n_rows = strip
    classes, valid = opened(job.strips).read(first, n_rows)
    labels, new_classes, starts = _label_strip(classes, valid, job.structure, 1)
    weights = np.broadcast_to(job.row_areas_m2[first : first + n_rows, None], labels.shape)
    areas = np.bincount(labels.ravel(), weights=weights.ravel(), minlength=len(new_classes) + 1)
    edges = (_touching_pairs(classes, valid, labels, job.structure) if job.pairs_within_strips
             else np.zeros((0, 2), dtype=np.int64))
    return _StripRegions(new_classes, areas[1:], starts + first * classes.shape[1], edges,
                         labels[0], labels[-1])


@dataclass(frozen=True, eq=False)
class _Relabelling:
    """What a relabelling job needs: `_StripJob`'s, and the class of every label before and
    after the merges."""

    strips: _StripJob
    region_class: np.ndarray
    final_class: np.ndarray


def relabel_strip(job: _Relabelling, strip: tuple[int, int, int, int]) -> np.ndarray:
    """Block job: the classes of strip (first row, row count, its first label, one past its
    last) after the merges; nodata pixels keep their values."""
    first, n_rows, label_start, label_end = strip
    classes, valid = opened(job.strips.strips).read(first, n_rows)
    final_class = job.final_class[label_start:label_end]
    if np.array_equal(final_class, job.region_class[label_start:label_end]):
        return classes  # none of the strip's regions changes: no need to label it
    labels, _, _ = _label_strip(classes, valid, job.strips.structure, 1, first_pixels=False)
    result = classes.copy()
    result[valid] = final_class[labels[valid] - 1].astype(classes.dtype)
    return result


def resolve_merges(
    region_class: np.ndarray,
    region_area: np.ndarray,
    edges: np.ndarray,
    min_area_m2: float,
    region_start: np.ndarray | None = None,
) -> np.ndarray:
    """Final class of each region, by the rounds of the module's step 2.

    Args:
        region_class: int64 (n,) class of each region; entry 0 is nodata, in no edge.
        region_area: float64 (n,) area of each region in m².
        edges: int64 (m, 2) pairs of touching regions, a < b. Touching regions of one class
            are allowed (they are fused first).
        min_area_m2: smallest area to keep.
        region_start: int64 (n,) position of each region's first pixel in reading order, which
            breaks ties of area (the earlier counts as larger); by default the region's index.

    Returns:
        int64 (n,) class of each region after the merges.
    """
    keep_area_m2 = min_area_m2 * (1.0 - AREA_RTOL)
    node_of_region = np.arange(len(region_class))
    node_class, node_area = region_class.astype(np.int64), region_area.astype(np.float64)
    node_start = node_of_region.copy() if region_start is None else region_start.astype(np.int64)
    while True:
        component, edges = _fuse_same_class(edges, node_class)
        node_area = np.bincount(component, weights=node_area)
        fused_class = np.zeros(len(node_area), dtype=np.int64)
        fused_class[component] = node_class
        fused_start = np.full(len(node_area), np.iinfo(np.int64).max)
        np.minimum.at(fused_start, component, node_start)
        node_class, node_start = fused_class, fused_start
        node_of_region = component[node_of_region]
        target = _merge_targets(node_area, node_start, edges, keep_area_m2)
        if target is None:
            return node_class[node_of_region]
        node_class = node_class[target]


def _merge_targets(
    area: np.ndarray, start: np.ndarray, edges: np.ndarray, keep_area_m2: float
) -> np.ndarray | None:
    """The node whose class each node takes this round (itself if none), or None if no merge."""
    own = np.arange(len(area))
    if not len(edges):
        return None
    small = area < keep_area_m2
    pointer = own.copy()
    nodes, neighbours = _largest_neighbours(edges, area, start)
    follows = small[nodes]
    pointer[nodes[follows]] = neighbours[follows]
    end = _chain_ends(pointer)
    into_large = (end != own) & ~small[end]
    if into_large.any():
        return np.where(into_large, end, own)
    # Every chain ends in a pair of small nodes, each the other's largest neighbour.
    mutual = (pointer != own) & (pointer[pointer] == own)
    other = pointer
    larger = (area > area[other]) | ((area == area[other]) & (start < start[other]))
    pointer = np.where(mutual & larger, own, pointer)
    end = _chain_ends(pointer)
    return end if (end != own).any() else None


def _largest_neighbours(
    edges: np.ndarray, area: np.ndarray, start: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each node that has a neighbour, and its neighbour of largest area (ties: earliest start)."""
    source = np.concatenate([edges[:, 0], edges[:, 1]])
    target = np.concatenate([edges[:, 1], edges[:, 0]])
    order = np.lexsort((start[target], -area[target], source))  # node, area desc, start
    source, target = source[order], target[order]
    first_of_node = np.ones(len(source), dtype=bool)
    first_of_node[1:] = source[1:] != source[:-1]
    return source[first_of_node], target[first_of_node]


def _chain_ends(pointer: np.ndarray) -> np.ndarray:
    """Where following `pointer` from each node ends up after n steps (pointer doubling).

    Nodes pointing at themselves are chain ends; a node on (or leading into) a cycle ends on it.
    """
    end = pointer
    for _ in range(max(1, math.ceil(math.log2(len(pointer)))) + 1):
        end = end[end]
    return end


def _fuse_same_class(edges: np.ndarray, node_class: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fuse touching nodes of one class.

    Returns:
        component: int64 (n,) new node of each node; node 0 (nodata, in no edge) stays 0.
        edges: int64 (m', 2) pairs of touching new nodes, each once, a < b.
    """
    n_nodes = len(node_class)
    fused = edges[node_class[edges[:, 0]] == node_class[edges[:, 1]]]
    graph = coo_matrix(
        (np.ones(len(fused), dtype=np.int8), (fused[:, 0], fused[:, 1])), shape=(n_nodes, n_nodes)
    )
    n_components, component = connected_components(graph, directed=False)
    component = component.astype(np.int64)  # int32 from scipy: the keys below would overflow
    nodata = component[0]
    component = np.where(component == nodata, 0, component + (component < nodata))
    return component, _unique_pairs(component[edges[:, 0]], component[edges[:, 1]])


class _RegionGraph(NamedTuple):
    """The labels of all strips: per label (entry 0: nodata) its class, area in m² and first
    pixel's flat index in the raster; the touching pairs; the first label of each strip (and
    one past the last)."""

    region_class: np.ndarray
    region_area: np.ndarray
    region_start: np.ndarray
    edges: np.ndarray
    strip_first_label: list[int]


def _region_graph(strips: Iterator[_StripRegions], structure: np.ndarray) -> _RegionGraph:
    """The regions of all strips, numbered on from one strip to the next, and the graph of
    those that touch (see `_RegionGraph`)."""
    region_class = [np.zeros(1, dtype=np.int64)]
    region_area = [np.zeros(1, dtype=np.float64)]
    region_start = [np.zeros(1, dtype=np.int64)]
    edges = [np.zeros((0, 2), dtype=np.int64)]
    first_label = 1
    strip_first_label = [first_label]
    previous_row = None  # labels of the previous strip's last row
    for strip in strips:
        offset = first_label - 1
        region_class.append(strip.region_class)
        region_area.append(strip.region_area)
        region_start.append(strip.region_start)
        edges.append(strip.edges + offset)
        first_row = np.where(strip.first_row > 0, strip.first_row + offset, 0)
        if previous_row is not None:
            edges.append(_touching_pairs_across(previous_row, first_row, structure))
        previous_row = np.where(strip.last_row > 0, strip.last_row + offset, 0)
        first_label += len(strip.region_class)
        strip_first_label.append(first_label)
        if first_label >= _MAX_LABELS:
            raise RasterClusteringError(
                "the raster has too many separate regions for the sieve (over 2 billion); "
                "sieve it in parts, or with a smaller MIN_AREA first"
            )
    all_edges = np.concatenate(edges)
    return _RegionGraph(
        np.concatenate(region_class),
        np.concatenate(region_area),
        np.concatenate(region_start),
        _unique_pairs(all_edges[:, 0], all_edges[:, 1]),
        strip_first_label,
    )


def _label_strip(
    classes: np.ndarray,
    valid: np.ndarray,
    structure: np.ndarray,
    first_label: int,
    first_pixels: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels from `first_label` of the connected pixels of each class (0 on nodata).

    A few classes are labelled one at a time with scipy.ndimage; many (e.g. segment ids) at
    once as the connected components of the graph of touching pixels of one class, whose cost
    does not grow with the number of classes.

    Returns:
        labels: int64 array of the shape of `classes`.
        new_classes: int64 (n_labels,) class of each new label, in label order.
        starts: int64 (n_labels,) flat index in the strip of each new label's first pixel
            (may be empty when not `first_pixels`).
    """
    present = _classes_present(classes[valid])
    if len(present) > _MAX_CLASSES_LABELLED_ONE_BY_ONE:
        return _label_all_classes_at_once(classes, valid, structure, first_label)
    labels = np.zeros(classes.shape, dtype=np.int64)
    class_labels = np.empty(classes.shape, dtype=np.int32)
    new_classes, starts = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    next_label = first_label
    for value in present:
        in_class = (classes == value) & valid
        count = ndimage.label(in_class, structure, output=class_labels)
        labels[in_class] = class_labels[in_class].astype(np.int64) + (next_label - 1)
        new_classes.append(np.full(count, value, dtype=np.int64))
        if first_pixels:
            starts.append(_first_pixels(class_labels, in_class, count))
        next_label += count
    return labels, np.concatenate(new_classes), np.concatenate(starts)


def _label_all_classes_at_once(
    classes: np.ndarray, valid: np.ndarray, structure: np.ndarray, first_label: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_label_strip` for many classes: connected components of touching same-class pixels."""
    n_pixels = classes.size
    index = np.arange(n_pixels, dtype=np.int64).reshape(classes.shape)
    heads, tails = [], []
    for here, there in _neighbour_slices(classes.shape, structure):
        joined = (classes[here] == classes[there]) & valid[here] & valid[there]
        heads.append(index[here][joined])
        tails.append(index[there][joined])
    del index
    heads, tails = np.concatenate(heads), np.concatenate(tails)
    graph = coo_matrix(
        (np.ones(len(heads), dtype=np.int8), (heads, tails)), shape=(n_pixels, n_pixels)
    )
    del heads, tails
    _, component = connected_components(graph, directed=False)
    # Number the components of valid pixels from 1, in the order of their component ids.
    flat_valid = valid.ravel()
    used = np.zeros(int(component.max()) + 1, dtype=bool)
    used[component[flat_valid]] = True
    number = np.cumsum(used)
    strip_labels = np.where(flat_valid, number[component], 0).reshape(classes.shape)
    count = int(number[-1])
    starts = _first_pixels(strip_labels, valid, count)
    labels = np.where(valid, strip_labels + (first_label - 1), 0).astype(np.int64)
    return labels, classes.ravel()[starts].astype(np.int64), starts


def _classes_present(values: np.ndarray) -> list[int]:
    """The distinct values, ascending; counted rather than sorted when their range is small."""
    if not values.size:
        return []
    low, high = int(values.min()), int(values.max())
    if high - low > 2**16:
        return np.unique(values).tolist()
    counts = np.bincount((values - low).astype(np.intp, copy=False), minlength=high - low + 1)
    return (np.flatnonzero(counts) + low).tolist()


def _first_pixels(class_labels: np.ndarray, in_class: np.ndarray, count: int) -> np.ndarray:
    """Flat index of the first pixel, in reading order, of labels 1..count."""
    positions = np.flatnonzero(in_class)
    sequence = class_labels.ravel()[positions]
    # scipy numbers regions in reading order of their first pixel: a label's first pixel is
    # where the running maximum grows. Checked, with a sort as the fallback.
    grows = np.empty(len(sequence), dtype=bool)
    grows[:1] = True
    grows[1:] = sequence[1:] > np.maximum.accumulate(sequence)[:-1]
    if np.count_nonzero(grows) == count:
        return positions[grows].astype(np.int64)
    _, first_index = np.unique(sequence, return_index=True)
    return positions[first_index].astype(np.int64)


def _touching_pairs(
    classes: np.ndarray, valid: np.ndarray, labels: np.ndarray, structure: np.ndarray
) -> np.ndarray:
    """Pairs of labels of one strip that touch with the connectivity of `structure`.

    Within a strip, touching valid pixels have different labels exactly when their classes
    differ: compared on the classes, which are smaller than the labels.
    """
    low, high = [], []
    for here, there in _neighbour_slices(classes.shape, structure):
        touching = (classes[here] != classes[there]) & valid[here] & valid[there]
        low.append(labels[here][touching])
        high.append(labels[there][touching])
    return _unique_pairs(np.concatenate(low), np.concatenate(high))


def _neighbour_slices(
    shape: tuple[int, int], structure: np.ndarray
) -> Iterator[tuple[tuple[slice, slice], tuple[slice, slice]]]:
    """(here, there) slices pairing each pixel with its right, lower (and, with 8-connectivity,
    lower-right and lower-left) neighbour: every touching pair once."""
    rows, cols = shape
    offsets = [(0, 1), (1, 0)] + ([(1, 1), (1, -1)] if structure.all() else [])
    for d_row, d_col in offsets:
        here = (slice(0, rows - d_row), slice(max(0, -d_col), cols - max(0, d_col)))
        there = (slice(d_row, rows), slice(max(0, d_col), cols - max(0, -d_col)))
        yield here, there


def _touching_pairs_across(
    upper: np.ndarray, lower: np.ndarray, structure: np.ndarray
) -> np.ndarray:
    """Pairs of labels touching across the seam between a strip's last row and the next's first
    (regions of one class too: they are one region, labelled in each strip)."""
    shifted = [(upper, lower)]
    if structure.all():
        shifted += [(upper[:-1], lower[1:]), (upper[1:], lower[:-1])]
    low, high = [], []
    for one, other in shifted:
        touching = (one > 0) & (other > 0)
        low.append(one[touching])
        high.append(other[touching])
    return _unique_pairs(np.concatenate(low), np.concatenate(high))


def _unique_pairs(one: np.ndarray, other: np.ndarray) -> np.ndarray:
    """int64 (m, 2): the distinct unordered pairs {one[i], other[i]} with one[i] != other[i],
    each as (low, high)."""
    apart = one != other
    low = np.minimum(one[apart], other[apart]).astype(np.int64)
    high = np.maximum(one[apart], other[apart]).astype(np.int64)
    keys = np.unique((low << _KEY_SHIFT) | high)
    return np.stack([keys >> _KEY_SHIFT, keys & np.int64(2**32 - 1)], axis=1)


class ConnectedRegions(NamedTuple):
    """The connected regions of a raster read in strips, numbered 1..n by class (ascending),
    then by first pixel in reading order (top row first, then left), whatever the strips.

    Attributes:
        number_of_label: int64 (n_labels + 1,) region number of each strip label; 0 for label 0
            (nodata).
        region_class: int64 (n + 1,) class of each region; entry 0 is 0.
        strip_first_label: the first label of each strip (and one past the last).
        structure: the structuring element of the connectivity.
    """

    number_of_label: np.ndarray
    region_class: np.ndarray
    strip_first_label: list[int]
    structure: np.ndarray

    @property
    def count(self) -> int:
        return len(self.region_class) - 1


def connected_regions(
    strips: Strips,
    strip_list: list[tuple[int, int]],
    *,
    connectivity: int,
    steps: Progress | None = None,
) -> ConnectedRegions:
    """Number the connected regions of one class, reading the raster once in strips.

    The strips are labelled by block jobs (`label_strip`, without the pairs within strips: the
    seams are all that joins one region's labels) on the current executor; their labels are
    joined here through the rows where the strips meet, as in the sieve's step 1. Memory grows
    with the number of regions, not with the raster's size. `region_numbers` then gives each
    pixel of a strip its region number.

    Args:
        strips: the classes, opened by the jobs (as for `merge_small_regions`).
        strip_list: (first row, row count) of each strip, top to bottom (see `row_strips`).
        connectivity: 4 or 8.
        steps: progress and cancellation (checked between strips).
    """
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    n_rows = strip_list[-1][0] + strip_list[-1][1] if strip_list else 0
    job = _StripJob(strips, structure, np.ones(n_rows), pairs_within_strips=False)
    graph = _region_graph(current_executor().map_blocks(label_strip, job, strip_list,
                                                        steps=steps), structure)
    component, _ = _fuse_same_class(graph.edges, graph.region_class)
    n_regions = int(component.max()) if len(component) else 0
    region_class = np.zeros(n_regions + 1, dtype=np.int64)
    region_class[component] = graph.region_class
    region_start = np.full(n_regions + 1, np.iinfo(np.int64).max)
    np.minimum.at(region_start, component, graph.region_start)
    order = np.lexsort((region_start[1:], region_class[1:])) + 1
    number = np.zeros(n_regions + 1, dtype=np.int64)
    number[order] = np.arange(1, n_regions + 1)
    return ConnectedRegions(number[component], np.concatenate([[0], region_class[order]]),
                            graph.strip_first_label, structure)


def region_numbers(
    regions: ConnectedRegions, strip_index: int, classes: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """int64 region number of each pixel of strip `strip_index` (0 on nodata): the strip is
    labelled again exactly as `connected_regions` labelled it."""
    first_label = regions.strip_first_label[strip_index]
    labels, _, _ = _label_strip(classes, valid, regions.structure, first_label,
                                first_pixels=False)
    return regions.number_of_label[labels]


def row_strips(n_rows: int, strip_rows: int) -> Iterator[tuple[int, int]]:
    """(first row, row count) of full-width strips of `strip_rows` that cover `n_rows` rows."""
    for first in range(0, n_rows, strip_rows):
        yield first, min(strip_rows, n_rows - first)
