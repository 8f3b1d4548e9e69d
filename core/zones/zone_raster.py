"""The zones of a classified raster, streamed in strips: each connected region of one class gets
a number, written as a raster of zone numbers, with its pixel statistics and, for smoothing, the
grid points where zone boundaries meet (nodes).

Zones are numbered 1..n by class (ascending), then by their first pixel in reading order (top
row first, then left), so the numbers do not depend on how the raster is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from osgeo import gdal

from ..clustering.class_statistics import (
    BlockClassStatistics,
    ClassStatisticsAccumulator,
    StatisticsArrays,
    block_class_statistics,
)
from ..engine import current_executor, opened, run_scope
from ..errors import InvalidInputError
from ..io import rasters
from ..io.feature_stack import RasterInput, StackSource
from ..io.pixel_area import pixel_areas_m2
from ..io.rasters import (
    RasterGrid,
    Window,
    check_north_up,
    create_geotiff,
    open_raster,
    write_block,
)
from ..progress import Progress
from ..sieve.region_merge import ConnectedRegions, connected_regions, region_numbers, row_strips
from ..sieve.sieve import ClassStrips, integer_band

#: More distinct values than this are not classes (a continuous raster or segment ids).
MAX_CLASSES = 1000
ZONE_NODATA = 0


@dataclass(frozen=True)
class ZoneLabels:
    """The zones of a classified raster (see the module docstring).

    Attributes:
        grid: the classified raster's grid.
        zone_class: int64 (n + 1,) class of each zone; entry 0 is unused.
        zone_pixels: int64 (n,) pixels of zones 1..n.
        zone_area_m2: float64 (n,) their area on the ground (each row's pixel area).
        feature_names: one name per feature (band of the FEATURES rasters), maybe none.
        zone_features: statistics of the features within each zone (row i: zone i + 1), over
            the zone's pixels where every feature is valid; None without features.
        class_values: int64 (k,) the classes present, ascending.
        class_features: statistics of the features within each class (row i: class_values[i]);
            None without features.
        nodes: sorted int64 keys row · (width + 1) + column of the grid points where zone
            boundaries meet (see `grid_nodes`); None unless asked for.
        row_areas_m2: float64 (height,) the area of one pixel of each row.
    """

    grid: RasterGrid
    zone_class: np.ndarray
    zone_pixels: np.ndarray
    zone_area_m2: np.ndarray
    feature_names: list[str]
    zone_features: StatisticsArrays | None
    class_values: np.ndarray
    class_features: StatisticsArrays | None
    nodes: np.ndarray | None
    row_areas_m2: np.ndarray

    @property
    def n_zones(self) -> int:
        return len(self.zone_class) - 1


class ClassifiedRaster:
    """One integer band of a classified raster, checked here; block jobs read its full-width
    strips, with its validity, through `strips_of` (the sieve's `ClassStrips`)."""

    def __init__(self, path: str, band: int = 1):
        self.path = path
        self._dataset = open_raster(path, what="classified raster")
        self._band = integer_band(self._dataset, band, path, needed_by="zone polygons need")
        self._band_number = int(band)
        self.grid = RasterGrid.of(self._dataset)
        check_north_up(self.grid, path)

    def strips_of(self, scope: str) -> ClassStrips:
        """The descriptor block jobs of run `scope` read the classes and their validity by."""
        return ClassStrips.of(self.path, self._band_number, self._band, scope)

    def strips(self) -> list[tuple[int, int]]:
        """Full-width strips of half the plugin's usual block (the labelling needs some 60
        bytes per pixel): a whole number of the file's blocks, unless those are larger."""
        rows = max(1, rasters.BLOCK_TARGET_PIXELS // (2 * self.grid.width))
        block_height = max(1, self._band.GetBlockSize()[1])
        if block_height <= rows:
            rows = rows // block_height * block_height
        return list(row_strips(self.grid.height, rows))


def classes_in_strip(strips: ClassStrips, strip: tuple[int, int]) -> np.ndarray:
    """Block job: the distinct valid classes of strip (first row, row count), ascending."""
    classes, valid = opened(strips).read(*strip)
    return np.unique(classes[valid]).astype(np.int64)


def count_classes(path: str, band: int = 1, *, limit: int = MAX_CLASSES,
                  progress: Progress | None = None) -> int:
    """The number of distinct valid values of a classified band, counted up to `limit` + 1
    (the strips' classes, block jobs, merged in order until past the limit).

    Raises:
        InvalidInputError: the raster cannot be read, or the band is missing or not integer.
    """
    raster = ClassifiedRaster(path, band)
    seen = np.zeros(0, dtype=np.int64)
    with run_scope() as scope:
        for present in current_executor().map_blocks(classes_in_strip, raster.strips_of(scope),
                                                      raster.strips(), steps=progress):
            seen = np.union1d(seen, present)
            if len(seen) > limit:
                return limit + 1
    return len(seen)


@dataclass(frozen=True, eq=False)
class _ZoneStripJob:
    """What a zone strip job needs: the classes, their regions (`connected_regions`), the
    features to describe (None: none), the classes present, the rows' pixel areas, and whether
    to find the nodes."""

    strips: ClassStrips
    regions: ConnectedRegions
    features: StackSource | None
    class_values: np.ndarray
    row_areas_m2: np.ndarray
    with_nodes: bool


class _ZoneStrip(NamedTuple):
    """One strip's zones: the zone number of each pixel (int32, 0 on nodata); the zones present,
    their pixels and area in m²; the features' statistics per zone and per class (index + 1
    into the classes present), or None; the nodes between the strip's own rows (those at its
    top seam need the strip above: the merge finds them)."""

    zones: np.ndarray
    present: np.ndarray
    pixels: np.ndarray
    area_m2: np.ndarray
    zone_features: BlockClassStatistics | None
    class_features: BlockClassStatistics | None
    nodes: np.ndarray | None


def zone_strip(job: _ZoneStripJob, block: tuple[int, int, int]) -> _ZoneStrip:
    """Block job: the zones of strip (index, first row, row count) and what they add up to."""
    index, first, n_rows = block
    classes, valid = opened(job.strips).read(first, n_rows)
    zones = region_numbers(job.regions, index, classes, valid)
    row_areas = job.row_areas_m2[first:first + n_rows]
    flat = zones.ravel()
    pixels = np.bincount(flat)
    areas = np.bincount(flat, weights=np.broadcast_to(row_areas[:, None], zones.shape).ravel(),
                        minlength=len(pixels))
    present = np.flatnonzero(pixels[1:]) + 1
    zone_features = class_features = None
    if job.features is not None:
        values, features_valid = opened(job.features).read(Window(0, first, zones.shape[1],
                                                                  n_rows))
        described = np.where(features_valid, zones, 0)
        zone_features = block_class_statistics(described, values, row_areas,
                                               job.regions.count)
        class_index = np.searchsorted(job.class_values, job.regions.region_class[described])
        class_features = block_class_statistics(np.where(described > 0, class_index + 1, 0),
                                                values, row_areas, len(job.class_values))
    nodes = grid_nodes(zones[:-1], zones[1:], first + 1) if job.with_nodes else None
    return _ZoneStrip(zones.astype(np.int32), present, pixels[present], areas[present],
                      zone_features, class_features, nodes)


def label_zones(raster: ClassifiedRaster, zone_raster_path: str, *, connectivity: int,
                features: Sequence[RasterInput] = (), with_nodes: bool = False,
                progress: Progress) -> ZoneLabels:
    """Number the zones of `raster`, write their numbers as an Int32 GeoTIFF (nodata 0), and
    gather their statistics; the raster is read twice in strips, the features once.

    Both passes are block jobs on the current executor (`region_merge.label_strip`, then
    `zone_strip`); their results are merged here in strip order, and the zone raster is written
    here, so the zones and their statistics are the same whatever ran the jobs.

    Args:
        raster: the classified raster.
        zone_raster_path: the GeoTIFF of zone numbers to write (a temporary file).
        connectivity: 4 or 8.
        features: rasters whose bands are described per zone; aligned onto the classified
            raster's grid by nearest neighbour.
        with_nodes: also find the nodes of the zone boundaries (for smoothing).
        progress: progress and cancellation.

    Raises:
        InvalidInputError: more classes than MAX_CLASSES, no CRS (areas unknown), or no valid
            pixel.
        CancelledError: cancelled.
    """
    grid = raster.grid
    strips = raster.strips()
    row_areas_m2 = pixel_areas_m2(grid.geotransform, grid.crs_wkt, n_rows=grid.height)
    with run_scope() as scope:
        classes = raster.strips_of(scope)
        regions = connected_regions(classes, strips, connectivity=connectivity,
                                    steps=progress.span(0.0, 0.45))
        if regions.count == 0:
            raise InvalidInputError(
                f"{raster.path} has no valid pixel: every pixel is nodata, so there is no zone.")
        if regions.count >= 2**31:
            raise InvalidInputError(f"{raster.path} has over 2 billion zones; polygonize it in "
                                    "parts.")
        class_values = np.unique(regions.region_class[1:])
        if len(class_values) > MAX_CLASSES:
            raise InvalidInputError(too_many_classes_message(raster.path, len(class_values)))
        stack_source = StackSource(tuple(features), scope, grid) if features else None
        # Opened here first, so that a bad feature raster fails before any job runs.
        stack = opened(stack_source) if stack_source is not None else None
        job = _ZoneStripJob(classes, regions, stack_source, class_values, row_areas_m2,
                            with_nodes)
        zone_pixels = np.zeros(regions.count + 1, dtype=np.int64)
        zone_area_m2 = np.zeros(regions.count + 1)
        zone_features = class_features = None
        if stack is not None:
            zone_features = ClassStatisticsAccumulator(regions.count, stack.n_features)
            class_features = ClassStatisticsAccumulator(len(class_values), stack.n_features)
        nodes, above = [], np.zeros(grid.width, dtype=np.int64)
        blocks = [(index, first, n_rows) for index, (first, n_rows) in enumerate(strips)]
        dataset = create_geotiff(zone_raster_path, grid, data_type=gdal.GDT_Int32,
                                 nodata=ZONE_NODATA)
        try:
            band = dataset.GetRasterBand(1)
            results = current_executor().map_blocks(zone_strip, job, blocks,
                                                    steps=progress.span(0.45, 1.0))
            for (_, first, n_rows), strip in zip(blocks, results, strict=True):
                write_block(band, strip.zones, Window(0, first, grid.width, n_rows),
                            grid.full_window)
                zone_pixels[strip.present] += strip.pixels
                zone_area_m2[strip.present] += strip.area_m2
                if zone_features is not None:
                    zone_features.merge(strip.zone_features)
                    class_features.merge(strip.class_features)
                if with_nodes:
                    nodes += [grid_nodes(above[None], strip.zones[:1], first), strip.nodes]
                    above = strip.zones[-1]
            if with_nodes:
                nodes.append(grid_nodes(above[None], np.zeros((1, grid.width), dtype=np.int64),
                                        grid.height))
            dataset.FlushCache()
        finally:
            dataset = band = None
        names = list(stack.names) if stack is not None else []
    progress(1.0)
    return ZoneLabels(
        grid=grid, zone_class=regions.region_class, zone_pixels=zone_pixels[1:],
        zone_area_m2=zone_area_m2[1:], feature_names=names,
        zone_features=zone_features.arrays() if zone_features else None,
        class_values=class_values,
        class_features=class_features.arrays() if class_features else None,
        nodes=np.concatenate(nodes) if with_nodes else None, row_areas_m2=row_areas_m2)


def too_many_classes_message(path: str, count: int) -> str:
    shown = f"{count:,}" if count <= MAX_CLASSES else f"more than {MAX_CLASSES:,}"
    return (f"{path} holds {shown} distinct values; zone polygons need a classified raster of "
            f"at most {MAX_CLASSES:,} classes (this looks like a continuous raster or segment "
            "ids). Classify it first, e.g. with Raster k-means clustering.")


def grid_nodes(upper: np.ndarray, lower: np.ndarray, first_row: int) -> np.ndarray:
    """Keys of the nodes among the grid points between rows of zone numbers.

    The grid point at the top-left corner of pixel (row, column) has the key
    row · (width + 1) + column. It is a node when the four pixels around it hold three or four
    different zones (nodata and the outside of the raster count as zone 0), or two zones
    diagonally (a b / b a): there, more than two boundary edges meet, or a zone touches itself
    at a corner. Elsewhere a boundary passes straight or turns, and may be smoothed.

    Args:
        upper, lower: int arrays (n, width): the pixel rows above and below grid rows
            first_row .. first_row + n - 1.
        first_row: the grid row between upper[0] and lower[0].

    Returns:
        int64 keys, ascending.
    """
    up = np.pad(upper, ((0, 0), (1, 1)))
    down = np.pad(lower, ((0, 0), (1, 1)))
    a, b, c, d = up[:, :-1], up[:, 1:], down[:, :-1], down[:, 1:]
    distinct = (1 + (b != a) + ((c != a) & (c != b)) + ((d != a) & (d != b) & (d != c)))
    diagonal = (a == d) & (b == c) & (a != b)
    rows, cols = np.nonzero((distinct >= 3) | diagonal)
    return (rows.astype(np.int64) + first_row) * (upper.shape[1] + 1) + cols
