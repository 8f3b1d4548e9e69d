"""ISODATA: k-means whose number of classes adapts by splitting wide classes and merging close
ones (Ball & Hall 1965, in the form of Tou & Gonzalez 1974, Pattern Recognition Principles,
pp. 97–100), fitted on a sample of points."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import parameters
from ..errors import InvalidInputError
from ..io.feature_stack import AreaBlocks, FeatureStack, area_windows
from ..io.rasters import Window
from ..progress import Progress
from .distances import squared_distances
from .kmeans import (
    DEFAULT_SAMPLE_SIZE,
    Fit,
    check_enough_points,
    check_sample_settings,
    draw_fit_sample,
    lloyd,
)

DEFAULT_MIN_CLUSTERS = parameters.MIN_CLUSTERS.default
DEFAULT_MAX_CLUSTERS = parameters.MAX_CLUSTERS.default
#: θ_N: a class with fewer than this share of the points is dissolved.
DEFAULT_MIN_CLASS_SHARE = parameters.MIN_CLASS_SIZE.default / 100
#: θ_S: a class whose largest per-feature standard deviation exceeds this may be split.
#: θ_C: two classes whose centres are closer than this are merged. Both in standardized units
#: by default; chosen so that the synthetic scene (scripts/synthetic_scene.py) ends with its five
#: true classes started from 2, 5 or 9, and the real multi-band rasters of ../shared/data with
#: 4–7 classes (see `parameters.SPLIT_STD`).
DEFAULT_SPLIT_STD = parameters.SPLIT_STD.default
DEFAULT_MERGE_DISTANCE = parameters.MERGE_DISTANCE.default
#: I: split-and-merge iterations.
DEFAULT_MAX_ITERATIONS = parameters.ISODATA_ITERATIONS.default
#: A class is split into its centre ± this many times its largest standard deviation.
SPLIT_OFFSET = 1.0


@dataclass(frozen=True)
class IsodataOptions:
    """Tou & Gonzalez's parameters, in the fit's feature space (standardized when standardizing).

    Attributes:
        initial_clusters: K, the number of classes started from and aimed at.
        min_clusters, max_clusters: bounds the number of classes never leaves.
        min_class_share: θ_N as a share (0..1) of the points.
        split_std: θ_S, in feature units.
        merge_distance: θ_C, in feature units.
        max_iterations: I.
    """

    initial_clusters: int = 5
    min_clusters: int = DEFAULT_MIN_CLUSTERS
    max_clusters: int = DEFAULT_MAX_CLUSTERS
    min_class_share: float = DEFAULT_MIN_CLASS_SHARE
    split_std: float = DEFAULT_SPLIT_STD
    merge_distance: float = DEFAULT_MERGE_DISTANCE
    max_iterations: int = DEFAULT_MAX_ITERATIONS

    def validate(self) -> None:
        """Raise InvalidInputError unless each option is allowed (`core.parameters`) and
        MIN_CLUSTERS ≤ CLUSTERS ≤ MAX_CLUSTERS."""
        parameters.CLUSTERS.validate(self.initial_clusters)
        parameters.MIN_CLUSTERS.validate(self.min_clusters)
        parameters.MAX_CLUSTERS.validate(self.max_clusters)
        parameters.MIN_CLASS_SIZE.validate(100 * self.min_class_share)
        parameters.SPLIT_STD.validate(self.split_std)
        parameters.MERGE_DISTANCE.validate(self.merge_distance)
        parameters.ISODATA_ITERATIONS.validate(self.max_iterations)
        if self.min_clusters > self.max_clusters:
            raise InvalidInputError(
                f"MIN_CLUSTERS and MAX_CLUSTERS must satisfy MIN_CLUSTERS ≤ MAX_CLUSTERS; got "
                f"MIN_CLUSTERS={self.min_clusters}, MAX_CLUSTERS={self.max_clusters}.")
        if not self.min_clusters <= self.initial_clusters <= self.max_clusters:
            raise InvalidInputError(
                f"CLUSTERS ({self.initial_clusters}) must lie between MIN_CLUSTERS "
                f"({self.min_clusters}) and MAX_CLUSTERS ({self.max_clusters}).")


METHOD = "ISODATA"


@dataclass(frozen=True)
class IsodataSettings:
    """ISODATA on a seeded sample of the area: its options, and the sample as for k-means
    (`KMeansSettings`: seed, sample_size, standardize, clip_quantiles)."""

    options: IsodataOptions = IsodataOptions()
    seed: int = 0
    sample_size: int = DEFAULT_SAMPLE_SIZE
    standardize: bool = True
    clip_quantiles: tuple[float, float] | None = None

    def validate(self) -> None:
        """Raise InvalidInputError naming the allowed values of a setting that is not."""
        self.options.validate()
        check_sample_settings(self)

    def fit(self, stack: FeatureStack, blocks: AreaBlocks, window: Window,
            steps: Progress) -> Fit:
        """ISODATA on the area's sample; the ordered model and its log lines."""
        sample = draw_fit_sample(blocks, area_windows(stack, window), stack.names, self,
                                 steps.span(0.0, 0.5))
        fit = fit_isodata(sample.points, self.options, seed=self.seed,
                          is_cancelled=steps.cancelled)
        steps.check()
        model = sample.model(fit.centres, method=METHOD)
        return Fit(model, len(sample.points), (
            f"ISODATA: {model.n_clusters} classes after {fit.iterations} iterations from "
            f"{self.options.initial_clusters} ({fit.splits} split, {fit.merges} merged, "
            f"{fit.dissolved} dissolved).",))


@dataclass(frozen=True)
class IsodataFit:
    """Attributes: centres (n_classes, n_features); iterations run; splits, merges and
    dissolved classes along the way."""

    centres: np.ndarray
    iterations: int
    splits: int
    merges: int
    dissolved: int


def fit_isodata(points: np.ndarray, options: IsodataOptions, *, seed: int = 0,
                is_cancelled=None) -> IsodataFit:
    """ISODATA on points (n, f), float64, from seeded k-means++ centres.

    Each iteration (Tou & Gonzalez's steps 2–13): assign every point to its nearest centre;
    dissolve classes under θ_N points (smallest first); move each centre to its class's mean;
    then either split or merge. Split on odd iterations, and whenever at most K/2 classes are
    left: a class whose largest per-feature standard deviation σ exceeds θ_S, and that is more
    spread than average with more than 2(θ_N + 1) points (or any such class when at most K/2
    are left), becomes two centres at ± σ along that feature. On even iterations merge every
    pair of centres closer than θ_C, closest first, each class once per iteration, into their
    size-weighted mean. The classes never go below MIN_CLUSTERS nor above MAX_CLUSTERS: these
    bounds take the place of Tou & Gonzalez's rule of merging at 2K classes, so that the data,
    not the starting number, decide the final one. It stops after I iterations, or once two
    iterations in a row changed no class and moved no centre. Lloyd's k-means then settles the
    final centres (see `_settle`).
    """
    from sklearn.cluster import kmeans_plusplus

    points = np.asarray(points, dtype=np.float64)
    check_enough_points(points, options.initial_clusters)
    centres, _ = kmeans_plusplus(points, options.initial_clusters, random_state=seed)
    min_points = max(1, math.ceil(options.min_class_share * len(points)))
    state = _State(centres, 0, 0, 0)
    quiet = 0
    iteration = 0
    for iteration in range(1, options.max_iterations + 1):
        if is_cancelled is not None and is_cancelled():
            break
        before = state.centres.copy()
        changed = _iterate(points, state, options, iteration, min_points)
        moved = (len(before) == len(state.centres)
                 and np.allclose(before, state.centres, rtol=0, atol=1e-9))
        quiet = quiet + 1 if not changed and moved else 0
        if quiet >= 2:
            break
    centres = _settle(points, state, options, min_points, seed)
    return IsodataFit(centres, iteration, state.splits, state.merges, state.dissolved)


def _settle(points, state: _State, options: IsodataOptions, min_points: int,
            seed: int) -> np.ndarray:
    """Lloyd's k-means from the last centres, then dissolve the classes under θ_N points and
    merge the centres closer than θ_C, until neither happens (within the class bounds): the
    result is a k-means fixed point that the final iteration's split cannot leave half done."""
    while True:
        kmeans = lloyd(points, len(state.centres), init=state.centres, seed=seed,
                       what="classes ISODATA reached", advice="Lower MIN_CLUSTERS.")
        state.centres = kmeans.cluster_centers_
        counts = np.bincount(kmeans.labels_, minlength=len(state.centres))
        if not (_dissolve(counts, state, options, min_points) or _merge(counts, state, options)):
            return state.centres


@dataclass
class _State:
    centres: np.ndarray
    splits: int
    merges: int
    dissolved: int


def _nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return np.argmin(squared_distances(points, centres), axis=1)


def _iterate(points, state: _State, options: IsodataOptions, iteration: int,
             min_points: int) -> bool:
    """One iteration; True when it dissolved, split or merged a class."""
    labels = _nearest(points, state.centres)
    counts = np.bincount(labels, minlength=len(state.centres))
    dissolved = _dissolve(counts, state, options, min_points)
    if dissolved:
        labels = _nearest(points, state.centres)
        counts = np.bincount(labels, minlength=len(state.centres))
    occupied = counts > 0
    sums = np.zeros_like(state.centres)
    _add_rows(sums, labels, points)
    state.centres = np.where(occupied[:, None], sums / np.maximum(counts, 1)[:, None],
                             state.centres)
    if iteration == options.max_iterations:
        return bool(dissolved)  # the last iteration only assigns and updates (θ_C = 0)
    n_classes = len(state.centres)
    few = n_classes <= options.initial_clusters / 2
    if few or iteration % 2 == 1:
        changed = _split(points, labels, counts, state, options, few, min_points)
    else:
        changed = _merge(counts, state, options)
    return bool(dissolved) or changed


def _dissolve(counts, state: _State, options: IsodataOptions, min_points: int) -> bool:
    """Drop the classes under θ_N points, smallest first, down to MIN_CLUSTERS at most."""
    small = [index for index in np.argsort(counts, kind="stable") if counts[index] < min_points]
    dropped = small[:max(0, len(state.centres) - options.min_clusters)]
    if dropped:
        state.centres = np.delete(state.centres, dropped, axis=0)
        state.dissolved += len(dropped)
    return bool(dropped)


def _add_rows(sums: np.ndarray, labels: np.ndarray, points: np.ndarray) -> None:
    for feature in range(points.shape[1]):
        sums[:, feature] = np.bincount(labels, weights=points[:, feature],
                                       minlength=len(sums))


def _split(points, labels, counts, state: _State, options: IsodataOptions, few: bool,
           min_points: int) -> bool:
    n_classes = len(state.centres)
    offsets = points - state.centres[labels]
    distances = np.sqrt(np.einsum("ij,ij->i", offsets, offsets))
    spread_sum = np.bincount(labels, weights=distances, minlength=n_classes)
    spread = spread_sum / np.maximum(counts, 1)  # D_j: mean distance to the class's centre
    overall = spread_sum.sum() / max(counts.sum(), 1)
    squares = np.zeros_like(state.centres)
    _add_rows(squares, labels, offsets * offsets)
    deviation = np.sqrt(squares / np.maximum(counts, 1)[:, None])
    widest = deviation.max(axis=1)
    wanted = (widest > options.split_std) & (
        few | ((spread > overall) & (counts > 2 * (min_points + 1))))
    room = options.max_clusters - n_classes
    chosen = [index for index in np.argsort(-widest, kind="stable") if wanted[index]][:room]
    if not chosen:
        return False
    new_centres = []
    for index in range(n_classes):
        if index not in chosen:
            new_centres.append(state.centres[index])
            continue
        step = np.zeros(state.centres.shape[1])
        feature = int(np.argmax(deviation[index]))
        step[feature] = SPLIT_OFFSET * deviation[index, feature]
        new_centres += [state.centres[index] + step, state.centres[index] - step]
    state.centres = np.array(new_centres)
    state.splits += len(chosen)
    return True


def _merge(counts, state: _State, options: IsodataOptions) -> bool:
    n_classes = len(state.centres)
    distances = np.sqrt(squared_distances(state.centres, state.centres))
    first, second = np.triu_indices(n_classes, k=1)
    close = distances[first, second] < options.merge_distance
    pairs = sorted(zip(distances[first, second][close], first[close], second[close]))
    merged: set[int] = set()
    replacements: dict[int, np.ndarray] = {}
    for _, a, b in pairs:
        if n_classes - len(replacements) <= options.min_clusters:
            break
        if a in merged or b in merged:
            continue
        total = counts[a] + counts[b]
        weights = (counts[a], counts[b]) if total > 0 else (1, 1)
        replacements[a] = (weights[0] * state.centres[a] + weights[1] * state.centres[b]) / sum(
            weights)
        merged.update((a, b))
    if not replacements:
        return False
    kept = [replacements.get(index, state.centres[index]) for index in range(n_classes)
            if index not in merged or index in replacements]
    state.centres = np.array(kept)
    state.merges += len(replacements)
    return True
