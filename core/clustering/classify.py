"""Label rasters with fitted or saved centres: the classified GeoTIFF with its legend, the optional
minimum-area sieve, and the per-class statistics of what was written (k-means, saved centres)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from osgeo import gdal

from .. import parameters
from ..engine import current_executor, opened, run_scope
from ..errors import InvalidInputError
from ..io.feature_stack import AreaBlocks, FeatureStack, area_windows
from ..io.pixel_area import pixel_areas_m2
from ..io.rasters import (
    RasterFile,
    RasterGrid,
    Window,
    atomic_raster_output,
    create_geotiff,
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


@dataclass
class ClassifiedRaster:
    """What writing a classified raster produced.

    Attributes:
        statistics: one row per class of the written raster, classes 1..k.
        sieve: what the minimum-area sieve did, or None without one.
        warnings: for the user (class areas unknown, the sieve's warnings), in the order met.
    """

    statistics: list[ClassStatistics]
    sieve: SieveReport | None = None
    warnings: list[str] = field(default_factory=list)


def check_sieve_options(min_area_m2: float | None, connectivity: int) -> None:
    """Refuse sieve options before any work is done (0 or None means no sieve)."""
    if min_area_m2 is not None:
        parameters.MIN_ZONE_AREA.validate(min_area_m2)
    parameters.CONNECTIVITY.validate(connectivity)


def write_classified_raster(stack: FeatureStack, blocks: AreaBlocks, model: CentroidModel,
                            output_path, window: Window, *, min_area_m2: float | None,
                            connectivity: int, steps: Progress) -> ClassifiedRaster:
    """Label `window` with `model`, sieve it when asked, and return the output's statistics.

    With a sieve, the labels go to a temporary file that is sieved into `output_path`, and the
    statistics describe the sieved classes. Nothing is left at `output_path` when a step fails
    or is cancelled.

    Args:
        stack: the features (opened from `blocks.stack`); `window` is on its grid.
        blocks: the features the jobs read; pixels outside its area are nodata (an area of
            None keeps every valid pixel of `window`).
        model: the centres that label each pixel.
        output_path: GeoTIFF to write.
        window: the part of the grid written.
        min_area_m2: 0 or None for no sieve.
        connectivity: 4 or 8, for the sieve.

    Returns:
        The statistics, the SieveReport (None without a sieve) and the warnings.
    """
    if not min_area_m2:
        return write_classes(stack, blocks, model, output_path, window, steps)
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
                                     steps.span(0.8, 1.0))
    except BaseException:
        remove_raster_files(output_path)
        raise
    return ClassifiedRaster(sieved.statistics, report,
                            [*written.warnings, *report.warnings, *sieved.warnings])


@dataclass(frozen=True, eq=False)
class _Labelling:
    """What a labelling job needs: the features, the centres, the output window (whose first
    row is row 0 of `row_areas_m2`) and the m² of one pixel of each of its rows."""

    blocks: AreaBlocks
    model: CentroidModel
    origin: Window
    row_areas_m2: np.ndarray

    def block_row_areas(self, window: Window) -> np.ndarray:
        first_row = window.row_off - self.origin.row_off
        return self.row_areas_m2[first_row:first_row + window.height]


def label_block(job: _Labelling, window: Window) -> tuple[np.ndarray,
                                                           BlockClassStatistics | None]:
    """Block job: the class of every pixel of `window` (0: nodata or outside the area) and the
    block's class statistics."""
    features, valid = job.blocks.read(window)
    labels = np.zeros(valid.shape, dtype=class_dtype(job.model.n_clusters))
    labels[valid] = job.model.label(features[:, valid].T)
    return labels, block_class_statistics(labels, features, job.block_row_areas(window),
                                          job.model.n_clusters)


def write_classes(stack: FeatureStack, blocks: AreaBlocks, model: CentroidModel, output_path,
                  window: Window, steps: Progress) -> ClassifiedRaster:
    """Label every pixel of `window` and write the styled GeoTIFF; return per-class statistics."""
    grid = stack.grid.sub_grid(window)
    row_areas, warnings = _row_areas(grid)
    statistics = ClassStatisticsAccumulator(model.n_clusters, stack.n_features)
    data_type = gdal.GDT_Byte if class_dtype(model.n_clusters) == np.uint8 else gdal.GDT_UInt16
    windows = area_windows(stack, window)
    with atomic_raster_output(output_path) as temporary:
        dataset = create_geotiff(temporary, grid, data_type=data_type, nodata=NODATA_CLASS)
        band = dataset.GetRasterBand(1)
        # Before any tile reaches the file: GeoTIFF cannot change its photometric tag after
        # that, which large outputs (more tiles than GDAL's cache holds) would hit.
        describe_classes(band, model)
        try:
            labelled = current_executor().map_blocks(
                label_block, _Labelling(blocks, model, window, row_areas), windows, steps=steps)
            for block, (labels, block_statistics) in zip(windows, labelled, strict=True):
                write_block(band, labels, block, window)
                statistics.merge(block_statistics)
            dataset.FlushCache()
        finally:
            # Close now, so the sidecar GDAL writes on closing exists before a failed run's
            # temporary files are removed.
            dataset = band = None
    return ClassifiedRaster(statistics.result(), warnings=warnings)


@dataclass(frozen=True, eq=False)
class _LabelledStatistics:
    """What a statistics job needs: `_Labelling`'s features, window and row areas, and the
    classified raster (on the output window) instead of the centres."""

    labelling: _Labelling
    labels: RasterFile


def labelled_block_statistics(job: _LabelledStatistics,
                              window: Window) -> BlockClassStatistics | None:
    """Block job: the class statistics of `window` of an existing classified raster."""
    features, _ = job.labelling.blocks.read(window)
    origin = job.labelling.origin
    labels = opened(job.labels).read(Window(window.col_off - origin.col_off,
                                            window.row_off - origin.row_off, window.width,
                                            window.height))
    return block_class_statistics(labels, features, job.labelling.block_row_areas(window),
                                  job.labelling.model.n_clusters)


def class_statistics_of(stack: FeatureStack, blocks: AreaBlocks, model: CentroidModel,
                        labels_path, window: Window, steps: Progress) -> ClassifiedRaster:
    """Per-class statistics of an existing classified raster on `window` of the features' grid."""
    grid = stack.grid.sub_grid(window)
    row_areas, warnings = _row_areas(grid)
    statistics = ClassStatisticsAccumulator(model.n_clusters, stack.n_features)
    # A scope of its own: the output is closed when this pass ends, not with the run.
    with run_scope() as scope:
        job = _LabelledStatistics(_Labelling(blocks, model, window, row_areas),
                                  RasterFile(str(labels_path), scope, what="classified raster"))
        opened(job.labels)  # here first: a raster GDAL cannot read is the caller's error
        for block_statistics in current_executor().map_blocks(
                labelled_block_statistics, job, area_windows(stack, window), steps=steps):
            statistics.merge(block_statistics)
    return ClassifiedRaster(statistics.result(), warnings=warnings)


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
    band.SetDescription("k-means class")


def _row_areas(grid: RasterGrid) -> tuple[np.ndarray, list[str]]:
    """The m² of one pixel of each row, and the warning when the CRS cannot tell (NaN areas)."""
    try:
        return pixel_areas_m2(grid.geotransform, grid.crs_wkt, n_rows=grid.height), []
    except InvalidInputError as error:
        return np.full(grid.height, np.nan), [f"Class areas are unknown: {error}"]
