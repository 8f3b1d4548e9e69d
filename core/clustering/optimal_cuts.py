"""Optimal cuts of weighted items in value order into k runs of least sum of squares.

The layered dynamic programme (divide and conquer on the monotone optimal split, vectorised) and
the lower bounds that prove where the cuts of every optimal partition can lie; exact 1-D k-means
(kmeans_1d) streams the values into the items these work on.
"""

from __future__ import annotations

import numpy as np

_COARSEST_VIEW_ATOMS = 1024  # bounds start on runs of atoms this many, then refine 8-fold
_BOUND_ROUNDS = 4  # tightening rounds of the cut lower bounds
_CUMSUM_BLOCK = 64  # prefix sums are summed in blocks of this many, to bound their rounding
_DENSE_CELLS = 1 << 14  # DP layers this small are evaluated whole, not by divide and conquer


class PrefixSums:
    """Prefix sums of count, sum and sum of squares about the data mean, items in value order."""

    def __init__(self, count, offset, sum_, sum_sq, extent=None):
        count = count.astype(np.float64)
        self.mean = float((count * offset + sum_).sum() / count.sum())
        shift = offset - self.mean
        centred_sum = sum_ + count * shift
        centred_sq = sum_sq + 2.0 * shift * sum_ + count * shift * shift
        self.prefixes = tuple(_accurate_cumsum(c) for c in (count, centred_sum, centred_sq))
        counts, sums, squares = self.prefixes
        self.total_cost = float(squares[-1] - sums[-1] ** 2 / counts[-1])
        if extent is not None:
            self.cost_error = _cost_rounding_error(count.size, np.abs(centred_sum).sum(),
                                                   squares[-1], max(extent[1] - self.mean,
                                                                    self.mean - extent[0]))

    def tolerance(self, n_clusters: int, penalties=()) -> float:
        """Bound on the rounding error of a DP value: n_clusters segment costs and penalties."""
        penalty_scale = sum(float(p.max(initial=0.0)) for p in penalties)
        eps = np.finfo(np.float64).eps
        # Twice the cost error: reversed prefixes (total - prefix) add one more prefix error.
        sums_error = 8 * eps * (self.total_cost + penalty_scale)
        return (n_clusters + 1) * (2 * self.cost_error + sums_error)


def _accurate_cumsum(values: np.ndarray, block: int = _CUMSUM_BLOCK) -> np.ndarray:
    """Prefix sums with a leading 0, summed in blocks so that each carries a rounding error of at
    most (block + 2) * levels * eps * sum(|values|), levels = ceil(log_block(size)), instead of
    size * eps * sum(|values|) for a running sum."""
    if values.size <= block:
        return np.r_[0.0, np.cumsum(values)]
    n_blocks = -(-values.size // block)
    padded = np.zeros(n_blocks * block)
    padded[: values.size] = values
    within = np.cumsum(padded.reshape(n_blocks, block), axis=1)
    before = _accurate_cumsum(within[:, -1], block)[:-1]
    return np.r_[0.0, (within + before[:, None]).ravel()[: values.size]]


def _cost_rounding_error(n_items, abs_sum, abs_squares, max_deviation) -> float:
    """Bound on the rounding error of one segment cost q - s^2/n from prefix sums: the prefix
    errors (see _accurate_cumsum) of q, and of s amplified by 2|s/n| <= 2 * max_deviation."""
    eps = np.finfo(np.float64).eps
    levels = max(1, int(np.ceil(np.log(max(n_items, 2)) / np.log(_CUMSUM_BLOCK))))
    prefix = (_CUMSUM_BLOCK + 2) * levels * eps
    return 2 * prefix * abs_squares + 4 * prefix * max_deviation * abs_sum + 8 * eps * abs_squares


def _rounding_spread(count, mean, deviation, low, high):
    """Bound h on min(sum of (t - x) over values x < t, sum of (x - t) over x > t), any t.

    The two sums cross at the mean, where each is half the sum of absolute deviations: at most
    sqrt(count * sum of squared deviations) / 2; the first is also at most count * (high - mean),
    the second count * (mean - low).
    """
    return np.minimum.reduce([
        0.5 * np.sqrt(count * deviation),
        count * np.maximum(high - mean, 0.0),
        count * np.maximum(mean - low, 0.0),
    ])


class _View:
    """Runs of consecutive atoms between chosen split positions, with what the bounds need."""

    def __init__(self, sequence: PrefixSums, atoms, positions: np.ndarray, fine_spread):
        self.mean = sequence.mean
        self.n_atoms = positions.size - 1
        self.prefixes = tuple(p[positions] for p in sequence.prefixes)
        self.reversed_prefixes = tuple(p[-1] - p[::-1] for p in self.prefixes)
        self.low = atoms.low[positions[:-1]]
        self.high = atoms.high[positions[1:] - 1]
        if self.n_atoms == atoms.size:
            self.spread = fine_spread
            return
        # Merged runs: count, mean and squared deviation combined from the atoms', exactly.
        starts = positions[:-1]
        count = np.add.reduceat(atoms.count, starts).astype(np.float64)
        atom_shift = atoms.mean - np.repeat(self.low, np.diff(positions))
        mean_shift = np.add.reduceat(atoms.count * atom_shift, starts) / count
        spread_shift = atom_shift - np.repeat(mean_shift, np.diff(positions))
        deviation = np.add.reduceat(atoms.deviation + atoms.count * spread_shift**2, starts)
        self.spread = _rounding_spread(count, self.low + mean_shift, deviation, self.low,
                                       self.high)


class CutSets:
    """For each cut, the split positions where it may lie: low..high and a mask over them."""

    def __init__(self, low, high, masks):
        self.low = np.asarray(low, dtype=np.intp)
        self.high = np.asarray(high, dtype=np.intp)
        self.masks = masks

    @classmethod
    def everywhere(cls, n_cuts: int, n_positions: int) -> CutSets:
        return cls(np.zeros(n_cuts), np.full(n_cuts, n_positions - 1),
                   [np.ones(n_positions, dtype=bool) for _ in range(n_cuts)])

    def trimmed(self) -> CutSets | None:
        """Ranges shrunk to the allowed positions and kept in cut order; None if inconsistent."""
        first = np.array([lo + m.argmax() for lo, m in zip(self.low, self.masks)], np.intp)
        last = np.array([lo + m.size - 1 - m[::-1].argmax()
                         for lo, m in zip(self.low, self.masks)], np.intp)
        first, last = _ordered_ranges(first, last, 0)
        masks = [m[f - lo : t - lo + 1] for m, lo, f, t in zip(self.masks, self.low, first, last)]
        if (first > last).any() or not all(m.any() for m in masks):
            return None
        return CutSets(first, last, masks)

    def union(self, n_positions: int) -> np.ndarray:
        allowed = np.zeros(n_positions, dtype=bool)
        for lo, mask in zip(self.low, self.masks):
            allowed[lo : lo + mask.size] |= mask
        return allowed

    def refined(self, coarse: np.ndarray, fine: np.ndarray) -> CutSets:
        """The sets on a finer view (fine positions include the coarse ones): a fine split can
        hold a cut if it is a feasible coarse split, or lies in or beside a coarse run that can
        hold the cut inside."""
        n_coarse = coarse.size - 1
        run = np.searchsorted(coarse, fine, side="right") - 1
        on_split = coarse[run] == fine
        fine_index = np.searchsorted(fine, coarse)
        lows, highs, masks = [], [], []
        for lo, hi, mask in zip(self.low, self.high, self.masks):
            feasible = np.zeros(n_coarse + 1, dtype=bool)
            feasible[lo : hi + 1] = mask
            holds = feasible[:-1] | feasible[1:]
            start, stop = fine_index[max(lo - 1, 0)], fine_index[min(hi + 1, n_coarse)]
            r = run[start : stop + 1]
            inside = holds[np.minimum(r, n_coarse - 1)] & (r < n_coarse)
            beside_below = holds[np.maximum(r - 1, 0)] & (r >= 1)
            masks.append(np.where(on_split[start : stop + 1],
                                  feasible[r] | inside | beside_below, inside))
            lows.append(start)
            highs.append(stop)
        sets = CutSets(lows, highs, masks)
        return sets.trimmed() or CutSets.everywhere(len(masks), fine.size)


def _row_minima(prev, prefixes, rows, m_lo, m_hi, strict):
    """For each i in rows (ascending): min and leftmost argmin over m in [m_lo, min(m_hi, i -
    strict)] of prev[m - m_lo] + cost(m, i), cost being the sum of squares of the items between
    prefix positions m and i (strict=1 keeps runs non-empty).

    The cost obeys the quadrangle inequality, so the leftmost argmin does not decrease with i;
    divide and conquer over rows then needs O((rows + columns) log rows) evaluations, done one
    recursion level at a time so that each level is a few vectorised calls.
    """
    counts, sums, squares = prefixes
    m_hi = min(m_hi, rows[-1] - strict)
    if rows.size * (m_hi - m_lo + 1) <= _DENSE_CELLS:
        # Small problem: one evaluation of the whole matrix beats the recursion's overhead.
        m = np.arange(m_lo, m_hi + 1)[:, None]
        s = sums[rows] - sums[m]
        values = prev[m - m_lo] + (squares[rows] - squares[m]) - s * s / np.maximum(
            counts[rows] - counts[m], 1.0)
        values[m > rows - strict] = np.inf
        arg = values.argmin(axis=0)
        return values[arg, np.arange(rows.size)], arg + m_lo
    best = np.empty(rows.size)
    arg = np.empty(rows.size, dtype=np.intp)
    row_lo = np.zeros(1, dtype=np.intp)
    row_hi = np.full(1, rows.size - 1, dtype=np.intp)
    col_lo = np.full(1, m_lo, dtype=np.intp)
    col_hi = np.full(1, min(m_hi, rows[-1] - strict), dtype=np.intp)
    while row_lo.size:
        mid = (row_lo + row_hi) >> 1
        i = rows[mid]
        lengths = np.minimum(col_hi, i - strict) - col_lo + 1
        ends = np.cumsum(lengths)
        starts = ends - lengths
        m = np.arange(ends[-1]) + np.repeat(col_lo - starts, lengths)
        i = np.repeat(i, lengths)
        s = sums[i] - sums[m]
        values = prev[m - m_lo] + (squares[i] - squares[m]) - s * s / np.maximum(
            counts[i] - counts[m], 1.0)
        minima = np.minimum.reduceat(values, starts)
        hits = np.flatnonzero(values == np.repeat(minima, lengths))
        chosen = m[hits[np.searchsorted(hits, starts)]]
        best[mid] = minima
        arg[mid] = chosen
        left = mid > row_lo
        right = mid < row_hi
        row_lo, row_hi, col_lo, col_hi = (
            np.concatenate((row_lo[left], mid[right] + 1)),
            np.concatenate((mid[left] - 1, row_hi[right])),
            np.concatenate((col_lo[left], chosen[right])),
            np.concatenate((chosen[left], col_hi[right])),
        )
    return best, arg


def _segment_costs(prefixes, ends, starts=0):
    counts, sums, squares = prefixes
    s = sums[ends] - sums[starts]
    return (squares[ends] - squares[starts]) - s * s / np.maximum(counts[ends] - counts[starts],
                                                                  1.0)


def _layered_dp(prefixes, ranges, weights, strict, stream):
    """Least cost of cutting prefix positions 0..i into j+1 runs, for i in ranges[j].

    Args:
        prefixes: (counts, sums, squares) prefix arrays of shape (P,).
        ranges: (n_layers, 2) inclusive position ranges, ascending in both columns; layer j's rows.
        weights: None, or for each cut c a weight per position of ranges[c-1], subtracted when
            the c-th cut lies there; -inf forbids it.
        strict: 1 for non-empty runs, 0 to allow empty ones.

    Returns:
        (layers, args): layers[j] over the positions of ranges[j]; args[j] the position of the
        last cut for each of them (args[0] is None).
    """
    layer = _segment_costs(prefixes, np.arange(ranges[0][0], ranges[0][1] + 1))
    layers, args = [layer], [None]
    for j in range(1, len(ranges)):
        stream.check_cancelled()
        prev = layer if weights is None else layer - weights[j - 1]
        rows = np.arange(ranges[j][0], ranges[j][1] + 1)
        layer, arg = _row_minima(prev, prefixes, rows, ranges[j - 1][0], ranges[j - 1][1], strict)
        layers.append(layer)
        args.append(arg)
    return layers, args


def _traced_cuts(ranges, args) -> np.ndarray:
    position = ranges[-1][0]
    cuts = []
    for j in range(len(ranges) - 1, 0, -1):
        position = args[j][position - ranges[j][0]]
        cuts.append(position)
    return np.array(cuts[::-1], dtype=np.intp)


def _ordered_ranges(low, high, strict):
    """Narrows per-cut position ranges so that cut c+1 can lie at least `strict` above cut c."""
    step = np.arange(low.size) * strict
    low = np.maximum.accumulate(low - step) + step
    high = np.minimum.accumulate((high + step)[::-1])[::-1] - step
    return low, high


def best_partition(prefixes, n_clusters, stream, low=None, high=None):
    """Least-cost split of prefix positions 0..P-1 into n_clusters non-empty runs, the c-th cut
    confined to positions low[c-1]..high[c-1] when given.

    Returns:
        (cost, cuts): cuts, shape (k-1,), ascending inner positions; (inf, None) if impossible.
    """
    last = prefixes[0].size - 1
    cut_number = np.arange(1, n_clusters)
    cut_low, cut_high = cut_number, last - (n_clusters - cut_number)
    if low is not None:
        cut_low, cut_high = np.maximum(cut_low, low), np.minimum(cut_high, high)
    cut_low, cut_high = _ordered_ranges(cut_low, cut_high, 1)
    if last < n_clusters or (cut_low > cut_high).any():
        return np.inf, None
    ranges = np.r_[np.c_[cut_low, cut_high], [[last, last]]]
    layers, args = _layered_dp(prefixes, ranges, None, 1, stream)
    return float(layers[-1][0]), _traced_cuts(ranges, args)


def _polished_cost(prefixes, cuts: np.ndarray, max_rounds: int = 100) -> float:
    """Cost of a partition of the atoms after Lloyd steps that move whole atoms (never worse)."""
    counts, sums, _ = prefixes
    n_atoms = counts.size - 1
    atom_means = np.diff(sums) / np.diff(counts)
    bounds = np.unique(np.r_[0, cuts, n_atoms])
    cost = float(_segment_costs(prefixes, bounds[1:], bounds[:-1]).sum())
    for _ in range(max_rounds):
        centres = np.diff(sums[bounds]) / np.diff(counts[bounds])
        moved = np.r_[0, np.searchsorted(atom_means, (centres[:-1] + centres[1:]) / 2), n_atoms]
        if (np.diff(moved) <= 0).any():
            break
        moved_cost = float(_segment_costs(prefixes, moved[1:], moved[:-1]).sum())
        if moved_cost >= cost:
            break
        bounds, cost = moved, moved_cost
    return cost


def _cut_penalties(view: _View, sets: CutSets) -> list[np.ndarray]:
    """For each cut j, per split s of its range: the most that moving an optimal partition's
    j-th cut from inside an atom to that atom's edge at s can add to the cost.

    A cut t inside atom b goes to the lower edge when t is below the atom's mean, else to the
    upper one (so several cuts in one atom stay in order). With the centres held, the moved
    values cost 2 * gap * min(sum of (t - x) below t, sum of (x - t) above t) <= 2 * gap * h_b
    (see _rounding_spread), gap being the distance between the centres beside the cut. The
    centre below is at least the mean of the atoms from the lowest place of cut j-1 up to b; the
    centre above at most the mean of the atoms from b up to the highest place of cut j+1.
    """
    counts, sums, _ = view.prefixes
    n_atoms = view.n_atoms
    lowest_start = np.maximum(np.r_[0, sets.low[:-1]] - 1, 0)
    highest_end = np.minimum(np.r_[sets.high[1:], n_atoms], n_atoms - 1) + 1
    penalties = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, (lo, hi) in enumerate(zip(sets.low, sets.high)):
            first_atom = max(lo - 1, 0)
            b = np.arange(first_atom, min(hi, n_atoms - 1) + 1)
            start, end = lowest_start[j], highest_end[j]
            mean_below = np.where(
                b > start,
                view.mean + (sums[b] - sums[start]) / (counts[b] - counts[start]),
                view.low[b],
            )
            mean_above = np.where(
                b + 1 < end,
                view.mean + (sums[end] - sums[b + 1]) / (counts[end] - counts[b + 1]),
                view.high[b],
            )
            gap = np.minimum.reduce([
                mean_above - mean_below,
                2.0 * (view.high[b] - mean_below),
                2.0 * (mean_above - view.low[b]),
            ])
            inside = 2.0 * np.maximum(gap, 0.0) * view.spread[b]
            split = np.arange(lo, hi + 1)
            penalty = np.zeros(split.size)
            above = split < n_atoms
            penalty[above] = inside[split[above] - first_atom]
            below = split >= 1
            penalty[below] = np.maximum(penalty[below], inside[split[below] - 1 - first_atom])
            penalties.append(penalty)
    return penalties


def _tighten(view: _View, sets: CutSets, upper, n_clusters, sequence, stream, seek_upper):
    """Rounds of lower bounds that rule out cut positions, on one view; see feasible_cuts."""
    n_cuts = n_clusters - 1
    for round_number in range(_BOUND_ROUNDS):
        from_relaxation = seek_upper and round_number == 0
        if not from_relaxation and view.n_atoms >= n_clusters:
            upper = min(upper, best_partition(view.prefixes, n_clusters, stream, sets.low,
                                               sets.high)[0])
        penalties = _cut_penalties(view, sets)
        tolerance = sequence.tolerance(n_clusters, penalties)
        weights = [np.where(mask, p, -np.inf) for mask, p in zip(sets.masks, penalties)]
        ranges = np.c_[sets.low, sets.high]
        if from_relaxation:  # one more layer to the end gives a partition: an upper bound
            ranges = np.r_[ranges, [[view.n_atoms, view.n_atoms]]]
        forward, args = _layered_dp(view.prefixes, ranges, weights, 0, stream)
        if from_relaxation:
            upper = min(upper, _polished_cost(view.prefixes, _traced_cuts(ranges, args)))
        backward, _ = _layered_dp(view.reversed_prefixes,
                                  view.n_atoms - ranges[:n_cuts][::-1, ::-1],
                                  [w[::-1] for w in weights[::-1]], 0, stream)
        masks = [
            mask & (forward[c] + backward[n_cuts - 1 - c][::-1] - penalties[c]
                    <= upper + tolerance)
            for c, mask in enumerate(sets.masks)
        ]
        if all((new == old).all() for new, old in zip(masks, sets.masks)):
            break
        tighter = CutSets(sets.low, sets.high, masks).trimmed() if all(
            m.any() for m in masks) else None
        if tighter is None:
            break  # float rounding defeated a bound: keep the previous, proven sets
        sets = tighter
    return sets, upper


def _view_strides(n_atoms: int, n_clusters: int) -> list[int]:
    # Runs much wider than a cluster would make every bound useless.
    coarsest = max(_COARSEST_VIEW_ATOMS, 32 * n_clusters)
    strides = [1]
    while n_atoms // (strides[-1] * 8) >= coarsest:
        strides.append(strides[-1] * 8)
    return strides[::-1]


def feasible_cuts(sequence: PrefixSums, atoms, no_inner_cut, n_clusters, stream):
    """Where the cuts of every optimal partition can lie, proven by bounds.

    Each optimal cut lies at a split between atoms or inside an atom; moved to the nearer edge
    (_cut_penalties) it gives a partition on splits, so the penalised DP with cut c at split s,
    forward and backward, bounds from below the cost of any partition whose c-th cut is at or
    beside s. Where that bound exceeds the cost of a known partition, no optimal cut c lies.
    The bounds are computed on coarse runs of atoms first, then on finer views confined to the
    runs still possible, and each view repeats the bounds while they keep ruling out positions.

    Args:
        atoms: the M items in value order (kmeans_1d's atoms): size, count, mean, deviation
            (sum of squared deviations from the mean), low and high (bounds of the values).
        stream: what check_cancelled() is called on between DP layers.

    Returns:
        (sets, upper): CutSets over the M+1 splits of the atoms; the cost of a partition.
    """
    n_cuts, n_atoms = n_clusters - 1, atoms.size
    if n_cuts == 0:
        return CutSets([], [], []), sequence.total_cost
    if n_atoms < n_clusters:  # nothing to prune with: every atom must be opened
        return CutSets.everywhere(n_cuts, n_atoms + 1), np.inf
    fine_spread = np.where(no_inner_cut, 0.0, _rounding_spread(
        atoms.count, atoms.mean, atoms.deviation, atoms.low, atoms.high))
    sets, upper, coarse = None, np.inf, None
    for stride in _view_strides(n_atoms, n_clusters):
        positions = np.unique(np.r_[np.arange(0, n_atoms, stride), n_atoms])
        view = _View(sequence, atoms, positions, fine_spread)
        if coarse is None:
            sets = CutSets.everywhere(n_cuts, view.n_atoms + 1)
        else:
            sets = sets.refined(coarse, positions)
        sets, upper = _tighten(view, sets, upper, n_clusters, sequence, stream,
                               seek_upper=coarse is None)
        coarse = positions
    return sets, upper
