"""Scores of k-means over a range of k (inertia, silhouette, Calinski–Harabasz) to choose k.

Inertia, the within-cluster sum of squares, comes from the fit k-means itself makes:
- one feature: the exact 1-D optimum (`kmeans_1d`) over ALL valid pixels of the area, so the
  curve is the true minimum inertia for each k and the centres are those k-means would write;
- several features: scikit-learn's k-means++ (k-means's own fit, 4 restarts) on a seeded sample
  of FIT_SAMPLE_FACTOR x SAMPLE_SIZE pixels (100,000 by default); the inertia is summed over that
  sample, in the standardized space when features are standardized.
The silhouette (and Calinski–Harabasz) scores are computed by scikit-learn on a seeded sample of
SAMPLE_SIZE pixels (10,000 by default; the silhouette costs SAMPLE_SIZE² distances per k), each
pixel labelled with its nearest centre, in the space k-means measures distances in. Both samples
are `kmeans.sample_valid_pixels` draws for the seed, so the smaller one is the first SAMPLE_SIZE
pixels of the larger one, and the same seed gives the same scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import parameters
from ..engine import run_scope
from ..errors import InvalidInputError
from ..io.area_of_interest import BoundingBox
from ..io.feature_stack import (
    AreaBlocks,
    FeatureStack,
    RasterInput,
    area_windows,
    open_area_blocks,
)
from ..io.rasters import Window
from ..progress import Progress
from .area_values import AreaValues, AreaValueSource
from .kmeans import KMeansSettings, fit_several_features, sample_valid_pixels
from .kmeans_1d import fit_kmeans_1d_source, label_values, merge_ranges, range_of_values

DEFAULT_K_MIN, DEFAULT_K_MAX = parameters.K_MIN.default, parameters.K_MAX.default
DEFAULT_SAMPLE_SIZE = parameters.SILHOUETTE_SAMPLE_SIZE.default
MAX_SAMPLE_SIZE = int(parameters.SILHOUETTE_SAMPLE_SIZE.allowed.high)
#: Several features: k-means is fitted on this many times SAMPLE_SIZE pixels.
FIT_SAMPLE_FACTOR = 10
# One feature: the area's values are kept in memory up to this many (64 MB of float32), so the
# fits of the successive k read the raster once; beyond, each fit streams the raster again.
_IN_MEMORY_VALUES = 1 << 24
# scikit-learn computes the silhouette's distances in chunks of this many MB (its default, 1 GB,
# is slower here and would dominate the memory of a run).
_SILHOUETTE_WORKING_MEMORY_MB = 64


@dataclass(frozen=True)
class ChooseKSettings:
    """Which k to try and how to score them.

    Attributes:
        k_min, k_max: the range of k tried, both included, 2..255.
        sample_size: pixels of the silhouette (and Calinski–Harabasz) sample.
        seed: seeds the samples and k-means++; the same inputs and seed give the same scores.
        standardize: several features are scaled to unit variance (on the fit sample) before
            fitting and scoring, as k-means does. No effect on one feature.
        calinski_harabasz: also compute the Calinski–Harabasz score.
    """

    k_min: int = DEFAULT_K_MIN
    k_max: int = DEFAULT_K_MAX
    sample_size: int = DEFAULT_SAMPLE_SIZE
    seed: int = 0
    standardize: bool = True
    calinski_harabasz: bool = False

    @property
    def fit_sample_size(self) -> int:
        """Pixels k-means is fitted on for several features."""
        return FIT_SAMPLE_FACTOR * self.sample_size

    def validate(self) -> None:
        """Raise InvalidInputError for a range or sample size that cannot be scored."""
        parameters.K_MIN.validate(self.k_min)
        parameters.K_MAX.validate(self.k_max)
        parameters.SILHOUETTE_SAMPLE_SIZE.validate(self.sample_size)
        parameters.SEED.validate(self.seed)
        problem = k_range_problem(self.k_min, self.k_max, self.sample_size)
        if problem:
            raise InvalidInputError(problem)


def k_range_problem(k_min: int, k_max: int, sample_size: int) -> str | None:
    """The message refusing a range of k that cannot be scored with this sample, or None."""
    if k_min > k_max:
        return f"K_MIN ({k_min}) must not exceed K_MAX ({k_max})."
    if sample_size <= k_max:
        return (f"SAMPLE_SIZE ({sample_size}) must be larger than K_MAX ({k_max}); the default "
                f"is {DEFAULT_SAMPLE_SIZE:,}.")
    return None


@dataclass(frozen=True)
class KScores:
    """Scores of one k.

    Attributes:
        k: number of clusters.
        inertia: sum of squared distances of the fitted pixels to their nearest centre.
        silhouette: mean silhouette of the sample, -1..1 (higher: better separated); NaN when
            the sample's pixels fall in fewer than two clusters.
        calinski_harabasz: Calinski–Harabasz score of the sample (higher: better separated);
            None when not asked for, NaN when undefined.
    """

    k: int
    inertia: float
    silhouette: float
    calinski_harabasz: float | None = None


@dataclass
class ChooseKResult:
    """The scores of every k tried and the choice made from them.

    Attributes:
        scores: one KScores per k tried, ascending k (the sweep stops early, with a message,
            at a k larger than the number of distinct values).
        recommended_k: the k with the highest silhouette (the smallest such k on a tie); the
            elbow when no silhouette is defined.
        elbow_k: the elbow of the inertia curve (see `elbow_k`), or None.
        feature_names: the features scored.
        inertia_pixels: pixels the inertia is summed over.
        silhouette_pixels: pixels of the silhouette sample.
        inertia_method: how the inertia was computed, in words, for the report.
        settings: the settings used.
        messages: warnings for the user.
    """

    scores: list[KScores]
    recommended_k: int
    elbow_k: int | None
    feature_names: tuple[str, ...]
    inertia_pixels: int
    silhouette_pixels: int
    inertia_method: str
    settings: ChooseKSettings
    messages: list[str] = field(default_factory=list)

    @property
    def recommendation_reason(self) -> str:
        """Why recommended_k was chosen, in words, for logs and the report."""
        best = next(s for s in self.scores if s.k == self.recommended_k)
        if not math.isnan(best.silhouette):
            return f"the highest silhouette, {best.silhouette:.4f}"
        if self.recommended_k == self.elbow_k:
            return "the elbow of the inertia curve, as no silhouette could be computed"
        return "the smallest k tried, as neither a silhouette nor an elbow could be computed"


def choose_k(inputs: Sequence[RasterInput], *, settings: ChooseKSettings | None = None,
             geometry_wkt: str | None = None, bbox: BoundingBox | None = None,
             progress=None, is_cancelled=None) -> ChooseKResult:
    """Fit k-means for every k of the range on the area's pixels and score each fit.

    Args:
        inputs: rasters whose bands are the features (aligned onto the first one's grid, as in
            k-means).
        settings: the range of k, the sample size, seed, scaling and scores wanted (the
            defaults of ChooseKSettings when None).
        geometry_wkt: polygon/multipolygon area in the first raster's CRS, or None.
        bbox: (xmin, ymin, xmax, ymax) in the first raster's CRS, or None; intersected with the
            geometry when both are given.
        progress, is_cancelled: see `core.progress`.

    Returns:
        ChooseKResult with one KScores per k, the recommended k and the elbow.

    Raises:
        InvalidInputError: bad settings, no overlap, no valid pixels, fewer distinct values
            than K_MIN.
        CancelledError: cancelled.
    """
    settings = settings or ChooseKSettings()
    settings.validate()
    steps = Progress(progress, is_cancelled)
    with run_scope() as scope:
        blocks, stack, area = open_area_blocks(inputs, scope, geometry_wkt=geometry_wkt,
                                               bbox=bbox)
        fits_class = _OneFeatureFits if stack.n_features == 1 else _SampleFits
        fits = fits_class(stack, blocks, area_windows(stack, area.window), settings,
                          steps.span(0.0, 0.15))
        scores, messages = _score_range(fits, settings, steps.span(0.15, 1.0))
    elbow = elbow_k([s.k for s in scores], [s.inertia for s in scores])
    return ChooseKResult(scores, recommend_k(scores, elbow), elbow, tuple(stack.names),
                         fits.inertia_pixels, len(fits.points), fits.method, settings, messages)


class _OneFeatureFits:
    """Exact 1-D k-means over every valid pixel of the area; raw values as the metric space."""

    def __init__(self, stack: FeatureStack, blocks: AreaBlocks, windows: list[Window],
                 settings: ChooseKSettings, steps: Progress):
        #: The silhouette sample, (n, 1) float64.
        self.points = sample_valid_pixels(blocks, windows, settings.sample_size, settings.seed,
                                          steps.span(0.0, 0.5))
        # The values stay in memory (where the jobs run) for the fits of every k, up to a size.
        self._values = AreaValues(blocks, memo_values=_IN_MEMORY_VALUES)
        self._windows = windows
        low, high, self.inertia_pixels = merge_ranges(AreaValueSource(
            self._values, windows, steps.span(0.5, 1.0), planned_passes=1).map(range_of_values))
        self._value_range = (low, high)
        self.method = (f"exact 1-D k-means optimum over all {self.inertia_pixels:,} valid pixels "
                       "of the area (the centres k-means writes)")

    def fit(self, k: int, steps: Progress) -> tuple[float, np.ndarray]:
        """(inertia, class numbers 1..k of the silhouette sample) of the optimal k clusters."""
        values = AreaValueSource(self._values, self._windows, steps, planned_passes=2)
        result = fit_kmeans_1d_source(values, k, value_range=self._value_range)
        return result.inertia, label_values(self.points[:, 0], result.centres)


class _SampleFits:
    """k-means's own multi-feature fit on a seeded sample; its scaling as the metric space."""

    def __init__(self, stack: FeatureStack, blocks: AreaBlocks, windows: list[Window],
                 settings: ChooseKSettings, steps: Progress):
        self._names, self._settings = stack.names, settings
        self._sample = sample_valid_pixels(blocks, windows, settings.fit_sample_size,
                                           settings.seed, steps)
        # The first sample_size pixels of a bottom-k sample are the bottom-sample_size sample.
        self._raw_points = self._sample[:settings.sample_size]
        #: The silhouette sample in the space distances are measured in (set by the first fit:
        #: the scaling is the fit sample's, the same for every k).
        self.points = self._raw_points
        self.inertia_pixels = len(self._sample)
        scaled = "standardized " if settings.standardize else ""
        self.method = (f"k-means++ (4 restarts, k-means's own fit) on a seeded sample of "
                       f"{len(self._sample):,} pixels; inertia summed over that sample, in "
                       f"{scaled}feature units")

    def fit(self, k: int, steps: Progress) -> tuple[float, np.ndarray]:
        """(inertia, class numbers 1..k of the silhouette sample) of k-means with k clusters."""
        steps.check()
        if k > len(self._sample):
            raise InvalidInputError(
                f"the area has only {len(self._sample)} valid pixels, fewer than {k} clusters; "
                "choose a smaller K_MAX or a larger area")
        kmeans_settings = KMeansSettings(n_clusters=k, seed=self._settings.seed,
                                         sample_size=len(self._sample),
                                         standardize=self._settings.standardize)
        model = fit_several_features(self._names, self._sample, kmeans_settings, None, None)
        self.points = model.prepare(self._raw_points)
        inertia = _inertia(model.prepare(self._sample), model.model_centres())
        return inertia, model.label(self._raw_points)


def _inertia(points: np.ndarray, centres: np.ndarray, rows: int = 1 << 16) -> float:
    """Sum over points (n, f) of the squared distance to the nearest of centres (k, f)."""
    total = 0.0
    squared_centres = np.einsum("ij,ij->i", centres, centres)
    for start in range(0, len(points), rows):
        chunk = points[start:start + rows]
        distances = squared_centres - 2.0 * chunk @ centres.T
        nearest = distances.min(axis=1) + np.einsum("ij,ij->i", chunk, chunk)
        total += float(np.maximum(nearest, 0.0).sum())
    return total


def _score_range(fits, settings: ChooseKSettings,
                 steps: Progress) -> tuple[list[KScores], list[str]]:
    from sklearn import config_context
    from sklearn.metrics import calinski_harabasz_score, silhouette_score

    scores: list[KScores] = []
    messages: list[str] = []
    ks = range(settings.k_min, settings.k_max + 1)
    for index, k in enumerate(ks):
        k_steps = steps.span(index / len(ks), (index + 1) / len(ks))
        try:
            inertia, labels = fits.fit(k, k_steps.span(0.0, 0.6))
        except InvalidInputError as error:
            if not scores:
                raise
            messages.append(f"Stopped at k = {k}: {error}")
            break
        k_steps(0.6)
        silhouette = math.nan
        harabasz = math.nan if settings.calinski_harabasz else None
        n_labels = len(np.unique(labels))
        if 2 <= n_labels <= len(fits.points) - 1:
            with config_context(working_memory=_SILHOUETTE_WORKING_MEMORY_MB):
                silhouette = float(silhouette_score(fits.points, labels))
            if settings.calinski_harabasz:
                harabasz = float(calinski_harabasz_score(fits.points, labels))
        else:
            messages.append(f"k = {k}: the {len(fits.points):,} sampled pixels fall in "
                            f"{n_labels} cluster(s); the silhouette is undefined. Use a larger "
                            "SAMPLE_SIZE or area.")
        scores.append(KScores(k, inertia, silhouette, harabasz))
        k_steps(1.0)
    return scores, messages


def elbow_k(ks: Sequence[int], inertias: Sequence[float]) -> int | None:
    """The elbow of an inertia curve: its point farthest below the chord, once normalised.

    k is scaled to 0..1 over the range and the inertia to 0..1 between its minimum and maximum;
    the elbow is the k whose point lies farthest (perpendicularly) below the straight line
    joining the first and the last point — the "knee" of the kneedle method (Satopää et al.,
    2011) for a decreasing, convex curve.

    Args:
        ks: ascending k values.
        inertias: the inertia of each k.

    Returns:
        The elbow's k, or None with fewer than three k, a flat curve, or no point below the
        chord (a straight or concave curve has no elbow).
    """
    x = np.asarray(ks, dtype=np.float64)
    y = np.asarray(inertias, dtype=np.float64)
    if x.size < 3 or not np.all(np.isfinite(y)) or y.max() == y.min():
        return None
    x = (x - x[0]) / (x[-1] - x[0])
    y = (y - y.min()) / (y.max() - y.min())
    dx, dy = x[-1] - x[0], y[-1] - y[0]
    # Cross product of the chord with the point: positive below a chord drawn left to right.
    below = (dy * (x - x[0]) - dx * (y - y[0])) / math.hypot(dx, dy)
    best = int(np.argmax(below[1:-1])) + 1
    return int(ks[best]) if below[best] > 1e-12 else None


def recommend_k(scores: Sequence[KScores], elbow: int | None) -> int:
    """The k of the highest silhouette (the smallest on a tie); else the elbow; else the first k."""
    silhouettes = np.array([s.silhouette for s in scores], dtype=np.float64)
    if np.all(np.isnan(silhouettes)):
        return elbow if elbow is not None else scores[0].k
    return scores[int(np.nanargmax(silhouettes))].k
