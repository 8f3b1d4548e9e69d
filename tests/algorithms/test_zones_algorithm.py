"""rasterclustering:zones through processing.run: the same as band math then k-means, in one run."""

import json
import re

import numpy as np
import pytest
from helpers import (
    assert_metadata_complete,
    file_names,
    landsat_toa_ndvi,
    read_raster,
    run_algorithm,
    vector_rows,
)
from osgeo import gdal

ALGORITHM = "rasterclustering:zones"
PARAMETERS = ["INPUT", "CALIBRATE", "METADATA", "EXPRESSION", "SENSOR", "CLUSTERS", "METHOD",
              "FUZZINESS", "AOI", "EXTENT", "MIN_AREA", "CONNECTIVITY", "SEED", "OUTPUT",
              "CENTROIDS", "STATISTICS", "INDEX", "ZONES_PER_CLASS", "ZONES"]
BAND_MATH_PARAMETERS = ("INPUT", "EXPRESSION", "SENSOR", "CALIBRATE", "METADATA")
KMEANS_PARAMETERS = ("CLUSTERS", "AOI", "EXTENT", "MIN_AREA", "CONNECTIVITY", "SEED")
GENERIC_SENSOR = 4  # position of "generic" in the SENSOR options (auto-detect first)
LANDSAT = "LC80200392015216LGN00"


def run(parameters, tmp_path, name="zones", feedback=None, context=None):
    defaults = {"OUTPUT": str(tmp_path / f"{name}.tif"),
                "CENTROIDS": str(tmp_path / f"{name}.json"), "STATISTICS": "TEMPORARY_OUTPUT"}
    return run_algorithm(ALGORITHM, {**defaults, **parameters}, feedback, context)


def run_chain(parameters, tmp_path, name="chain", step="kmeans", **step_parameters):
    """Band math, then k-means (or `step`) on its output, each through processing.run: the
    oracle."""
    index = run_algorithm("rasterclustering:bandmath", {
        **{key: parameters[key] for key in BAND_MATH_PARAMETERS if key in parameters},
        "OUTPUT": str(tmp_path / f"{name}_index.tif")})["OUTPUT"]
    result = run_algorithm(f"rasterclustering:{step}", {
        **{key: parameters[key] for key in KMEANS_PARAMETERS if key in parameters},
        **step_parameters,
        "INPUT": [index], "OUTPUT": str(tmp_path / f"{name}.tif"),
        "CENTROIDS": str(tmp_path / f"{name}.json"), "STATISTICS": "TEMPORARY_OUTPUT"})
    return {**result, "INDEX": index}


def centres(result, key):
    document = json.loads(open(result["CENTROIDS"]).read())
    assert list(document) == [key]
    assert [entry[0] for entry in document[key]] == list(range(1, len(document[key]) + 1))
    return np.array([entry[1][0] for entry in document[key]])


def assert_nearest_centre(labels, index, centre_values):
    """Every valid pixel is in the zone of its nearest centre (no sieve), nodata is 0.

    Pixels within 1e-6 of the midpoint of two centres are skipped: float32 vs float64 rounding.
    """
    valid = np.isfinite(index)
    np.testing.assert_array_equal(labels[~valid], 0)
    distances = np.abs(index[valid][:, None].astype(np.float64) - centre_values[None, :])
    nearest = np.argmin(distances, axis=1) + 1
    ordered = np.sort(distances, axis=1)
    clear = ordered[:, 1] - ordered[:, 0] > 1e-6
    assert clear.mean() > 0.999
    np.testing.assert_array_equal(labels[valid][clear], nearest[clear])


def assert_centres_are_zone_means(labels, index, centre_values):
    """The k-means fixed point: each centre is the mean index value of its zone (no sieve)."""
    for number, centre in enumerate(centre_values, start=1):
        zone = index[labels == number].astype(np.float64)
        assert zone.size and zone.mean() == pytest.approx(centre, abs=1e-5)


def processing_temp_files():
    from qgis.core import QgsProcessingUtils

    return set(file_names(QgsProcessingUtils.tempFolder()))


def test_metadata_is_complete(provider):
    algorithm = provider.algorithm("zones")
    assert_metadata_complete(algorithm, display_name="Cluster index zones", parameters=PARAMETERS,
                             outputs=["OUTPUT", "CENTROIDS", "STATISTICS", "INDEX", "ZONES"])
    index = algorithm.parameterDefinition("INDEX")
    assert index.flags() & index.FlagOptional and not index.createByDefault()
    assert algorithm.parameterDefinition("EXPRESSION").defaultValue() == "NDVI"
    assert algorithm.parameterDefinition("CLUSTERS").defaultValue() == 5


@pytest.mark.parametrize("parameters, key", [
    ({"SENSOR": GENERIC_SENSOR, "CLUSTERS": 5, "MIN_AREA": 2000, "CONNECTIVITY": 4, "SEED": 3},
     "NDVI"),
    ({"EXPRESSION": "(B4 - B3) / (B4 + B3)", "CLUSTERS": 4, "SEED": 1},
     "(B4 - B3) / (B4 + B3)"),
], ids=["ndvi-alias-aoi-sieve", "expression-extent"])
def test_zones_equal_band_math_then_kmeans(provider, scene, tmp_path, parameters, key):
    from qgis.core import QgsRasterLayer

    layer = QgsRasterLayer(str(scene.scene), "scene", "gdal")
    extent = layer.extent()
    parameters = {"INPUT": [str(scene.scene)], **parameters}
    if "MIN_AREA" in parameters:
        parameters["AOI"] = str(scene.aoi)
    else:
        parameters["EXTENT"] = (f"{extent.xMinimum() + 500},{extent.xMaximum() - 1000},"
                                f"{extent.yMinimum() + 700},{extent.yMaximum() - 200} "
                                "[EPSG:32633]")
    zones = run({**parameters, "INDEX": str(tmp_path / "index.tif")}, tmp_path)
    chain = run_chain(parameters, tmp_path)

    assert (tmp_path / "zones.tif").read_bytes() == (tmp_path / "chain.tif").read_bytes()
    assert (tmp_path / "zones.json").read_text() == (tmp_path / "chain.json").read_text()
    assert (tmp_path / "index.tif").read_bytes() == (tmp_path / "chain_index.tif").read_bytes()
    assert vector_rows(zones["STATISTICS"]) == vector_rows(chain["STATISTICS"])
    assert zones["INDEX"] == str(tmp_path / "index.tif")
    # The centroids are keyed by the index's band description, which band math sets.
    assert gdal.Open(zones["INDEX"]).GetRasterBand(1).GetDescription() == key
    centre_values = centres(zones, key)
    assert np.all(np.diff(centre_values) > 0)
    labels = read_raster(zones["OUTPUT"])
    assert set(np.unique(labels)) - {0} == set(range(1, len(centre_values) + 1))
    assert (tmp_path / "zones.qml").exists()


def test_fuzzy_zones_equal_band_math_then_fuzzy_c_means(provider, scene, tmp_path):
    parameters = {"INPUT": [str(scene.scene)], "SENSOR": GENERIC_SENSOR, "CLUSTERS": 4,
                  "AOI": str(scene.aoi), "SEED": 2}
    zones = run({**parameters, "METHOD": 1, "FUZZINESS": 1.6}, tmp_path)
    chain = run_chain(parameters, tmp_path, step="fuzzycmeans", FUZZINESS=1.6)
    assert (tmp_path / "zones.tif").read_bytes() == (tmp_path / "chain.tif").read_bytes()
    assert (tmp_path / "zones.json").read_text() == (tmp_path / "chain.json").read_text()
    document = json.loads((tmp_path / "zones.json").read_text())
    assert document["method"] == "fuzzy c-means" and document["fuzziness"] == 1.6
    rows = vector_rows(zones["STATISTICS"])
    assert rows == vector_rows(chain["STATISTICS"]) and "mean_membership" in rows[0]


def test_index_is_the_ndvi_and_zones_are_its_nearest_centres(provider, scene, tmp_path):
    result = run({"INPUT": [str(scene.scene)], "SENSOR": GENERIC_SENSOR, "CLUSTERS": 5,
                  "INDEX": str(tmp_path / "index.tif")}, tmp_path)
    bands = gdal.Open(str(scene.scene)).ReadAsArray().astype(np.float64)
    red, nir = bands[2], bands[3]
    with np.errstate(all="ignore"):
        expected = (nir - red) / (nir + red)
    expected[(bands[2] == scene.nodata) | (bands[3] == scene.nodata)] = np.nan
    index = read_raster(result["INDEX"])
    np.testing.assert_allclose(index, expected, rtol=2e-6, atol=1e-7, equal_nan=True)
    centre_values = centres(result, "NDVI")
    assert_nearest_centre(read_raster(result["OUTPUT"]), index, centre_values)
    assert_centres_are_zone_means(read_raster(result["OUTPUT"]), index, centre_values)


def test_sentinel2_band_files_with_the_sensor_detected(provider, tmp_path):
    from synthetic_scene import make_s2_style_bands

    bands = make_s2_style_bands(tmp_path / "s2", size_10m=200, seed=4)
    result = run({"INPUT": [str(bands["B04"]), str(bands["B08"])], "CLUSTERS": 4,
                  "INDEX": str(tmp_path / "index.tif")}, tmp_path)
    red = read_raster(bands["B04"]).astype(np.float64)
    nir = read_raster(bands["B08"]).astype(np.float64)
    with np.errstate(all="ignore"):  # Sentinel-2 NDVI = (B8 - B4) / (B8 + B4)
        expected = (nir - red) / (nir + red)
    expected[(red == 0) | (nir == 0)] = np.nan
    index = read_raster(result["INDEX"])
    assert np.isnan(expected).any()
    np.testing.assert_allclose(index, expected, rtol=2e-6, atol=1e-7, equal_nan=True)
    assert_nearest_centre(read_raster(result["OUTPUT"]), index, centres(result, "NDVI"))


def test_the_temporary_index_is_removed(provider, scene, tmp_path):
    before = processing_temp_files()
    result = run({"INPUT": [str(scene.scene)], "SENSOR": GENERIC_SENSOR, "CLUSTERS": 3},
                 tmp_path)
    assert result["INDEX"] is None
    assert processing_temp_files() - before == set()
    assert file_names(tmp_path) == ["zones.json", "zones.qml", "zones.tif", "zones.tif.aux.xml"]


def test_the_output_is_styled_when_it_loads(provider, scene, tmp_path):
    from qgis.core import (
        QgsPalettedRasterRenderer,
        QgsProcessingContext,
        QgsProcessingFeedback,
        QgsProcessingOutputLayerDefinition,
        QgsProject,
        QgsRasterLayer,
    )

    path = str(tmp_path / "loaded.tif")
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    run({"INPUT": [str(scene.scene)], "SENSOR": GENERIC_SENSOR, "CLUSTERS": 3,
         "OUTPUT": QgsProcessingOutputLayerDefinition(path, QgsProject.instance())},
        tmp_path, context=context)
    assert context.willLoadLayerOnCompletion(path)
    processor = context.layerToLoadOnCompletionDetails(path).postProcessor()
    assert processor is not None
    options = QgsRasterLayer.LayerOptions()
    options.loadDefaultStyle = False  # without loaded.qml only the post-processor styles
    layer = QgsRasterLayer(path, "loaded", "gdal", options)
    processor.postProcessLayer(layer, context, QgsProcessingFeedback())
    renderer = layer.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    assert [item.value for item in renderer.classes()] == [1, 2, 3]


class TestFailureLeavesNothing:
    """A bad parameter, an error or a cancellation at any step leaves no file of the run."""

    @pytest.mark.parametrize("expression, message", [
        ("(B4 - ) / B3", "Syntax error"),
        ("B9 - B1", "B9 is not an input band"),
    ])
    def test_a_bad_expression_is_refused_before_any_work(self, provider, scene, tmp_path,
                                                         recorder, expression, message):
        from qgis.core import QgsProcessingException

        before = processing_temp_files()
        with pytest.raises(QgsProcessingException, match=re.escape(message)) as error:
            run({"INPUT": [str(scene.scene)], "EXPRESSION": expression,
                 "INDEX": str(tmp_path / "index.tif")}, tmp_path, feedback=recorder)
        if "B9" in expression:  # the message lists what can be used instead
            assert "Variables: B1, B2, B3, B4, B5, B6" in str(error.value)
        assert file_names(tmp_path) == [] and processing_temp_files() - before == set()
        assert not any(info.startswith("Expression:") for info in recorder.infos)

    def test_an_index_name_without_a_sensor_says_which_to_choose(self, provider, scene,
                                                                 tmp_path):
        from qgis.core import QgsProcessingException

        stack = tmp_path / "inputs" / "stack.tif"  # the scene's bands without their descriptions
        stack.parent.mkdir()
        gdal.Translate(str(stack), str(scene.scene))
        undescribed = gdal.Open(str(stack), gdal.GA_Update)
        for band in range(1, undescribed.RasterCount + 1):
            undescribed.GetRasterBand(band).SetDescription("")
        undescribed = None
        outputs = tmp_path / "outputs"
        outputs.mkdir()
        # The sensors as the drop-down lists them, not internal ids.
        with pytest.raises(QgsProcessingException,
                           match="Choose the sensor: Sentinel-2 MSI; Landsat 8-9 OLI;"):
            run({"INPUT": [str(stack)]}, outputs)
        assert file_names(outputs) == []

    def test_band_descriptions_tell_the_bands_with_the_default_sensor(self, provider, scene,
                                                                      tmp_path, recorder):
        # The demo's scene.tif: bands described blue, green, red, nir, swir1, swir2.
        auto = run({"INPUT": [str(scene.scene)]}, tmp_path, name="auto", feedback=recorder)
        generic = run({"INPUT": [str(scene.scene)], "SENSOR": GENERIC_SENSOR}, tmp_path,
                      name="generic")
        assert np.array_equal(read_raster(auto["OUTPUT"]), read_raster(generic["OUTPUT"]))
        told = [info for info in recorder.infos
                if info.startswith("Bands named by their descriptions:")]
        assert told and "red = band 3 of 'scene'" in told[0]
        assert "nir = band 4 of 'scene'" in told[0]

    def test_a_bad_connectivity_is_refused_before_band_math_runs(self, provider, scene,
                                                                 tmp_path, recorder):
        from qgis.core import QgsProcessingException

        with pytest.raises(QgsProcessingException, match="CONNECTIVITY must be 4 or 8"):
            run({"INPUT": [str(scene.scene)], "SENSOR": GENERIC_SENSOR, "CONNECTIVITY": 6},
                tmp_path, feedback=recorder)
        assert recorder.infos == [] and file_names(tmp_path) == []

    def test_output_over_an_input_is_refused(self, provider, scene, tmp_path, make_raster):
        from qgis.core import QgsProcessingException

        copy = make_raster("copy.tif", gdal.Open(str(scene.scene)).ReadAsArray())
        before = copy.read_bytes()
        for name in ("OUTPUT", "INDEX"):
            with pytest.raises(QgsProcessingException, match="one of the inputs"):
                run({"INPUT": [str(copy)], "SENSOR": GENERIC_SENSOR, name: str(copy)},
                    tmp_path)
        assert copy.read_bytes() == before
        # Only the input (and the statistics GDAL may keep beside it when QGIS reads it).
        assert set(file_names(tmp_path)) <= {"copy.tif", "copy.tif.aux.xml"}

    @pytest.mark.parametrize("when", ["before the start", "during band math",
                                      "between the steps", "during k-means"])
    def test_cancelling_leaves_nothing(self, provider, tmp_path, make_raster, when):
        from qgis.core import QgsProcessingException, QgsProcessingFeedback

        class Cancelling(QgsProcessingFeedback):
            """Cancels at a chosen point: a progress threshold, or band math's results line."""

            def pushInfo(self, info):  # noqa: N802 - QGIS's name
                if when == "between the steps" and info.startswith("Results: {'OUTPUT'"):
                    self.cancel()

        # Big enough for band math to work in several blocks, so it can be cancelled midway.
        rng = np.random.default_rng(0)
        bands = make_raster("bands.tif", rng.uniform(0.01, 0.5, (2, 1024, 1024)).astype("float32"))
        feedback = Cancelling()
        progress = []
        feedback.progressChanged.connect(progress.append)
        if when == "before the start":
            feedback.cancel()
        elif when == "during band math":
            feedback.progressChanged.connect(lambda value: 0 < value < 50 and feedback.cancel())
        elif when == "during k-means":
            feedback.progressChanged.connect(lambda value: value > 50 and feedback.cancel())
        before = processing_temp_files()
        with pytest.raises(QgsProcessingException, match="[Cc]ancel") as error:
            run({"INPUT": [str(bands)], "EXPRESSION": "(B2 - B1) / (B2 + B1)",
                 "MIN_AREA": 1000, "INDEX": str(tmp_path / "index.tif")}, tmp_path,
                feedback=feedback)
        assert feedback.isCanceled()
        assert set(file_names(tmp_path)) <= {"bands.tif", "bands.tif.aux.xml"}
        assert processing_temp_files() - before == set()
        reached = max(progress, default=0)
        assert {"before the start": reached == 0, "during band math": 0 < reached < 50,
                "between the steps": reached == 50, "during k-means": 50 < reached < 100}[when]
        # Between the steps (and before) the zones algorithm stops; otherwise the child does.
        assert ("the zones were not computed" in str(error.value)) == (
            when in ("before the start", "between the steps"))


@pytest.mark.usefixtures("provider")
class TestRealData:
    def test_landsat_digital_numbers_calibrated_in_the_run(self, shared_data, tmp_path):
        folder = shared_data / "landsat8-thermal"
        bands = [str(folder / f"{LANDSAT}_B4_crop.TIF"), str(folder / f"{LANDSAT}_B5_crop.TIF")]
        parameters = {"INPUT": bands, "CALIBRATE": True, "CLUSTERS": 4, "SEED": 2}
        result = run({**parameters, "INDEX": str(tmp_path / "index.tif")}, tmp_path)
        index = read_raster(result["INDEX"])
        np.testing.assert_allclose(index, landsat_toa_ndvi(folder, LANDSAT), rtol=1e-5, atol=1e-6,
                                   equal_nan=True)
        centre_values = centres(result, "NDVI")
        assert_nearest_centre(read_raster(result["OUTPUT"]), index, centre_values)
        assert_centres_are_zone_means(read_raster(result["OUTPUT"]), index, centre_values)

        chain = run_chain(parameters, tmp_path)
        assert (tmp_path / "index.tif").read_bytes() == open(chain["INDEX"], "rb").read()
        assert (tmp_path / "zones.tif").read_bytes() == (tmp_path / "chain.tif").read_bytes()
        assert (tmp_path / "zones.json").read_text() == (tmp_path / "chain.json").read_text()

    def test_the_metadata_file_given_explicitly(self, shared_data, tmp_path):
        folder = shared_data / "landsat8-thermal"
        moved = tmp_path / "bands"
        moved.mkdir()
        for band in (4, 5):  # bands without their MTL beside them: METADATA must be given
            name = f"{LANDSAT}_B{band}_crop.TIF"
            (moved / name).write_bytes((folder / name).read_bytes())
        bands = [str(moved / f"{LANDSAT}_B{band}_crop.TIF") for band in (4, 5)]
        from qgis.core import QgsProcessingException

        with pytest.raises(QgsProcessingException, match="MTL"):
            run({"INPUT": bands, "CALIBRATE": True}, tmp_path, name="without")
        result = run({"INPUT": bands, "CALIBRATE": True, "CLUSTERS": 3,
                      "METADATA": str(folder / f"{LANDSAT}_MTL.txt")}, tmp_path)
        assert len(centres(result, "NDVI")) == 3
        assert not (tmp_path / "without.tif").exists()
