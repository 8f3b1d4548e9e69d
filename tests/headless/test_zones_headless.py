"""rasterclustering:zones and the bundled model through the real qgis_process.bin."""

import json
from pathlib import Path

import numpy as np
from helpers import read_raster, write_lonlat_square
from osgeo import gdal

ALGORITHM = "rasterclustering:zones"
MODEL_ID = "rasterclustering:ndvi_zones_in_a_field"
MODEL_FILE = Path(__file__).resolve().parents[2] / "models" / "ndvi_zones_in_a_field.model3"
LANDSAT = "LC80200392015216LGN00"
GENERIC_SENSOR = 4


def test_list_shows_zones_and_the_bundled_model(qgis_process):
    listing = qgis_process.run(["list"], check=True).stdout
    assert ALGORITHM in listing and MODEL_ID in listing


def test_help_describes_every_parameter(qgis_process):
    text = qgis_process.run(["help", ALGORITHM], check=True).stdout
    for name in ("INPUT", "CALIBRATE", "METADATA", "EXPRESSION", "SENSOR", "CLUSTERS", "AOI",
                 "EXTENT", "MIN_AREA", "CONNECTIVITY", "SEED", "OUTPUT", "CENTROIDS",
                 "STATISTICS", "INDEX"):
        assert name in text
    model_help = qgis_process.run(["help", MODEL_ID], check=True).stdout
    for name in ("bands", "metadata", "field", "clusters", "min_area", "kmeans:zones",
                 "kmeans:centroids", "kmeans:statistics"):
        assert name in model_help


def test_json_run_equals_processing_run(qgis_process, provider, scene, tmp_path):
    import processing

    parameters = {"INPUT": scene.scene, "SENSOR": GENERIC_SENSOR, "CLUSTERS": 4,
                  "AOI": scene.aoi, "MIN_AREA": 2000, "SEED": 1}
    document = qgis_process.run_algorithm(ALGORITHM, {
        **parameters, "OUTPUT": tmp_path / "a.tif", "CENTROIDS": tmp_path / "a.json",
        "STATISTICS": tmp_path / "a.csv"})
    assert document["results"]["OUTPUT"] == str(tmp_path / "a.tif")
    processing.run(ALGORITHM, {**{k: str(v) if k in ("INPUT", "AOI") else v
                                  for k, v in parameters.items()},
                               "OUTPUT": str(tmp_path / "b.tif"),
                               "CENTROIDS": str(tmp_path / "b.json"),
                               "STATISTICS": "TEMPORARY_OUTPUT"})
    assert (tmp_path / "a.tif").read_bytes() == (tmp_path / "b.tif").read_bytes()
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()
    assert list(json.loads((tmp_path / "a.json").read_text())) == ["NDVI"]
    assert (tmp_path / "a.qml").exists()
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert lines[0].startswith("class,centre_NDVI,pixel_count,area_m2") and len(lines) == 5


def test_a_bad_expression_fails_clearly_and_leaves_nothing(qgis_process, scene, tmp_path):
    completed = qgis_process.run([
        "run", ALGORITHM, "--", f"INPUT={scene.scene}", "EXPRESSION=(B4 - ) / B3",
        f"OUTPUT={tmp_path / 'z.tif'}", f"CENTROIDS={tmp_path / 'z.json'}",
        f"STATISTICS={tmp_path / 'z.csv'}", f"INDEX={tmp_path / 'index.tif'}"])
    assert completed.returncode != 0
    assert "Syntax error" in completed.stdout + completed.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_model_runs_by_id_and_by_file_on_landsat(qgis_process, shared_data, tmp_path):
    folder = shared_data / "landsat8-thermal"
    # A 3 km square in the middle of the Landsat crop.
    field = write_lonlat_square(tmp_path / "field.geojson", (459000, 3398000, 462000, 3401000),
                                epsg=32616)
    inputs = [f"bands={folder / f'{LANDSAT}_B4_crop.TIF'}",
              f"bands={folder / f'{LANDSAT}_B5_crop.TIF'}", f"field={field}", "clusters=5",
              "min_area=1000"]

    def outputs(name):
        return [f"kmeans:zones={tmp_path / f'{name}.tif'}",
                f"kmeans:centroids={tmp_path / f'{name}.json'}",
                f"kmeans:statistics={tmp_path / f'{name}.csv'}"]

    qgis_process.run(["run", MODEL_ID, "--", *inputs, *outputs("by_id")], check=True)
    qgis_process.run(["run", str(MODEL_FILE), "--", *inputs, *outputs("by_file")], check=True)
    assert (tmp_path / "by_id.tif").read_bytes() == (tmp_path / "by_file.tif").read_bytes()
    assert (tmp_path / "by_id.json").read_text() == (tmp_path / "by_file.json").read_text()
    labels = read_raster(tmp_path / "by_id.tif")
    assert set(np.unique(labels)) - {0} == {1, 2, 3, 4, 5}
    assert gdal.Open(str(tmp_path / "by_id.tif")).GetGeoTransform()[1] == 30.0
    document = json.loads((tmp_path / "by_id.json").read_text())
    centres = [entry[1][0] for entry in document["NDVI"]]
    assert len(centres) == 5 and centres == sorted(centres) and -1 <= centres[0] < centres[-1] <= 1
    assert len((tmp_path / "by_id.csv").read_text().splitlines()) == 6
