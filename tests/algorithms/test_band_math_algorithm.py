"""rasterclustering:bandmath through processing.run on real Landsat, Sentinel-2 and NAIP data."""

import json
import math
import re

import numpy as np
import pytest
from helpers import (
    assert_metadata_complete,
    build_model,
    handbook_ndvi,
    read_raster,
    run_algorithm,
    styled_layer,
    write_raster,
)
from osgeo import gdal

ALGORITHM = "rasterclustering:bandmath"
PARAMETERS = ["INPUT", "EXPRESSION", "SENSOR", "CALIBRATE", "METADATA", "RESOLUTION",
              "RESAMPLING", "OUTPUT"]
LANDSAT = "LC80200392015216LGN00"


def run(parameters, tmp_path, name="result", feedback=None):
    return run_algorithm(ALGORITHM, {"OUTPUT": str(tmp_path / f"{name}.tif"), **parameters},
                         feedback)


def assert_matches(output, expected):
    assert np.isfinite(expected).any()
    np.testing.assert_array_equal(np.isnan(output), np.isnan(expected))
    np.testing.assert_allclose(output, expected, rtol=2e-6, atol=1e-7, equal_nan=True)


def landsat_bands(shared_data):
    folder = shared_data / "landsat8-thermal"
    return folder / f"{LANDSAT}_B4_crop.TIF", folder / f"{LANDSAT}_B5_crop.TIF"


def band_description(path):
    dataset = gdal.Open(str(path))
    return dataset.GetRasterBand(1).GetDescription()



def test_metadata_is_complete(provider):
    assert_metadata_complete(provider.algorithm("bandmath"), display_name="Band math",
                             parameters=PARAMETERS, outputs=["OUTPUT"])


def test_help_lists_each_index_with_its_formula_per_sensor(provider):
    from xml.etree import ElementTree

    from raster_clustering.core.bandmath.spectral_indices import ALIASES

    text = provider.algorithm("bandmath").shortHelpString()
    ElementTree.fromstring(f"<root>{text}</root>")  # well-formed, so QGIS renders it
    for name in ALIASES:
        assert f"<td>{name}</td>" in text
    assert "<td>(B8 - B4) / (B8 + B4)</td>" in text  # NDVI, Sentinel-2
    assert "<td>(B5 - B4) / (B5 + B4)</td>" in text  # NDVI, Landsat 8-9
    assert "<td>(B4 - B3) / (B4 + B3)</td>" in text  # NDVI, Landsat 4-7 and generic


@pytest.mark.usefixtures("provider")
class TestRealData:
    def test_landsat_ndvi_from_band_codes_in_the_file_names(self, shared_data, tmp_path,
                                                            recorder):
        red, nir = landsat_bands(shared_data)
        result = run({"INPUT": [str(red), str(nir)], "EXPRESSION": "NDVI"}, tmp_path,
                     feedback=recorder)
        output = read_raster(result["OUTPUT"])
        assert output.shape == (603, 627) and output.dtype == np.float32
        assert_matches(output, handbook_ndvi(read_raster(red), read_raster(nir)))
        assert band_description(result["OUTPUT"]) == "NDVI"
        log = "\n".join(recorder.infos)
        assert "Landsat 8-9" in log and "(B5 - B4) / (B5 + B4)" in log
        assert f"B4 = band 1 of '{LANDSAT}_B4_crop'" in log

    def test_the_style_is_a_pseudocolour_ramp_from_minus_one_to_one(self, shared_data,
                                                                     tmp_path):
        from qgis.core import QgsSingleBandPseudoColorRenderer

        red, nir = landsat_bands(shared_data)
        result = run({"INPUT": [str(red), str(nir)], "EXPRESSION": "ndvi"}, tmp_path)
        layer = styled_layer(result["OUTPUT"])
        renderer = layer.renderer()
        assert isinstance(renderer, QgsSingleBandPseudoColorRenderer)
        assert (renderer.classificationMin(), renderer.classificationMax()) == (-1.0, 1.0)
        items = renderer.shader().rasterShaderFunction().colorRampItemList()
        # RdYlGn: red at -1, green at +1.
        assert items[0].value == -1 and items[0].color.name() == "#d7191c"
        assert items[-1].value == 1 and items[-1].color.name() == "#1a9641"
        assert math.isnan(layer.dataProvider().sourceNoDataValue(1))

    def test_the_style_is_applied_when_the_output_loads(self, shared_data, tmp_path):
        import processing
        from qgis.core import (
            QgsProcessingContext,
            QgsProcessingFeedback,
            QgsProcessingOutputLayerDefinition,
            QgsProject,
            QgsRasterLayer,
            QgsSingleBandPseudoColorRenderer,
        )

        red, nir = landsat_bands(shared_data)
        path = str(tmp_path / "loaded.tif")
        context = QgsProcessingContext()
        context.setProject(QgsProject.instance())
        processing.run(ALGORITHM, {"INPUT": [str(red), str(nir)], "EXPRESSION": "NDVI",
                                   "OUTPUT": QgsProcessingOutputLayerDefinition(
                                       path, QgsProject.instance())}, context=context)
        assert context.willLoadLayerOnCompletion(path)
        processor = context.layerToLoadOnCompletionDetails(path).postProcessor()
        assert processor is not None
        # QGIS would pick up loaded.qml by itself; without it, only the post-processor styles.
        options = QgsRasterLayer.LayerOptions()
        options.loadDefaultStyle = False
        layer = QgsRasterLayer(path, "loaded", "gdal", options)
        assert not isinstance(layer.renderer(), QgsSingleBandPseudoColorRenderer)
        processor.postProcessLayer(layer, context, QgsProcessingFeedback())
        assert isinstance(layer.renderer(), QgsSingleBandPseudoColorRenderer)
        assert layer.renderer().classificationMax() == 1.0

    def test_sentinel2_multiband_expression_on_bands_3_and_7(self, shared_data, tmp_path):
        image = shared_data / "sentinel2" / "S2_20210527_Aberystwyth_SR_10band_EPSG27700_10m.tif"
        result = run({"INPUT": [str(image)], "EXPRESSION": "(B7 - B3) / (B7 + B3)"}, tmp_path)
        dataset = gdal.Open(str(image))
        red = dataset.GetRasterBand(3).ReadAsArray()
        nir = dataset.GetRasterBand(7).ReadAsArray()
        output = gdal.Open(result["OUTPUT"])
        assert output.GetGeoTransform() == dataset.GetGeoTransform()
        assert_matches(output.GetRasterBand(1).ReadAsArray(), handbook_ndvi(red, nir))
        assert band_description(result["OUTPUT"]) == "(B7 - B3) / (B7 + B3)"

    @pytest.mark.parametrize("date", ["20090818", "20100629", "20120731", "20140720",
                                      "20150926"])
    def test_ndvi_of_each_naip_date(self, shared_data, tmp_path, date):
        image = shared_data / "naip-timeseries" / \
            f"NAIP_m_4709963_se_14_{date}_RGBN_5m_EPSG26914.tif"
        result = run({"INPUT": [str(image)], "EXPRESSION": "(B4 - B1) / (B4 + B1)"}, tmp_path)
        bands = gdal.Open(str(image)).ReadAsArray()
        expected = handbook_ndvi(bands[0], bands[3])
        expected[(bands[0] == 0) | (bands[3] == 0)] = np.nan  # nodata 0 in any band read
        assert_matches(read_raster(result["OUTPUT"]), expected)

    def test_generic_preset_on_naip_reads_blue_not_red(self, shared_data, tmp_path):
        """NAIP is red, green, blue, NIR: the generic preset's NDVI (B4 - B3) / (B4 + B3)
        reads its blue band; the help says to write the formula instead."""
        image = (shared_data / "naip-timeseries"
                 / "NAIP_m_4709963_se_14_20150926_RGBN_5m_EPSG26914.tif")
        result = run({"INPUT": [str(image)], "EXPRESSION": "NDVI", "SENSOR": 4}, tmp_path)
        bands = gdal.Open(str(image)).ReadAsArray()
        expected = handbook_ndvi(bands[2], bands[3])
        expected[(bands[2] == 0) | (bands[3] == 0)] = np.nan
        assert_matches(read_raster(result["OUTPUT"]), expected)

    def test_layer_name_at_band_across_two_unaligned_naip_dates(self, shared_data, tmp_path):
        from qgis.core import QgsRasterLayer

        folder = shared_data / "naip-timeseries"
        paths = {year: folder / f"NAIP_m_4709963_se_14_{date}_RGBN_5m_EPSG26914.tif"
                 for year, date in (("2009", "20090818"), ("2015", "20150926"))}
        layers = [QgsRasterLayer(str(paths[year]), f"naip {year}", "gdal") for year in paths]
        expression = '"naip 2015@4" - "naip 2009@4"'
        result = run({"INPUT": layers, "EXPRESSION": expression}, tmp_path)
        output = gdal.Open(result["OUTPUT"])
        x0, dx, _, y0, _, dy = output.GetGeoTransform()
        # 2009 (first, origin y 5209247, 724 rows) and 2015 (y 5209245, 723 rows): the first
        # lattice shrunk to whole pixels inside both: from row 1 of 2009, 722 rows.
        assert (x0, y0, dx, dy) == (485900.0, 5209242.0, 5.0, -5.0)
        assert (output.RasterXSize, output.RasterYSize) == (934, 722)
        bounds = (x0, y0 + dy * output.RasterYSize, x0 + dx * output.RasterXSize, y0)
        nir = {}
        for year, path in paths.items():
            warped = gdal.Warp("", str(path), format="MEM", outputBounds=bounds, xRes=5, yRes=5,
                               resampleAlg="near")
            nir[year] = warped.GetRasterBand(4).ReadAsArray().astype(np.float64)
        expected = nir["2015"] - nir["2009"]
        expected[(nir["2015"] == 0) | (nir["2009"] == 0)] = np.nan
        assert_matches(output.GetRasterBand(1).ReadAsArray(), expected)
        assert band_description(result["OUTPUT"]) == expression

    def test_calibrated_landsat_ndvi_matches_the_handbook(self, shared_data, tmp_path,
                                                          recorder):
        red, nir = landsat_bands(shared_data)
        mtl = shared_data / "landsat8-thermal" / f"{LANDSAT}_MTL.txt"
        result = run({"INPUT": [str(red), str(nir)], "EXPRESSION": "NDVI", "CALIBRATE": True,
                      "METADATA": str(mtl)}, tmp_path, feedback=recorder)
        text = mtl.read_text()

        def value(key):
            return float(re.search(rf"^\s*{key}\s*=\s*(\S+)", text, re.M).group(1))

        # The test reads the MTL on its own, and checks it against the published numbers.
        sun_elevation = value("SUN_ELEVATION")
        assert sun_elevation == 64.74360932
        gains = {band: value(f"REFLECTANCE_MULT_BAND_{band}") for band in (4, 5)}
        offsets = {band: value(f"REFLECTANCE_ADD_BAND_{band}") for band in (4, 5)}
        assert gains == {4: 2.0e-05, 5: 2.0e-05} and offsets == {4: -0.1, 5: -0.1}
        sine = math.sin(math.radians(sun_elevation))
        dn = {4: read_raster(red).astype(np.float64), 5: read_raster(nir).astype(np.float64)}
        rho = {band: (gains[band] * dn[band] + offsets[band]) / sine for band in (4, 5)}
        expected = (rho[5] - rho[4]) / (rho[5] + rho[4])
        expected[(dn[4] == 0) | (dn[5] == 0)] = np.nan  # DN 0 is fill
        output = read_raster(result["OUTPUT"])
        # Reflectances are float32 before the ratio: a relative 1e-4 covers their rounding.
        np.testing.assert_array_equal(np.isnan(output), np.isnan(expected))
        np.testing.assert_allclose(output, expected, rtol=1e-4, atol=2e-6, equal_nan=True)
        uncalibrated = handbook_ndvi(dn[4], dn[5])
        assert np.nanmax(np.abs(output - uncalibrated)) > 0.01, "calibration changed values"
        messages = [info for info in recorder.infos if "TOA reflectance" in info]
        assert len(messages) == 2 and all(f"{LANDSAT}_MTL.txt" in m for m in messages)
        assert band_description(result["OUTPUT"]) == "NDVI"


@pytest.mark.usefixtures("provider")
class TestErrors:
    def test_unknown_variable_lists_the_available_ones(self, shared_data, tmp_path):
        from qgis.core import QgsProcessingException

        red, nir = landsat_bands(shared_data)
        with pytest.raises(QgsProcessingException) as error:
            run({"INPUT": [str(red), str(nir)], "EXPRESSION": "(B8 - B4) / (B8 + B4)"},
                tmp_path)
        message = str(error.value)
        assert "B8 is not an input band" in message and "B4, B5" in message
        assert f"{LANDSAT}_B4_crop@1" in message
        assert not (tmp_path / "result.tif").exists()

    def test_check_parameter_values_refuses_a_bad_expression_before_running(self, provider,
                                                                            shared_data):
        from qgis.core import QgsProcessingContext

        red, nir = landsat_bands(shared_data)
        algorithm = provider.algorithm("bandmath").create()
        context = QgsProcessingContext()
        parameters = {"INPUT": [str(red), str(nir)], "OUTPUT": "TEMPORARY_OUTPUT"}
        ok, message = algorithm.checkParameterValues({**parameters, "EXPRESSION": "B6 / B4"},
                                                     context)
        assert not ok and "B6" in message and "B4, B5" in message
        assert algorithm.checkParameterValues({**parameters, "EXPRESSION": "B5 / B4"},
                                              context) == (True, "")

    def test_malicious_expression_is_refused_and_runs_nothing(self, shared_data, tmp_path):
        from qgis.core import QgsProcessingException

        red, nir = landsat_bands(shared_data)
        marker = tmp_path / "pwned"
        for text in (f"__import__('os').system('touch {marker}')",
                     "B4.__class__.__bases__[0].__subclasses__()",
                     "(lambda: B4)()"):
            with pytest.raises(QgsProcessingException):
                run({"INPUT": [str(red), str(nir)], "EXPRESSION": text}, tmp_path)
        assert not marker.exists() and not (tmp_path / "result.tif").exists()

    def test_syntax_error_points_at_the_column(self, shared_data, tmp_path):
        from qgis.core import QgsProcessingException

        red, nir = landsat_bands(shared_data)
        with pytest.raises(QgsProcessingException, match="column 11"):
            run({"INPUT": [str(red), str(nir)], "EXPRESSION": "(B5 - B4) ) / 2"}, tmp_path)

    def test_output_over_an_input_is_refused(self, tmp_path):
        from qgis.core import QgsProcessingException

        path = write_raster(tmp_path / "copy_B4.tif", np.ones((5, 5), np.uint16))
        before = path.read_bytes()
        with pytest.raises(QgsProcessingException, match="one of the inputs"):
            run({"INPUT": [str(path)], "EXPRESSION": "B4 * 2", "OUTPUT": str(path)}, tmp_path)
        assert path.read_bytes() == before

    def test_calibrating_a_multiband_layer_is_refused(self, shared_data, tmp_path):
        from qgis.core import QgsProcessingException

        image = shared_data / "sentinel2" / "S2_20210527_Aberystwyth_SR_10band_EPSG27700_10m.tif"
        with pytest.raises(QgsProcessingException, match="single-band file per band"):
            run({"INPUT": [str(image)], "EXPRESSION": "B7 - B3", "CALIBRATE": True}, tmp_path)
        assert not (tmp_path / "result.tif").exists()

    def test_index_without_a_recognisable_sensor_asks_for_one(self, shared_data, tmp_path):
        from qgis.core import QgsProcessingException

        image = shared_data / "sentinel2" / "S2_20210527_Aberystwyth_SR_10band_EPSG27700_10m.tif"
        with pytest.raises(QgsProcessingException,
                           match="neither the file names .* nor the band descriptions"):
            run({"INPUT": [str(image)], "EXPRESSION": "NDVI"}, tmp_path)

    def test_cancelling_leaves_no_output(self, shared_data, tmp_path):
        from qgis.core import QgsProcessingException, QgsProcessingFeedback

        red, nir = landsat_bands(shared_data)
        folder = tmp_path / "out"
        folder.mkdir()
        feedback = QgsProcessingFeedback()
        feedback.cancel()
        with pytest.raises(QgsProcessingException, match="Cancelled"):
            run({"INPUT": [str(red), str(nir)], "EXPRESSION": "NDVI"}, folder,
                feedback=feedback)
        assert list(folder.iterdir()) == []


def test_model_chaining_band_math_into_kmeans(provider, shared_data, tmp_path):
    """Band math feeds k-means in a model built as the graphical modeler builds it."""
    loaded = build_model(tmp_path / "ndvi_zones.model3", ["bands"], [
        ("bandmath", ALGORITHM, {"INPUT": ("model", "bands"), "EXPRESSION": "NDVI"}, []),
        ("kmeans", "rasterclustering:kmeans",
         {"INPUT": ("child", "bandmath", "OUTPUT"), "CLUSTERS": 3}, ["OUTPUT", "CENTROIDS"]),
    ])
    red, nir = landsat_bands(shared_data)
    result = run_algorithm(loaded, {
        "bands": [str(red), str(nir)], "kmeans:output": str(tmp_path / "zones.tif"),
        "kmeans:centroids": str(tmp_path / "zones.json")})
    document = json.loads(open(result["kmeans:centroids"]).read())
    assert list(document) == ["NDVI"] and len(document["NDVI"]) == 3
    centres = [entry[1][0] for entry in document["NDVI"]]
    assert centres == sorted(centres) and -1 <= centres[0] and centres[-1] <= 1
    labels = read_raster(result["kmeans:output"])
    assert labels.shape == (603, 627) and set(np.unique(labels)) <= {0, 1, 2, 3}
