"""Zone polygons through the real qgis_process.bin: polygonize k-means classes, and ZONES on
kmeans; only what is asked is written, styled in the file (GeoPackage) or beside it (.qml)."""

import json

import numpy as np
import pytest
from helpers import rasterized, read_raster
from osgeo import ogr
from zone_oracles import numbered_zones, read_features, union_of

ALGORITHM = "rasterclustering:polygonize"


@pytest.fixture(scope="module")
def classes(qgis_process, scene, tmp_path_factory):
    """K-means classes of the scene's NDVI, sieved, made by qgis_process."""
    folder = tmp_path_factory.mktemp("classes")
    qgis_process.run(["run", "rasterclustering:kmeans", "--", f"INPUT={scene.ndvi}",
                      "CLUSTERS=4", "MIN_AREA=2000", f"OUTPUT={folder / 'classes.tif'}"],
                     check=True)
    return folder / "classes.tif"


def test_help_describes_every_parameter_and_output(qgis_process):
    text = qgis_process.run(["help", ALGORITHM], check=True).stdout
    for name in ("INPUT", "BAND", "FEATURES", "CONNECTIVITY", "SMOOTHING", "ZONES_PER_CLASS",
                 "OUTPUT", "FEATURE_COUNT", "AREA_CHANGE_MAX"):
        assert name in text
    assert "Classes to zone polygons" in qgis_process.run(["list"], check=True).stdout


def test_json_run_writes_only_the_styled_geopackage(qgis_process, scene, classes, tmp_path):
    output = tmp_path / "zones.gpkg"
    completed = qgis_process.run(["--json", "run", ALGORITHM, "--", f"INPUT={classes}",
                                  f"FEATURES={scene.ndvi}", "SMOOTHING=2",
                                  f"OUTPUT={output}"], check=True)
    results = json.loads(completed.stdout[completed.stdout.index("{"):])["results"]
    assert results["OUTPUT"] == str(output)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["zones.gpkg"]
    values = read_raster(classes)
    features = read_features(output)
    assert results["FEATURE_COUNT"] == len(features) == numbered_zones(values, values > 0,
                                                                       8).max()
    assert 0 <= results["AREA_CHANGE_MAX"] <= 3.0
    geometries = [geometry for _, geometry in features]
    assert all(geometry.IsValid() for geometry in geometries)
    total = sum(geometry.GetArea() for geometry in geometries)
    assert union_of(geometries).GetArea() == pytest.approx(total, rel=1e-9)
    np.testing.assert_array_equal(rasterized(output, classes, "class"), values)
    dataset = ogr.Open(str(output))
    styles = dataset.GetLayerByName("layer_styles")
    assert styles is not None and styles.GetFeatureCount() == 1
    style = styles.GetNextFeature()
    assert style.GetField("f_table_name") == "zones" and style.GetField("useAsDefault")
    assert "categorizedSymbol" in style.GetField("styleQML")


def test_kmeans_writes_zone_polygons_only_when_asked(qgis_process, scene, tmp_path):
    completed = qgis_process.run(["--json", "run", "rasterclustering:kmeans", "--",
                                  f"INPUT={scene.ndvi}", "CLUSTERS=3",
                                  f"OUTPUT={tmp_path / 'classes.tif'}",
                                  f"ZONES={tmp_path / 'zones.shp'}", "ZONES_PER_CLASS=true"],
                                 check=True)
    results = json.loads(completed.stdout[completed.stdout.index("{"):])["results"]
    assert results["ZONES"] == str(tmp_path / "zones.shp")
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "classes.qml", "classes.tif", "classes.tif.aux.xml", "zones.cpg", "zones.dbf",
        "zones.prj", "zones.qml", "zones.shp", "zones.shx"]
    assert [attributes["class"] for attributes, _ in read_features(tmp_path / "zones.shp")] == [
        1, 2, 3]
