"""Pixel areas in m² against OGR equal-area projections and handbook values."""

import math

import numpy as np
import pytest
from osgeo import ogr, osr
from raster_clustering.core.errors import InvalidInputError
from raster_clustering.core.io import pixel_area

US_SURVEY_FOOT_M = 1200 / 3937  # handbook definition
WGS84_SURFACE_KM2 = 510_065_621.724  # area of the WGS 84 ellipsoid (handbook value)


def epsg_wkt(code: int) -> str:
    srs = osr.SpatialReference()
    assert srs.ImportFromEPSG(code) == 0
    return srs.ExportToWkt()


def proj4_srs(definition: str) -> osr.SpatialReference:
    srs = osr.SpatialReference()
    assert srs.ImportFromProj4(definition) == 0
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def ogr_cell_area_m2(west, south, east, north, *, ellipsoid="+ellps=WGS84", points=64):
    """Independent oracle: the lat/lon cell, densified, projected to a Lambert azimuthal
    equal-area projection centred on it, and measured by OGR."""
    lon0, lat0 = (west + east) / 2, (south + north) / 2
    geographic = proj4_srs(f"+proj=longlat {ellipsoid} +no_defs")
    equal_area = proj4_srs(
        f"+proj=laea +lat_0={lat0!r} +lon_0={lon0!r} {ellipsoid} +units=m +no_defs"
    )
    steps = np.linspace(0.0, 1.0, points, endpoint=False)
    lons = np.concatenate([west + (east - west) * steps, np.full(points, east),
                           east - (east - west) * steps, np.full(points, west)])
    lats = np.concatenate([np.full(points, south), south + (north - south) * steps,
                           np.full(points, north), north - (north - south) * steps])
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for lon, lat in zip(lons, lats):
        ring.AddPoint_2D(float(lon), float(lat))
    ring.AddPoint_2D(float(lons[0]), float(lats[0]))
    polygon = ogr.Geometry(ogr.wkbPolygon)
    polygon.AddGeometry(ring)
    assert polygon.Transform(osr.CoordinateTransformation(geographic, equal_area)) == 0
    return polygon.GetArea()


@pytest.mark.parametrize("north_deg", [1.0, 30.5, 60.0, 80.0, -44.0])
@pytest.mark.parametrize("cell_deg", [1.0, 0.01, 0.0001])
def test_geographic_rows_match_ogr_equal_area(north_deg, cell_deg):
    gt = (12.0, cell_deg, 0.0, north_deg, 0.0, -cell_deg)
    areas = pixel_area.pixel_areas_m2(gt, epsg_wkt(4326), n_rows=3)
    for row in range(3):
        north = north_deg - row * cell_deg
        expected = ogr_cell_area_m2(12.0, north - cell_deg, 12.0 + cell_deg, north)
        assert areas[row] == pytest.approx(expected, rel=1e-6)


def test_other_ellipsoid_and_cea_projection_agree():
    # NAD27 lies on Clarke 1866; the oracle here is a cylindrical equal-area projection, in which
    # a lat/lon cell is an exact rectangle.
    gt = (-100.0, 0.5, 0.0, 45.0, 0.0, -0.5)
    areas = pixel_area.pixel_areas_m2(gt, epsg_wkt(4267), n_rows=2)
    clarke = "+ellps=clrk66"
    for row, north in enumerate((45.0, 44.5)):
        assert areas[row] == pytest.approx(
            ogr_cell_area_m2(-100.0, north - 0.5, -99.5, north, ellipsoid=clarke), rel=1e-6
        )
    geographic = proj4_srs(f"+proj=longlat {clarke} +no_defs")
    cea = proj4_srs(f"+proj=cea +lat_ts=30 {clarke} +units=m +no_defs")
    corners = ogr.CreateGeometryFromWkt(
        "POLYGON((-100 44.5,-99.5 44.5,-99.5 45,-100 45,-100 44.5))"
    )
    corners.Transform(osr.CoordinateTransformation(geographic, cea))
    assert areas[0] == pytest.approx(corners.GetArea(), rel=1e-9)


def test_one_degree_cell_at_equator_and_whole_ellipsoid():
    areas = pixel_area.pixel_areas_m2((-180.0, 1.0, 0.0, 90.0, 0.0, -1.0), epsg_wkt(4326),
                                      n_rows=180)
    assert areas[89] == pytest.approx(12_309e6, rel=1e-4)  # ≈ 12,309 km² north of the equator
    assert areas[89] == pytest.approx(areas[90], rel=1e-12)  # symmetric about the equator
    assert areas.sum() * 360 / 1e6 == pytest.approx(WGS84_SURFACE_KM2, rel=1e-9)
    assert areas[0] < areas[45] < areas[89]


def test_sphere_matches_the_spherical_zone_formula():
    radius = 6371007.0
    wkt = epsg_wkt(4035)  # a sphere of radius 6371007 m
    areas = pixel_area.pixel_areas_m2((0.0, 2.0, 0.0, 60.0, 0.0, -10.0), wkt, n_rows=2)
    for row, north in enumerate((60.0, 50.0)):
        south = north - 10.0
        expected = radius**2 * math.radians(2.0) * (
            math.sin(math.radians(north)) - math.sin(math.radians(south))
        )
        assert areas[row] == pytest.approx(expected, rel=1e-12)


def test_grads_are_converted_like_degrees():
    # NTF (Paris) measures angles in grads: 1 grad = 0.9 degree, same Clarke 1880 (IGN) ellipsoid.
    in_grads = pixel_area.pixel_areas_m2((0.0, 0.01, 0.0, 50.0, 0.0, -0.01), epsg_wkt(4807),
                                         n_rows=1)
    in_degrees = pixel_area.pixel_areas_m2((0.0, 0.009, 0.0, 45.0, 0.0, -0.009), epsg_wkt(4275),
                                           n_rows=1)
    assert in_grads[0] == pytest.approx(in_degrees[0], rel=1e-9)


def test_row_window_is_a_slice_of_the_whole():
    gt = (5.0, 0.25, 0.0, 70.0, 0.0, -0.25)
    whole = pixel_area.pixel_areas_m2(gt, epsg_wkt(4326), n_rows=40)
    window = pixel_area.pixel_areas_m2(gt, epsg_wkt(4326), first_row=13, n_rows=7)
    np.testing.assert_allclose(window, whole[13:20], rtol=1e-12)
    assert pixel_area.pixel_areas_m2(gt, epsg_wkt(4326), n_rows=0).shape == (0,)


def test_latitudes_beyond_the_pole_are_clipped():
    areas = pixel_area.pixel_areas_m2((0.0, 1.0, 0.0, 91.0, 0.0, -1.0), epsg_wkt(4326), n_rows=2)
    assert areas[0] == 0.0
    assert areas[1] == pytest.approx(ogr_cell_area_m2(0.0, 89.0, 1.0, 90.0), rel=1e-6)


def test_south_up_and_sheared_geographic_grids():
    north_up = pixel_area.pixel_areas_m2((0.0, 0.1, 0.0, 40.0, 0.0, -0.1), epsg_wkt(4326), n_rows=1)
    south_up = pixel_area.pixel_areas_m2((0.0, 0.1, 0.0, 39.9, 0.0, 0.1), epsg_wkt(4326), n_rows=1)
    # A shear along x (b != 0) moves rows sideways, the band between two parallels keeps its area.
    sheared = pixel_area.pixel_areas_m2((0.0, 0.1, 0.05, 40.0, 0.0, -0.1), epsg_wkt(4326), n_rows=1)
    assert south_up[0] == pytest.approx(north_up[0], rel=1e-12)
    assert sheared[0] == pytest.approx(north_up[0], rel=1e-12)


def test_projected_metres_feet_and_rotation():
    utm = pixel_area.pixel_areas_m2((500000.0, 10.0, 0.0, 5e6, 0.0, -10.0), epsg_wkt(32633),
                                    n_rows=3)
    np.testing.assert_array_equal(utm, [100.0, 100.0, 100.0])
    for code in (2227, 2263):  # US survey feet
        feet = pixel_area.pixel_areas_m2((0.0, 10.0, 0.0, 0.0, 0.0, -10.0), epsg_wkt(code),
                                         n_rows=1)
        assert feet[0] == pytest.approx((10 * US_SURVEY_FOOT_M) ** 2, rel=1e-12)
    angle = math.radians(30)
    rotated_gt = (0.0, 10 * math.cos(angle), -5 * math.sin(angle), 0.0,
                  -10 * math.sin(angle), -5 * math.cos(angle))
    rotated = pixel_area.pixel_areas_m2(rotated_gt, epsg_wkt(32633), n_rows=1)
    assert rotated[0] == pytest.approx(50.0, rel=1e-12)


def test_local_crs_in_metres():
    areas = pixel_area.pixel_areas_m2((0.0, 2.0, 0.0, 0.0, 0.0, -3.0),
                                      'LOCAL_CS["site grid",UNIT["metre",1]]', n_rows=1)
    assert areas[0] == 6.0


@pytest.mark.parametrize(
    ("wkt", "gt", "fragment"),
    [
        ("", (0, 1, 0, 0, 0, -1), "no CRS"),
        ("   ", (0, 1, 0, 0, 0, -1), "no CRS"),
        ("not a crs", (0, 1, 0, 0, 0, -1), "cannot be read"),
        (epsg_wkt(4978), (0, 1, 0, 0, 0, -1), "neither geographic nor"),  # geocentric
        (epsg_wkt(4326), (0, 0.1, 0, 50, 0.01, -0.1), "rotated"),
        (epsg_wkt(32633), (0, 10, 0, 0, 0, 0), "zero area"),
        (epsg_wkt(32633), (0, 10, 0, 0, 0), "six finite numbers"),
        (epsg_wkt(32633), (0, float("nan"), 0, 0, 0, -1), "six finite numbers"),
    ],
)
def test_unusable_crs_or_geotransform_is_refused_with_a_fix(wkt, gt, fragment):
    with pytest.raises(InvalidInputError, match=fragment) as raised:
        pixel_area.pixel_areas_m2(gt, wkt, n_rows=1)
    message = str(raised.value)
    assert any(fix in message for fix in ("Assign Projection", "Warp", "georeference"))


def test_negative_rows_are_refused():
    with pytest.raises(InvalidInputError, match="non-negative"):
        pixel_area.pixel_areas_m2((0, 10, 0, 0, 0, -10), epsg_wkt(32633), n_rows=-1)


def test_describe_pixel_area():
    assert pixel_area.describe_pixel_area(
        (0, 10, 0, 0, 0, -10), epsg_wkt(32633), n_rows=5
    ) == "100 m² per pixel"
    text = pixel_area.describe_pixel_area((0, 0.001, 0, 60.0, 0, -0.001), epsg_wkt(4326), n_rows=10)
    areas = pixel_area.pixel_areas_m2((0, 0.001, 0, 60.0, 0, -0.001), epsg_wkt(4326), n_rows=10)
    assert f"{areas[0]:.6g} m² (row 0)" in text and f"{areas[-1]:.6g} m² (row 9)" in text
    assert "latitude" in text
