"""Label rasters with fitted or saved centres: the classified GeoTIFF with its legend, the optional
minimum-area sieve, and the per-class statistics of what was written (k-means, saved centres)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from osgeo import gdal

from ..errors import InvalidInputError
from ..io.area_of_interest import AreaOfInterest
from ..io.feature_stack import FeatureStack, iter_area_blocks
from ..io.pixel_area import pixel_areas_m2
from ..io.rasters import (
    RasterGrid,
    Window,
    atomic_raster_output,
    create_geotiff,
    open_raster,
    remove_raster_files,
    temporary_path_for,
    write_block,
)
from ..palette import legend
from ..progress import Progress
from ..sieve.sieve import SieveReport, sieve_raster
from .centroid_model import CentroidModel, class_dtype
from .class_statistics import ClassStatistics, ClassStatisticsAccumulator

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
    if min_area_m2 is not None and min_area_m2 < 0:
        raise InvalidInputError(
            f"MIN_AREA must be a positive area in m² (or 0 for no sieve), not {min_area_m2}.")
    if connectivity not in (4, 8):
        raise InvalidInputError(f"CONNECTIVITY must be 4 or 8, not {connectivity}.")


def write_classified_raster(stack: FeatureStack, model: CentroidModel, output_path,
                            window: Window, area: AreaOfInterest | None, *,
                            min_area_m2: float | None, connectivity: int,
                            steps: Progress) -> ClassifiedRaster:
    """Label `window` with `model`, sieve it when asked, and return the output's statistics.

    With a sieve, the labels go to a temporary file that is sieved into `output_path`, and the
    statistics describe the sieved classes. Nothing is left at `output_path` when a step fails
    or is cancelled.

    Args:
        stack: the features; `window` is on its grid.
        model: the centres that label each pixel.
        output_path: GeoTIFF to write.
        window: the part of the grid written.
        area: pixels outside it are nodata; None keeps every valid pixel of `window`.
        min_area_m2: 0 or None for no sieve.
        connectivity: 4 or 8, for the sieve.

    Returns:
        The statistics, the SieveReport (None without a sieve) and the warnings.
    """
    if not min_area_m2:
        return write_classes(stack, model, output_path, window, area, steps)
    labelled = temporary_path_for(output_path)
    try:
        written = write_classes(stack, model, labelled, window, area, steps.span(0.0, 0.5))
        report = sieve_raster(labelled, output_path, min_area_m2=min_area_m2,
                              connectivity=connectivity, progress=steps.span(0.5, 0.8),
                              is_cancelled=steps.cancelled)
    finally:
        remove_raster_files(labelled)
    try:
        sieved = class_statistics_of(stack, model, output_path, window, steps.span(0.8, 1.0))
    except BaseException:
        remove_raster_files(output_path)
        raise
    return ClassifiedRaster(sieved.statistics, report,
                            [*written.warnings, *report.warnings, *sieved.warnings])


def write_classes(stack: FeatureStack, model: CentroidModel, output_path, window: Window,
                  area: AreaOfInterest | None, steps: Progress) -> ClassifiedRaster:
    """Label every pixel of `window` and write the styled GeoTIFF; return per-class statistics."""
    grid = stack.grid.sub_grid(window)
    row_areas, warnings = _row_areas(grid)
    statistics = ClassStatisticsAccumulator(model.n_clusters, stack.n_features)
    data_type = gdal.GDT_Byte if class_dtype(model.n_clusters) == np.uint8 else gdal.GDT_UInt16
    with atomic_raster_output(output_path) as temporary:
        dataset = create_geotiff(temporary, grid, data_type=data_type, nodata=NODATA_CLASS)
        band = dataset.GetRasterBand(1)
        # Before any tile reaches the file: GeoTIFF cannot change its photometric tag after
        # that, which large outputs (more tiles than GDAL's cache holds) would hit.
        describe_classes(band, model)
        try:
            for block, features, valid in iter_area_blocks(stack, area, window, steps):
                labels = np.zeros(valid.shape, dtype=class_dtype(model.n_clusters))
                labels[valid] = model.label(features[:, valid].T)
                write_block(band, labels, block, window)
                first_row = block.row_off - window.row_off
                statistics.add(labels, features, row_areas[first_row:first_row + block.height])
            dataset.FlushCache()
        finally:
            # Close now, so the sidecar GDAL writes on closing exists before a failed run's
            # temporary files are removed.
            dataset = band = None
    return ClassifiedRaster(statistics.result(), warnings=warnings)


def class_statistics_of(stack: FeatureStack, model: CentroidModel, labels_path, window: Window,
                        steps: Progress) -> ClassifiedRaster:
    """Per-class statistics of an existing classified raster on `window` of the features' grid."""
    grid = stack.grid.sub_grid(window)
    row_areas, warnings = _row_areas(grid)
    statistics = ClassStatisticsAccumulator(model.n_clusters, stack.n_features)
    labels_dataset = open_raster(labels_path, what="classified raster")
    labels_band = labels_dataset.GetRasterBand(1)
    for block, features, _ in iter_area_blocks(stack, None, window, steps):
        labels = labels_band.ReadAsArray(block.col_off - window.col_off,
                                         block.row_off - window.row_off, block.width, block.height)
        first_row = block.row_off - window.row_off
        statistics.add(labels, features, row_areas[first_row:first_row + block.height])
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
