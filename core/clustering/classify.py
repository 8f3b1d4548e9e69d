"""Label rasters with fitted or saved centres: the classified GeoTIFF with its legend, the optional
minimum-area sieve, the per-class statistics of what was written, and the optional per-pixel
rasters of the final classes (distance to the class centre, fuzzy memberships)."""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass, field, replace

import numpy as np
from osgeo import gdal

from ..errors import InvalidInputError
from ..io.area_of_interest import AreaOfInterest
from ..io.feature_stack import FeatureStack, iter_area_blocks
from ..io.pixel_area import pixel_areas_m2
from ..io.rasters import (
    BandStatistics,
    RasterGrid,
    Window,
    atomic_raster_output,
    create_geotiff,
    gdal_cache_for,
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
#: Nodata of the per-pixel Float32 rasters, as band math writes.
PIXEL_NODATA = float("nan")
# Membership values computed at once (pixels × classes): bounds the memory of a block.
_MEMBERSHIP_VALUES = 1 << 22
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
    if min_area_m2 is not None and min_area_m2 < 0:
        raise InvalidInputError(
            f"MIN_AREA must be a positive area in m² (or 0 for no sieve), not {min_area_m2}.")
    if connectivity not in (4, 8):
        raise InvalidInputError(f"CONNECTIVITY must be 4 or 8, not {connectivity}.")


def write_classified_raster(stack: FeatureStack, model: CentroidModel, output_path,
                            window: Window, area: AreaOfInterest | None, *,
                            min_area_m2: float | None, connectivity: int,
                            steps: Progress,
                            pixel_outputs: PixelOutputs | None = None) -> ClassifiedRaster:
    """Label `window` with `model`, sieve it when asked, and return the output's statistics.

    With a sieve, the labels go to a temporary file that is sieved into `output_path`, and the
    statistics and per-pixel rasters describe the sieved classes. Nothing is left at
    `output_path` (nor at the per-pixel rasters' paths) when a step fails or is cancelled.

    Args:
        stack: the features; `window` is on its grid.
        model: the centres that label each pixel.
        output_path: GeoTIFF to write.
        window: the part of the grid written.
        area: pixels outside it are nodata; None keeps every valid pixel of `window`.
        min_area_m2: 0 or None for no sieve.
        connectivity: 4 or 8, for the sieve.
        pixel_outputs: the per-pixel rasters wanted, or None.

    Returns:
        The statistics (with each class's mean membership for a fuzzy model), the SieveReport
        (None without a sieve) and the warnings.
    """
    if not min_area_m2:
        return write_classes(stack, model, output_path, window, area, steps, pixel_outputs)
    labelled = temporary_path_for(output_path)
    try:
        written = write_classes(stack, model, labelled, window, area, steps.span(0.0, 0.5))
        report = sieve_raster(labelled, output_path, min_area_m2=min_area_m2,
                              connectivity=connectivity, progress=steps.span(0.5, 0.8),
                              is_cancelled=steps.cancelled)
    finally:
        remove_raster_files(labelled)
    try:
        sieved = class_statistics_of(stack, model, output_path, window, steps.span(0.8, 1.0),
                                     pixel_outputs)
    except BaseException:
        remove_raster_files(output_path)
        raise
    return ClassifiedRaster(sieved.statistics, report,
                            [*written.warnings, *report.warnings, *sieved.warnings],
                            sieved.distance_p98)


def write_classes(stack: FeatureStack, model: CentroidModel, output_path, window: Window,
                  area: AreaOfInterest | None, steps: Progress,
                  pixel_outputs: PixelOutputs | None = None) -> ClassifiedRaster:
    """Label every pixel of `window` and write the styled GeoTIFF (and the per-pixel rasters);
    return per-class statistics."""
    grid = stack.grid.sub_grid(window)
    row_areas, warnings = _row_areas(grid)
    statistics = ClassStatisticsAccumulator(model.n_clusters, stack.n_features)
    data_type = gdal.GDT_Byte if class_dtype(model.n_clusters) == np.uint8 else gdal.GDT_UInt16
    with atomic_raster_output(output_path) as temporary, \
            _PixelRasters(model, grid, pixel_outputs, stack.strip_bytes) as pixels:
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
                pixels.add(labels, features, block, window)
            dataset.FlushCache()
        finally:
            # Close now, so the sidecar GDAL writes on closing exists before a failed run's
            # temporary files are removed.
            dataset = band = None
    return ClassifiedRaster(pixels.with_memberships(statistics.result()), warnings=warnings,
                            distance_p98=pixels.distance_p98())


def class_statistics_of(stack: FeatureStack, model: CentroidModel, labels_path, window: Window,
                        steps: Progress,
                        pixel_outputs: PixelOutputs | None = None) -> ClassifiedRaster:
    """Per-class statistics (and the per-pixel rasters) of an existing classified raster on
    `window` of the features' grid."""
    grid = stack.grid.sub_grid(window)
    row_areas, warnings = _row_areas(grid)
    statistics = ClassStatisticsAccumulator(model.n_clusters, stack.n_features)
    labels_dataset = open_raster(labels_path, what="classified raster")
    labels_band = labels_dataset.GetRasterBand(1)
    with _PixelRasters(model, grid, pixel_outputs, stack.strip_bytes) as pixels:
        for block, features, _ in iter_area_blocks(stack, None, window, steps):
            labels = labels_band.ReadAsArray(block.col_off - window.col_off,
                                             block.row_off - window.row_off, block.width,
                                             block.height)
            first_row = block.row_off - window.row_off
            statistics.add(labels, features, row_areas[first_row:first_row + block.height])
            pixels.add(labels, features, block, window)
    return ClassifiedRaster(pixels.with_memberships(statistics.result()), warnings=warnings,
                            distance_p98=pixels.distance_p98())


class _PixelRasters:
    """Writes the per-pixel rasters block by block (each atomically: renamed into place only
    when the run's pass completes) and sums each class's memberships of a fuzzy model."""

    def __init__(self, model: CentroidModel, grid: RasterGrid, outputs: PixelOutputs | None,
                 input_strip_bytes: int):
        self._model, self._grid = model, grid
        self._outputs = outputs or PixelOutputs()
        self._fuzzy = model.fuzziness is not None
        if self._outputs.membership_path is not None and not self._fuzzy:
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
        self._input_strip_bytes = input_strip_bytes
        self._output_bytes = grid.width * grid.height * n_bands * 4
        # Every stride-th valid distance estimates the percentile that styles the raster.
        self._stride = max(1, grid.width * grid.height // _DISTANCE_SAMPLE)
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

    def add(self, labels: np.ndarray, features: np.ndarray, block: Window,
            window: Window) -> None:
        """Add one block: class labels (height, width) and raw features (f, height, width)."""
        if not self._bands and not self._fuzzy:
            return
        rows = max(1, _MEMBERSHIP_VALUES // max(1, block.width * self._model.n_clusters))
        for first in range(0, block.height, rows):
            part = Window(block.col_off, block.row_off + first, block.width,
                          min(rows, block.height - first))
            self._add_rows(labels[first:first + part.height],
                           features[:, first:first + part.height], part, window)

    def _add_rows(self, labels, features, part: Window, window: Window) -> None:
        valid = labels > 0
        classes = labels[valid].astype(np.intp)
        points = features[:, valid].T
        if "distance" in self._bands:
            distance = np.full(labels.shape, PIXEL_NODATA, dtype=np.float32)
            distance[valid] = self._model.distances_to(points, classes)
            self._distance_sample.append(distance[valid][::self._stride])
            self._statistics["distance"][0].add(distance[valid])
            write_block(self._bands["distance"][0], distance, part, window)
        if not self._fuzzy:
            return
        memberships = self._model.memberships(points)
        self._membership_sums += np.bincount(
            classes, weights=memberships[np.arange(len(classes)), classes - 1],
            minlength=self._model.n_clusters + 1)
        for index, band in enumerate(self._bands.get("membership", ())):
            values = np.full(labels.shape, PIXEL_NODATA, dtype=np.float32)
            values[valid] = memberships[:, index]
            self._statistics["membership"][index].add(values[valid])
            write_block(band, values, part, window)

    def distance_p98(self) -> float | None:
        """The 98th percentile of the sampled distances (None without a distance raster)."""
        if "distance" not in self._names:
            return None
        sample = np.concatenate(self._distance_sample) if self._distance_sample else []
        return float(np.percentile(sample, 98)) if len(sample) else 0.0

    def with_memberships(self, statistics: list[ClassStatistics]) -> list[ClassStatistics]:
        """The statistics with each class's mean membership of its pixels (fuzzy models)."""
        if not self._fuzzy:
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
