"""Exact 1-D k-means of one band's valid values: the globally optimal clusters, streamed in blocks.

Guarantee: the partition returned has the least possible within-cluster sum of squares over ALL
the values (the global optimum, which Lloyd's algorithm and scikit-learn only approach locally).
Every decision compares exact per-interval statistics (count, sum, sum of squares in float64,
summed about member values, prefix sums taken in blocks) with a margin above a bound on their
rounding, so the only departure from the optimum is float64 rounding itself: the cost returned
exceeds the optimum by at most about k * 1e-13 of the total sum of squares about the mean (more
when outliers lie far beyond the spread of the rest). Centres are the cluster means; counts and
inertia are those of labelling every value by its nearest centre (label_values).

Method (optimal 1-D clusters are runs of sorted values: a partition is k-1 cuts):
1. A pass bins the values into 2^18 equal bins, keeping per bin the count, sums and whether all
   its values are equal ("pure": integer and quantised data have only pure bins).
2. A cut inside bin b, moved to the bin's edge on its side of the bin mean, raises the cost by
   at most 2 * gap * h_b (gap: distance between the centres beside the cut, bounded from the
   data; h_b: half the bin's absolute deviation). Forward and backward dynamic programmes (DP)
   over the bins with these penalties (divide and conquer on the monotone optimal split,
   vectorised) bound from below the cost of any partition placing a given cut at a given bin;
   where the bound exceeds the cost of a known partition, no optimal cut lies. This runs on
   coarse runs of bins first, then on finer ones, for a few rounds each.
3. A pass gathers the distinct values of the bins still able to hold a cut (typically a few
   tens per cut); a last DP over "those values + the other bins" contains every optimal
   partition, so its optimum is the optimum. Candidates holding over 4 M values are first
   re-binned finer in an extra pass (only extreme outliers or very large k need it).
Passes: one for the range unless `value_range` is given, the histogram, at most one gather.
Memory: a copy of the data only below 4 M values, 2^18 bins, at most 4 M gathered values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import CancelledError, InvalidInputError
from ..parameters import MAX_CLASSES
from .optimal_cuts import CutSets, PrefixSums, best_partition, feasible_cuts

_HISTOGRAM_BINS = 1 << 18
_MIN_HISTOGRAM_BINS = 1 << 10
_CACHE_VALUES = 1 << 22  # data this small is kept in memory after the first pass
_GATHER_VALUES = 1 << 22  # candidate values gathered at most; beyond that, re-bin finer
_REFINE_BINS = 1 << 16  # new sub-bins per re-binning pass
_MAX_REFINE_PASSES = 6
_RANGE_SHRINK_REDO = 1024  # re-histogram when the data use less than this fraction of value_range
_MAX_LLOYD_STEPS = 20


@dataclass(frozen=True, eq=False)
class KMeans1DResult:
    """Optimal 1-D k-means fit.

    Attributes:
        centres: ndarray float64 of shape (k,), strictly ascending cluster means.
        inertia: sum of squared distances of every value to its nearest centre.
        counts: ndarray int64 of shape (k,), number of values in each cluster.
        n_values: number of values fitted.
    """

    centres: np.ndarray
    inertia: float
    counts: np.ndarray
    n_values: int


def fit_kmeans_1d(
    read_values: Callable[[], Iterable[np.ndarray]],
    n_clusters: int,
    *,
    value_range: tuple[float, float] | None = None,
    progress: Callable[[float], None] | None = None,
    is_cancelled: Callable[[], bool] | None = None,
) -> KMeans1DResult:
    """Fit the globally optimal 1-D k-means to values streamed in blocks.

    Args:
        read_values: returns a fresh iterator of 1-D float32/float64 arrays holding the valid,
            finite values of one block each; called once per pass (2-3 passes, see module doc).
        n_clusters: number of clusters k, 1..255.
        value_range: (min, max) of the values when known (saves one pass); may be wider.
        progress: called with the fraction done, 0..1.
        is_cancelled: polled between blocks; when it returns True the fit stops.

    Returns:
        KMeans1DResult with ascending centres (float64, shape (k,)), inertia, counts, n_values.

    Raises:
        InvalidInputError: k out of range, no values, non-finite values, fewer distinct values
            than k, or a bad value_range.
        CancelledError: is_cancelled() returned True.
    """
    stream = _ValueStream(read_values, progress, is_cancelled, 3 if value_range is None else 2)
    return fit_kmeans_1d_source(stream, n_clusters, value_range=value_range)


class ValueSource(Protocol):
    """Where the fit's values come from: blocks of them, each pass reduced block by block."""

    def map(self, reduce_block: Callable[[np.ndarray], Any]) -> Iterator[Any]:
        """One pass: `reduce_block(values)` for each non-empty block of values (a 1-D float32 or
        float64 array of valid, finite values), in block order. `reduce_block` is picklable
        (a top-level function or an instance of a top-level class)."""

    def check_cancelled(self) -> None:
        """Raise CancelledError when the user cancelled."""

    def finish(self) -> None:
        """The fit is done (progress 1)."""


def fit_kmeans_1d_source(source: ValueSource, n_clusters: int, *,
                         value_range: tuple[float, float] | None = None) -> KMeans1DResult:
    """`fit_kmeans_1d` on values from a ValueSource, e.g. block jobs reading a raster.

    Each pass is a pure reduction of every block (`range_of_values`, `HistogramOfValues`,
    `RefineOfValues`, `DistinctOfValues`) merged in block order, so the result does not depend
    on where the blocks were reduced.
    """
    n_clusters = _checked_cluster_count(n_clusters)
    n_bins = _HISTOGRAM_BINS
    if value_range is None:
        lo, hi, n_values = merge_ranges(source.map(range_of_values))
        # Fewer bins for little data: they would mostly be empty, and cost time to scan.
        n_bins = min(n_bins, max(_MIN_HISTOGRAM_BINS, 1 << int(4 * n_values).bit_length()))
    else:
        lo, hi = _checked_range(value_range)
    binning, stats, (v_min, v_max) = _histogram_pass(source, lo, hi, n_bins)
    if value_range is not None and _range_mismatch(lo, hi, v_min, v_max):
        # Bins far wider than the data, or values clipped into the end bins, would prune
        # little: bin the actual range instead.
        binning, stats, (v_min, v_max) = _histogram_pass(source, v_min, v_max, n_bins)
    atoms = _Atoms.from_level1(binning, stats, v_min, v_max)
    solution = _solve(source, binning, atoms, n_clusters)
    source.finish()
    return solution


def kmeans_1d_exact(values: np.ndarray, n_clusters: int) -> KMeans1DResult:
    """Fit the globally optimal 1-D k-means to an in-memory array.

    Args:
        values: array of any shape of finite numbers (flattened).
        n_clusters: number of clusters k, 1..255.

    Returns:
        KMeans1DResult, as fit_kmeans_1d.

    Raises:
        InvalidInputError: as fit_kmeans_1d.
    """
    flat = np.asarray(values).ravel()
    if flat.dtype not in (np.float32, np.float64):
        flat = flat.astype(np.float64)
    block = 1 << 20
    value_range = None
    if flat.size > _CACHE_VALUES and np.isfinite(flat).all():  # saves a pass over big arrays
        value_range = (float(flat.min()), float(flat.max()))
    return fit_kmeans_1d(
        lambda: (flat[start : start + block] for start in range(0, flat.size, block)),
        n_clusters,
        value_range=value_range,
    )


def label_values(values: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Number each value by its nearest centre, 1-based; a value halfway goes to the lower class.

    Args:
        values: array of any shape of finite numbers.
        centres: ascending centres, shape (k,), k <= 255.

    Returns:
        uint8 array of the shape of values, class numbers 1..k.
    """
    centres = np.asarray(centres, dtype=np.float64)
    midpoints = (centres[:-1] + centres[1:]) / 2.0
    classes = np.searchsorted(midpoints, values, side="left") + 1
    return classes.astype(np.uint8)


def _checked_cluster_count(n_clusters: int) -> int:
    if isinstance(n_clusters, bool) or int(n_clusters) != n_clusters:
        raise InvalidInputError(f"number of clusters must be a whole number, got {n_clusters!r}")
    n_clusters = int(n_clusters)
    if not 1 <= n_clusters <= MAX_CLASSES:
        raise InvalidInputError(
            f"number of clusters must be between 1 and {MAX_CLASSES}, got {n_clusters}; "
            "choose a value in that range"
        )
    return n_clusters


def _checked_range(value_range: tuple[float, float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in value_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi and np.isfinite(hi - lo)):
        raise InvalidInputError(
            f"value range {value_range!r} is not a finite (min, max) pair; pass None to let the "
            "fit compute it"
        )
    return lo, hi


def _range_mismatch(lo: float, hi: float, v_min: float, v_max: float) -> bool:
    return v_min < lo or v_max > hi or (v_max - v_min) * _RANGE_SHRINK_REDO < (hi - lo)


def _no_values_error() -> InvalidInputError:
    return InvalidInputError(
        "no valid pixels to cluster: every pixel of the area is nodata or outside it; "
        "check the nodata value, the band and the area of interest"
    )


class _ValueStream:
    """Passes over the blocks: cancellation, progress across passes, a copy of small data."""

    def __init__(self, read_values, progress, is_cancelled, planned_passes: int):
        self._read_values = read_values
        self._progress = progress
        self._is_cancelled = is_cancelled
        self._planned_passes = planned_passes
        self._passes_done = 0
        self._blocks_per_pass: int | None = None
        self._cache: list[np.ndarray] | None = None
        self._reported = 0.0

    def blocks(self) -> Iterator[np.ndarray]:
        """One pass: yields non-empty 1-D float32/float64 arrays."""
        self.check_cancelled()
        from_cache = self._cache is not None
        source = iter(self._cache) if from_cache else iter(self._read_values())
        kept: list[np.ndarray] | None = None if from_cache else []
        kept_size = 0
        n_blocks = 0
        for block in source:
            self.check_cancelled()
            values = np.asarray(block).ravel()
            if values.dtype not in (np.float32, np.float64):
                values = values.astype(np.float64)
            if values.size == 0:
                continue
            if kept is not None:
                kept_size += values.size
                # Copy: a reader may reuse its buffer for the next block.
                if kept_size <= _CACHE_VALUES:
                    kept.append(values.copy())
                else:
                    kept = None
            yield values
            n_blocks += 1
            if self._blocks_per_pass:
                self._report(self._passes_done + min(1.0, n_blocks / self._blocks_per_pass))
        if kept is not None:
            self._cache = kept
        self._passes_done += 1
        self._blocks_per_pass = n_blocks
        self._report(self._passes_done)

    def map(self, reduce_block: Callable[[np.ndarray], Any]) -> Iterator[Any]:
        """One pass, each block reduced (ValueSource.map)."""
        for values in self.blocks():
            yield reduce_block(values)

    def check_cancelled(self) -> None:
        if self._is_cancelled is not None and self._is_cancelled():
            raise CancelledError("k-means fit cancelled by the user")

    def finish(self) -> None:
        if self._progress is not None:
            self._progress(1.0)

    def _report(self, passes: float) -> None:
        fraction = min(0.99, passes / max(self._planned_passes, self._passes_done + 1))
        if self._progress is not None and fraction > self._reported:
            self._reported = fraction
            self._progress(fraction)


def _checked_finite_range(lo: float, hi: float) -> tuple[float, float]:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise InvalidInputError(
            "the values include NaN or infinity; mask them out as nodata before clustering"
        )
    return lo, hi


class _Binning:
    """Maps values to atoms: equal level-1 bins, some of them split at sorted sub-edges."""

    def __init__(self, lo: float, hi: float, n_bins: int):
        self.lo = lo
        self.n_bins = n_bins if hi > lo else 1
        self.width = (hi - lo) / self.n_bins
        self.inv_width = 1.0 / self.width if hi > lo else 0.0
        # Where rounding in the bin formula may put a value beyond its nominal edges.
        self.slack = 8.0 * np.finfo(np.float64).eps * (abs(lo) + abs(hi) + (hi - lo))
        # float32 arithmetic shifts a bin by at most |lo| * 2^-23 (rounding of lo) plus
        # 2^-23 of the scaled value, both in bins; beyond a handful it is not worth it.
        error_bins = self.inv_width * 2.0**-23 * (2.0 * abs(lo) + 3.0 * (hi - lo))
        self._rough_radius = int(np.ceil(error_bins)) + 1 if error_bins < 64 else 0
        self.sub_edges: dict[int, np.ndarray] = {}
        self._rebuild()

    def bin_of(self, values64: np.ndarray) -> np.ndarray:
        return self._scaled_to_bins(np.subtract(values64, self.lo), self.inv_width)

    def near_bins(self, wanted_bins: np.ndarray, dtype) -> np.ndarray:
        """Bins whose values rough_bin_of may map into the wanted bins (for values of dtype)."""
        radius = self._rough_radius if dtype == np.float32 else 0
        if radius == 0:
            return wanted_bins
        running = np.r_[0, np.cumsum(wanted_bins)]
        bins = np.arange(self.n_bins)
        return running[np.minimum(bins + radius + 1, self.n_bins)] > running[
            np.maximum(bins - radius, 0)]

    def rough_bin_of(self, values: np.ndarray) -> np.ndarray:
        """Bins computed in float32 for float32 values (fast), off by at most a known radius."""
        if values.dtype != np.float32 or self._rough_radius == 0:
            return self.bin_of(values.astype(np.float64, copy=False))
        return self._scaled_to_bins(np.subtract(values, np.float32(self.lo)),
                                    np.float32(self.inv_width))

    def _scaled_to_bins(self, shifted: np.ndarray, inv_width) -> np.ndarray:
        np.multiply(shifted, inv_width, out=shifted)
        np.minimum(shifted, self.n_bins - 1, out=shifted)
        np.maximum(shifted, 0, out=shifted)
        return shifted.astype(np.intp)

    def bin_edges(self, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.lo + bins * self.width, self.lo + (bins + 1) * self.width

    def edges_of(self, bin_index: int) -> np.ndarray:
        """Ascending edges of the atoms of a level-1 bin (just its own two when unsplit)."""
        edges = self.sub_edges.get(bin_index)
        if edges is None:
            edges = np.r_[self.bin_edges(np.array([bin_index]))]
        return edges

    def split(self, new_edges: dict[int, np.ndarray]) -> None:
        """Splits level-1 bins at ascending edges (first and last: the bin's own edges)."""
        self.sub_edges.update(new_edges)
        self._rebuild()

    def sub_of(self, values64: np.ndarray, bins: np.ndarray) -> np.ndarray:
        """Global sub-atom index of values lying in split bins."""
        found = np.searchsorted(self._sub_lower, values64, side="right") - 1
        first = self._sub_start[bins]
        return np.clip(found, first, first + self._sub_count[bins] - 1)

    @property
    def n_sub(self) -> int:
        return self._sub_lower.size

    # Pickled (to block jobs in other processes) without what `_rebuild` derives: megabytes.
    _DERIVED = ("is_split", "_sub_start", "_sub_count", "_sub_lower", "_sub_upper", "sub_bin",
                "atom_start", "n_atoms", "atom_bin", "atom_of_sub")

    def __getstate__(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key not in self._DERIVED}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._rebuild()

    def _rebuild(self) -> None:
        split_bins = np.array(sorted(self.sub_edges), dtype=np.intp)
        counts = np.array([self.sub_edges[b].size - 1 for b in split_bins], dtype=np.intp)
        self.is_split = np.zeros(self.n_bins, dtype=bool)
        self.is_split[split_bins] = True
        self._sub_start = np.zeros(self.n_bins, dtype=np.intp)
        self._sub_start[split_bins] = np.cumsum(counts) - counts
        self._sub_count = np.ones(self.n_bins, dtype=np.intp)
        self._sub_count[split_bins] = counts
        lower = [self.sub_edges[b][:-1] for b in split_bins]
        self._sub_lower = np.concatenate(lower) if lower else np.zeros(0)
        upper = [self.sub_edges[b][1:] for b in split_bins]
        self._sub_upper = np.concatenate(upper) if upper else np.zeros(0)
        self.sub_bin = np.repeat(split_bins, counts)
        # Atom order: level-1 bins ascending, a split bin replaced by its sub-bins.
        atoms_per_bin = np.where(self.is_split, self._sub_count, 1)
        self.atom_start = np.cumsum(atoms_per_bin) - atoms_per_bin
        self.n_atoms = int(atoms_per_bin.sum())
        self.atom_bin = np.repeat(np.arange(self.n_bins), atoms_per_bin)
        self.atom_of_sub = self.atom_start[self.sub_bin] + (
            np.arange(self.sub_bin.size) - self._sub_start[self.sub_bin]
        )

    def atom_of(self, values64: np.ndarray, bins: np.ndarray | None = None) -> np.ndarray:
        if bins is None:
            bins = self.bin_of(values64)
        atoms = self.atom_start[bins]
        split = self.is_split[bins]
        if split.any():
            atoms[split] = self.atom_of_sub[self.sub_of(values64[split], bins[split])]
        return atoms

    def atom_bounds(self, ids: np.ndarray, v_min: float, v_max: float):
        """Lower and upper bounds (float64, shape of ids) of the values the atoms can hold."""
        bins = self.atom_bin[ids]
        low, high = self.bin_edges(bins)
        # Values beyond the binned range were clipped into the end bins.
        low = np.where(bins == 0, -np.inf, low - self.slack)
        high = np.where(bins == self.n_bins - 1, np.inf, high + self.slack)
        split = np.flatnonzero(self.is_split[bins])
        if split.size:
            # Inside a split bin the sub-edges are exact (searchsorted); its own edges keep slack.
            position = ids[split] - self.atom_start[bins[split]]
            sub = self._sub_start[bins[split]] + position
            inner_low = position > 0
            inner_high = position < self._sub_count[bins[split]] - 1
            low[split[inner_low]] = self._sub_lower[sub[inner_low]]
            high[split[inner_high]] = self._sub_upper[sub[inner_high]]
        return np.clip(low, v_min, v_max), np.clip(high, v_min, v_max)


class _StatsAccumulator:
    """Per-atom count, sum and sum of squares about a member value of the atom (its reference)."""

    def __init__(self, n_atoms: int):
        self.count = np.zeros(n_atoms, dtype=np.int64)
        self.reference = np.full(n_atoms, np.nan)
        self.sum = np.zeros(n_atoms)
        self.sum_sq = np.zeros(n_atoms)

    def merge(self, block: _BlockStats) -> None:
        """Add a block's statistics, re-expressed about this accumulator's references (the
        first block's value in each atom: the reference does not depend on blocking)."""
        ids = block.ids
        reference = self.reference[ids]
        new = np.isnan(reference)
        reference[new] = block.reference[new]
        self.reference[ids] = reference
        shift = block.reference - reference  # 0 where the block sets the reference
        self.count[ids] += block.count
        self.sum[ids] += block.sum + block.count * shift
        self.sum_sq[ids] += block.sum_sq + 2.0 * shift * block.sum + block.count * shift * shift


def range_of_values(values: np.ndarray) -> tuple[float, float, int]:
    """A block's (min, max, number of values)."""
    return float(values.min()), float(values.max()), values.size


def merge_ranges(ranges: Iterable[tuple[float, float, int]]) -> tuple[float, float, int]:
    """(min, max, number of values) of all blocks; refuses no values or non-finite ones."""
    lo, hi, n_values = np.inf, -np.inf, 0
    for block_lo, block_hi, block_n in ranges:
        lo, hi, n_values = min(lo, block_lo), max(hi, block_hi), n_values + block_n
    if not n_values:
        raise _no_values_error()
    return (*_checked_finite_range(lo, hi), n_values)


@dataclass(frozen=True, eq=False)
class _BlockStats:
    """A block's statistics per atom, for the atoms it has values in: count, sum and sum of
    squares about the block's first value in the atom (its reference)."""

    ids: np.ndarray
    count: np.ndarray
    reference: np.ndarray
    sum: np.ndarray
    sum_sq: np.ndarray

    @classmethod
    def of(cls, atoms: np.ndarray, values64: np.ndarray, n_atoms: int) -> _BlockStats:
        count = np.bincount(atoms, minlength=n_atoms)
        ids = np.flatnonzero(count)
        reference = np.full(n_atoms, np.nan)
        # Reversed so the first occurrence wins: the reference then does not depend on blocking.
        reference[atoms[::-1]] = values64[::-1]
        deviation = values64 - reference[atoms]
        sums = np.bincount(atoms, weights=deviation, minlength=n_atoms)
        squares = np.bincount(atoms, weights=deviation * deviation, minlength=n_atoms)
        return cls(ids, count[ids], reference[ids], sums[ids], squares[ids])


@dataclass(frozen=True)
class HistogramOfValues:
    """A block's level-1 bin statistics and its (min, max); refuses non-finite values."""

    binning: _Binning

    def __call__(self, values: np.ndarray) -> tuple[_BlockStats, float, float]:
        values64 = values.astype(np.float64, copy=False)
        block_min, block_max = float(values64.min()), float(values64.max())
        _checked_finite_range(block_min, block_max)
        stats = _BlockStats.of(self.binning.bin_of(values64), values64, self.binning.n_bins)
        return stats, block_min, block_max


def _histogram_pass(source: ValueSource, lo: float, hi: float, n_bins: int):
    binning = _Binning(lo, hi, n_bins)
    stats = _StatsAccumulator(binning.n_bins)
    v_min, v_max = np.inf, -np.inf
    for block_stats, block_min, block_max in source.map(HistogramOfValues(binning)):
        v_min, v_max = min(v_min, block_min), max(v_max, block_max)
        stats.merge(block_stats)
    if v_min > v_max:
        raise _no_values_error()
    return binning, stats, (v_min, v_max)


@dataclass(frozen=True, eq=False)
class _InBins:
    """Picks the values of a block lying in some level-1 bins (for refining and gathering)."""

    binning: _Binning
    wanted_bins: np.ndarray
    near32: np.ndarray
    near64: np.ndarray

    @classmethod
    def of(cls, binning: _Binning, wanted_bins: np.ndarray) -> _InBins:
        return cls(binning, wanted_bins, binning.near_bins(wanted_bins, np.float32),
                   binning.near_bins(wanted_bins, np.float64))

    def __reduce__(self):
        return _InBins.of, (self.binning, self.wanted_bins)  # the near bins are derived

    def values(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values float64, their bins) of the block's values lying in the wanted bins."""
        near = self.near32 if values.dtype == np.float32 else self.near64
        values64 = values[near[self.binning.rough_bin_of(values)]].astype(np.float64, copy=False)
        bins = self.binning.bin_of(values64)
        inside = self.wanted_bins[bins]
        return values64[inside], bins[inside]


@dataclass(frozen=True, eq=False)
class RefineOfValues:
    """A block's statistics per sub-bin of the split bins."""

    in_bins: _InBins

    def __call__(self, values: np.ndarray) -> _BlockStats:
        binning = self.in_bins.binning
        values64, bins = self.in_bins.values(values)
        return _BlockStats.of(binning.sub_of(values64, bins), values64, binning.n_sub)


def _refine_pass(source: ValueSource, binning: _Binning) -> _StatsAccumulator:
    stats = _StatsAccumulator(binning.n_sub)
    for block_stats in source.map(RefineOfValues(_InBins.of(binning, binning.is_split))):
        stats.merge(block_stats)
    return stats


@dataclass(frozen=True, eq=False)
class DistinctOfValues:
    """A block's distinct values (ascending float64) and their counts, in the wanted atoms."""

    in_bins: _InBins
    is_wanted: np.ndarray

    def __call__(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values64, bins = self.in_bins.values(values)
        values64 = values64[self.is_wanted[self.in_bins.binning.atom_of(values64, bins)]]
        return np.unique(values64, return_counts=True)


def _gather_pass(source: ValueSource, binning: _Binning, wanted_atoms: np.ndarray):
    """Distinct values (ascending float64) and their counts (int64) of the wanted atoms."""
    wanted_bins = np.zeros(binning.n_bins, dtype=bool)
    wanted_bins[binning.atom_bin[wanted_atoms]] = True
    is_wanted = np.zeros(binning.n_atoms, dtype=bool)
    is_wanted[wanted_atoms] = True
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    held = 0
    for distinct in source.map(DistinctOfValues(_InBins.of(binning, wanted_bins), is_wanted)):
        if distinct[0].size:
            parts.append(distinct)
            held += distinct[0].size
            if held > _GATHER_VALUES:
                parts = [_merge_distinct(parts)]
                held = parts[0][0].size
    if not parts:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    return _merge_distinct(parts)


def _merge_distinct(parts):
    values = np.concatenate([p[0] for p in parts])
    counts = np.concatenate([p[1] for p in parts])
    distinct, inverse = np.unique(values, return_inverse=True)
    return distinct, np.bincount(inverse, weights=counts).astype(np.int64)


class _Atoms:
    """The non-empty atoms in value order with their sufficient statistics and bounds."""

    def __init__(self, ids, count, reference, sum_, sum_sq, low, high, v_min, v_max):
        self.ids = ids  # atom number in the binning
        self.count = count
        self.reference = reference
        self.sum = sum_
        self.sum_sq = sum_sq
        self.low = low
        self.high = high
        self.v_min = v_min
        self.v_max = v_max
        # Pure: all values equal (the sums about a member are exactly zero).
        self.pure = (sum_sq == 0) & (sum_ == 0)

    @classmethod
    def from_level1(cls, binning: _Binning, stats: _StatsAccumulator, v_min, v_max) -> _Atoms:
        return cls._build(binning, stats, None, v_min, v_max)

    @classmethod
    def after_refine(cls, binning, level1: _StatsAccumulator, sub: _StatsAccumulator, v_min,
                     v_max) -> _Atoms:
        return cls._build(binning, level1, sub, v_min, v_max)

    @classmethod
    def _build(cls, binning, level1, sub, v_min, v_max) -> _Atoms:
        unsplit = np.flatnonzero((level1.count > 0) & ~binning.is_split)
        sources = [(level1, unsplit, binning.atom_start[unsplit])]
        if sub is not None:
            filled = np.flatnonzero(sub.count > 0)
            sources.append((sub, filled, binning.atom_of_sub[filled]))
        ids = np.concatenate([source[2] for source in sources])
        order = np.argsort(ids)
        fields = [
            np.concatenate([getattr(stats, name)[index] for stats, index, _ in sources])[order]
            for name in ("count", "reference", "sum", "sum_sq")
        ]
        ids = ids[order]
        return cls(ids, *fields, *binning.atom_bounds(ids, v_min, v_max), v_min, v_max)

    @property
    def size(self) -> int:
        return self.ids.size

    @property
    def mean(self) -> np.ndarray:
        return self.reference + self.sum / self.count

    @property
    def deviation(self) -> np.ndarray:
        """Sum of squared deviations from the atom's mean."""
        return np.maximum(self.sum_sq - self.sum * self.sum / self.count, 0.0)


def _solve(stream: ValueSource, binning: _Binning, atoms: _Atoms, n_clusters: int):
    level1_stats = None
    excluded = np.zeros(binning.n_atoms, dtype=bool)  # atom ids that cannot hold an optimal cut
    refine_passes = 0
    while True:
        sequence = PrefixSums(atoms.count, atoms.reference, atoms.sum, atoms.sum_sq,
                             (atoms.v_min, atoms.v_max))
        sets, _ = feasible_cuts(sequence, atoms, atoms.pure | excluded[atoms.ids], n_clusters,
                                 stream)
        split_possible = sets.union(atoms.size + 1)
        cut_inside = split_possible[:-1] | split_possible[1:]
        candidate = cut_inside & ~atoms.pure & ~excluded[atoms.ids]
        excluded[atoms.ids[~cut_inside & ~atoms.pure]] = True
        candidate_values = int(atoms.count[candidate].sum())
        if not candidate.any() or candidate_values <= _GATHER_VALUES or (
            refine_passes >= _MAX_REFINE_PASSES
        ):
            break
        if level1_stats is None:
            level1_stats = _level1_snapshot(binning, atoms)
        _split_candidates(binning, atoms, candidate)
        excluded = _carry_exclusions(binning, excluded, atoms)
        sub_stats = _refine_pass(stream, binning)
        refine_passes += 1
        atoms = _Atoms.after_refine(binning, level1_stats, sub_stats, atoms.v_min, atoms.v_max)
    return _final_fit(stream, binning, atoms, sets, candidate, n_clusters)


def _level1_snapshot(binning: _Binning, atoms: _Atoms) -> _StatsAccumulator:
    """Level-1 statistics indexed by bin, taken before any bin is split."""
    snapshot = _StatsAccumulator(binning.n_bins)
    snapshot.count[atoms.ids] = atoms.count
    snapshot.reference[atoms.ids] = atoms.reference
    snapshot.sum[atoms.ids] = atoms.sum
    snapshot.sum_sq[atoms.ids] = atoms.sum_sq
    return snapshot


def _split_candidates(binning: _Binning, atoms: _Atoms, candidate: np.ndarray) -> None:
    """Splits every candidate atom into sub-bins, more of them where it holds more values.

    The sub-bins span the atom's mean +- 8 standard deviations (at least 63/64 of its values,
    by Chebyshev's inequality); two outer sub-bins take the rest of the atom.
    """
    chosen = np.flatnonzero(candidate)
    weights = atoms.count[chosen] / atoms.count[chosen].sum()
    pieces = np.maximum(2, np.ceil(weights * _REFINE_BINS)).astype(int)
    spread = 8.0 * np.sqrt(atoms.deviation[chosen] / atoms.count[chosen])
    new_edges: dict[int, list[np.ndarray]] = {}
    for index, n_pieces, mean, reach in zip(chosen, pieces, atoms.mean[chosen], spread):
        atom = int(atoms.ids[index])
        bin_index = int(binning.atom_bin[atom])
        edges = binning.edges_of(bin_index)
        position = atom - int(binning.atom_start[bin_index])
        low, high = edges[position], edges[position + 1]
        inner = np.linspace(max(low, mean - reach), min(high, mean + reach), n_pieces + 1)
        new_edges.setdefault(bin_index, [edges]).append(inner[(inner > low) & (inner < high)])
    binning.split({b: np.unique(np.concatenate(parts)) for b, parts in new_edges.items()})


def _carry_exclusions(binning: _Binning, excluded_old: np.ndarray, atoms: _Atoms) -> np.ndarray:
    """Exclusions are facts about values, so map them from old atoms to the new ones by value."""
    excluded = np.zeros(binning.n_atoms, dtype=bool)
    old = np.flatnonzero(excluded_old)
    if old.size:
        kept = np.isin(atoms.ids, old)
        excluded[binning.atom_of(atoms.reference[kept])] = True
    return excluded


def _final_fit(stream, binning, atoms: _Atoms, sets: CutSets, candidate, n_clusters):
    if candidate.any():
        distinct, distinct_counts = _gather_pass(stream, binning, atoms.ids[candidate])
    else:
        distinct, distinct_counts = np.zeros(0), np.zeros(0, dtype=np.int64)
    # Items in value order: the untouched atoms and the distinct values of the candidates.
    atom_index = np.arange(atoms.size)
    value_atom = np.searchsorted(atoms.ids, binning.atom_of(distinct))
    order = np.argsort(np.r_[atom_index[~candidate], value_atom], kind="stable")
    item_atom = np.r_[atom_index[~candidate], value_atom][order]
    is_value = order >= atom_index.size - int(candidate.sum())
    count = np.r_[atoms.count[~candidate], distinct_counts][order]
    offset = np.r_[atoms.reference[~candidate], distinct][order]
    sum_ = np.r_[atoms.sum[~candidate], np.zeros(distinct.size)][order]
    sum_sq = np.r_[atoms.sum_sq[~candidate], np.zeros(distinct.size)][order]
    if count.size < n_clusters:
        raise InvalidInputError(
            f"only {count.size} distinct valid values but {n_clusters} clusters requested; "
            f"choose K \u2264 {count.size}"
        )
    # Cut positions that can hold an optimal cut: just below an atom where a cut is feasible,
    # and around every gathered value.
    split_possible = sets.union(atoms.size + 1)
    allowed = np.zeros(count.size + 1, dtype=bool)
    allowed[[0, -1]] = True
    allowed[:-1] |= split_possible[item_atom] | is_value
    allowed[1:] |= is_value
    positions = np.flatnonzero(allowed)
    # The c-th cut stays among the items of the atoms beside the splits where it is feasible.
    first = np.maximum(sets.low - 1, 0)
    last = sets.high
    low = np.searchsorted(positions, np.searchsorted(item_atom, first, side="left"))
    high = np.searchsorted(positions, np.searchsorted(item_atom, last, side="right"),
                           side="right") - 1
    prefixes = PrefixSums(count, offset, sum_, sum_sq).prefixes
    _, cuts = best_partition(tuple(p[positions] for p in prefixes), n_clusters, stream, low,
                              high)
    if cuts is None:  # only if float rounding defeated the bounds: search every position
        positions = np.arange(count.size + 1)
        _, cuts = best_partition(prefixes, n_clusters, stream)
    return _result_from_cuts(count, offset, sum_, sum_sq, positions[cuts])


def _result_from_cuts(count, offset, sum_, sum_sq, cuts) -> KMeans1DResult:
    """The clusters of the items between the cuts, made consistent with nearest-centre labels.

    The cuts are optimal, so Lloyd steps (each item to its nearest centre, then centres to the
    means) change nothing but where two partitions tie within float rounding: they settle such
    ties on the one that label_values reproduces.
    """
    item_mean = offset + sum_ / count
    for _ in range(_MAX_LLOYD_STEPS):
        centres = _segment_means(count, offset, sum_, cuts)
        moved = np.searchsorted(item_mean, (centres[:-1] + centres[1:]) / 2, side="right")
        if (moved == cuts).all() or (np.diff(np.r_[0, moved, count.size]) <= 0).any():
            break
        cuts = moved
    centres = _segment_means(count, offset, sum_, cuts)
    starts = np.r_[0, cuts]
    # Cost about each cluster's own centre from each item's local statistics: no cancellation.
    shift = offset - np.repeat(centres, np.diff(np.r_[starts, count.size]))
    item_cost = sum_sq + 2.0 * shift * sum_ + count * shift * shift
    return KMeans1DResult(
        centres=centres,
        inertia=float(np.add.reduceat(item_cost, starts).sum()),
        counts=np.add.reduceat(count, starts).astype(np.int64),
        n_values=int(count.sum()),
    )


def _segment_means(count, offset, sum_, cuts) -> np.ndarray:
    starts = np.r_[0, cuts]
    # About each segment's first value, so that a segment of equal values has exactly that mean.
    base = offset[starts]
    shift = offset - np.repeat(base, np.diff(np.r_[starts, count.size]))
    return base + np.add.reduceat(count * shift + sum_, starts) / np.add.reduceat(count, starts)
