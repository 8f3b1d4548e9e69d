"""Ground area in m² of one pixel in each row of a raster, for projected and geographic CRSs,
and ground lengths of short steps on the raster's grid (perimeters of zones).

Geographic rows use the exact area of the lat/lon cell on the CRS's ellipsoid (authalic q function).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from osgeo import osr

from ..errors import InvalidInputError

_HOW_TO_FIX_CRS = (
    "assign the raster its CRS (Raster > Projections > Assign Projection, or gdal_edit.py -a_srs) "
    "or reproject it to a projected CRS in metres (Raster > Projections > Warp (Reproject))"
)


def pixel_areas_m2(
    geotransform: Sequence[float], crs_wkt: str, *, first_row: int = 0, n_rows: int
) -> np.ndarray:
    """Area on the ground of one pixel in each of `n_rows` rows, starting at `first_row`.

    Projected (or local) CRS: |a·e − b·d| of the geotransform, converted from the CRS's linear unit
    (metre, foot, US survey foot, ...) to square metres; the same value for every row.
    Geographic CRS: the exact area on the CRS's ellipsoid of the lat/lon cell of each row,
    A = (b²·Δλ/2)·|q(φ2) − q(φ1)| with q(φ) = sinφ/(1 − e²sin²φ) + atanh(e·sinφ)/e, which depends on
    the latitude only. The geotransform's x axis is longitude and its y axis latitude (GDAL's
    order for rasters); latitudes beyond ±90° are clipped to the pole.

    Args:
        geotransform: GDAL geotransform (x0, a, b, y0, d, e), six numbers.
        crs_wkt: WKT of the raster's CRS.
        first_row: index of the first row wanted (0 = top row of the raster).
        n_rows: number of rows wanted (>= 0).

    Returns:
        float64 array of shape (n_rows,): m² per pixel of each row.

    Raises:
        InvalidInputError: empty or unreadable CRS, a CRS that is neither geographic nor has linear
            units, a degenerate geotransform, negative row arguments, or a geographic grid whose
            latitude changes along a row (rotated).
    """
    if first_row < 0 or n_rows < 0:
        raise InvalidInputError(
            f"pixel rows must be non-negative (first_row={first_row}, n_rows={n_rows}); "
            "ask for rows inside the raster"
        )
    gt = _checked_geotransform(geotransform)
    srs = _spatial_reference(crs_wkt)
    if srs.IsGeographic():
        return _geographic_row_areas_m2(gt, srs, first_row=first_row, n_rows=n_rows)
    metres_per_unit = _metres_per_linear_unit(srs)
    area_m2 = abs(gt[1] * gt[5] - gt[2] * gt[4]) * metres_per_unit**2
    return np.full(n_rows, area_m2, dtype=np.float64)


def step_lengths_m(
    geotransform: Sequence[float], crs_wkt: str, *, d_cols: np.ndarray, d_rows: np.ndarray,
    mid_rows: np.ndarray
) -> np.ndarray:
    """Ground length in metres of straight steps on the raster's grid, in pixel units.

    Projected (or local) CRS: the step through the geotransform, converted from the CRS's
    linear unit. Geographic CRS: on the CRS's ellipsoid with the meridian and prime-vertical
    radii of curvature at the step's middle latitude, sqrt((M·Δφ)² + (N·cosφ·Δλ)²): exact along
    a parallel, and within about Δφ² (relative) of the meridian arc along a meridian, so for
    steps of a few pixels it is exact to far below a millimetre.

    Args:
        geotransform: GDAL geotransform (x0, a, b, y0, d, e).
        crs_wkt: WKT of the raster's CRS.
        d_cols, d_rows: float arrays of equal shape, the step in columns and rows.
        mid_rows: the row (fractional) at the middle of each step, for geographic CRSs.

    Returns:
        float64 array of the shape of `d_cols`, metres.

    Raises:
        InvalidInputError: as `pixel_areas_m2`.
    """
    gt = _checked_geotransform(geotransform)
    srs = _spatial_reference(crs_wkt)
    d_x = np.asarray(d_cols, dtype=np.float64) * gt[1] + np.asarray(d_rows) * gt[2]
    d_y = np.asarray(d_cols, dtype=np.float64) * gt[4] + np.asarray(d_rows) * gt[5]
    if not srs.IsGeographic():
        return np.hypot(d_x, d_y) * _metres_per_linear_unit(srs)
    if gt[4] != 0:
        raise InvalidInputError(
            "the geographic raster is rotated; warp it to a north-up grid (Raster > "
            "Projections > Warp (Reproject))")
    radians_per_unit = srs.GetAngularUnits()
    semi_major_m, semi_minor_m = srs.GetSemiMajor(), srs.GetSemiMinor()
    e2 = 1.0 - (semi_minor_m / semi_major_m) ** 2
    latitude = np.clip((gt[3] + np.asarray(mid_rows, dtype=np.float64) * gt[5])
                       * radians_per_unit, -np.pi / 2, np.pi / 2)
    w2 = 1.0 - e2 * np.sin(latitude) ** 2
    meridian_m = semi_major_m * (1.0 - e2) / w2**1.5
    prime_vertical_m = semi_major_m / np.sqrt(w2)
    return np.hypot(meridian_m * d_y * radians_per_unit,
                    prime_vertical_m * np.cos(latitude) * d_x * radians_per_unit)


def describe_pixel_area(geotransform: Sequence[float], crs_wkt: str, *, n_rows: int) -> str:
    """One line for logs: the pixel area, or its range over the rows of a geographic raster.

    Args:
        geotransform: GDAL geotransform (x0, a, b, y0, d, e).
        crs_wkt: WKT of the raster's CRS.
        n_rows: number of rows of the raster (>= 1).

    Returns:
        e.g. "100 m² per pixel" or "85.3 m² (row 0) to 46.2 m² (row 999) per pixel, varying with
        latitude (geographic CRS)".

    Raises:
        InvalidInputError: as `pixel_areas_m2`.
    """
    areas_m2 = pixel_areas_m2(geotransform, crs_wkt, n_rows=max(int(n_rows), 1))
    first_m2, last_m2 = float(areas_m2[0]), float(areas_m2[-1])
    if math.isclose(areas_m2.min(), areas_m2.max(), rel_tol=1e-12):
        return f"{first_m2:.6g} m² per pixel"
    return (
        f"{first_m2:.6g} m² (row 0) to {last_m2:.6g} m² (row {len(areas_m2) - 1}) per pixel, "
        "varying with latitude (geographic CRS)"
    )


def _checked_geotransform(geotransform: Sequence[float]) -> tuple[float, ...]:
    """The geotransform as six floats; refuses one whose pixels have no area."""
    gt = tuple(float(value) for value in geotransform)
    if len(gt) != 6 or not all(math.isfinite(value) for value in gt):
        raise InvalidInputError(
            f"the geotransform must be six finite numbers, got {list(geotransform)}; "
            "georeference the raster (Raster > Georeferencer, or gdal_edit.py -a_ullr)"
        )
    if gt[1] * gt[5] - gt[2] * gt[4] == 0:
        raise InvalidInputError(
            f"the geotransform {list(gt)} gives pixels of zero area; georeference the raster "
            "with a real pixel size (gdal_edit.py -a_ullr or -tr)"
        )
    return gt


def _spatial_reference(crs_wkt: str) -> osr.SpatialReference:
    """The CRS parsed from WKT, or InvalidInputError if there is none."""
    if not crs_wkt or not crs_wkt.strip():
        raise InvalidInputError(
            "the raster has no CRS, so its pixel area in m² is unknown; " + _HOW_TO_FIX_CRS
        )
    srs = osr.SpatialReference()
    try:
        status = srs.ImportFromWkt(crs_wkt)
    except RuntimeError as error:  # when another plugin turned GDAL exceptions on
        status, detail = 1, f" ({error})"
    else:
        detail = ""
    if status != 0:
        raise InvalidInputError(f"the raster's CRS cannot be read{detail}; " + _HOW_TO_FIX_CRS)
    return srs


def _metres_per_linear_unit(srs: osr.SpatialReference) -> float:
    """Metres per unit of a projected or local CRS; InvalidInputError for any other CRS."""
    if srs.IsProjected() or srs.IsLocal():
        metres_per_unit = srs.GetLinearUnits()
        if metres_per_unit and math.isfinite(metres_per_unit) and metres_per_unit > 0:
            return float(metres_per_unit)
    name = srs.GetName() or "unnamed CRS"
    raise InvalidInputError(
        f"the raster's CRS '{name}' is neither geographic nor measured in a linear unit, so its "
        "pixel area in m² is unknown; " + _HOW_TO_FIX_CRS
    )


def _geographic_row_areas_m2(
    gt: tuple[float, ...], srs: osr.SpatialReference, *, first_row: int, n_rows: int
) -> np.ndarray:
    """Ellipsoidal area of the lat/lon cell of each row of a north-up geographic grid."""
    if gt[4] != 0:
        raise InvalidInputError(
            "the geographic raster is rotated: its latitude changes along a row, so a row's pixels "
            "differ in area; warp it to a north-up grid (Raster > Projections > Warp (Reproject))"
        )
    radians_per_unit = srs.GetAngularUnits()
    semi_major_m, semi_minor_m = srs.GetSemiMajor(), srs.GetSemiMinor()
    if not (radians_per_unit > 0 and semi_major_m > 0 and 0 < semi_minor_m <= semi_major_m):
        raise InvalidInputError(
            "the raster's geographic CRS has no usable angular unit or ellipsoid; "
            + _HOW_TO_FIX_CRS
        )
    # The x shear gt[2] moves a row sideways without changing its width in longitude.
    width_rad = abs(gt[1]) * radians_per_unit
    edges = np.arange(first_row, first_row + n_rows + 1, dtype=np.float64)
    edge_lat_rad = np.clip((gt[3] + edges * gt[5]) * radians_per_unit, -np.pi / 2, np.pi / 2)
    q_at_edges = _authalic_q(np.sin(edge_lat_rad), semi_major_m, semi_minor_m)
    return 0.5 * semi_minor_m**2 * width_rad * np.abs(np.diff(q_at_edges))


def _authalic_q(sin_lat: np.ndarray, semi_major_m: float, semi_minor_m: float) -> np.ndarray:
    """q(φ) of the authalic latitude; b²·Δλ·(q(φ2) − q(φ1))/2 is the area between two parallels."""
    e2 = 1.0 - (semi_minor_m / semi_major_m) ** 2
    if e2 < 1e-12:  # sphere: the limit of q as e → 0
        return 2.0 * sin_lat
    e = math.sqrt(e2)
    return sin_lat / (1.0 - e2 * sin_lat**2) + np.arctanh(e * sin_lat) / e
