"""Label rasters with fitted or saved centres: the classified GeoTIFF with its legend, the optional
minimum-area sieve, the per-class statistics of what was written, and the optional per-pixel
rasters of the final classes (distance to the class centre, fuzzy memberships)."""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass, field, replace

import numpy as np
from osgeo import gdal

from .. import parameters
from ..engine import current_executor, opened, run_scope
from ..errors import InvalidInputError
from ..io.feature_stack import AreaBlocks, FeatureStack, area_windows
from ..io.pixel_area import pixel_areas_m2
from ..io.rasters import (
    BandStatistics,
    RasterFile,
    RasterGrid,
    Window,
    atomic_raster_output,
    create_geotiff,
    gdal_cache_for,
    remove_raster_files,
    temporary_path_for,
    write_block,
)
from ..palette import legend
from ..progress import Progress
from ..sieve.sieve import SieveReport, sieve_raster
from .centroid_model import CentroidModel, class_dtype
from .class_statistics import (
    BlockClassStatistics,
    ClassStatistics,
    ClassStatisticsAccumulator,
    block_class_statistics,
)

NODATA_CLASS = 0
#: Nodata of the per-pixel Float32 rasters, as band math writes.
PIXEL_NODATA = float("nan")
# About this many distances are kept to estimate the percentile that styles the distance raster.
_DISTANCE_SAMPLE = 1 << 20


@dataclass(frozen=True)
class PixelOutputs:
    """Per-pixel Float32 rasters written with the final classes (after the sieve), nodata (NaN)
    where the class is nodata.

    Attributes:
        distance_path: each pixel's distance to its class's centre in the model's space (the
            fit's: standardized and in its norm when it used them), or None.
        membership_path: one band per class, each pixel's membership in it (fuzzy models; the
            bands sum to 1), or None.
    """

    distance_path: str | os.PathLike | None = None
    membership_path: str | os.PathLike | None = None


@dataclass
class ClassifiedRaster:
    """What writing a classified raster produced.

    Attributes:
        statistics: one row per class of the written raster, classes 1..k.
        sieve: what the minimum-area sieve did, or None without one.
        warnings: for the user (class areas unknown, the sieve's warnings), in the order met.
        distance_p98: the 98th percentile of the distances written (estimated on at most about
            a million of them), to style the distance raster; None without one.
    """

    statistics: list[ClassStatistics]
    sieve: SieveReport | None = None
    warnings: list[str] = field(default_factory=list)
    distance_p98: float | None = None


def check_sieve_options(min_area_m2: float | None, connectivity: int) -> None:
    """Refuse sieve options before any work is done (0 or None means no sieve)."""
    if min_area_m2 is not None:
        parameters.MIN_ZONE_AREA.validate(min_area_m2)
    parameters.CONNECTIVITY.validate(connectivity)


def write_classified_raster(stack: FeatureStack, blocks: AreaBlocks, model: CentroidModel,
                            output_path, window: Window, *, min_area_m2: float | None,
                            connectivity: int, steps: Progress,
                            pixel_outputs: PixelOutputs | None = None) -> ClassifiedRaster:
    """Label `window` with `model`, sieve it when asked, and return the output's statistics.

    With a sieve, the labels go to a temporary file that is sieved into `output_path`, and the
    statistics and per-pixel rasters describe the sieved classes. Nothing is left at
    `output_path` (nor at the per-pixel rasters' paths) when a step fails or is cancelled.

    Args:
        stack: the features (opened from `blocks.stack`); `window` is on its grid.
        blocks: the features the jobs read; pixels outside its area are nodata (an area of
            None keeps every valid pixel of `window`).
        model: the centres that label each pixel.
        output_path: GeoTIFF to write.
        window: the part of the grid written.
        min_area_m2: 0 or None for no sieve.
        connectivity: 4 or 8, for the sieve.
        pixel_outputs: the per-pixel rasters wanted, or None.

    Returns:
        The statistics (with each class's mean membership for a fuzzy model), the SieveReport
        (None without a sieve) and the warnings.
    """
    if not min_area_m2:
        return write_classes(stack, blocks, model, output_path, window, steps, pixel_outputs)
    labelled = temporary_path_for(output_path)
    try:
        written = write_classes(stack, blocks, model, labelled, window, steps.span(0.0, 0.5))
        report = sieve_raster(labelled, output_path, min_area_m2=min_area_m2,
                              connectivity=connectivity, progress=steps.span(0.5, 0.8),
                              is_cancelled=steps.cancelled)
    finally:
        remove_raster_files(labelled)
    try:
        sieved = class_statistics_of(stack, AreaBlocks(blocks.stack), model, output_path, window,
                                     steps.span(0.8, 1.0), pixel_outputs)
    except BaseException:
        remove_raster_files(output_path)
        raise
    return ClassifiedRaster(sieved.statistics, report,
                            [*written.warnings, *report.warnings, *sieved.warnings],
                            sieved.distance_p98)


@dataclass(frozen=True)
class _PixelRequest:
    """Which per-pixel values the labelling jobs compute besides the classes.

    Attributes:
        distance: each pixel's distance to its class's centre.
        memberships: each pixel's membership in every class (fuzzy models).
        distance_stride: every stride-th valid distance of a block goes to the sample that
            estimates the distance raster's styling percentile.
    """

    distance: bool = False
    memberships: bool = False
    distance_stride: int = 1


@dataclass
class _PixelValues:
    """A block's per-pixel values (`_PixelRequest`), NaN where the class is nodata, with the
    summaries the caller merges in block order.

    Attributes:
        distance: float32 (height, width), or None; distance_summary its `BandStatistics`
            summary, distance_sample the strided valid distances.
        memberships: float32 (n_clusters, height, width), or None; membership_summaries the
            summary of each band.
        membership_sums: fuzzy models: float64 (n_clusters + 1,), each class's summed
            membership of its pixels in it (index 0 unused); else None.
    """

    distance: np.ndarray | None = None
    distance_summary: tuple | None = None
    distance_sample: np.ndarray | None = None
    memberships: np.ndarray | None = None
    membership_summaries: tuple = ()
    membership_sums: np.ndarray | None = None


def pixel_values(model: CentroidModel, request: _PixelRequest, labels: np.ndarray,
                 features: np.ndarray) -> _PixelValues | None:
    """The per-pixel values of one block of class labels (height, width) and raw features
    (n_features, height, width); None when neither a raster nor a fuzzy statistic needs them."""
    fuzzy = model.fuzziness is not None
    if not (request.distance or fuzzy):
        return None
    valid = labels > 0
    classes = labels[valid].astype(np.intp)
    points = features[:, valid].T
    values = _PixelValues()
    if request.distance:
        values.distance = np.full(labels.shape, PIXEL_NODATA, dtype=np.float32)
        values.distance[valid] = model.distances_to(points, classes)
        values.distance_summary = BandStatistics.summary(values.distance[valid])
        values.distance_sample = values.distance[valid][::request.distance_stride]
    if fuzzy:
        memberships = model.memberships(points)
        values.membership_sums = np.bincount(
            classes, weights=memberships[np.arange(len(classes)), classes - 1],
            minlength=model.n_clusters + 1)
        if request.memberships:
            values.memberships = np.full((model.n_clusters, *labels.shape), PIXEL_NODATA,
                                         dtype=np.float32)
            values.memberships[:, valid] = memberships.T
            values.membership_summaries = tuple(
                BandStatistics.summary(band[valid]) for band in values.memberships)
    return values


@dataclass(frozen=True, eq=False)
class _Labelling:
    """What a labelling job needs: the features, the centres, the output window (whose first
    row is row 0 of `row_areas_m2`), the m² of one pixel of each of its rows, and the per-pixel
    values wanted."""

    blocks: AreaBlocks
    model: CentroidModel
    origin: Window
    row_areas_m2: np.ndarray
    pixels: _PixelRequest = _PixelRequest()

    def block_row_areas(self, window: Window) -> np.ndarray:
        first_row = window.row_off - self.origin.row_off
        return self.row_areas_m2[first_row:first_row + window.height]

    def results(self, labels: np.ndarray, features: np.ndarray,
                window: Window) -> tuple[BlockClassStatistics | None, _PixelValues | None]:
        """The class statistics and per-pixel values of a labelled block."""
        return (block_class_statistics(labels, features, self.block_row_areas(window),
                                       self.model.n_clusters),
                pixel_values(self.model, self.pixels, labels, features))


def label_block(job: _Labelling, window: Window) -> tuple[np.ndarray, BlockClassStatistics | None,
                                                           _PixelValues | None]:
    """Block job: the class of every pixel of `window` (0: nodata or outside the area), the
    block's class statistics and its per-pixel values."""
    features, valid = job.blocks.read(window)
    labels = np.zeros(valid.shape, dtype=class_dtype(job.model.n_clusters))
    labels[valid] = job.model.label(features[:, valid].T)
    return (labels, *job.results(labels, features, window))


def write_classes(stack: FeatureStack, blocks: AreaBlocks, model: CentroidModel, output_path,
                  window: Window, steps: Progress,
                  pixel_outputs: PixelOutputs | None = None) -> ClassifiedRaster:
    """Label every pixel of `window` and write the styled GeoTIFF (and the per-pixel rasters);
    return per-class statistics."""
    grid = stack.grid.sub_grid(window)
    row_areas, warnings = _row_areas(grid)
    statistics = ClassStatisticsAccumulator(model.n_clusters, stack.n_features)
    data_type = gdal.GDT_Byte if class_dtype(model.n_clusters) == np.uint8 else gdal.GDT_UInt16
    windows = labelling_windows(stack, window, model)
    with atomic_raster_output(output_path) as temporary, \
            _PixelRasters(model, grid, pixel_outputs, stack) as pixels:
        dataset = create_geotiff(temporary, grid, data_type=data_type, nodata=NODATA_CLASS)
        band = dataset.GetRasterBand(1)
        # Before any tile reaches the file: GeoTIFF cannot change its photometric tag after
        # that, which large outputs (more tiles than GDAL's cache holds) would hit.
        describe_classes(band, model)
        try:
            labelled = current_executor().map_blocks(
                label_block, _Labelling(blocks, model, window, row_areas, pixels.request),
                windows, steps=steps)
            for block, (labels, block_statistics, values) in zip(windows, labelled,
                                                                 strict=True):
                write_block(band, labels, block, window)
                statistics.merge(block_statistics)
                pixels.add(values, block, window)
            dataset.FlushCache()
        finally:
            # Close now, so the sidecar GDAL writes on closing exists before a failed run's
            # temporary files are removed.
            dataset = band = None
    return ClassifiedRaster(pixels.with_memberships(statistics.result()), warnings=warnings,
                            distance_p98=pixels.distance_p98())


def labelling_windows(stack: FeatureStack, window: Window, model: CentroidModel) -> list[Window]:
    """The blocks `window` is labelled in: those the stack is read in, smaller for a fuzzy
    model, whose jobs hold a membership per class of each pixel."""
    extra = model.n_clusters if model.fuzziness is not None else 0
    return area_windows(stack, window, values_per_pixel=stack.n_features + extra)


@dataclass(frozen=True, eq=False)
class _LabelledStatistics:
    """What a statistics job needs: `_Labelling`'s features, window, row areas and per-pixel
    values, and the classified raster (on the output window) instead of the centres."""

    labelling: _Labelling
    labels: RasterFile


def labelled_block_statistics(job: _LabelledStatistics, window: Window) -> tuple[
        BlockClassStatistics | None, _PixelValues | None]:
    """Block job: the class statistics and per-pixel values of `window` of an existing
    classified raster."""
    features, _ = job.labelling.blocks.read(window)
    origin = job.labelling.origin
    labels = opened(job.labels).read(Window(window.col_off - origin.col_off,
                                            window.row_off - origin.row_off, window.width,
                                            window.height))
    return job.labelling.results(labels, features, window)


def class_statistics_of(stack: FeatureStack, blocks: AreaBlocks, model: CentroidModel,
                        labels_path, window: Window, steps: Progress,
                        pixel_outputs: PixelOutputs | None = None) -> ClassifiedRaster:
    """Per-class statistics (and the per-pixel rasters) of an existing classified raster on
    `window` of the features' grid."""
    grid = stack.grid.sub_grid(window)
    row_areas, warnings = _row_areas(grid)
    statistics = ClassStatisticsAccumulator(model.n_clusters, stack.n_features)
    windows = labelling_windows(stack, window, model)
    # A scope of its own: the output is closed when this pass ends, not with the run.
    with run_scope() as scope, _PixelRasters(model, grid, pixel_outputs, stack) as pixels:
        job = _LabelledStatistics(_Labelling(blocks, model, window, row_areas, pixels.request),
                                  RasterFile(str(labels_path), scope, what="classified raster"))
        opened(job.labels)  # here first: a raster GDAL cannot read is the caller's error
        for block, (block_statistics, values) in zip(windows, current_executor().map_blocks(
                labelled_block_statistics, job, windows, steps=steps), strict=True):
            statistics.merge(block_statistics)
            pixels.add(values, block, window)
    return ClassifiedRaster(pixels.with_memberships(statistics.result()), warnings=warnings,
                            distance_p98=pixels.distance_p98())


class _PixelRasters:
    """Writes the per-pixel rasters the jobs computed, block by block in order (each file
    atomically: renamed into place only when the pass completes), and merges their statistics
    and each class's memberships of a fuzzy model."""

    def __init__(self, model: CentroidModel, grid: RasterGrid, outputs: PixelOutputs | None,
                 stack: FeatureStack):
        self._model, self._grid = model, grid
        self._outputs = outputs or PixelOutputs()
        if self._outputs.membership_path is not None and model.fuzziness is None:
            raise InvalidInputError(
                f"Memberships need fuzzy c-means centres; these come from {model.method}.")
        self._membership_sums = np.zeros(model.n_clusters + 1)
        self._stack = ExitStack()
        self._datasets: list[gdal.Dataset] = []
        self._bands: dict[str, list[gdal.Band]] = {}
        self._names: set[str] = set()
        self._statistics: dict[str, list[BandStatistics]] = {}
        n_bands = (self._outputs.distance_path is not None) + (
            model.n_clusters if self._outputs.membership_path is not None else 0)
        self._input_strip_bytes = stack.strip_bytes
        self._output_bytes = grid.width * grid.height * n_bands * 4
        #: What the jobs compute for these rasters.
        self.request = _PixelRequest(
            distance=self._outputs.distance_path is not None,
            memberships=self._outputs.membership_path is not None,
            distance_stride=max(1, grid.width * grid.height // _DISTANCE_SAMPLE))
        self._distance_sample: list[np.ndarray] = []

    def __enter__(self) -> _PixelRasters:
        stack = self._stack.__enter__()
        try:
            strip_rows = max(1, self._input_strip_bytes // max(1, self._grid.width * 4))
            stack.enter_context(gdal_cache_for(
                self._output_bytes, self._output_bytes // max(1, self._grid.height) * strip_rows))
            for name, path, count, description in (
                    ("distance", self._outputs.distance_path, 1,
                     lambda _: "distance to the class centre"),
                    ("membership", self._outputs.membership_path, self._model.n_clusters,
                     lambda index: f"membership in class {index}")):
                if path is None:
                    continue
                temporary = stack.enter_context(atomic_raster_output(path))
                dataset = create_geotiff(temporary, self._grid, data_type=gdal.GDT_Float32,
                                         band_count=count, nodata=PIXEL_NODATA,
                                         interleave_bands=True)
                self._datasets.append(dataset)
                bands = [dataset.GetRasterBand(index) for index in range(1, count + 1)]
                for index, band in enumerate(bands, start=1):
                    band.SetDescription(description(index))
                self._bands[name] = bands
                self._statistics[name] = [BandStatistics() for _ in bands]
                self._names.add(name)
        except BaseException as error:
            self._close()
            self._stack.__exit__(type(error), error, error.__traceback__)
            raise
        return self

    def __exit__(self, *error) -> bool:
        if error[0] is None:
            for name, bands in self._bands.items():
                for band, statistics in zip(bands, self._statistics[name]):
                    statistics.write_to(band)
            for dataset in self._datasets:
                dataset.FlushCache()
        self._close()
        return self._stack.__exit__(*error)

    def _close(self) -> None:
        """Drop every reference, so GDAL closes the files before they are renamed or removed."""
        self._bands.clear()
        self._datasets.clear()

    def add(self, values: _PixelValues | None, block: Window, window: Window) -> None:
        """Write and merge one block's per-pixel values (`pixel_values`), `block` on the grid
        whose `window` the rasters cover."""
        if values is None:
            return
        if values.membership_sums is not None:
            self._membership_sums += values.membership_sums
        if values.distance is not None:
            self._distance_sample.append(values.distance_sample)
            self._statistics["distance"][0].merge(values.distance_summary)
            write_block(self._bands["distance"][0], values.distance, block, window)
        if values.memberships is not None:
            for index, band in enumerate(self._bands["membership"]):
                self._statistics["membership"][index].merge(values.membership_summaries[index])
                write_block(band, values.memberships[index], block, window)

    def distance_p98(self) -> float | None:
        """The 98th percentile of the sampled distances (None without a distance raster)."""
        if "distance" not in self._names:
            return None
        sample = np.concatenate(self._distance_sample) if self._distance_sample else []
        return float(np.percentile(sample, 98)) if len(sample) else 0.0

    def with_memberships(self, statistics: list[ClassStatistics]) -> list[ClassStatistics]:
        """The statistics with each class's mean membership of its pixels (fuzzy models)."""
        if self._model.fuzziness is None:
            return statistics
        return [replace(row, mean_membership=float(self._membership_sums[row.class_number])
                        / row.pixel_count if row.pixel_count else float("nan"))
                for row in statistics]


def describe_classes(band: gdal.Band, model: CentroidModel) -> None:
    """Embed the legend in the file: a colour table and category names, so any GIS shows it."""
    colours = gdal.ColorTable()
    colours.SetColorEntry(NODATA_CLASS, (0, 0, 0, 0))
    names = [""]
    for number, rgb, label in legend(model.centres, model.feature_names):
        colours.SetColorEntry(number, (*rgb, 255))
        names.append(label)
    band.SetRasterColorTable(colours)
    band.SetRasterColorInterpretation(gdal.GCI_PaletteIndex)
    band.SetRasterCategoryNames(names)
    band.SetDescription(f"{model.method} class")


def _row_areas(grid: RasterGrid) -> tuple[np.ndarray, list[str]]:
    """The m² of one pixel of each row, and the warning when the CRS cannot tell (NaN areas)."""
    try:
        return pixel_areas_m2(grid.geotransform, grid.crs_wkt, n_rows=grid.height), []
    except InvalidInputError as error:
        return np.full(grid.height, np.nan), [f"Class areas are unknown: {error}"]
