"""The area whose pixels fit the centres: a polygon, a bounding box, or their intersection."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from osgeo import gdal, ogr, osr

from ..errors import InvalidInputError
from .rasters import RasterGrid, Window

BoundingBox = Sequence[float]  # xmin, ymin, xmax, ymax in the raster's CRS


class AreaOfInterest:
    """Which pixels of a grid lie in the area: those whose centre is inside it.

    Args:
        grid: the raster grid.
        geometry_wkt: polygon or multipolygon in the grid's CRS, or None.
        bbox: (xmin, ymin, xmax, ymax) in the grid's CRS, or None.

    Raises:
        InvalidInputError: the geometry is not polygonal or empty, or the area covers no pixel
            centre of the raster.
    """

    def __init__(self, grid: RasterGrid, *, geometry_wkt: str | None = None,
                 bbox: BoundingBox | None = None):
        self.grid = grid
        self.geometry = _polygonal_geometry(geometry_wkt) if geometry_wkt else None
        if bbox is not None:
            xmin, ymin, xmax, ymax = bbox
            if not (xmin < xmax and ymin < ymax):
                raise InvalidInputError(f"The extent {tuple(bbox)} is empty; draw a larger one.")
            box = _box_geometry(xmin, ymin, xmax, ymax)
            self.geometry = box if self.geometry is None else self.geometry.Intersection(box)
            if self.geometry is None or self.geometry.IsEmpty() or self.geometry.GetArea() == 0:
                raise InvalidInputError(
                    "The area of interest and the extent do not overlap; give an extent that "
                    "covers part of the area of interest, or leave one of them empty.")
        self._bbox_only = geometry_wkt is None
        self.window = self._pixel_window() if self.geometry is not None else grid.full_window
        self._layer_source = self._memory_layer() if self.geometry is not None else None

    @property
    def is_whole_raster(self) -> bool:
        return self.geometry is None

    def _pixel_window(self) -> Window:
        """The pixels whose centres fall in the area's envelope, cut to the raster."""
        xmin, xmax, ymin, ymax = self.geometry.GetEnvelope()
        x0, dx, _, y0, _, dy = self.grid.geotransform
        cols = sorted(((xmin - x0) / dx - 0.5, (xmax - x0) / dx - 0.5))
        rows = sorted(((ymin - y0) / dy - 0.5, (ymax - y0) / dy - 0.5))
        col_first, col_last = max(0, math.ceil(cols[0])), min(self.grid.width - 1,
                                                              math.floor(cols[1]))
        row_first, row_last = max(0, math.ceil(rows[0])), min(self.grid.height - 1,
                                                              math.floor(rows[1]))
        if col_first > col_last or row_first > row_last:
            raise InvalidInputError(
                "The area of interest / extent does not overlap the raster (no pixel centre "
                "inside it). Check that it covers the raster, in any CRS: it is reprojected.")
        return Window(col_first, row_first, col_last - col_first + 1, row_last - row_first + 1)

    def _memory_layer(self) -> gdal.Dataset:
        driver = ogr.GetDriverByName("Memory")
        source = driver.CreateDataSource("area_of_interest")
        srs = osr.SpatialReference(self.grid.crs_wkt) if self.grid.crs_wkt else None
        layer = source.CreateLayer("area", srs=srs, geom_type=ogr.wkbMultiPolygon)
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetGeometry(self.geometry)
        layer.CreateFeature(feature)
        return source

    def mask(self, window: Window) -> np.ndarray | None:
        """Bool array (height, width): True where the pixel centre is in the area.

        None means every pixel of `window` is in the area (no polygon to test).
        """
        if self.geometry is None:
            return None
        if self._bbox_only and _inside(window, self.window):
            return None
        target = gdal.GetDriverByName("MEM").Create("", window.width, window.height, 1,
                                                    gdal.GDT_Byte)
        target.SetGeoTransform(self.grid.sub_grid(window).geotransform)
        target.SetProjection(self.grid.crs_wkt)
        error = gdal.RasterizeLayer(target, [1], self._layer_source.GetLayer(0), burn_values=[1])
        if error != 0:
            raise InvalidInputError(
                f"Rasterizing the area of interest failed: {gdal.GetLastErrorMsg()}")
        return target.GetRasterBand(1).ReadAsArray().astype(bool)


@dataclass(frozen=True)
class AreaSource:
    """An AreaOfInterest as block jobs open it: its grid, geometry and box (see AreaOfInterest).

    Attributes:
        scope: the run's scope (`engine.new_scope`).
    """

    grid: RasterGrid
    geometry_wkt: str | None
    bbox: tuple[float, float, float, float] | None
    scope: str

    @classmethod
    def of(cls, grid: RasterGrid, *, geometry_wkt: str | None, bbox: BoundingBox | None,
           scope: str) -> AreaSource:
        box = None if bbox is None else tuple(float(value) for value in bbox)
        return cls(grid, geometry_wkt, box, scope)

    def open(self) -> AreaOfInterest:
        return AreaOfInterest(self.grid, geometry_wkt=self.geometry_wkt, bbox=self.bbox)


def _inside(inner: Window, outer: Window) -> bool:
    return (inner.col_off >= outer.col_off and inner.row_off >= outer.row_off
            and inner.col_off + inner.width <= outer.col_off + outer.width
            and inner.row_off + inner.height <= outer.row_off + outer.height)


def _box_geometry(xmin: float, ymin: float, xmax: float, ymax: float) -> ogr.Geometry:
    return ogr.CreateGeometryFromWkt(
        f"POLYGON(({xmin} {ymin},{xmax} {ymin},{xmax} {ymax},{xmin} {ymax},{xmin} {ymin}))")


def _polygonal_geometry(wkt: str) -> ogr.Geometry:
    geometry = ogr.CreateGeometryFromWkt(wkt)
    if geometry is None:
        raise InvalidInputError("The area of interest geometry cannot be read (invalid WKT).")
    polygons = ogr.Geometry(ogr.wkbMultiPolygon)
    _collect_polygons(geometry, polygons)
    if polygons.IsEmpty() or polygons.GetArea() == 0:
        raise InvalidInputError(
            "The area of interest has no polygon area; give polygon or multipolygon features.")
    return polygons


def _collect_polygons(geometry: ogr.Geometry, into: ogr.Geometry) -> None:
    kind = ogr.GT_Flatten(geometry.GetGeometryType())
    if kind == ogr.wkbPolygon:
        into.AddGeometry(ogr.ForceTo(geometry.Clone(), ogr.wkbPolygon))
    elif kind in (ogr.wkbMultiPolygon, ogr.wkbGeometryCollection):
        for index in range(geometry.GetGeometryCount()):
            _collect_polygons(geometry.GetGeometryRef(index), into)
