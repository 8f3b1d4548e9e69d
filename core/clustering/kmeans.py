"""K-means clustering of raster pixels, streamed block by block.

One feature: the exact optimum of 1-D k-means over every valid pixel of the area
(`kmeans_1d`). Several features: Lloyd's k-means (scikit-learn) on a seeded random sample of the
area's valid pixels, from the best of many k-means++ starts. The classes are numbered 1..k in a
deterministic order (see `centroid_model.order_centres`); `classify` then labels every pixel of
the output. `cluster_rasters` runs the same pipeline for the other methods (fuzzy c-means,
ISODATA): only their settings' `fit` differs.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import numpy as np

from .. import parameters
from ..engine import current_executor, opened, run_scope
from ..errors import InvalidInputError
from ..io.area_of_interest import BoundingBox
from ..io.feature_stack import (
    AreaBlocks,
    FeatureStack,
    RasterInput,
    area_windows,
    open_area_blocks,
)
from ..io.rasters import RasterGrid, Window, gdal_cache_for
from ..progress import Progress
from ..sieve.sieve import SieveReport
from .area_values import AreaValues, AreaValueSource
from .centroid_model import CentroidModel, order_centres
from .class_statistics import ClassStatistics
from .classify import PixelOutputs, check_sieve_options, write_classified_raster
from .kmeans_1d import fit_kmeans_1d_source

DEFAULT_SAMPLE_SIZE = parameters.KMEANS_SAMPLE_SIZE.default
#: Several features: Lloyd's k-means runs from this many seeded k-means++ starts on the first
#: START_SAMPLE_SIZE pixels of the sample (a uniform subsample); the N_REFINED best distinct
#: results are refined on the whole sample and the lowest inertia is kept. Cheap starts find the
#: good basins that a few starts on the whole sample miss (2 % worse at k = 10 on the bench).
N_STARTS = 30
START_SAMPLE_SIZE = 20_000
N_REFINED = 3
NODATA_CLASS = 0


@dataclass(frozen=True)
class Fit:
    """What a method's fit gives the pipeline: the ordered model, the pixels it was fitted on
    and lines for the log (e.g. ISODATA's splits and merges)."""

    model: CentroidModel
    fitted_pixels: int
    notes: tuple[str, ...] = ()


class FitSettings(Protocol):
    """The settings of a clustering method: validated up front, then fitted on the area."""

    def validate(self) -> None: ...

    def fit(self, stack: FeatureStack, blocks: AreaBlocks, window: Window,
            steps: Progress) -> Fit:
        """Fit on the valid pixels of `blocks` in `window` (the area's) of `stack`."""


@dataclass(frozen=True)
class KMeansSettings:
    """How to fit the centres.

    Attributes:
        n_clusters: number of classes, 2..255.
        seed: seeds sampling and k-means++; the same inputs and seed give identical results.
        sample_size: pixels sampled to fit several features (one feature uses every pixel).
        standardize: scale each feature to unit variance (on the sample) before measuring
            distances, so bands in different units weigh alike. Ignored for one feature.
        clip_quantiles: (low, high) percentiles, e.g. (0.5, 99.5): feature values are clipped to
            them before fitting and labelling, so outliers (clouds, glint) do not claim a class.
    """

    n_clusters: int = parameters.CLUSTERS.default
    seed: int = parameters.SEED.default
    sample_size: int = DEFAULT_SAMPLE_SIZE
    standardize: bool = True
    clip_quantiles: tuple[float, float] | None = None

    def validate(self) -> None:
        """Raise InvalidInputError naming the allowed values of a setting that is not."""
        parameters.CLUSTERS.validate(self.n_clusters)
        check_sample_settings(self)

    def fit(self, stack: FeatureStack, blocks: AreaBlocks, window: Window,
            steps: Progress) -> Fit:
        return Fit(*fit_model(stack, blocks, window, self, steps))


def check_sample_settings(settings, sample_size_rule=parameters.KMEANS_SAMPLE_SIZE) -> None:
    """Refuse a seed, sample size or clip range of a sampled fit (`settings.seed`,
    `.sample_size`, `.clip_quantiles`) that its rule does not allow."""
    parameters.SEED.validate(settings.seed)
    sample_size_rule.validate(settings.sample_size)
    if settings.clip_quantiles is not None:
        parameters.CLIP_QUANTILES.validate(tuple(settings.clip_quantiles))


@dataclass
class ClusteringResult:
    """What a run produced: the model, the per-class statistics and the log messages (warnings;
    `notes` are the fit's own lines for the log)."""

    model: CentroidModel
    statistics: list[ClassStatistics]
    output_grid: RasterGrid
    fitted_pixels: int
    messages: list[str] = field(default_factory=list)
    sieve: SieveReport | None = None
    notes: tuple[str, ...] = ()
    distance_p98: float | None = None


def cluster_rasters(inputs: Sequence[RasterInput], output_path: str | os.PathLike, *,
                    settings: FitSettings, geometry_wkt: str | None = None,
                    bbox: BoundingBox | None = None, clip_to_area: bool = True,
                    min_area_m2: float | None = None, connectivity: int = 8,
                    pixel_outputs: PixelOutputs | None = None,
                    progress=None, is_cancelled=None) -> ClusteringResult:
    """Fit centres on the area's valid pixels and write the classified raster.

    Args:
        inputs: rasters whose bands are the features; the first one sets the grid.
        output_path: GeoTIFF to write (UInt8, nodata 0, classes 1..k).
        settings: the method and its settings: KMeansSettings, or another method's (their
            `fit` is the only step that differs).
        geometry_wkt: polygon/multipolygon area in the first raster's CRS, or None.
        bbox: (xmin, ymin, xmax, ymax) in the first raster's CRS, or None; intersected with
            the geometry when both are given.
        clip_to_area: when an area is given, output only its bounding box, nodata outside it;
            otherwise classify the whole raster with the area's centres.
        min_area_m2: when set (> 0), regions of a class smaller than this many square metres
            are merged into their largest neighbour after labelling (`core.sieve.sieve`); the
            statistics then describe the sieved classes, the centres stay those of the fit.
        connectivity: 4 or 8, how pixels of a region touch, for the sieve.
        pixel_outputs: the per-pixel rasters to write beside the classes (distance to the class
            centre, memberships), or None.
        progress, is_cancelled: see `core.progress`.

    Raises:
        InvalidInputError: bad settings, no overlap, no valid pixels, too few distinct values.
        CancelledError: cancelled; nothing is left behind.
    """
    settings.validate()
    check_sieve_options(min_area_m2, connectivity)
    steps = Progress(progress, is_cancelled)
    with run_scope() as scope:
        blocks, stack, area = open_area_blocks(inputs, scope, geometry_wkt=geometry_wkt,
                                               bbox=bbox)
        with gdal_cache_for(stack.decoded_bytes, stack.strip_bytes):
            fit = settings.fit(stack, blocks, area.window, steps.span(0.0, 0.5))
            output_window = area.window if clip_to_area else stack.grid.full_window
            written = write_classified_raster(
                stack, blocks if clip_to_area else AreaBlocks(blocks.stack), fit.model,
                output_path, output_window, min_area_m2=min_area_m2, connectivity=connectivity,
                pixel_outputs=pixel_outputs, steps=steps.span(0.5, 1.0))
        return ClusteringResult(fit.model, written.statistics,
                                stack.grid.sub_grid(output_window), fit.fitted_pixels,
                                written.warnings, written.sieve, fit.notes,
                                written.distance_p98)


def fit_model(stack: FeatureStack, blocks: AreaBlocks, window: Window, settings: KMeansSettings,
              steps: Progress) -> tuple[CentroidModel, int]:
    """Fit k-means on the valid pixels of `blocks` in `window` (the area's); return the
    ordered model and the number of pixels used."""
    windows = area_windows(stack, window)
    if stack.n_features == 1 and settings.clip_quantiles is None:
        return _fit_one_feature(stack, blocks, windows, settings, None, None, steps)
    sample = draw_fit_sample(blocks, windows, stack.names, settings, steps.span(0.0, 0.4))
    if stack.n_features == 1:
        return _fit_one_feature(stack, blocks, windows, settings, sample.clip_lower,
                                sample.clip_upper, steps.span(0.4, 1.0))
    return sample.model(fit_centres(sample.points, settings.n_clusters, settings.seed)), len(
        sample.points)


def _fit_one_feature(stack, blocks, windows, settings, clip_lower, clip_upper,
                     steps) -> tuple[CentroidModel, int]:
    value_range = None if clip_lower is None else (float(clip_lower[0]), float(clip_upper[0]))
    # The fit reads the area up to 3 times (range, histogram, values near the optimal cuts):
    # each pass reports the blocks it has read in its third of the fitting step.
    values = AreaValueSource(AreaValues(blocks, clip=value_range), windows, steps,
                             planned_passes=2 if value_range else 3)
    fit = fit_kmeans_1d_source(values, settings.n_clusters, value_range=value_range)
    centres = fit.centres.reshape(-1, 1)
    quantiles = settings.clip_quantiles
    return CentroidModel(tuple(stack.names), centres, clip_lower=clip_lower,
                         clip_upper=clip_upper, clip_quantiles=quantiles), fit.n_values


def fit_several_features(names, sample, settings, clip_lower, clip_upper) -> CentroidModel:
    """k-means on a sample (n_pixels, n_features), already clipped; the ordered model."""
    fit_sample = FitSample.of(names, sample, standardize=settings.standardize,
                              clip=(clip_lower, clip_upper, settings.clip_quantiles))
    return fit_sample.model(fit_centres(fit_sample.points, settings.n_clusters, settings.seed))


def fit_centres(points: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """Lloyd's k-means centres (n_clusters, n_features) of points, from the best of N_STARTS
    seeded k-means++ starts on a subsample, refined on every point (see N_STARTS).

    Raises:
        InvalidInputError: fewer distinct points than clusters.
    """
    check_enough_points(points, n_clusters)
    starts = points[:START_SAMPLE_SIZE]
    try:
        candidates = _start_candidates(starts, n_clusters, seed)
    except InvalidInputError:
        if len(starts) == len(points):
            raise
        candidates = _start_candidates(points, n_clusters, seed)
    if len(starts) == len(points):
        return candidates[0][1]
    refined = [_lloyd(points, n_clusters, init=centres, seed=seed) for _, centres in candidates]
    return min(refined, key=lambda fitted: fitted[0])[1]


def check_enough_points(points: np.ndarray, n_clusters: int) -> None:
    """Refuse fewer sampled pixels than clusters (scikit-learn would fail without saying why)."""
    if len(points) < n_clusters:
        raise InvalidInputError(
            f"The area has only {len(points)} valid pixel(s), so fewer distinct valid pixel "
            f"values than the {n_clusters} clusters requested. Choose fewer clusters or a "
            "larger area.")


def _start_candidates(points, n_clusters: int, seed: int) -> list[tuple[float, np.ndarray]]:
    """The N_REFINED best distinct (inertia, centres) of k-means from N_STARTS starts."""
    import sklearn.cluster  # noqa: F401 - loads OpenMP first: threadpoolctl limits only loaded ones
    from threadpoolctl import threadpool_limits

    results = []
    # On a small subsample, starting OpenMP threads costs more than it saves (4x on 2 cores);
    # one thread also makes the starts the same in a run's first fit as in later ones.
    with threadpool_limits(1):
        for start in range(N_STARTS):
            start_seed = int(np.random.SeedSequence([seed, start]).generate_state(1)[0])
            results.append(_lloyd(points, n_clusters, init="k-means++", seed=start_seed))
    results.sort(key=lambda fitted: fitted[0])
    distinct = [results[0]]
    for inertia, centres in results[1:]:
        if len(distinct) == N_REFINED:
            break
        if not np.isclose(inertia, distinct[-1][0], rtol=1e-9, atol=0):
            distinct.append((inertia, centres))
    return distinct


def _lloyd(points, n_clusters: int, *, init, seed: int) -> tuple[float, np.ndarray]:
    """(inertia, centres) of one scikit-learn k-means run."""
    kmeans = lloyd(points, n_clusters, init=init, seed=seed)
    return float(kmeans.inertia_), kmeans.cluster_centers_


def lloyd(points, n_clusters: int, *, init, seed: int, what: str = "clusters requested",
          advice: str = "Choose fewer clusters."):
    """One scikit-learn k-means run (n_init=1) from `init`; the fitted KMeans.

    Raises:
        InvalidInputError: fewer distinct points than clusters ("… than the k `what`").
    """
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    kmeans = KMeans(n_clusters=n_clusters, init=init, n_init=1, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            kmeans.fit(points)
        except ConvergenceWarning as warning:
            raise InvalidInputError(
                f"The area has fewer distinct valid pixel values than the {n_clusters} "
                f"{what} ({warning}). {advice}") from None
    return kmeans


@dataclass(frozen=True)
class FitSample:
    """A fit's sample of pixels and the space a method clusters it in.

    Attributes:
        names: the feature names.
        points: float64 (n_pixels, n_features): the clipped sample, standardized when asked.
        mean, std: float64 (n_features,) of the clipped sample (std 1 for a constant feature).
        standardized: whether `points` are standardized (several features and STANDARDIZE).
        clip_lower, clip_upper: the clip bounds, or None; clip_quantiles their percentiles.
    """

    names: tuple[str, ...]
    points: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    standardized: bool
    clip_lower: np.ndarray | None = None
    clip_upper: np.ndarray | None = None
    clip_quantiles: tuple[float, float] | None = None

    @classmethod
    def of(cls, names, sample: np.ndarray, *, standardize: bool, clip=(None, None, None)):
        """The FitSample of an already clipped sample; `clip` = (lower, upper, quantiles)."""
        mean = sample.mean(axis=0)
        std = sample.std(axis=0)
        std[std == 0] = 1.0  # a constant feature cannot separate anything; keep it harmless
        standardized = standardize and sample.shape[1] > 1
        points = (sample - mean) / std if standardized else sample
        return cls(tuple(names), points, mean, std, standardized, *clip)

    def model(self, centres: np.ndarray, **method) -> CentroidModel:
        """The ordered CentroidModel of centres (k, n_features) in the points' space; `method`
        holds CentroidModel's method fields (metric_transform, fuzziness, method, …)."""
        if self.standardized:
            centres = centres * self.std + self.mean
        order = order_centres(centres, mean=self.mean, std=self.std)
        return CentroidModel(
            self.names, centres[order], mean=self.mean if self.standardized else None,
            std=self.std if self.standardized else None, clip_lower=self.clip_lower,
            clip_upper=self.clip_upper, clip_quantiles=self.clip_quantiles, **method)


def draw_fit_sample(blocks: AreaBlocks, windows: list[Window], names, settings,
                    steps: Progress) -> FitSample:
    """The seeded sample of `settings.sample_size` valid pixels of `blocks` in `windows`, clipped
    to the settings' percentiles, in the space `settings.standardize` asks for."""
    sample = sample_valid_pixels(blocks, windows, settings.sample_size, settings.seed, steps)
    clip_lower = clip_upper = None
    if settings.clip_quantiles is not None:
        clip_lower, clip_upper = (np.percentile(sample, q, axis=0) for q in settings.clip_quantiles)
        sample = np.clip(sample, clip_lower, clip_upper)
    return FitSample.of(names, sample, standardize=settings.standardize,
                        clip=(clip_lower, clip_upper, settings.clip_quantiles))


#: A sampling job returns only the keys below KEY_MARGIN × sample_size / (pixels of the area):
#: about KEY_MARGIN × sample_size keys in all when every pixel is valid, instead of every
#: valid pixel of each block. Exact while at least sample_size keys fall below the limit
#: (an area at least 1/KEY_MARGIN valid); otherwise the pass runs again keeping every key.
KEY_MARGIN = 4.0


@dataclass(frozen=True)
class _Sampling:
    """What a sampling job needs: the blocks, the sample size, the seed, and the largest key
    it returns (1.0: every key)."""

    blocks: AreaBlocks
    sample_size: int
    seed: int
    key_limit: float = 1.0


class _BlockSample(NamedTuple):
    """A sampling job's result: the keys below the limit (at most sample_size, the smallest),
    their features, and the number of valid pixels of the block."""

    keys: np.ndarray
    values: np.ndarray
    n_valid: int


def sample_block(sampling: _Sampling, block: tuple[int, Window]) -> _BlockSample:
    """Block job: the random keys of the valid pixels of block (index, window), drawn from a
    generator seeded by the seed and the block's index, and their features; only the keys
    under the limit, and of those the `sample_size` smallest, which hold every key of the
    block the sample can keep.

    Returns:
        keys: float64 (n,); values: (n, n_features) in the stack's dtype; n_valid.
    """
    index, window = block
    features, valid = sampling.blocks.read(window)
    n_valid = int(valid.sum())
    keys = np.random.default_rng([sampling.seed, index]).random(n_valid)
    below = keys < sampling.key_limit
    keys, values = keys[below], features[:, valid][:, below].T
    if len(keys) > sampling.sample_size:
        kept = np.argpartition(keys, sampling.sample_size - 1)[:sampling.sample_size]
        keys, values = keys[kept], values[kept]
    return _BlockSample(keys, values, n_valid)


def sample_valid_pixels(blocks: AreaBlocks, windows: list[Window], sample_size: int, seed: int,
                        steps: Progress) -> np.ndarray:
    """A seeded uniform random sample of the valid pixels of `blocks` in `windows`, in one pass
    (two when fewer than 1/KEY_MARGIN of the area's pixels are valid).

    Each valid pixel draws a random key (from a generator seeded by `seed` and the block's
    index, `sample_block`); the `sample_size` smallest keys are kept (bottom-k sampling), so
    the sample is uniform without knowing the number of pixels beforehand, and identical for
    the same seed whatever ran the blocks and whatever the key limit.

    Returns:
        float64 array (n_sampled, n_features), in key order.

    Raises:
        InvalidInputError: the area has no valid pixel.
    """
    pixels = sum(window.width * window.height for window in windows)
    key_limit = min(1.0, KEY_MARGIN * sample_size / max(pixels, 1))
    keys, values, n_valid = _bottom_keys(blocks, windows, _Sampling(blocks, sample_size, seed,
                                                                     key_limit), steps)
    if len(keys) < min(sample_size, n_valid):
        # Fewer keys under the limit than the sample needs: it may miss some of the smallest.
        keys, values, n_valid = _bottom_keys(blocks, windows, _Sampling(blocks, sample_size,
                                                                         seed), steps)
    if len(keys) == 0:
        raise InvalidInputError(
            "There is no valid pixel in the area: every pixel is nodata, NaN or outside the "
            "area of interest. Check the inputs' nodata and the area.")
    order = np.argsort(keys)
    return values[order]


def _bottom_keys(blocks: AreaBlocks, windows: list[Window], sampling: _Sampling,
                 steps: Progress) -> _BlockSample:
    """The `sampling.sample_size` smallest keys the jobs return, their features (float64) and
    the number of valid pixels of every block."""
    sample_size = sampling.sample_size
    keys = np.empty(0)
    values = np.empty((0, opened(blocks.stack).n_features))
    n_valid = 0
    for block_keys, block_values, block_valid in current_executor().map_blocks(
            sample_block, sampling, list(enumerate(windows)), steps=steps):
        n_valid += block_valid
        if len(keys) >= sample_size:
            wanted = block_keys < keys.max()
            block_keys, block_values = block_keys[wanted], block_values[wanted]
        keys = np.concatenate([keys, block_keys])
        values = np.concatenate([values, block_values.astype(np.float64)])
        if len(keys) > sample_size:
            kept = np.argpartition(keys, sample_size - 1)[:sample_size]
            keys, values = keys[kept], values[kept]
    return _BlockSample(keys, values, n_valid)
