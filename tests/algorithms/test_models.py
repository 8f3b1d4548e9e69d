"""The bundled models in models/: registered by the provider, in sync with scripts/make_models.py,
and run on real Landsat 8 digital numbers with a field polygon."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    landsat_toa_ndvi,
    rasterized,
    read_raster,
    small_regions_with_neighbours,
    write_lonlat_square,
)
from osgeo import gdal

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_NAME = "ndvi_zones_in_a_field"
MODEL_ID = f"rasterclustering:{MODEL_NAME}"
MODEL_FILE = REPO_ROOT / "models" / f"{MODEL_NAME}.model3"
MODEL_INPUTS = ["bands", "metadata", "field", "clusters", "min_area", "method"]
MODEL_OUTPUTS = ["kmeans:centroids", "kmeans:statistics", "kmeans:zone_polygons", "kmeans:zones"]
LANDSAT = "LC80200392015216LGN00"
# A 3 km square in the middle of the Landsat crop (EPSG:32616), written to GeoJSON in EPSG:4326.
FIELD_UTM = (459000.0, 3398000.0, 462000.0, 3401000.0)


def make_models_script():
    spec = importlib.util.spec_from_file_location("make_models",
                                                  REPO_ROOT / "scripts" / "make_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def toa_ndvi_on(folder, like_raster):
    """The handbook's TOA NDVI on the output's window of the band grid (the output is a crop of
    the same 30 m grid)."""
    bx0, bdx, _, by0, _, bdy = gdal.Open(str(folder / f"{LANDSAT}_B4_crop.TIF")).GetGeoTransform()
    like = gdal.Open(str(like_raster))
    ox0, odx, _, oy0, _, ody = like.GetGeoTransform()
    assert (odx, ody) == (bdx, bdy)
    col, row = round((ox0 - bx0) / bdx), round((oy0 - by0) / bdy)
    return landsat_toa_ndvi(folder, LANDSAT)[row:row + like.RasterYSize,
                                             col:col + like.RasterXSize]


def run_model(algorithm, shared_data, tmp_path, *, name="model", clusters=5, min_area=0,
              **values):
    """Run the model; `values` are more of its inputs and outputs by name."""
    import processing

    folder = shared_data / "landsat8-thermal"
    field = write_lonlat_square(tmp_path / "field.geojson", FIELD_UTM, epsg=32616)
    return processing.run(algorithm, {
        "bands": [str(folder / f"{LANDSAT}_B4_crop.TIF"), str(folder / f"{LANDSAT}_B5_crop.TIF")],
        "field": str(field), "clusters": clusters, "min_area": min_area,
        "kmeans:zones": str(tmp_path / f"{name}.tif"),
        "kmeans:centroids": str(tmp_path / f"{name}.json"),
        "kmeans:statistics": str(tmp_path / f"{name}.csv"), **values})


def test_the_model_writes_zone_polygons_only_when_asked(provider, shared_data, tmp_path):
    (tmp_path / "without").mkdir()
    run_model(MODEL_ID, shared_data, tmp_path / "without", min_area=2000)
    assert not [path for path in (tmp_path / "without").iterdir() if path.suffix == ".gpkg"]
    polygons = str(tmp_path / "polygons.gpkg")
    result = run_model(MODEL_ID, shared_data, tmp_path, min_area=2000,
                       **{"kmeans:zone_polygons": polygons})
    assert result["kmeans:zone_polygons"] == polygons
    np.testing.assert_array_equal(rasterized(polygons, result["kmeans:zones"], "class"),
                                  read_raster(result["kmeans:zones"]))


def test_the_committed_model_is_what_the_script_builds(provider, tmp_path):
    from qgis.core import QgsProcessingModelAlgorithm

    (written,) = make_models_script().write_models(tmp_path)
    assert written.name == MODEL_FILE.name
    # Compared as models: Qt writes XML attributes in a per-process random order.
    built, committed = QgsProcessingModelAlgorithm(), QgsProcessingModelAlgorithm()
    assert built.fromFile(str(written)) and committed.fromFile(str(MODEL_FILE))
    assert built.toVariant() == committed.toVariant(), (
        "models/ is out of date: run .venv/bin/python scripts/make_models.py")
    # Saved with the steps resolved, as the modeler saves: the outputs are in the file too.
    assert all(f'name="{output}"' in MODEL_FILE.read_text() for output in MODEL_OUTPUTS)


def test_the_provider_registers_the_model_with_its_steps_and_outputs(provider):
    from qgis.core import QgsApplication, QgsProcessingModelAlgorithm

    model = QgsApplication.processingRegistry().algorithmById(MODEL_ID)
    assert isinstance(model, QgsProcessingModelAlgorithm)
    assert model.provider().id() == "rasterclustering"
    assert model.group() == "Workflows"
    assert "NDVI management zones in a field" in model.shortHelpString()
    names = [p.name() for p in model.parameterDefinitions()]
    assert names[:len(MODEL_INPUTS)] == MODEL_INPUTS
    assert sorted(names[len(MODEL_INPUTS):]) == MODEL_OUTPUTS
    assert sorted(o.name() for o in model.outputDefinitions()) == MODEL_OUTPUTS
    assert model.parameterDefinition("metadata").flags() & \
        model.parameterDefinition("metadata").FlagOptional
    steps = model.childAlgorithms()
    # calibrate → index zones (band math, then k-means or fuzzy c-means), the zones step fed by
    # the calibrated bands; it keeps the id "kmeans", which names the model's outputs.
    assert {child_id: child.algorithmId() for child_id, child in steps.items()} == {
        "calibrate": "rasterclustering:calibrate", "kmeans": "rasterclustering:zones"}
    sources = steps["kmeans"].parameterSources()
    (zones_input,) = sources["INPUT"]
    assert (zones_input.outputChildId(), zones_input.outputName()) == ("calibrate",
                                                                       "OUTPUT_LAYERS")
    assert sources["EXPRESSION"][0].staticValue() == "NDVI"
    assert not sources["CALIBRATE"][0].staticValue()
    for parameter, model_input in (("AOI", "field"), ("MIN_AREA", "min_area"),
                                   ("CLUSTERS", "clusters"), ("METHOD", "method")):
        assert sources[parameter][0].parameterName() == model_input
    assert model.parameterDefinition("method").defaultValue() == 0


@pytest.mark.usefixtures("provider")
class TestLandsatField:
    def test_zones_are_the_nearest_centres_of_the_calibrated_ndvi_in_the_field(
            self, shared_data, tmp_path):
        result = run_model(MODEL_ID, shared_data, tmp_path)
        labels = read_raster(result["kmeans:zones"])
        inside = rasterized(tmp_path / "field.geojson", result["kmeans:zones"])
        # The output is the field's bounding box on the 30 m grid: about 100 x 100 pixels.
        assert 95 <= labels.shape[0] <= 110 and 95 <= labels.shape[1] <= 110
        assert inside.mean() > 0.85
        np.testing.assert_array_equal(labels[~inside], 0)
        ndvi = toa_ndvi_on(shared_data / "landsat8-thermal", result["kmeans:zones"])
        valid = inside & np.isfinite(ndvi)
        np.testing.assert_array_equal(labels[inside & ~valid], 0)
        document = json.loads(Path(result["kmeans:centroids"]).read_text())
        assert list(document) == ["NDVI"] and len(document["NDVI"]) == 5
        centres = np.array([entry[1][0] for entry in document["NDVI"]])
        assert np.all(np.diff(centres) > 0)
        nearest = np.argmin(np.abs(ndvi[valid][:, None] - centres[None, :]), axis=1) + 1
        assert np.mean(labels[valid] == nearest) > 0.999
        for number, centre in enumerate(centres, start=1):  # the k-means fixed point
            assert ndvi[labels == number].mean() == pytest.approx(centre, abs=1e-5)
        rows = Path(result["kmeans:statistics"]).read_text().splitlines()
        assert rows[0].startswith("class,centre_NDVI,pixel_count,area_m2") and len(rows) == 6
        assert (tmp_path / "model.qml").exists()

    def test_fuzzy_c_means_zones_are_the_highest_memberships(self, shared_data, tmp_path):
        from raster_clustering.core.clustering.centroid_model import load_centroid_model

        result = run_model(MODEL_ID, shared_data, tmp_path, clusters=4, method=1)
        model = load_centroid_model(result["kmeans:centroids"])
        assert model.method == "fuzzy c-means" and model.fuzziness == 1.3
        labels = read_raster(result["kmeans:zones"])
        ndvi = toa_ndvi_on(shared_data / "landsat8-thermal", result["kmeans:zones"])
        valid = labels > 0
        memberships = model.memberships(ndvi[valid][:, None])
        assert np.mean(labels[valid] == memberships.argmax(axis=1) + 1) > 0.999
        rows = Path(result["kmeans:statistics"]).read_text().splitlines()
        assert rows[0].endswith(",mean_membership") and len(rows) == 5

    def test_the_minimum_area_merges_small_zones(self, shared_data, tmp_path):
        plain = read_raster(run_model(MODEL_ID, shared_data, tmp_path, name="plain")[
            "kmeans:zones"])
        sieved = read_raster(run_model(MODEL_ID, shared_data, tmp_path, name="sieved",
                                       min_area=4500)["kmeans:zones"])
        np.testing.assert_array_equal(plain == 0, sieved == 0)

        def small_regions(labels):  # 4500 m² = 5 pixels of 900 m²; 8-connected zones
            return len(small_regions_with_neighbours(labels, labels != 0, connectivity=8,
                                                     min_size=5))

        assert small_regions(plain) > 20 and small_regions(sieved) == 0

    def test_the_model_file_runs_as_the_registered_model(self, shared_data, tmp_path):
        from qgis.core import QgsProcessingModelAlgorithm

        model = QgsProcessingModelAlgorithm()
        assert model.fromFile(str(MODEL_FILE))
        run_model(model, shared_data, tmp_path, name="from_file", clusters=4)
        run_model(MODEL_ID, shared_data, tmp_path, name="by_id", clusters=4)
        assert (tmp_path / "from_file.tif").read_bytes() == (tmp_path / "by_id.tif").read_bytes()
        assert (tmp_path / "from_file.json").read_text() == (tmp_path / "by_id.json").read_text()

    def test_the_model_matches_zones_with_calibration(self, shared_data, tmp_path):
        """Calibrating to files then band math (the model) = calibrating inside band math."""
        import processing

        folder = shared_data / "landsat8-thermal"
        result = run_model(MODEL_ID, shared_data, tmp_path, min_area=2000)
        zones = processing.run("rasterclustering:zones", {
            "INPUT": [str(folder / f"{LANDSAT}_B4_crop.TIF"),
                      str(folder / f"{LANDSAT}_B5_crop.TIF")],
            "CALIBRATE": True, "CLUSTERS": 5, "AOI": str(tmp_path / "field.geojson"),
            "MIN_AREA": 2000, "OUTPUT": str(tmp_path / "zones.tif"),
            "CENTROIDS": str(tmp_path / "zones.json"), "STATISTICS": "TEMPORARY_OUTPUT"})
        np.testing.assert_array_equal(read_raster(result["kmeans:zones"]),
                                      read_raster(zones["OUTPUT"]))
        model_centres = json.loads(Path(result["kmeans:centroids"]).read_text())["NDVI"]
        zones_centres = json.loads(Path(zones["CENTROIDS"]).read_text())["NDVI"]
        np.testing.assert_allclose([c[1][0] for c in model_centres],
                                   [c[1][0] for c in zones_centres], rtol=1e-6)
