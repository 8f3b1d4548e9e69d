"""rasterclustering:sieve run through processing.run, checked against scipy and handbook areas."""

import math
import re

import numpy as np
import pytest
from helpers import (
    assert_metadata_complete,
    label_regions,
    read_raster,
    run_algorithm,
    small_regions_with_neighbours,
    styled_layer,
)
from osgeo import gdal, osr

ALGORITHM = "rasterclustering:sieve"
PARAMETERS = ["INPUT", "BAND", "MIN_AREA", "CONNECTIVITY", "OUTPUT"]
NUMBER_OUTPUTS = ["PIXEL_THRESHOLD_MIN", "PIXEL_THRESHOLD_MAX", "PIXEL_AREA_MIN_M2",
                  "PIXEL_AREA_MAX_M2", "CHANGED_PIXELS"]
US_SURVEY_FOOT_M = 1200 / 3937  # the handbook definition


def run(parameters, output, feedback=None):
    return run_algorithm(ALGORITHM, {"OUTPUT": str(output), **parameters}, feedback)



@pytest.fixture(scope="module")
def ndvi_classes(provider, scene, tmp_path_factory):
    """rasterclustering:kmeans of the synthetic scene's NDVI: 5 classes, nodata 0, a .qml."""
    folder = tmp_path_factory.mktemp("kmeans")
    run_algorithm("rasterclustering:kmeans", {
        "INPUT": [str(scene.ndvi)], "CLUSTERS": 5, "OUTPUT": str(folder / "zones.tif"),
        "CENTROIDS": str(folder / "zones.json"), "STATISTICS": "TEMPORARY_OUTPUT"})
    assert (folder / "zones.qml").exists()
    return folder / "zones.tif"


# --- independent oracle: scipy's connected components -------------------------------------------

def assert_sieved(before, after, valid, *, connectivity, pixel_area_m2, min_area_m2):
    """The core's documented guarantees, checked from scratch; returns the changed pixel count."""
    sizes = dict(connectivity=connectivity, min_size=min_area_m2 / pixel_area_m2)
    assert len(small_regions_with_neighbours(before, valid, **sizes)) > 0, \
        "the input must have small regions next to others, or the test proves nothing"
    np.testing.assert_array_equal(after[~valid], before[~valid])
    labels = label_regions(before, valid, connectivity)
    large = np.bincount(labels.ravel()) * pixel_area_m2 >= min_area_m2 * (1 - 1e-9)
    kept = large[labels] & valid
    np.testing.assert_array_equal(after[kept], before[kept])
    assert len(small_regions_with_neighbours(after, valid, **sizes)) == 0
    return int(np.count_nonzero(after[valid] != before[valid]))


# --- GDAL and QGIS views of the files -------------------------------------------------------------

def band_properties(path, band=1):
    dataset = gdal.Open(str(path))
    raster_band = dataset.GetRasterBand(band)
    colours = raster_band.GetColorTable()
    return {
        "type": raster_band.DataType,
        "size": (dataset.RasterXSize, dataset.RasterYSize),
        "geotransform": dataset.GetGeoTransform(),
        "crs": dataset.GetProjection(),
        "nodata": raster_band.GetNoDataValue(),
        "colours": None if colours is None else [colours.GetColorEntry(i)
                                                 for i in range(colours.GetCount())],
        "categories": raster_band.GetCategoryNames(),
        "description": raster_band.GetDescription(),
    }


def paletted_classes(layer):
    from qgis.core import QgsPalettedRasterRenderer

    renderer = layer.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer), type(renderer)
    return [(item.value, item.color.getRgb(), item.label) for item in renderer.classes()]


def style_of(raster_path):
    """The classes of the .qml beside a raster, loaded explicitly onto a plain layer."""
    return paletted_classes(styled_layer(raster_path))


# --- the synthetic scene's k-means classes ------------------------------------------------------

def test_metadata_is_complete(provider):
    algorithm = provider.algorithm("sieve")
    assert_metadata_complete(algorithm, display_name="Minimum-area sieve", parameters=PARAMETERS,
                             outputs=["OUTPUT", *NUMBER_OUTPUTS])
    assert "1000–999999 m²" in algorithm.shortHelpString()
    assert algorithm.canExecute()[0]


@pytest.mark.parametrize("connectivity", [4, 8])
def test_kmeans_classes_of_the_scene_are_sieved_to_2000_m2(provider, ndvi_classes, tmp_path,
                                                           recorder, connectivity):
    output = tmp_path / f"sieved{connectivity}.tif"
    result = run({"INPUT": str(ndvi_classes), "MIN_AREA": 2000, "CONNECTIVITY": connectivity},
                 output, recorder)
    assert result["OUTPUT"] == str(output)
    before, after = read_raster(ndvi_classes), read_raster(output)
    valid = before != 0
    assert not valid.all(), "the scene has nodata"
    changed = assert_sieved(before, after, valid, connectivity=connectivity, pixel_area_m2=100.0,
                            min_area_m2=2000)
    assert result["CHANGED_PIXELS"] == changed > 0
    assert (result["PIXEL_THRESHOLD_MIN"], result["PIXEL_THRESHOLD_MAX"]) == (20, 20)
    assert result["PIXEL_AREA_MIN_M2"] == result["PIXEL_AREA_MAX_M2"] == pytest.approx(100.0)
    assert "Pixel area: 100 m² per pixel." in recorder.infos
    assert any(f"(20 pixels, {connectivity}-connected)" in line for line in recorder.infos)
    assert not recorder.warnings

    assert band_properties(output) == band_properties(ndvi_classes)
    assert band_properties(output)["categories"][1].startswith("1 · ")
    assert style_of(output) == style_of(ndvi_classes)
    assert len(style_of(output)) == 5


def test_8_connectivity_joins_a_diagonal_line_that_4_connectivity_removes(provider, tmp_path,
                                                                         make_raster):
    classes = np.ones((40, 40), dtype=np.uint8)
    diagonal = np.arange(5, 35)  # 30 pixels touching only by their corners
    classes[diagonal, diagonal] = 2
    raster = make_raster("diagonal.tif", classes)
    four = run({"INPUT": str(raster), "MIN_AREA": 2000, "CONNECTIVITY": 4}, tmp_path / "four.tif")
    eight = run({"INPUT": str(raster), "MIN_AREA": 2000, "CONNECTIVITY": 8}, tmp_path / "8.tif")
    assert np.all(read_raster(four["OUTPUT"]) == 1) and four["CHANGED_PIXELS"] == 30
    np.testing.assert_array_equal(read_raster(eight["OUTPUT"]), classes)
    assert eight["CHANGED_PIXELS"] == 0


def test_band_two_of_a_multiband_raster(provider, tmp_path, make_raster):
    second = np.ones((30, 30), dtype=np.int16)
    second[10:14, 10:14] = 7  # 16 pixels: under 20
    second[20:25, 20:25] = 9  # 25 pixels: kept
    raster = make_raster("two.tif", np.stack([np.full((30, 30), 5, np.int16), second]),
                         nodata=-1)
    result = run({"INPUT": str(raster), "BAND": 2, "MIN_AREA": 2000, "CONNECTIVITY": 4},
                 tmp_path / "band2.tif")
    expected = second.copy()
    expected[10:14, 10:14] = 1
    np.testing.assert_array_equal(read_raster(result["OUTPUT"]), expected)
    assert gdal.Open(result["OUTPUT"]).RasterCount == 1
    assert band_properties(result["OUTPUT"])["type"] == gdal.GDT_Int16
    assert band_properties(result["OUTPUT"])["nodata"] == -1
    assert not (tmp_path / "band2.qml").exists(), "no paletted style to copy"


# --- from m² to pixels in every kind of CRS -----------------------------------------------------

def equal_area_pixel_m2(lat_top, pixel_deg, n_rows):
    """m² of a pixel in each row of a WGS 84 grid, measured in EPSG:6933 (cylindrical equal
    area on the WGS 84 ellipsoid, computed by PROJ): an oracle independent of the plugin."""
    geographic, equal_area = osr.SpatialReference(), osr.SpatialReference()
    geographic.ImportFromEPSG(4326)
    equal_area.ImportFromEPSG(6933)
    geographic.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    transform = osr.CoordinateTransformation(geographic, equal_area)
    edges = [transform.TransformPoint(0.0, lat_top - row * pixel_deg) for row in range(n_rows + 1)]
    width = transform.TransformPoint(pixel_deg, 0.0)[0] - transform.TransformPoint(0.0, 0.0)[0]
    return np.array([width * (edges[row][1] - edges[row + 1][1]) for row in range(n_rows)])


CRS_CASES = {
    # name: (raster options, m² of a pixel in each row by the handbook / PROJ, pixels for 2000 m²)
    "utm_10m": (dict(epsg=32633, pixel_size=10.0), lambda rows: np.full(rows, 100.0), 20),
    "california_10ftUS": (dict(epsg=2227, pixel_size=10.0, origin=(6000000.0, 2000000.0)),
                          lambda rows: np.full(rows, (10 * US_SURVEY_FOOT_M) ** 2), 216),
    "new_york_10ftUS": (dict(epsg=2263, pixel_size=10.0, origin=(1000000.0, 200000.0)),
                        lambda rows: np.full(rows, (10 * US_SURVEY_FOOT_M) ** 2), 216),
    "wgs84_equator": (dict(epsg=4326, pixel_size=1e-4, origin=(10.0, 0.002)),
                      lambda rows: equal_area_pixel_m2(0.002, 1e-4, rows), 17),
    "wgs84_60N": (dict(epsg=4326, pixel_size=1e-4, origin=(10.0, 60.002)),
                  lambda rows: equal_area_pixel_m2(60.002, 1e-4, rows), 33),
}


def pixels_to_reach(min_area_m2, row_areas, first_row, width):
    """Fewest pixels, filled `width` wide row by row from `first_row`, reaching MIN_AREA."""
    total, count = 0.0, 0
    while total < min_area_m2:
        total += row_areas[first_row + count // width]
        count += 1
    below = total - row_areas[first_row + (count - 1) // width]
    assert 1 - below / min_area_m2 > 1e-6, "too close to call"
    assert total == min_area_m2 or total / min_area_m2 - 1 > 1e-6, "too close to call"
    return count


def block(classes, value, first_row, first_col, width, n_pixels):
    """Paint a compact region of `n_pixels`, `width` wide, filled row by row."""
    for index in range(n_pixels):
        classes[first_row + index // width, first_col + index % width] = value


@pytest.mark.parametrize("case", list(CRS_CASES))
def test_min_area_becomes_the_right_pixel_count_in_each_crs(provider, tmp_path, make_raster,
                                                            recorder, case):
    options, row_areas_of, expected_pixels = CRS_CASES[case]
    rows, cols, width, min_area_m2 = 60, 100, 6, 2000.0
    row_areas = row_areas_of(rows)
    classes = np.ones((rows, cols), dtype=np.uint8)
    classes[:, -1] = 0  # a nodata column
    keep = pixels_to_reach(min_area_m2, row_areas, 10, width)
    assert keep == expected_pixels
    block(classes, 2, 10, 5, width, keep - 1)  # just under MIN_AREA: merged
    block(classes, 3, 10, 40, width, keep)  # just over: kept
    raster = make_raster(f"{case}.tif", classes, nodata=0, **options)
    result = run({"INPUT": str(raster), "MIN_AREA": min_area_m2, "CONNECTIVITY": 8},
                 tmp_path / f"{case}_sieved.tif", recorder)

    expected = classes.copy()
    expected[expected == 2] = 1
    np.testing.assert_array_equal(read_raster(result["OUTPUT"]), expected)
    assert result["CHANGED_PIXELS"] == keep - 1
    assert result["PIXEL_THRESHOLD_MIN"] == math.ceil(min_area_m2 / row_areas.max())
    assert result["PIXEL_THRESHOLD_MAX"] == math.ceil(min_area_m2 / row_areas.min())
    assert result["PIXEL_AREA_MIN_M2"] == pytest.approx(row_areas.min(), rel=1e-6)
    assert result["PIXEL_AREA_MAX_M2"] == pytest.approx(row_areas.max(), rel=1e-6)
    pixel_area_line = next(line for line in recorder.infos if line.startswith("Pixel area"))
    logged_m2 = float(re.match(r"Pixel area: ([0-9.e+-]+) m²", pixel_area_line).group(1))
    assert logged_m2 == pytest.approx(row_areas[0], rel=1e-5)
    assert ("varying with latitude" in pixel_area_line) == (options["epsg"] == 4326)


def test_a_pixel_at_60_degrees_covers_about_half_the_area_of_one_at_the_equator(
        provider, tmp_path, make_raster):
    classes = np.ones((60, 100), dtype=np.uint8)
    results = {}
    for latitude in (0.0, 60.0):
        raster = make_raster(f"lat{latitude:.0f}.tif", classes, epsg=4326, pixel_size=1e-4,
                             origin=(10.0, latitude + 0.003))
        results[latitude] = run({"INPUT": str(raster), "MIN_AREA": 20000},
                                tmp_path / f"{latitude:.0f}.tif")
        oracle = equal_area_pixel_m2(latitude + 0.003, 1e-4, 60)
        assert results[latitude]["PIXEL_THRESHOLD_MAX"] == math.ceil(20000 / oracle.min())
    # Handbook: a cell's area is a²(1 − e²)·cos φ / (1 − e² sin² φ)² · Δφ·Δλ on the ellipsoid.
    e2 = 0.00669437999014  # WGS 84
    phi = math.radians(60.0)
    ratio = math.cos(phi) / (1 - e2 * math.sin(phi) ** 2) ** 2
    area_ratio = results[60.0]["PIXEL_AREA_MAX_M2"] / results[0.0]["PIXEL_AREA_MAX_M2"]
    assert area_ratio == pytest.approx(ratio, rel=1e-4)
    pixels_ratio = results[60.0]["PIXEL_THRESHOLD_MAX"] / results[0.0]["PIXEL_THRESHOLD_MAX"]
    assert 1.95 < pixels_ratio < 2


# --- real data ----------------------------------------------------------------------------------

def test_kmeans_classes_of_rgb_byte_keep_their_nodata(provider, shared_data, tmp_path):
    import processing

    image = shared_data / "misc" / "RGB.byte.tif"
    classes = processing.run("rasterclustering:kmeans", {
        "INPUT": [str(image)], "CLUSTERS": 5, "OUTPUT": str(tmp_path / "rgb_classes.tif"),
        "CENTROIDS": str(tmp_path / "rgb.json"), "STATISTICS": "TEMPORARY_OUTPUT"})["OUTPUT"]
    geotransform = gdal.Open(classes).GetGeoTransform()
    pixel_area_m2 = abs(geotransform[1] * geotransform[5])
    min_area_m2 = 4.5 * pixel_area_m2  # 5 pixels
    result = run({"INPUT": classes, "MIN_AREA": min_area_m2, "CONNECTIVITY": 4},
                 tmp_path / "rgb_sieved.tif")
    before, after = read_raster(classes), read_raster(result["OUTPUT"])
    nodata = np.any(gdal.Open(str(image)).ReadAsArray() == 0, axis=0)
    assert nodata.any() and np.array_equal(before == 0, nodata)
    np.testing.assert_array_equal(after == 0, nodata)
    changed = assert_sieved(before, after, ~nodata, connectivity=4, pixel_area_m2=pixel_area_m2,
                            min_area_m2=min_area_m2)
    assert result["CHANGED_PIXELS"] == changed > 0
    assert result["PIXEL_THRESHOLD_MIN"] == 5
    assert style_of(tmp_path / "rgb_sieved.tif") == style_of(tmp_path / "rgb_classes.tif")


# --- styles -------------------------------------------------------------------------------------

def test_a_project_layer_gives_its_own_paletted_style(provider, tmp_path, make_raster,
                                                      qgis_new_project):
    from qgis.core import QgsPalettedRasterRenderer, QgsProject, QgsRasterLayer
    from qgis.PyQt.QtGui import QColor

    classes = np.ones((30, 30), dtype=np.uint8)
    classes[5:8, 5:8] = 2
    classes[15:30, 15:30] = 3
    raster = make_raster("styled.tif", classes)
    layer = QgsRasterLayer(str(raster), "my classes", "gdal")
    palette = [QgsPalettedRasterRenderer.Class(1, QColor(10, 20, 30), "meadow"),
               QgsPalettedRasterRenderer.Class(2, QColor(200, 0, 0, 128), "barn"),
               QgsPalettedRasterRenderer.Class(3, QColor(0, 0, 250), "pond")]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, palette))
    QgsProject.instance().addMapLayer(layer)
    result = run({"INPUT": layer.id(), "MIN_AREA": 2000}, tmp_path / "project.tif")
    assert style_of(tmp_path / "project.tif") == [
        (1.0, (10, 20, 30, 255), "meadow"), (2.0, (200, 0, 0, 128), "barn"),
        (3.0, (0, 0, 250, 255), "pond")]
    assert np.all(read_raster(result["OUTPUT"])[5:8, 5:8] == 1)


def test_a_style_of_another_band_is_not_copied(provider, tmp_path, make_raster,
                                               qgis_new_project):
    from qgis.core import QgsPalettedRasterRenderer, QgsProject, QgsRasterLayer
    from qgis.PyQt.QtGui import QColor

    raster = make_raster("bands.tif", np.ones((2, 20, 20), dtype=np.uint8))
    layer = QgsRasterLayer(str(raster), "two bands", "gdal")
    layer.setRenderer(QgsPalettedRasterRenderer(
        layer.dataProvider(), 1, [QgsPalettedRasterRenderer.Class(1, QColor(1, 2, 3), "one")]))
    QgsProject.instance().addMapLayer(layer)
    run({"INPUT": layer.id(), "BAND": 2, "MIN_AREA": 2000}, tmp_path / "band2.tif")
    assert (tmp_path / "band2.tif").exists() and not (tmp_path / "band2.qml").exists()


# --- areas that make the sieve do nothing -------------------------------------------------------

def test_min_area_under_one_pixel_passes_the_classes_through(provider, tmp_path, make_raster,
                                                             recorder):
    classes = np.random.default_rng(0).integers(1, 4, (25, 25)).astype(np.uint8)
    raster = make_raster("speckle.tif", classes)
    result = run({"INPUT": str(raster), "MIN_AREA": 50}, tmp_path / "same.tif", recorder)
    np.testing.assert_array_equal(read_raster(result["OUTPUT"]), classes)
    assert result["CHANGED_PIXELS"] == 0 and result["PIXEL_THRESHOLD_MAX"] == 1
    assert any("not larger than one pixel" in warning for warning in recorder.warnings)


def test_min_area_over_the_whole_raster_leaves_one_class(provider, tmp_path, make_raster,
                                                         recorder):
    classes = np.random.default_rng(1).integers(1, 4, (25, 25)).astype(np.uint8)
    raster = make_raster("speckle.tif", classes)
    result = run({"INPUT": str(raster), "MIN_AREA": 25 * 25 * 100 + 1}, tmp_path / "all.tif",
                 recorder)
    after = read_raster(result["OUTPUT"])
    assert len(np.unique(after)) == 1 and after[0, 0] in (1, 2, 3)
    assert result["CHANGED_PIXELS"] == int(np.count_nonzero(after != classes))
    assert any("exceeds the whole raster" in warning and "single class" in warning
               for warning in recorder.warnings)


# --- errors leave nothing behind ----------------------------------------------------------------

@pytest.mark.parametrize("parameters, message", [
    ({"MIN_AREA": 0}, "MIN_AREA must be an area in m² greater than 0, not 0"),
    ({"MIN_AREA": -5}, "MIN_AREA must be an area in m² greater than 0, not -5"),
    ({"MIN_AREA": "lots"}, "MIN_AREA must be an area in m² greater than 0"),
    ({"CONNECTIVITY": 5}, "CONNECTIVITY must be 4 or 8, not 5"),
    ({"CONNECTIVITY": 6}, "CONNECTIVITY must be 4 or 8, not 6"),
    ({"BAND": 2}, "BAND 2 does not exist"),
])
def test_bad_parameters_are_refused(provider, tmp_path, make_raster, parameters, message):
    from qgis.core import QgsProcessingException

    raster = make_raster("classes.tif", np.ones((10, 10), dtype=np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(QgsProcessingException, match=message):
        run({"INPUT": str(raster), "MIN_AREA": 2000, **parameters}, out / "o.tif")
    assert not list(out.iterdir())


@pytest.mark.parametrize("array, options, message", [
    (np.ones((10, 10), dtype=np.float32), {}, "not integer classes"),
    (np.ones((10, 10), dtype=np.uint8), {"epsg": 4978}, "neither geographic nor measured in a "
                                                        "linear unit"),
    (np.ones((10, 10), dtype=np.uint8), {"epsg": None}, "has no CRS"),
])
def test_rasters_that_cannot_be_sieved_are_refused(provider, tmp_path, make_raster, array,
                                                   options, message):
    from qgis.core import QgsProcessingException

    raster = make_raster("input.tif", array, **options)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(QgsProcessingException, match=message):
        run({"INPUT": str(raster), "MIN_AREA": 2000}, out / "o.tif")
    assert not list(out.iterdir())


def test_a_layer_gdal_cannot_read_is_refused(provider, tmp_path, qgis_new_project):
    from qgis.core import QgsProcessingException, QgsProject, QgsRasterLayer

    tiles = QgsRasterLayer("type=xyz&url=http://127.0.0.1:9/%7Bz%7D/%7Bx%7D/%7By%7D.png",
                           "tiles", "wms")
    assert tiles.isValid()
    QgsProject.instance().addMapLayer(tiles)
    with pytest.raises(QgsProcessingException, match="'wms' provider"):
        run({"INPUT": tiles.id(), "MIN_AREA": 2000}, tmp_path / "o.tif")
    assert not (tmp_path / "o.tif").exists()


def test_output_over_the_input_is_refused(provider, make_raster):
    from qgis.core import QgsProcessingException

    classes = np.ones((10, 10), dtype=np.uint8)
    classes[2, 2] = 2
    raster = make_raster("classes.tif", classes)
    before = raster.read_bytes()
    with pytest.raises(QgsProcessingException, match="one of the inputs"):
        run({"INPUT": str(raster), "MIN_AREA": 2000}, raster)
    assert raster.read_bytes() == before


@pytest.mark.parametrize("geographic", [False, True])
def test_cancelling_leaves_nothing(provider, tmp_path, make_raster, geographic):
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    classes = np.random.default_rng(2).integers(1, 6, (400, 400)).astype(np.uint8)
    options = dict(epsg=4326, pixel_size=1e-4, origin=(10.0, 60.0)) if geographic else {}
    raster = make_raster("speckle.tif", classes, **options)
    out = tmp_path / "out"
    out.mkdir()
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda percent: percent > 5 and feedback.cancel())
    with pytest.raises(QgsProcessingException, match="cancelled"):
        run({"INPUT": str(raster), "MIN_AREA": 2000}, out / "o.tif", feedback)
    assert feedback.isCanceled()
    assert not list(out.iterdir())
