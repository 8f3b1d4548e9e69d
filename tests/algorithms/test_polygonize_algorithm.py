"""Zone polygons through processing.run on real data: k-means zones of the Aberystwyth
Sentinel-2 subset in its AOI with a hole (ZONES on kmeans), then rasterclustering:polygonize on
those classes, exact and smoothed; the NAIP dates; the dialogs' styling.

Oracles: GDAL rasterizing the polygons back, scipy's labelling of the classes, the NDVI pixels
read by GDAL, GEOS validity and unions, the classes' own paletted style."""

import json

import numpy as np
import pytest
from helpers import (
    assert_metadata_complete,
    loading_output,
    rasterized,
    read_raster,
    run_algorithm,
    write_raster,
)
from osgeo import gdal
from zone_oracles import (
    assert_smoothed_map,
    hole_count,
    numbered_zones,
    read_features,
    union_of,
)

pytestmark = [pytest.mark.shared_data, pytest.mark.usefixtures("provider")]

ALGORITHM = "rasterclustering:polygonize"
PARAMETERS = ["INPUT", "BAND", "FEATURES", "CONNECTIVITY", "SMOOTHING", "ZONES_PER_CLASS",
              "OUTPUT"]
S2 = "sentinel2/S2_20210527_Aberystwyth_SR_10band_EPSG27700_10m.tif"
AOI_WITH_HOLE = "sentinel2/aber_osgb_single_poly_hole.geojson"
PIXEL_M2 = 100.0


def values_on(raster, like):
    """`raster`'s band 1 on the grid of `like` (GDAL's nearest-neighbour warp)."""
    grid = gdal.Open(str(like))
    x0, dx, _, y0, _, dy = grid.GetGeoTransform()
    warped = gdal.Warp("", str(raster), format="MEM", dstSRS=grid.GetProjection(),
                       outputBounds=(x0, y0 + grid.RasterYSize * dy, x0 + grid.RasterXSize * dx,
                                     y0), width=grid.RasterXSize, height=grid.RasterYSize,
                       resampleAlg="near")
    return warped.GetRasterBand(1).ReadAsArray()


def categories(path):
    """(value, RGB, label) of the categorized renderer QGIS opens the file with."""
    from qgis.core import QgsCategorizedSymbolRenderer, QgsVectorLayer

    layer = QgsVectorLayer(str(path), "zones", "ogr")
    assert layer.isValid()
    renderer = layer.renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer), type(renderer)
    assert renderer.classAttribute() == "class"
    return [(int(c.value()), c.symbol().color().getRgb()[:3], c.label())
            for c in renderer.categories()]


def raster_classes_as_shown(path):
    """(value, RGB, label) of the classes raster's paletted style (its .qml)."""
    from qgis.core import QgsRasterLayer

    layer = QgsRasterLayer(str(path), "classes", "gdal")
    return [(int(item.value), item.color.getRgb()[:3], item.label)
            for item in layer.renderer().classes()]


@pytest.fixture(scope="module")
def aber(shared_data, tmp_path_factory):
    """k-means zones (5 classes, MIN_AREA 2000 m², 8-connected) of the Sentinel-2 NDVI in the
    AOI with a hole, with their zone polygons (ZONES, GeoPackage)."""
    folder = tmp_path_factory.mktemp("aber")
    run_algorithm("rasterclustering:bandmath", {"INPUT": [str(shared_data / S2)],
                                       "EXPRESSION": "(B7 - B3) / (B7 + B3)",
                                       "OUTPUT": str(folder / "ndvi.tif")})
    ndvi = gdal.Open(str(folder / "ndvi.tif"), gdal.GA_Update)
    ndvi.GetRasterBand(1).SetDescription("NDVI")  # red = B3, NIR = B7 of this subset
    ndvi = None
    result = run_algorithm("rasterclustering:kmeans", {
        "INPUT": [str(folder / "ndvi.tif")], "CLUSTERS": 5,
        "AOI": str(shared_data / AOI_WITH_HOLE), "MIN_AREA": 2000, "CONNECTIVITY": 8,
        "OUTPUT": str(folder / "classes.tif"), "CENTROIDS": str(folder / "classes.json"),
        "ZONES": str(folder / "zones.gpkg")})
    assert result["ZONES"] == str(folder / "zones.gpkg")
    return folder


def test_metadata_is_complete(provider):
    algorithm = provider.algorithm("polygonize")
    assert_metadata_complete(algorithm, display_name="Classes to zone polygons",
                             parameters=PARAMETERS,
                             outputs=["OUTPUT", "FEATURE_COUNT", "AREA_CHANGE_MAX"])
    assert algorithm.group() == "Post-processing"
    assert algorithm.parameterDefinition("SMOOTHING").flags() & \
        algorithm.parameterDefinition("SMOOTHING").FlagAdvanced
    assert algorithm.canExecute()[0]


def test_kmeans_zones_are_exact_with_attributes_from_the_pixels(aber):
    classes = read_raster(aber / "classes.tif")
    valid = classes > 0
    zones = numbered_zones(classes, valid, 8)
    polygons = aber / "zones.gpkg"
    np.testing.assert_array_equal(rasterized(polygons, aber / "classes.tif", "zone"), zones)
    np.testing.assert_array_equal(rasterized(polygons, aber / "classes.tif", "class"), classes)
    features = read_features(polygons)
    assert len(features) == zones.max() > 50
    assert all(geometry.IsValid() for _, geometry in features)
    total = sum(geometry.GetArea() for _, geometry in features)
    assert total == pytest.approx(valid.sum() * PIXEL_M2, rel=1e-12)
    union = union_of([geometry for _, geometry in features])
    assert union.GetArea() == pytest.approx(total, rel=1e-9)
    assert hole_count(union) >= 1  # the AOI's hole
    ndvi = values_on(aber / "ndvi.tif", aber / "classes.tif").astype(np.float64)
    centres = dict(json.loads((aber / "classes.json").read_text())["NDVI"])
    for attributes, geometry in features:
        inside = zones == attributes["zone"]
        assert attributes["class"] == classes[inside][0]
        assert attributes["area_m2"] == pytest.approx(inside.sum() * PIXEL_M2)
        assert attributes["perim_m"] == pytest.approx(geometry.Boundary().Length())
        assert attributes["NDVI_ctr"] == pytest.approx(centres[attributes["class"]][0])
        assert attributes["NDVI_mean"] == pytest.approx(ndvi[inside].mean(), rel=1e-6)
        assert attributes["NDVI_min"] == pytest.approx(ndvi[inside].min(), rel=1e-6)
        assert attributes["NDVI_max"] == pytest.approx(ndvi[inside].max(), rel=1e-6)
        assert attributes["NDVI_std"] == pytest.approx(ndvi[inside].std(), rel=1e-5, abs=1e-9)


def test_kmeans_zones_open_styled_like_the_classes_with_aliases(aber):
    from qgis.core import QgsVectorLayer

    assert categories(aber / "zones.gpkg") == raster_classes_as_shown(aber / "classes.tif")
    layer = QgsVectorLayer(str(aber / "zones.gpkg"), "zones", "ogr")
    aliases = {field.name(): layer.attributeAlias(index)
               for index, field in enumerate(layer.fields())}
    assert aliases["NDVI_mean"] == "NDVI mean" and aliases["perim_m"] == "perimeter (m)"
    assert all(len(name) <= 10 for name in aliases)
    assert not (aber / "zones.qml").exists()  # the GeoPackage keeps its own style


@pytest.mark.parametrize("extension, smoothing, per_class", [
    ("shp", 2, False), ("geojson", 3, False), ("gpkg", 1, True)])
def test_smoothed_zones_keep_the_map(aber, tmp_path, extension, smoothing, per_class):
    output = tmp_path / f"smooth.{extension}"
    result = run_algorithm(ALGORITHM, {"INPUT": str(aber / "classes.tif"), "FEATURES": [
        str(aber / "ndvi.tif")], "SMOOTHING": smoothing, "ZONES_PER_CLASS": per_class,
        "OUTPUT": str(output)})
    features = assert_smoothed_map(output, aber / "zones.gpkg", aber / "classes.tif",
                                   per_class=per_class)
    assert hole_count(union_of([geometry for _, geometry in features])) >= 1  # the AOI's hole
    assert 0 < result["AREA_CHANGE_MAX"] <= 3.0
    assert result["FEATURE_COUNT"] == len(features)
    assert categories(output) == raster_classes_as_shown(aber / "classes.tif")
    assert (output.with_suffix(".qml").exists()) == (extension != "gpkg")


def test_temporal_naip_zones_number_long_feature_names(shared_data, tmp_path):
    from qgis.core import QgsVectorLayer

    dates = [shared_data / "naip-timeseries" / f"NAIP_m_4709963_se_14_{date}_RGBN_5m_EPSG26914.tif"
             for date in ("20090818", "20150926")]
    result = run_algorithm("rasterclustering:kmeans", {
        "INPUT": [str(path) for path in dates], "CLUSTERS": 4, "MIN_AREA": 500,
        "OUTPUT": str(tmp_path / "classes.tif"), "ZONES": str(tmp_path / "zones.shp")})
    layer = QgsVectorLayer(result["ZONES"], "zones", "ogr")
    names = layer.fields().names()
    assert names[:2] == ["zone", "class"] and "f8_mean" in names and "f9_mean" not in names
    assert layer.attributeAlias(names.index("f1_mean")).startswith(
        "NAIP_m_4709963_se_14_20090818_RGBN_5m_EPSG26914@1")
    classes = read_raster(tmp_path / "classes.tif")
    zones = numbered_zones(classes, classes > 0, 8)
    np.testing.assert_array_equal(rasterized(tmp_path / "zones.shp", tmp_path / "classes.tif",
                                            "zone"), zones)
    first_band = read_raster(dates[0]).astype(np.float64)  # the classes' grid is the first's
    rows = {attributes["zone"]: attributes for attributes, _ in
            read_features(tmp_path / "zones.shp")}
    for zone in range(1, zones.max() + 1, max(1, zones.max() // 20)):
        inside = zones == zone
        assert rows[zone]["f1_mean"] == pytest.approx(first_band[inside].mean(), rel=1e-9)


def test_zones_algorithm_passes_zone_polygons_through(scene, tmp_path):
    path = str(tmp_path / "zone_polygons.geojson")
    context, zones = loading_output(path)
    result = run_algorithm("rasterclustering:zones", {
        "INPUT": [str(scene.scene)], "SENSOR": 4, "CLUSTERS": 3, "MIN_AREA": 1000,
        "OUTPUT": str(tmp_path / "zones.tif"), "ZONES": zones}, context=context)
    assert result["ZONES"] == path
    classes = read_raster(tmp_path / "zones.tif")
    np.testing.assert_array_equal(rasterized(path, tmp_path / "zones.tif", "class"), classes)
    assert categories(path) == raster_classes_as_shown(tmp_path / "zones.tif")
    assert context.willLoadLayerOnCompletion(path)
    assert context.layerToLoadOnCompletionDetails(path).postProcessor() is not None


@pytest.mark.parametrize("algorithm", ["fuzzycmeans", "isodata"])
def test_the_other_methods_write_zone_polygons_of_their_classes(aber, tmp_path, algorithm):
    classes_path = tmp_path / "classes.tif"
    result = run_algorithm(f"rasterclustering:{algorithm}", {
        "INPUT": [str(aber / "ndvi.tif")], "CLUSTERS": 4, "MIN_AREA": 2000,
        "OUTPUT": str(classes_path), "CENTROIDS": str(tmp_path / "classes.json"),
        "ZONES": str(tmp_path / "zones.geojson"), "ZONES_PER_CLASS": True})
    assert result["ZONES"] == str(tmp_path / "zones.geojson")
    classes = read_raster(classes_path)
    np.testing.assert_array_equal(rasterized(result["ZONES"], classes_path, "class"), classes)
    features = read_features(result["ZONES"])
    assert sorted(attributes["class"] for attributes, _ in features) == sorted(
        set(np.unique(classes)) - {0})
    centres = dict(json.loads((tmp_path / "classes.json").read_text())["NDVI"])
    for attributes, _ in features:
        assert attributes["NDVI_ctr"] == pytest.approx(centres[attributes["class"]][0])
    assert categories(result["ZONES"]) == raster_classes_as_shown(classes_path)


def test_the_geopackage_loads_styled_through_the_post_processor(aber, tmp_path):
    from qgis.core import QgsCategorizedSymbolRenderer, QgsProcessingFeedback, QgsVectorLayer

    path = str(tmp_path / "zones.gpkg")
    context, output = loading_output(path)
    run_algorithm(ALGORITHM, {"INPUT": str(aber / "classes.tif"), "OUTPUT": output},
                  context=context)
    processor = context.layerToLoadOnCompletionDetails(path).postProcessor()
    options = QgsVectorLayer.LayerOptions()
    options.loadDefaultStyle = False  # as Processing loads it: only the post-processor styles
    layer = QgsVectorLayer(path, "zones", "ogr", options)
    assert not isinstance(layer.renderer(), QgsCategorizedSymbolRenderer)
    processor.postProcessLayer(layer, context, QgsProcessingFeedback())
    assert isinstance(layer.renderer(), QgsCategorizedSymbolRenderer)
    assert context.layerToLoadOnCompletionDetails(path).name == "classes · zones"


def test_only_what_is_asked_is_written(aber, tmp_path):
    run_algorithm("rasterclustering:kmeans", {"INPUT": [str(aber / "ndvi.tif")],
                                              "CLUSTERS": 3,
                                              "OUTPUT": str(tmp_path / "classes.tif")})
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "classes.qml", "classes.tif", "classes.tif.aux.xml"]


@pytest.fixture(scope="module")
def bad_inputs(aber):
    folder = aber / "bad"
    folder.mkdir(exist_ok=True)
    many = write_raster(folder / "many.tif", np.arange(60_000, dtype=np.int32).reshape(200, 300))
    return {"many": str(many)}


@pytest.mark.parametrize("overrides, message", [
    (lambda aber, bad: {"INPUT": str(aber / "ndvi.tif")}, "holds Float32 values, not integer "
                                                          "classes: zone polygons need"),
    (lambda aber, bad: {"INPUT": bad["many"]}, "distinct values"),
    (lambda aber, bad: {"SMOOTHING": -1}, "SMOOTHING must be a whole number from 0 to 3, "
                                          "not -1; 0 keeps the exact pixel edges"),
    (lambda aber, bad: {"SMOOTHING": 4}, "from 0 to 3, not 4"),
    (lambda aber, bad: {"BAND": 2}, "BAND 2 does not exist"),
    (lambda aber, bad: {"CONNECTIVITY": 6}, "CONNECTIVITY must be 4 or 8"),
    (lambda aber, bad: {"OUTPUT": str(aber / "out" / "missing" / "z.gpkg")}, "does not exist"),
    (lambda aber, bad: {"OUTPUT": str(aber / "out" / "z.csv")}, r"\.geojson"),
    (lambda aber, bad: {"OUTPUT": "memory:zones"}, "is not a file"),
], ids=["float32", "60000-classes", "smoothing-below-0", "smoothing-above-3", "missing-band",
        "connectivity", "missing-folder", "extension", "memory-layer"])
def test_bad_inputs_are_refused_up_front_leaving_nothing(aber, bad_inputs, overrides, message):
    from qgis.core import QgsProcessingException

    out = aber / "out"
    out.mkdir(exist_ok=True)
    before = sorted(out.rglob("*"))
    parameters = {"INPUT": str(aber / "classes.tif"), "OUTPUT": str(out / "zones.gpkg"),
                  **overrides(aber, bad_inputs)}
    with pytest.raises(QgsProcessingException, match=message):
        run_algorithm(ALGORITHM, parameters)
    assert sorted(out.rglob("*")) == before


@pytest.mark.parametrize("zones, message", [
    ("zones.tif", r"must be a GeoPackage \(\.gpkg\)"),
    ("c.shp", "would share the style file 'c.qml'"),
])
def test_kmeans_refuses_a_zone_output_that_cannot_be_written(aber, tmp_path, zones, message):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match=message):
        run_algorithm("rasterclustering:kmeans", {"INPUT": [str(aber / "ndvi.tif")],
                                                  "CLUSTERS": 3,
                                                  "OUTPUT": str(tmp_path / "c.tif"),
                                                  "ZONES": str(tmp_path / zones)})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("algorithm, parameters", [
    (ALGORITHM, lambda aber: {"INPUT": str(aber / "classes.tif"), "SMOOTHING": 2}),
    ("rasterclustering:kmeans", lambda aber: {"INPUT": [str(aber / "ndvi.tif")],
                                              "CLUSTERS": 4, "OUTPUT": "{out}/classes.tif"}),
    ("rasterclustering:fuzzycmeans", lambda aber: {
        "INPUT": [str(aber / "ndvi.tif")], "CLUSTERS": 4, "OUTPUT": "{out}/classes.tif",
        "DISTANCE": "{out}/distance.tif", "MEMBERSHIP": "{out}/membership.tif"}),
], ids=["polygonize", "kmeans-zones", "fuzzycmeans-zones-and-pixel-rasters"])
def test_cancelling_leaves_nothing(aber, tmp_path, algorithm, parameters):
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    feedback = QgsProcessingFeedback()
    reports = []

    def cancel_late(value):
        reports.append(value)
        if len(reports) == 30 or (algorithm != ALGORITHM and value > 55):
            feedback.cancel()

    feedback.progressChanged.connect(cancel_late)
    values = {name: value.format(out=tmp_path) if isinstance(value, str) else value
              for name, value in parameters(aber).items()}
    target = "OUTPUT" if algorithm == ALGORITHM else "ZONES"
    with pytest.raises(QgsProcessingException, match="[Cc]ancel"):
        run_algorithm(algorithm, {**values, target: str(tmp_path / "zones.shp")},
                      feedback=feedback)
    assert list(tmp_path.iterdir()) == []
