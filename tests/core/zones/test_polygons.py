"""Zone polygons from classified rasters, checked against independent oracles: scipy's
labelling, pixel edges counted, GDAL rasterizing the polygons back, GEOS validity and unions."""

import math

import numpy as np
import pytest
from helpers import rasterized, write_raster
from hypothesis import given, settings
from hypothesis import strategies as st
from osgeo import gdal, osr
from raster_clustering.core.errors import CancelledError, InvalidInputError
from raster_clustering.core.io.feature_stack import RasterInput
from raster_clustering.core.zones import zone_raster
from raster_clustering.core.zones.polygons import polygonize_zones
from raster_clustering.core.zones.smoothing import AREA_CHANGE_LIMIT
from scipy import ndimage
from zone_oracles import (
    assert_smoothed_map,
    boundary_edges,
    numbered_zones,
    read_features,
    union_of,
)

PIXEL_M = 10.0


def patchy_classes(seed, shape=(40, 50), n_classes=4, nodata_share=0.05, blur=True):
    """Classes 1..n in patches (a median-filtered random field), some nodata pixels (0)."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(1, n_classes + 1, shape).astype(np.uint8)
    if blur:
        classes = ndimage.median_filter(classes, 3)
    classes[rng.random(shape) < nodata_share] = 0
    return classes


def field_with_a_farmyard(shape=(60, 70)):
    """Classes in bands across a field whose outline is nodata, with a nodata hole (farmyard)."""
    rows, cols = np.indices(shape)
    classes = (1 + ((rows + 0.6 * cols + 3 * np.sin(cols / 4.0)) // 12) % 4).astype(np.uint8)
    classes[:3], classes[:, :2] = 0, 0
    classes[25:33, 30:41] = 0  # the farmyard
    return classes


@pytest.fixture
def classes_file(tmp_path):
    def make(classes, name="classes.tif", **options):
        return write_raster(tmp_path / name, classes, nodata=0, **options)

    return make


def zone_geometries(path):
    return [geometry for _, geometry in read_features(path)]


# --------------------------------------------------------------------------------- exact


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("extension", ["gpkg", "shp", "geojson"])
def test_exact_zones_rasterize_back_to_the_raster_and_are_valid(classes_file, tmp_path,
                                                                connectivity, extension):
    classes = patchy_classes(1)
    source = classes_file(classes)
    output = tmp_path / f"zones.{extension}"
    report = polygonize_zones(source, output, connectivity=connectivity)
    expected = numbered_zones(classes, classes > 0, connectivity)
    assert report.zones == report.features == expected.max()
    np.testing.assert_array_equal(rasterized(output, source, "zone"), expected)
    np.testing.assert_array_equal(rasterized(output, source, "class"), classes)
    geometries = zone_geometries(output)
    assert all(geometry.IsValid() for geometry in geometries)
    total = sum(geometry.GetArea() for geometry in geometries)
    assert total == pytest.approx(np.count_nonzero(classes) * PIXEL_M**2, rel=1e-12)
    assert union_of(geometries).GetArea() == pytest.approx(total, rel=1e-9)


def test_zones_touching_at_a_corner_are_one_valid_zone_with_8_connectivity(classes_file,
                                                                           tmp_path):
    # GDAL 3.6's 8-connected polygonizer writes these as rings touching themselves (invalid).
    classes = np.array([[1, 2, 1, 1],
                        [2, 1, 2, 1],
                        [1, 2, 1, 2],
                        [1, 1, 2, 1]], dtype=np.uint8)
    output = tmp_path / "zones.gpkg"
    report = polygonize_zones(classes_file(classes), output, connectivity=8)
    geometries = zone_geometries(output)
    assert report.zones == 2  # all the 1s, all the 2s: each touching itself at corners
    assert all(geometry.IsValid() for geometry in geometries)
    assert max(geometry.GetGeometryCount() for geometry in geometries) > 1
    assert union_of(geometries).GetArea() == pytest.approx(16 * PIXEL_M**2)
    np.testing.assert_array_equal(rasterized(output, classes_file(classes, "again.tif"),
                                            "zone"), numbered_zones(classes, classes > 0, 8))


def test_attributes_equal_statistics_computed_from_the_pixels(classes_file, tmp_path):
    classes = patchy_classes(2)
    rng = np.random.default_rng(3)
    values = rng.normal(0.5, 0.2, (2,) + classes.shape).astype(np.float32)
    values[1, 5:9, 5:9] = -9999  # nodata in the second feature only
    features = write_raster(tmp_path / "features.tif", values, nodata=-9999,
                            descriptions=["NDVI", "NDWI"])
    output = tmp_path / "zones.gpkg"
    polygonize_zones(classes_file(classes), output, features=[RasterInput(str(features))])
    zones = numbered_zones(classes, classes > 0, 8)
    edges = boundary_edges(zones)
    rows = {attributes["zone"]: attributes for attributes, _ in read_features(output)}
    assert sorted(rows) == list(range(1, zones.max() + 1))
    for zone, row in rows.items():
        inside = zones == zone
        assert row["class"] == classes[inside][0]
        assert row["area_m2"] == pytest.approx(inside.sum() * PIXEL_M**2)
        assert row["perim_m"] == pytest.approx(edges[zone] * PIXEL_M)
        in_class = classes == row["class"]
        valid = (values != -9999).all(axis=0)  # as k-means: a pixel counts where all are valid
        for band, name in enumerate(["NDVI", "NDWI"]):
            pixels = values[band][inside & valid].astype(np.float64)
            assert row[f"{name}_ctr"] == pytest.approx(values[band][in_class & valid].mean())
            if not len(pixels):
                assert row[f"{name}_mean"] is None
                continue
            assert row[f"{name}_mean"] == pytest.approx(pixels.mean())
            assert row[f"{name}_min"] == pytest.approx(pixels.min())
            assert row[f"{name}_max"] == pytest.approx(pixels.max())
            assert row[f"{name}_std"] == pytest.approx(pixels.std(), abs=1e-9)


def test_model_centres_fill_the_centre_fields(classes_file, tmp_path):
    classes = patchy_classes(4, n_classes=3)
    features = write_raster(tmp_path / "f.tif", classes.astype(np.float32) / 10)
    centres = np.array([[0.1], [0.2], [0.3], [0.4]])  # class 4 is absent
    output = tmp_path / "zones.gpkg"
    polygonize_zones(classes_file(classes), output, features=[RasterInput(str(features))],
                     centres=centres, feature_names=["index"])
    for attributes, _ in read_features(output):
        assert attributes["index_ctr"] == pytest.approx(centres[attributes["class"] - 1, 0])


def test_one_multipolygon_per_class(classes_file, tmp_path):
    classes = patchy_classes(5)
    source = classes_file(classes)
    output = tmp_path / "classes.shp"
    report = polygonize_zones(source, output, per_class=True, connectivity=4)
    features = read_features(output)
    present = sorted(set(classes[classes > 0].tolist()))
    assert report.features == len(features) == len(present)
    assert [attributes["class"] for attributes, _ in features] == present
    assert [attributes["zone"] for attributes, _ in features] == list(range(1, len(present) + 1))
    zones = numbered_zones(classes, classes > 0, 4)
    edges = boundary_edges(zones)
    for attributes, geometry in features:
        assert geometry.IsValid()
        in_class = classes == attributes["class"]
        assert geometry.GetArea() == pytest.approx(in_class.sum() * PIXEL_M**2)
        assert attributes["area_m2"] == pytest.approx(in_class.sum() * PIXEL_M**2)
        class_zones = np.unique(zones[in_class])
        assert attributes["perim_m"] == pytest.approx(edges[class_zones].sum() * PIXEL_M)
    np.testing.assert_array_equal(rasterized(output, source, "class"), classes)


def test_geographic_raster_has_true_areas_and_lengths(classes_file, tmp_path):
    wgs84 = osr.SpatialReference()
    wgs84.ImportFromEPSG(4326)
    classes = patchy_classes(6, shape=(30, 30))
    pixel = 0.001
    source = classes_file(classes, origin=(10.0, 60.5), pixel_size=pixel,
                          crs_wkt=wgs84.ExportToWkt())
    output = tmp_path / "zones.gpkg"
    polygonize_zones(source, output)
    zones = numbered_zones(classes, classes > 0, 8)
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    b = a * (1 - f)

    def q(lat):  # authalic q: the area between two parallels is b² Δλ (q2 - q1) / 2
        s = math.sin(math.radians(lat))
        e = math.sqrt(e2)
        return s / (1 - e2 * s * s) + math.atanh(e * s) / e

    row_area = [0.5 * b * b * math.radians(pixel) * abs(q(60.5 - r * pixel)
                                                         - q(60.5 - (r + 1) * pixel))
                for r in range(30)]
    rows = {attributes["zone"]: attributes for attributes, _ in read_features(output)}
    for zone, attributes in rows.items():
        inside = zones == zone
        expected = sum(row_area[r] * np.count_nonzero(inside[r]) for r in range(30))
        assert attributes["area_m2"] == pytest.approx(expected, rel=1e-9)
    # A zone's perimeter: parallels are N cos φ Δλ; meridian arcs integrated numerically.
    from scipy.integrate import quad

    def meridian(lat1, lat2):
        return quad(lambda p: a * (1 - e2) / (1 - e2 * math.sin(p) ** 2) ** 1.5,
                    math.radians(lat2), math.radians(lat1))[0]

    def parallel(lat):
        s = math.sin(math.radians(lat))
        return a / math.sqrt(1 - e2 * s * s) * math.cos(math.radians(lat)) * math.radians(pixel)

    padded = np.pad(zones, 1)
    for zone in list(rows)[:5]:
        inside = padded == zone
        horizontal = inside[1:, 1:-1] != inside[:-1, 1:-1]  # edges above pixel rows 0..30
        vertical = inside[1:-1, 1:] != inside[1:-1, :-1]
        expected = sum(np.count_nonzero(horizontal[r]) * parallel(60.5 - r * pixel)
                       for r in range(31))
        expected += sum(np.count_nonzero(vertical[r]) * meridian(60.5 - r * pixel,
                                                                 60.5 - (r + 1) * pixel)
                        for r in range(30))
        assert rows[zone]["perim_m"] == pytest.approx(expected, rel=1e-9)


# ----------------------------------------------------------------------------- smoothing


@pytest.mark.parametrize("level", [1, 2, 3])
@pytest.mark.parametrize("connectivity", [4, 8])
def test_smoothed_zones_keep_the_map(classes_file, tmp_path, level, connectivity):
    classes = field_with_a_farmyard()
    source = classes_file(classes)
    polygonize_zones(source, tmp_path / "exact.gpkg", connectivity=connectivity)
    output = tmp_path / "smooth.gpkg"
    report = polygonize_zones(source, output, connectivity=connectivity, smoothing=level)
    assert_smoothed_map(output, tmp_path / "exact.gpkg", source, connectivity=connectivity,
                        area_limit=AREA_CHANGE_LIMIT)
    assert report.smoothed_arcs > 0.8 * report.shared_arcs
    assert report.area_change_max_percent <= 100 * AREA_CHANGE_LIMIT
    # Points stay within 0.45 px of the pixel corners: no pixel centre changes zone.
    np.testing.assert_array_equal(rasterized(output, source, "class"), classes)
    # Yet the boundaries moved: each zone differs from its exact polygon.
    exact = zone_geometries(tmp_path / "exact.gpkg")
    moved = [geometry.SymDifference(original).GetArea() / original.GetArea()
             for geometry, original in zip(zone_geometries(output), exact)]
    assert np.median(moved) > 0.005


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), level=st.integers(1, 3),
       connectivity=st.sampled_from([4, 8]), blur=st.booleans())
def test_property_smoothing_never_breaks_the_map(tmp_path_factory, seed, level, connectivity,
                                                 blur):
    folder = tmp_path_factory.mktemp("smooth")
    classes = patchy_classes(seed, shape=(24, 31), blur=blur, nodata_share=0.1)
    source = write_raster(folder / "classes.tif", classes, nodata=0)
    polygonize_zones(source, folder / "exact.gpkg", connectivity=connectivity)
    output = folder / "smooth.gpkg"
    polygonize_zones(source, output, connectivity=connectivity, smoothing=level)
    assert_smoothed_map(output, folder / "exact.gpkg", source, connectivity=connectivity,
                        area_limit=AREA_CHANGE_LIMIT)


def test_smoothing_is_identical_in_strips(classes_file, tmp_path, monkeypatch):
    classes = field_with_a_farmyard()
    source = classes_file(classes)
    (tmp_path / "whole").mkdir()
    (tmp_path / "strips").mkdir()
    polygonize_zones(source, tmp_path / "whole" / "zones.geojson", smoothing=2)
    from raster_clustering.core.io import rasters

    monkeypatch.setattr(rasters, "BLOCK_TARGET_PIXELS", 70 * 2 * 7)  # strips of 7 rows
    assert len(zone_raster.ClassifiedRaster(str(source)).strips()) == 9
    polygonize_zones(source, tmp_path / "strips" / "zones.geojson", smoothing=2)
    assert ((tmp_path / "whole" / "zones.geojson").read_text()
            == (tmp_path / "strips" / "zones.geojson").read_text())


# ------------------------------------------------------------------- refusals and cancelling


def test_bad_inputs_are_refused_and_nothing_is_written(classes_file, tmp_path):
    classes = patchy_classes(7)
    source = classes_file(classes)
    floats = write_raster(tmp_path / "float.tif", classes.astype(np.float32))
    many = write_raster(tmp_path / "many.tif",
                        np.arange(60 * 1000, dtype=np.int32).reshape(60, 1000))
    before = set(tmp_path.iterdir())
    cases = [
        (dict(classes_path=floats), "Float32"),
        (dict(classes_path=many), "distinct values"),
        (dict(smoothing=-1), "SMOOTHING"),
        (dict(smoothing=4), "SMOOTHING"),
        (dict(connectivity=6), "CONNECTIVITY"),
        (dict(band=2), "BAND 2 does not exist"),
        (dict(output_path=tmp_path / "missing" / "zones.gpkg"), "does not exist"),
        (dict(output_path=tmp_path / "zones.csv"), r"\.gpkg"),
        (dict(output_path=source), r"\.gpkg"),
    ]
    for overrides, message in cases:
        arguments = dict(classes_path=source, output_path=tmp_path / "zones.gpkg") | overrides
        with pytest.raises(InvalidInputError, match=message):
            polygonize_zones(arguments.pop("classes_path"), arguments.pop("output_path"),
                             **arguments)
    assert set(tmp_path.iterdir()) == before


@pytest.mark.parametrize("smoothing", [0, 2])
def test_cancelling_leaves_nothing_behind(classes_file, tmp_path, smoothing):
    source = classes_file(patchy_classes(8, shape=(200, 200)))
    before = set(tmp_path.iterdir())
    calls = []

    def is_cancelled():
        calls.append(1)
        return len(calls) > 6

    with pytest.raises(CancelledError):
        polygonize_zones(source, tmp_path / "zones.shp", smoothing=smoothing,
                         is_cancelled=is_cancelled)
    assert set(tmp_path.iterdir()) == before


def test_an_output_is_replaced_whole(classes_file, tmp_path):
    source = classes_file(patchy_classes(9))
    output = tmp_path / "zones.shp"
    polygonize_zones(source, output, per_class=True)
    polygonize_zones(source, output)
    assert len(read_features(output)) > 4
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "classes.tif", "zones.cpg", "zones.dbf", "zones.prj", "zones.shp", "zones.shx"]


def test_count_classes_stops_past_the_limit(classes_file, tmp_path):
    assert zone_raster.count_classes(str(classes_file(patchy_classes(10)))) == 4
    many = write_raster(tmp_path / "many.tif", np.arange(3000, dtype=np.int32).reshape(30, 100))
    assert zone_raster.count_classes(str(many)) == zone_raster.MAX_CLASSES + 1
    assert gdal.Open(str(many)) is not None
