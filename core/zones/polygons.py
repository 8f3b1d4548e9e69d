"""Zone polygons of a classified raster: one feature per zone (or one multipolygon per class),
on the exact pixel edges or smoothed, with per-zone attributes, in a GeoPackage, Shapefile or
GeoJSON file.

Every step streams; memory grows with the number of zones and the outline of the largest zone,
not with the raster's size:

1. `zone_raster.label_zones`: the zones (connected regions of one class, 4- or 8-connected)
   numbered by class then first pixel, written as a temporary raster of zone numbers, with their
   areas and feature statistics. Its two passes are block jobs (`core.engine`), so any
   executor may run them.
2. GDAL's polygonizer makes polygons of the zone raster in a temporary GeoPackage, always
   4-connected: the zone numbers already hold the connectivity, and an 8-connected zone comes
   as its 4-connected pieces, which meet at corners and together form the zone's multipolygon
   (valid: parts may touch at points). 8-connected polygonizing would be one polygon per zone,
   but GDAL before 3.7 writes a zone touching itself at a corner as a ring touching itself,
   invalid in OGC, and GEOS's MakeValid takes minutes to repair large ones. Any polygon GDAL
   still writes invalid is repaired with MakeValid, which moves no point.
3. Smoothing (levels 1-3, see `smoothing`): a first pass cuts the zones' rings into arcs
   (`arcs`) and measures the area each arc's smoothing would move; `smoothing.choose_levels`
   sets each arc's level; the second pass smooths.
4. Each zone in zone order, or each class as the multipolygon of its zones' parts, is written
   with its attributes (`attributes`) under a temporary name, renamed into place on success.

Steps 2-4 stay in this process, not on the block-job seam: GDAL's polygonizer traces each ring
across the whole raster in one sequential pass (strips would cut rings at their seams, to be
stitched again), and the arcs, smoothing and writing read its output, a temporary GeoPackage in
this run's workspace beside the output, which other processes do not see.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from osgeo import gdal, ogr, osr

from ..errors import InvalidInputError, RasterClusteringError
from ..io.feature_stack import RasterInput
from ..io.pixel_area import step_lengths_m
from ..io.rasters import RasterGrid, check_output_folder, refuse_output_over_inputs
from ..io.vectors import atomic_vector_output, vector_driver
from ..parameters import CONNECTIVITY, SMOOTHING
from ..progress import Progress
from .arcs import densify, split_arcs
from .attributes import ZoneField, zone_fields
from .smoothing import (
    AREA_CHANGE_LIMIT,
    LEVEL_ITERATIONS,
    ArcLevels,
    area_changes,
    choose_levels,
    corner_mask,
    ring_area_weights,
    smooth,
)
from .zone_raster import ClassifiedRaster, ZoneLabels, label_zones

MAX_SMOOTHING = int(SMOOTHING.allowed.high)
assert len(LEVEL_ITERATIONS) == MAX_SMOOTHING + 1, "one iteration count per level"
# Corner points of the zones processed together: large enough for numpy, small for memory.
_BATCH_POINTS = 200_000
_EXACT_LAYER = "zones"


@dataclass(frozen=True)
class ZonePolygonsReport:
    """What a run wrote, for the log and the styling.

    Attributes:
        features: features written (zones, or classes with ZONES_PER_CLASS).
        zones: connected zones found.
        class_values: int64 (k,) the classes present, ascending.
        class_centres: float64 (k, n_features) the centre fields' values of each class, or None
            without features.
        feature_names: the features described.
        fields: the layer's fields (names and aliases).
        layer_name: the layer's name in the file.
        smoothing: the level asked for.
        shared_arcs, smoothed_arcs, arcs_at_level: boundaries between two zones; how many were
            smoothed; how many at the level asked for (the others less, for the area limit).
        area_change_max_percent, area_change_mean_percent: largest and mean |change| of a
            zone's area by the smoothing, % of its exact area.
        repaired: polygons GDAL wrote invalid, repaired.
    """

    features: int
    zones: int
    class_values: np.ndarray
    class_centres: np.ndarray | None
    feature_names: list[str]
    fields: list[ZoneField]
    layer_name: str
    smoothing: int = 0
    shared_arcs: int = 0
    smoothed_arcs: int = 0
    arcs_at_level: int = 0
    area_change_max_percent: float = 0.0
    area_change_mean_percent: float = 0.0
    repaired: int = 0
    warnings: list[str] = field(default_factory=list)


def check_zone_options(connectivity: int, smoothing: int) -> None:
    """Refuse a connectivity other than 4 or 8 and a smoothing level outside 0-3."""
    CONNECTIVITY.validate(connectivity)
    SMOOTHING.validate(smoothing)


def polygonize_zones(classes_path: str | os.PathLike, output_path: str | os.PathLike, *,
                     band: int = 1, connectivity: int = 8, smoothing: int = 0,
                     per_class: bool = False, features: Sequence[RasterInput] = (),
                     centres: np.ndarray | None = None,
                     feature_names: Sequence[str] | None = None,
                     progress=None, is_cancelled=None) -> ZonePolygonsReport:
    """Write the zones of a classified raster as polygons with their attributes.

    Args:
        classes_path: GDAL-readable raster with integer classes (Byte … Int32) and a CRS;
            nodata and masked pixels belong to no zone.
        output_path: .gpkg, .shp or .geojson file to write (replaced), in an existing folder.
        band: the band holding the classes.
        connectivity: 4 (pixels sharing a side form a zone) or 8 (also a corner).
        smoothing: 0 = exact pixel edges; 1-3 = smoother (see `smoothing`).
        per_class: one multipolygon per class instead of one feature per zone.
        features: rasters whose bands are described per zone (mean, min, max, std), aligned
            onto the classified raster's grid by nearest neighbour.
        centres: float (n_classes, n_features): row c - 1 is the centre of class c (a k-means
            model's); None: the mean of each feature over the class's pixels.
        feature_names: names of the features (default: band descriptions, else layer names).
        progress, is_cancelled: see `core.progress`.

    Raises:
        InvalidInputError: bad options, unreadable or non-integer input, no CRS, too many
            classes, output over the input or in a missing folder.
        CancelledError: cancelled; nothing is left behind.
    """
    check_zone_options(connectivity, smoothing)
    vector_driver(output_path)
    output_path = Path(output_path)
    check_output_folder(output_path)
    refuse_output_over_inputs(output_path, [os.fspath(classes_path),
                                            *(raster.source for raster in features)])
    steps = Progress(progress, is_cancelled)
    steps.check()
    raster = ClassifiedRaster(os.fspath(classes_path), band)
    try:
        with _workspace(output_path) as work, _quiet_gdal_errors():
            zone_raster = str(work / "zones.tif")
            labels = label_zones(raster, zone_raster, connectivity=connectivity,
                                 features=features, with_nodes=smoothing > 0,
                                 progress=steps.span(0.0, 0.4))
            names = list(feature_names) if feature_names is not None else labels.feature_names
            if centres is not None and np.shape(centres)[1] != len(names):
                raise InvalidInputError(f"{np.shape(centres)[1]} centre values per class for "
                                        f"{len(names)} features")
            exact = _ExactPolygons(_polygonize(zone_raster, str(work / "exact.gpkg"),
                                               labels.grid, steps.span(0.4, 0.6)))
            levels = None
            if smoothing:
                levels = _arc_levels(exact, labels, smoothing, steps.span(0.6, 0.75))
            writer = _ZoneWriter(labels, names, centres, per_class, smoothing, levels)
            with atomic_vector_output(output_path) as temporary:
                report = writer.write(exact, temporary, output_path.stem,
                                      steps.span(0.75 if smoothing else 0.6, 1.0))
                exact.close()
    except BaseException as error:
        # The traceback's frames hold GDAL datasets: release them so that the files close.
        traceback.clear_frames(error.__traceback__)
        raise
    steps(1.0)
    return report


@contextmanager
def _workspace(output_path: Path) -> Iterator[Path]:
    """A hidden temporary folder beside the output (same disk), removed at the end."""
    folder = Path(tempfile.mkdtemp(prefix=f".{output_path.stem}.", suffix=".partial",
                                   dir=output_path.parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _quiet_gdal_errors():
    """GEOS's validity warnings about GDAL's invalid rings are expected; keep them off stderr."""
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        yield
    finally:
        gdal.PopErrorHandler()


def _spatial_reference(wkt: str) -> osr.SpatialReference | None:
    if not wkt:
        return None
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def _polygonize(zone_raster: str, target: str, grid: RasterGrid, steps: Progress) -> str:
    """GDAL's polygonizer, 4-connected: the pieces of each zone, into a GeoPackage."""
    source = gdal.Open(zone_raster)
    band = source.GetRasterBand(1)
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(target)
    if dataset is None:
        raise RasterClusteringError(f"cannot create {target}: {gdal.GetLastErrorMsg()}; check "
                                    "free disk space in the output folder")
    layer = dataset.CreateLayer(_EXACT_LAYER, _spatial_reference(grid.crs_wkt), ogr.wkbPolygon,
                                ["SPATIAL_INDEX=NO"])
    layer.CreateField(ogr.FieldDefn("zone", ogr.OFTInteger))
    dataset.StartTransaction()

    def callback(complete, _message, _data):
        if steps.cancelled():
            return 0
        steps(complete)
        return 1

    status = gdal.Polygonize(band, band.GetMaskBand(), layer, 0, [], callback=callback)
    steps.check()
    if status != 0:
        raise RasterClusteringError(f"GDAL's polygonizer failed ({gdal.GetLastErrorMsg()}); "
                                    "check free disk space in the output folder")
    dataset.CommitTransaction()
    dataset.ExecuteSQL(f"CREATE INDEX {_EXACT_LAYER}_zone ON {_EXACT_LAYER} (zone)")
    dataset = layer = band = source = None
    return target


class _ExactPolygons:
    """The polygonizer's output: the exact polygon(s) of every zone."""

    def __init__(self, path: str):
        self.dataset = ogr.Open(path)
        self.layer = self.dataset.GetLayerByName(_EXACT_LAYER)
        self.count = self.layer.GetFeatureCount()
        self.repaired = 0

    def batches(self, steps: Progress, *, in_zone_order: bool) -> Iterator[_Batch]:
        """The zones in batches of about _BATCH_POINTS corners; in zone order, the pieces of
        one zone are one entry of one batch."""
        layer = self.layer
        if in_zone_order:
            layer = self.dataset.ExecuteSQL(
                f"SELECT zone, geom FROM {_EXACT_LAYER} ORDER BY zone")
        try:
            batch = _Batch()
            for index, feature in enumerate(layer):
                zone = feature.GetFieldAsInteger64(0)
                if batch.points >= _BATCH_POINTS and zone != batch.zones[-1]:
                    yield batch
                    batch = _Batch()
                if index % 1000 == 0:
                    steps(index / max(1, self.count))
                repaired = batch.add(zone, feature.GetGeometryRef())
                self.repaired += repaired if in_zone_order else 0
            if batch.zones:
                yield batch
        finally:
            if in_zone_order:
                self.dataset.ReleaseResultSet(layer)

    def close(self) -> None:
        self.layer = self.dataset = None


class _Batch:
    """Zones with their exact polygons: each part's WKB, and its rings' coordinates."""

    def __init__(self):
        self.zones: list[int] = []
        self.part_zone: list[int] = []  # position in self.zones
        self.part_wkb: list[bytes] = []  # GDAL's polygon (or its repaired parts)
        self.ring_part: list[int] = []
        self.ring_hole: list[bool] = []
        self.coordinates: list[np.ndarray] = []  # float64 (2 m,) x, y of each ring, closed
        self.points = 0

    def add(self, zone: int, geometry: ogr.Geometry) -> int:
        """Add a zone's polygon (or one more piece of it); return 1 if it was repaired."""
        if not self.zones or self.zones[-1] != zone:
            self.zones.append(zone)
        repaired = 0
        if geometry.IsValid():
            parts = [geometry]  # GDAL writes polygons
        else:
            parts = _polygons_in(geometry.MakeValid())
            repaired = 1
        for part in parts:
            wkb = part.ExportToWkb(ogr.wkbNDR)
            self.part_zone.append(len(self.zones) - 1)
            self.part_wkb.append(wkb)
            (n_rings,) = struct.unpack_from("<I", wkb, 5)
            offset = 9  # byte order, geometry type, ring count
            for index in range(n_rings):
                (n_points,) = struct.unpack_from("<I", wkb, offset)
                self.coordinates.append(np.frombuffer(wkb, "<f8", 2 * n_points, offset + 4))
                self.ring_part.append(len(self.part_wkb) - 1)
                self.ring_hole.append(index > 0)
                self.points += n_points
                offset += 4 + 16 * n_points
        return repaired

    @property
    def ring_zone(self) -> np.ndarray:
        return np.asarray(self.part_zone, dtype=np.int64)[self.ring_part]

    def grid_rings(self, grid: RasterGrid) -> tuple[np.ndarray, np.ndarray]:
        """The rings as grid points (column, row): int64 (N, 2), each ring closed, ring after
        ring, and where each ring starts (R + 1,)."""
        x0, dx, _, y0, _, dy = grid.geotransform
        xy = np.concatenate(self.coordinates).reshape(-1, 2)
        position = np.column_stack([(xy[:, 0] - x0) / dx, (xy[:, 1] - y0) / dy])
        points = np.rint(position)
        if np.abs(position - points).max() > 1e-6:
            raise RasterClusteringError("a zone polygon is not on the pixel grid")
        lengths = [len(coordinates) // 2 for coordinates in self.coordinates]
        return points.astype(np.int64), np.concatenate([[0], np.cumsum(lengths)]).astype(
            np.int64)

    def ring_signs(self, points: np.ndarray, start: np.ndarray) -> np.ndarray:
        """+1 where a ring's signed area on the grid adds to its zone's area, else -1."""
        here = np.ones(len(points), dtype=bool)
        here[start[1:] - 1] = False  # the closing point starts no segment
        index = np.flatnonzero(here)
        x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
        cross = x[index] * y[index + 1] - x[index + 1] * y[index]
        ring = np.repeat(np.arange(len(start) - 1), np.diff(start))[index]
        signs = np.sign(np.bincount(ring, weights=cross, minlength=len(start) - 1))
        return np.where(self.ring_hole, -signs, signs)


def _polygons_in(geometry: ogr.Geometry) -> list[ogr.Geometry]:
    """The polygons of a (repaired) geometry: itself, or its polygonal parts."""
    kind = ogr.GT_Flatten(geometry.GetGeometryType())
    if kind == ogr.wkbPolygon:
        return [geometry] if not geometry.IsEmpty() else []
    if kind in (ogr.wkbMultiPolygon, ogr.wkbGeometryCollection):
        return [part for index in range(geometry.GetGeometryCount())
                for part in _polygons_in(geometry.GetGeometryRef(index))]
    return []  # lines or points MakeValid may leave of a collapsed part


def _arc_levels(exact: _ExactPolygons, labels: ZoneLabels, level: int, steps: Progress
                ) -> ArcLevels:
    """First pass of the smoothing: every arc's area change at each level, then the levels.

    Only arcs that can move are kept: a single step from node to node stays as it is. Memory:
    about 13 bytes per occurrence of such an arc in a zone's ring.
    """
    recorded = LEVEL_ITERATIONS[1:level + 1]
    keys, zones, weights, changes = [], [], [], []
    for batch in exact.batches(steps.span(0.0, 0.9), in_zone_order=False):
        corners, start = batch.grid_rings(labels.grid)
        arcs = split_arcs(densify(corners, start), labels.nodes, labels.grid.width)
        smoothed = smooth(arcs, np.full(len(arcs.key), LEVEL_ITERATIONS[level]),
                          record=recorded)
        can_move = arcs.closed | (arcs.lengths > 2)
        keys.append(arcs.key[can_move])
        zones.append(np.asarray(batch.zones, dtype=np.int32)[batch.ring_zone[arcs.ring]][
            can_move])
        weights.append(ring_area_weights(arcs, batch.ring_signs(corners, start))[
            can_move].astype(np.int8))
        changes.append(np.column_stack([area_changes(arcs, smoothed[count])[0][can_move]
                                        for count in recorded]).astype(np.float32))
    levels = choose_levels(np.concatenate(keys), np.concatenate(zones),
                           np.concatenate(weights), np.concatenate(changes),
                           labels.zone_pixels, level=level)
    steps(1.0)
    return levels


class _ZoneWriter:
    """The second pass: zone geometries (exact or smoothed) and attributes, into the output."""

    def __init__(self, labels: ZoneLabels, feature_names: list[str],
                 centres: np.ndarray | None, per_class: bool, smoothing: int,
                 levels: ArcLevels | None):
        self.labels = labels
        self.feature_names = feature_names
        self.fields = zone_fields(feature_names)
        self.per_class = per_class
        self.smoothing = smoothing
        self.levels = levels
        self.class_centres = _class_centres(labels, centres, len(feature_names))
        self.area_change_m2 = np.zeros(labels.n_zones)

    def write(self, exact: _ExactPolygons, path: Path, layer_name: str,
              steps: Progress) -> ZonePolygonsReport:
        labels = self.labels
        output = _Output(path, layer_name, labels.grid, self.fields,
                         large_classes=bool(np.abs(labels.class_values).max() >= 2**31))
        written = 0
        pending_class, pending_parts, pending = None, [], [0.0, 0.0]
        try:
            for batch in exact.batches(steps, in_zone_order=True):
                for zone, parts, perimeter_m in self._geometries(batch):
                    area_m2 = labels.zone_area_m2[zone - 1] + self.area_change_m2[zone - 1]
                    if not self.per_class:
                        output.add(self._zone_row(zone, area_m2, perimeter_m),
                                   _multipolygon(parts))
                        written += 1
                        continue
                    zone_class = labels.zone_class[zone]
                    if zone_class != pending_class and pending_class is not None:
                        written += 1
                        output.add(self._class_row(pending_class, written, *pending),
                                   _multipolygon(pending_parts))
                        pending_parts, pending = [], [0.0, 0.0]
                    pending_class = zone_class
                    pending_parts += parts
                    pending[0] += area_m2
                    pending[1] += perimeter_m
            if self.per_class and pending_class is not None:
                written += 1
                output.add(self._class_row(pending_class, written, *pending),
                           _multipolygon(pending_parts))
        finally:
            output.close()
        return self._report(written, exact.repaired, layer_name)

    def _geometries(self, batch: _Batch) -> Iterator[tuple[int, list[bytes], float]]:
        """(zone, polygon WKBs of its parts, perimeter in m) of each zone of the batch."""
        grid = self.labels.grid
        ring_zone = batch.ring_zone
        corners, corner_start = batch.grid_rings(grid)
        if self.levels is None:
            open_rings = np.ones(len(corners), dtype=bool)
            open_rings[corner_start[1:] - 1] = False
            points = corners[open_rings].astype(np.float64)
            start = corner_start - np.arange(len(corner_start))
            part_wkb = batch.part_wkb
        else:
            rings = densify(corners, corner_start)
            arcs = split_arcs(rings, self.labels.nodes, grid.width)
            iterations = np.asarray(LEVEL_ITERATIONS)[self.levels.of(arcs.key)]
            smoothed = smooth(arcs, iterations)
            smoothed = smoothed[max(smoothed)]
            _, change_m2 = area_changes(arcs, smoothed, self.labels.row_areas_m2)
            change_m2 *= ring_area_weights(arcs, batch.ring_signs(corners, corner_start))
            zone_of_arc = np.asarray(batch.zones)[ring_zone[arcs.ring]]
            np.add.at(self.area_change_m2, zone_of_arc - 1, change_m2)
            values = rings.points.astype(np.float64)
            values[arcs.ring_point] = smoothed
            keep = corner_mask(values, rings.start)
            points = values[keep]
            start = np.concatenate([[0], np.cumsum(keep)])[rings.start]
            part_wkb = _part_wkbs(points, start, batch.ring_part, len(batch.part_zone), grid)
        perimeters = _ring_perimeters_m(points, start, grid)
        zone_perimeter = np.bincount(ring_zone, weights=perimeters, minlength=len(batch.zones))
        zone_parts: list[list[bytes]] = [[] for _ in batch.zones]
        for part, zone_index in enumerate(batch.part_zone):
            zone_parts[zone_index].append(part_wkb[part])
        for zone_index, zone in enumerate(batch.zones):
            yield zone, zone_parts[zone_index], float(zone_perimeter[zone_index])

    def _statistics(self, table, row: int) -> list:
        if table is None:
            return []
        values = []
        for feature in range(len(self.feature_names)):
            values += [table.mean[row, feature], table.minimum[row, feature],
                       table.maximum[row, feature], table.std[row, feature]]
        return values

    def _centre(self, class_value: int) -> list:
        if self.class_centres is None:
            return []
        index = int(np.searchsorted(self.labels.class_values, class_value))
        return list(self.class_centres[index])

    def _zone_row(self, zone: int, area_m2: float, perimeter_m: float) -> list:
        class_value = int(self.labels.zone_class[zone])
        return [zone, class_value, *self._centre(class_value), area_m2, perimeter_m,
                *self._statistics(self.labels.zone_features, zone - 1)]

    def _class_row(self, class_value: int, number: int, area_m2: float,
                   perimeter_m: float) -> list:
        index = int(np.searchsorted(self.labels.class_values, class_value))
        return [number, int(class_value), *self._centre(class_value), area_m2, perimeter_m,
                *self._statistics(self.labels.class_features, index)]

    def _report(self, written: int, repaired: int, layer_name: str) -> ZonePolygonsReport:
        labels = self.labels
        report = dict(features=written, zones=labels.n_zones, class_values=labels.class_values,
                      class_centres=self.class_centres, feature_names=self.feature_names,
                      fields=self.fields, layer_name=layer_name, smoothing=self.smoothing,
                      repaired=repaired)
        if self.levels is not None:
            change = 100.0 * np.abs(self.area_change_m2) / labels.zone_area_m2
            counts = np.bincount(self.levels.levels, minlength=self.smoothing + 1)
            report.update(
                shared_arcs=int(self.levels.shared.sum()),
                smoothed_arcs=int(np.count_nonzero(self.levels.levels)),
                arcs_at_level=int(counts[self.smoothing]),
                area_change_max_percent=float(change.max()),
                area_change_mean_percent=float(change.mean()))
            if report["arcs_at_level"] < report["shared_arcs"]:
                report["warnings"] = [
                    f"{report['shared_arcs'] - report['arcs_at_level']:,} of "
                    f"{report['shared_arcs']:,} boundaries between zones were smoothed less "
                    f"than level {self.smoothing} or not at all, so that no zone's area "
                    f"changes by more than {AREA_CHANGE_LIMIT:.0%}."]
        return ZonePolygonsReport(**report)


def _class_centres(labels: ZoneLabels, centres, n_features: int) -> np.ndarray | None:
    """The centre fields' values of each class present: the model's centres, else the class
    means of the features; None without features."""
    if n_features == 0:
        return None
    if centres is None:
        return labels.class_features.mean if labels.class_features is not None else None
    centres = np.asarray(centres, dtype=np.float64)
    rows = labels.class_values - 1
    inside = (rows >= 0) & (rows < len(centres))
    values = np.full((len(rows), n_features), np.nan)
    values[inside] = centres[rows[inside]]
    return values


def _ring_perimeters_m(points: np.ndarray, start: np.ndarray, grid: RasterGrid) -> np.ndarray:
    """Ground length of each ring (closed: from its last point back to its first), metres."""
    n = np.diff(start)
    ring_of_point = np.repeat(np.arange(len(n)), n)
    along = np.arange(len(points)) - start[:-1][ring_of_point]
    following = points[start[:-1][ring_of_point] + (along + 1) % n[ring_of_point]]
    step = following - points
    lengths = step_lengths_m(grid.geotransform, grid.crs_wkt, d_cols=step[:, 0],
                             d_rows=step[:, 1], mid_rows=(points[:, 1] + following[:, 1]) / 2)
    return np.bincount(ring_of_point, weights=lengths, minlength=len(n))


def _part_wkbs(points: np.ndarray, start: np.ndarray, ring_part: Sequence[int], n_parts: int,
               grid: RasterGrid) -> list[bytes]:
    """Little-endian WKB of each polygon from its rings' grid points (not closed)."""
    n = np.diff(start)
    ring_of_point = np.repeat(np.arange(len(n)), n + 1)
    along = np.arange(len(ring_of_point)) - np.repeat(start[:-1] + np.arange(len(n)), n + 1)
    closed = points[start[:-1][ring_of_point] + along % n[ring_of_point]]
    x0, dx, _, y0, _, dy = grid.geotransform
    raw = np.column_stack([x0 + closed[:, 0] * dx, y0 + closed[:, 1] * dy]).astype(
        "<f8").tobytes()
    offsets = 16 * (start + np.arange(len(start)))
    rings_of_part: list[list[bytes]] = [[] for _ in range(n_parts)]
    for ring, part in enumerate(ring_part):
        rings_of_part[part].append(struct.pack("<I", n[ring] + 1)
                                   + raw[offsets[ring]:offsets[ring + 1]])
    return [struct.pack("<BII", 1, ogr.wkbPolygon, len(rings)) + b"".join(rings)
            for rings in rings_of_part]


def _multipolygon(polygons: list[bytes]) -> bytes:
    return struct.pack("<BII", 1, ogr.wkbMultiPolygon, len(polygons)) + b"".join(polygons)


class _Output:
    """The output layer: a multipolygon layer with the zone fields, written in a transaction."""

    def __init__(self, path: Path, layer_name: str, grid: RasterGrid,
                 fields: list[ZoneField], *, large_classes: bool):
        driver_name = vector_driver(path)
        self.dataset = ogr.GetDriverByName(driver_name).CreateDataSource(str(path))
        if self.dataset is None:
            raise RasterClusteringError(f"cannot create {path}: {gdal.GetLastErrorMsg()}")
        options = {"ESRI Shapefile": ["ENCODING=UTF-8"], "GeoJSON": ["RFC7946=NO"],
                   "GPKG": []}[driver_name]
        self.layer = self.dataset.CreateLayer(layer_name, _spatial_reference(grid.crs_wkt),
                                              ogr.wkbMultiPolygon, options)
        for item in fields:
            kind = ogr.OFTReal
            if item.integer:
                kind = ogr.OFTInteger64 if item.name == "class" and large_classes else (
                    ogr.OFTInteger)
            definition = ogr.FieldDefn(item.name, kind)
            if hasattr(definition, "SetAlternativeName"):  # GDAL >= 3.2
                definition.SetAlternativeName(item.alias)
            if self.layer.CreateField(definition) != 0:
                raise RasterClusteringError(f"cannot create the field {item.name} in {path}")
        self.definition = self.layer.GetLayerDefn()
        self.transaction = self.dataset.TestCapability(ogr.ODsCTransactions)
        if self.transaction:
            self.dataset.StartTransaction()

    def add(self, values: list, wkb: bytes) -> None:
        feature = ogr.Feature(self.definition)
        for index, value in enumerate(values):
            if isinstance(value, (float, np.floating)) and not np.isfinite(value):
                feature.SetFieldNull(index)
            else:
                feature.SetField(index, value.item() if isinstance(value, np.generic) else value)
        feature.SetGeometry(ogr.CreateGeometryFromWkb(wkb))
        if self.layer.CreateFeature(feature) != 0:
            raise RasterClusteringError(f"writing a zone failed: {gdal.GetLastErrorMsg()}; check "
                                        "free disk space in the output folder")

    def close(self) -> None:
        if self.dataset is not None and self.transaction:
            self.dataset.CommitTransaction()
        self.layer = self.definition = self.dataset = None

