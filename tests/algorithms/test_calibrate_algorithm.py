"""rasterclustering:calibrate through processing.run: values against the handbook formulas with
numbers read here from the real metadata, nodata, names, styles, errors, cancellation, models."""

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    assert_metadata_complete,
    build_model,
    file_names,
    mtl_number,
    read_raster,
    run_algorithm,
    styled_layer,
    toa_reflectance,
    write_raster,
)
from osgeo import gdal
from raster_clustering.core.bandmath.band_names import parse_band_code

ALGORITHM = "rasterclustering:calibrate"
PARAMETERS = ["INPUT", "METADATA", "BAND", "CELSIUS", "CLIP", "OUTPUT_FOLDER", "OUTPUT"]
SCENE = "LC80200392015216LGN00"
THERMAL = "landsat8-thermal"
TINY = "tiny_LC80460282016177LGN00"
S2_L1C = "sentinel2-mtd/S2A_MSIL1C_20210908_N0301_T46RER_MTD_MSIL1C.xml"
S2_L2A = "sentinel2-mtd/S2B_MSIL2A_20220413_N0400_T33XWJ_MTD_MSIL2A.xml"
# float32 keeps 24 significant bits: a correctly rounded result is within 2^-24 of the float64
# value, so 2^-23 leaves room for the float64 arithmetic of either side and nothing more.
FLOAT32_RTOL = 2.0**-23

pytestmark = pytest.mark.usefixtures("provider")


class RecordingFeedback:
    """A QgsProcessingFeedback that keeps what the algorithm logs (made lazily: needs QGIS)."""

    def __new__(cls, cancel_after_first_progress=False):
        from qgis.core import QgsProcessingFeedback

        class Recording(QgsProcessingFeedback):
            def __init__(self):
                super().__init__()
                self.infos, self.warnings = [], []

            def pushInfo(self, info):
                self.infos.append(info)
                super().pushInfo(info)

            def pushWarning(self, warning):
                self.warnings.append(warning)
                super().pushWarning(warning)

        feedback = Recording()
        if cancel_after_first_progress:
            feedback.progressChanged.connect(lambda _progress: feedback.cancel())
        return feedback


def run(parameters, feedback=None):
    return run_algorithm(ALGORITHM, parameters, feedback)


def run_fails(parameters, match, feedback=None):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match=match) as error:
        run(parameters, feedback=feedback)
    return str(error.value)


def xml_number(xml: Path, pattern: str) -> float:
    match = re.search(pattern + r"\s*([-+0-9.Ee]+)\s*<", xml.read_text())
    assert match, f"{pattern} not in {xml.name}"
    return float(match.group(1))


def brightness_temperature_k(dn, mult, add, k1, k2):
    """USGS Landsat 8 handbook: L = M·Q + A, T = K2 / ln(K1 / L + 1)."""
    return k2 / np.log(k1 / (mult * dn.astype(np.float64) + add) + 1.0)


def thermal_expected(folder: Path, number: int) -> np.ndarray:
    mtl = folder / f"{SCENE}_MTL.txt"
    dn = read_raster(folder / f"{SCENE}_B{number}_crop.TIF")
    return brightness_temperature_k(
        dn, mtl_number(mtl, f"RADIANCE_MULT_BAND_{number}"),
        mtl_number(mtl, f"RADIANCE_ADD_BAND_{number}"),
        mtl_number(mtl, f"K1_CONSTANT_BAND_{number}"),
        mtl_number(mtl, f"K2_CONSTANT_BAND_{number}"))


def band_copy(shared_data, tmp_path, *names):
    """Copies of real files in a folder of their own (for variants and files without metadata)."""
    folder = tmp_path / "scene"
    folder.mkdir(exist_ok=True)
    for name in names:
        shutil.copyfile(shared_data / THERMAL / name, folder / name)
    return folder


def band_labels(path) -> tuple:
    """(description, unit type) of a raster's first band."""
    dataset = gdal.Open(str(path))  # the band lives only as long as its dataset
    band = dataset.GetRasterBand(1)
    return band.GetDescription(), band.GetUnitType()


# ---------------------------------------------------------------- metadata


def test_metadata_is_complete(provider):
    algorithm = provider.algorithm("calibrate")
    assert_metadata_complete(algorithm, display_name="Radiometric calibration",
                             parameters=PARAMETERS,
                             outputs=["OUTPUT_FOLDER", "OUTPUT", "OUTPUT_LAYERS"])
    assert "OUTPUT_LAYERS" in algorithm.shortHelpString()


# ---------------------------------------------------------------- real Landsat 8 values


def test_red_band_to_one_file_is_toa_reflectance(shared_data, tmp_path):
    from qgis.core import QgsSingleBandGrayRenderer

    folder = shared_data / THERMAL
    band = folder / f"{SCENE}_B4_crop.TIF"
    mtl = folder / f"{SCENE}_MTL.txt"
    feedback = RecordingFeedback()
    output = tmp_path / "red.tif"
    result = run({"INPUT": [str(band)], "OUTPUT": str(output)}, feedback)
    assert result == {"OUTPUT": str(output), "OUTPUT_LAYERS": [str(output)],
                      "OUTPUT_FOLDER": str(tmp_path)}

    dn = read_raster(band)
    expected = toa_reflectance(dn, mtl_number(mtl, "REFLECTANCE_MULT_BAND_4"),
                               mtl_number(mtl, "REFLECTANCE_ADD_BAND_4"),
                               mtl_number(mtl, "SUN_ELEVATION"))
    values = read_raster(output)
    assert values.dtype == np.float32
    np.testing.assert_allclose(values, expected, rtol=FLOAT32_RTOL, atol=0)
    assert 0 < np.median(values) < 0.3
    written = gdal.Open(str(output))
    assert written.GetGeoTransform() == gdal.Open(str(band)).GetGeoTransform()
    assert written.GetRasterBand(1).GetDescription() == "B4 TOA reflectance"
    assert math.isnan(written.GetRasterBand(1).GetNoDataValue())

    log = "\n".join(feedback.infos)
    assert str(mtl) in log and "found automatically" in log
    assert "REFLECTANCE_MULT_BAND_4" in log and "SUN_ELEVATION" in log
    layer = styled_layer(output)
    renderer = layer.renderer()
    assert isinstance(renderer, QgsSingleBandGrayRenderer)
    enhancement = renderer.contrastEnhancement()
    assert enhancement.minimumValue() == pytest.approx(float(values.min()), rel=1e-6)
    assert enhancement.maximumValue() == pytest.approx(float(values.max()), rel=1e-6)
    assert set(file_names(tmp_path)) == {"red.tif", "red.qml"}


def test_single_output_loads_with_its_style(shared_data, tmp_path):
    import processing
    from qgis.core import (
        QgsProcessingContext,
        QgsProcessingOutputLayerDefinition,
        QgsProject,
        QgsRasterLayer,
        QgsRasterMinMaxOrigin,
    )

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    output = str(tmp_path / "red.tif")
    processing.run(ALGORITHM, {
        "INPUT": [str(shared_data / THERMAL / f"{SCENE}_B4_crop.TIF")],
        "OUTPUT": QgsProcessingOutputLayerDefinition(output, QgsProject.instance())},
        context=context)
    details = context.layerToLoadOnCompletionDetails(output)
    assert details.postProcessor() is not None
    layer = QgsRasterLayer(output, "red", "gdal")
    details.postProcessor().postProcessLayer(layer, context, None)
    assert layer.renderer().type() == "singlebandgray"
    assert layer.renderer().minMaxOrigin().limits() == QgsRasterMinMaxOrigin.None_
    values = read_raster(output)
    assert layer.renderer().contrastEnhancement().maximumValue() == pytest.approx(
        float(values.max()), rel=1e-6)


def test_thermal_bands_are_brightness_temperatures_with_cold_clouds(shared_data, tmp_path):
    from qgis.core import QgsSingleBandPseudoColorRenderer

    folder = shared_data / THERMAL
    out = tmp_path / "out"
    result = run({"INPUT": [str(folder / f"{SCENE}_B10_crop.TIF"),
                            str(folder / f"{SCENE}_B11_crop.TIF")], "OUTPUT_FOLDER": str(out)})
    assert result["OUTPUT"] is None and result["OUTPUT_FOLDER"] == str(out)
    assert result["OUTPUT_LAYERS"] == [str(out / f"{SCENE}_B10_crop_bt.tif"),
                                       str(out / f"{SCENE}_B11_crop_bt.tif")]
    # High-confidence cloud in bits 14-15 of the USGS quality band.
    cloud = ((read_raster(folder / f"{SCENE}_BQA_crop.TIF") >> 14) & 3) == 3
    assert 0.01 < cloud.mean() < 0.5
    for number, path in zip((10, 11), result["OUTPUT_LAYERS"]):
        kelvin = read_raster(path)
        np.testing.assert_allclose(kelvin, thermal_expected(folder, number), rtol=FLOAT32_RTOL)
        assert 250.0 < kelvin.min() and kelvin.max() < 310.0
        assert np.median(kelvin[cloud]) < np.median(kelvin[~cloud]) - 5.0
        dataset = gdal.Open(path)
        assert dataset.GetRasterBand(1).GetDescription() == (
            f"B{number} brightness temperature (K)")
        assert dataset.GetRasterBand(1).GetUnitType() == "K"
        assert parse_band_code(path) == f"B{number}"
        layer = styled_layer(path)
        renderer = layer.renderer()
        assert isinstance(renderer, QgsSingleBandPseudoColorRenderer)
        assert renderer.classificationMin() == pytest.approx(float(kelvin.min()), rel=1e-6)
        assert renderer.classificationMax() == pytest.approx(float(kelvin.max()), rel=1e-6)
        items = renderer.shader().rasterShaderFunction().colorRampItemList()
        assert items[0].label.endswith(" K") and items[-1].value == pytest.approx(
            float(kelvin.max()), rel=1e-6)
    assert set(file_names(out)) == {f"{SCENE}_B10_crop_bt.tif", f"{SCENE}_B10_crop_bt.qml",
                             f"{SCENE}_B11_crop_bt.tif", f"{SCENE}_B11_crop_bt.qml"}


def test_celsius(shared_data, tmp_path):
    folder = shared_data / THERMAL
    result = run({"INPUT": [str(folder / f"{SCENE}_B10_crop.TIF")], "CELSIUS": True,
                  "OUTPUT_FOLDER": str(tmp_path)})
    [path] = result["OUTPUT_LAYERS"]
    assert Path(path).name == f"{SCENE}_B10_crop_bt_celsius.tif"
    celsius = read_raster(path)
    np.testing.assert_allclose(celsius, thermal_expected(folder, 10) - 273.15,
                               rtol=FLOAT32_RTOL, atol=2e-6)
    assert -25.0 < celsius.min() and celsius.max() < 37.0
    assert band_labels(path) == ("B10 brightness temperature (°C)", "°C")


def test_tiny_scene_finds_its_json_metadata_and_keeps_fill_as_nodata(shared_data, tmp_path):
    folder = shared_data / "landsat8"
    document = json.loads((folder / "LC80460282016177LGN00_MTL.json").read_text())
    metadata = document["L1_METADATA_FILE"]
    sun_elevation = metadata["IMAGE_ATTRIBUTES"]["SUN_ELEVATION"]
    feedback = RecordingFeedback()
    bands = [folder / f"{TINY}_B{number}.TIF" for number in (2, 3, 4)]
    result = run({"INPUT": [str(band) for band in bands], "OUTPUT_FOLDER": str(tmp_path)},
                 feedback)
    assert [Path(p).name for p in result["OUTPUT_LAYERS"]] == [
        f"{TINY}_B2_toa.tif", f"{TINY}_B3_toa.tif", f"{TINY}_B4_toa.tif"]
    for number, band, path in zip((2, 3, 4), bands, result["OUTPUT_LAYERS"]):
        assert parse_band_code(path) == f"B{number}"
        rescaling = metadata["RADIOMETRIC_RESCALING"]
        dn = read_raster(band)
        expected = toa_reflectance(dn, rescaling[f"REFLECTANCE_MULT_BAND_{number}"],
                                   rescaling[f"REFLECTANCE_ADD_BAND_{number}"], sun_elevation)
        values = read_raster(path)
        fill = dn == 0
        assert fill.any() and (~fill).any()
        np.testing.assert_array_equal(np.isnan(values), fill)
        np.testing.assert_allclose(values[~fill], expected[~fill], rtol=FLOAT32_RTOL, atol=0)
    assert sum("LC80460282016177LGN00_MTL.json (found automatically)" in line
               for line in feedback.infos) == 3


def test_input_nodata_tag_and_clip(shared_data, tmp_path):
    folder = band_copy(shared_data, tmp_path, f"{SCENE}_MTL.txt")
    mtl = folder / f"{SCENE}_MTL.txt"
    dn = np.array([[0, 1, 4000, 9999], [20000, 40000, 65000, 9999]], dtype=np.uint16)
    band = write_raster(folder / f"{SCENE}_B4.TIF", dn, nodata=9999)
    plain = read_raster(run({"INPUT": [str(band)], "OUTPUT": str(tmp_path / "plain.tif")})[
        "OUTPUT"])
    clipped = read_raster(run({"INPUT": [str(band)], "CLIP": True,
                               "OUTPUT": str(tmp_path / "clipped.tif")})["OUTPUT"])
    invalid = (dn == 0) | (dn == 9999)
    assert np.isnan(plain[invalid]).all() and np.isnan(clipped[invalid]).all()
    expected = toa_reflectance(dn, mtl_number(mtl, "REFLECTANCE_MULT_BAND_4"),
                               mtl_number(mtl, "REFLECTANCE_ADD_BAND_4"),
                               mtl_number(mtl, "SUN_ELEVATION"))
    np.testing.assert_allclose(plain[~invalid], expected[~invalid], rtol=FLOAT32_RTOL)
    assert plain[0, 1] < 0 and plain[1, 2] > 1, "by default values stay as the handbook's"
    np.testing.assert_allclose(clipped[~invalid], np.clip(expected[~invalid], 0, 1),
                               rtol=FLOAT32_RTOL)


# ---------------------------------------------------------------- Sentinel-2


def make_safe(tmp_path, mtd_source, mtd_name, band_relative, dn):
    """A fake .SAFE tree: the real product metadata at the top, a small UInt16 band below."""
    safe = tmp_path / "S2_PRODUCT.SAFE"
    band = safe / band_relative
    band.parent.mkdir(parents=True)
    shutil.copyfile(mtd_source, safe / mtd_name)
    return write_raster(band, dn, epsg=32633)


S2_DN = np.array([[0, 500, 1000, 1500], [2500, 11000, 30000, 65535]], dtype=np.uint16)


def test_sentinel2_level2a_baseline_04_subtracts_the_offset(shared_data, tmp_path):
    mtd = shared_data / S2_L2A
    band = make_safe(tmp_path, mtd, "MTD_MSIL2A.xml",
                     "GRANULE/L2A_T33XWJ_A026649_20220413T150756/IMG_DATA/R10m/"
                     "T33XWJ_20220413T150759_B04_10m.tif", S2_DN)
    offset = xml_number(mtd, r'<BOA_ADD_OFFSET band_id="3">')
    quantification = xml_number(mtd, r"<BOA_QUANTIFICATION_VALUE[^>]*>")
    assert (offset, quantification) == (-1000.0, 10000.0)
    feedback = RecordingFeedback()
    result = run({"INPUT": [str(band)], "OUTPUT_FOLDER": str(tmp_path / "out")}, feedback)
    [path] = result["OUTPUT_LAYERS"]
    assert Path(path).name == "T33XWJ_20220413T150759_B04_10m_sr.tif"
    assert parse_band_code(path) == "B4"
    values = read_raster(path)
    invalid = (S2_DN == 0) | (S2_DN == 65535)
    assert np.isnan(values[invalid]).all()
    expected = (S2_DN.astype(np.float64) + offset) / quantification
    np.testing.assert_allclose(values[~invalid], expected[~invalid], rtol=FLOAT32_RTOL)
    assert band_labels(path) == ("B4 surface reflectance", "")
    assert any("Level-2A" in line and "surface reflectance" in line for line in feedback.infos)
    assert any("MTD_MSIL2A.xml (found automatically)" in line for line in feedback.infos)


def test_sentinel2_level1c_baseline_03_has_no_offset(shared_data, tmp_path):
    mtd = shared_data / S2_L1C
    assert "RADIO_ADD_OFFSET" not in mtd.read_text()
    band = make_safe(tmp_path, mtd, "MTD_MSIL1C.xml",
                     "GRANULE/L1C_T46RER_A032448_20210908T043714/IMG_DATA/"
                     "T46RER_20210908T042701_B04.tif", S2_DN)
    quantification = xml_number(mtd, r"<QUANTIFICATION_VALUE[^>]*>")
    result = run({"INPUT": [str(band)], "OUTPUT_FOLDER": str(tmp_path / "out")})
    [path] = result["OUTPUT_LAYERS"]
    assert Path(path).name == "T46RER_20210908T042701_B04_toa.tif"
    values = read_raster(path)
    invalid = (S2_DN == 0) | (S2_DN == 65535)
    assert np.isnan(values[invalid]).all()
    np.testing.assert_allclose(values[~invalid],
                               S2_DN[~invalid].astype(np.float64) / quantification,
                               rtol=FLOAT32_RTOL)


def test_sentinel2_scene_classification_is_refused(shared_data, tmp_path):
    scl = make_safe(tmp_path, shared_data / S2_L2A, "MTD_MSIL2A.xml",
                    "GRANULE/L2A_T33XWJ_A026649_20220413T150756/IMG_DATA/R20m/"
                    "T33XWJ_20220413T150759_SCL_20m.tif", np.ones((4, 4), dtype=np.uint8))
    out = tmp_path / "out"
    run_fails({"INPUT": [str(scl)], "OUTPUT_FOLDER": str(out)},
              r"scene classification \(SCL\), not a band of digital numbers")
    assert not out.exists()


# ---------------------------------------------------------------- errors leave no file


def test_missing_metadata_says_what_was_looked_for(shared_data, tmp_path):
    folder = band_copy(shared_data, tmp_path, f"{SCENE}_B4_crop.TIF")
    out = tmp_path / "out"
    message = run_fails({"INPUT": [str(folder / f"{SCENE}_B4_crop.TIF")],
                         "OUTPUT_FOLDER": str(out)}, "No Landsat metadata found")
    for looked_for in (f"{SCENE}_MTL.txt", f"{SCENE}_MTL.xml", f"{SCENE}_MTL.json"):
        assert looked_for in message
    assert "MTD_MSIL" not in message, "a Landsat band's metadata is only looked for beside it"
    assert not out.exists()


def test_metadata_of_another_scene_is_refused(shared_data, tmp_path):
    out = tmp_path / "out"
    message = run_fails({
        "INPUT": [str(shared_data / THERMAL / f"{SCENE}_B4_crop.TIF")],
        "METADATA": str(shared_data / "landsat8" / "LC80460282016177LGN00_MTL.json"),
        "OUTPUT_FOLDER": str(out)}, "belongs to LC80200392015216LGN00")
    assert "LC80460282016177LGN00_MTL.json" in message
    assert not out.exists()


def test_band_the_metadata_does_not_describe(shared_data, tmp_path):
    folder = band_copy(shared_data, tmp_path, f"{SCENE}_MTL.txt")
    band = write_raster(folder / "renamed.tif", np.ones((4, 4), dtype=np.uint16))
    out = tmp_path / "out"
    message = run_fails({"INPUT": [str(band)], "METADATA": str(folder / f"{SCENE}_MTL.txt"),
                         "BAND": "B12", "OUTPUT_FOLDER": str(out)},
                        "does not describe band B12")
    assert "REFLECTANCE_MULT_BAND_12" in message and f"{SCENE}_MTL.txt" in message
    assert not out.exists()
    # The same file with a band the metadata has: the band code goes into the output name.
    result = run({"INPUT": [str(band)], "METADATA": str(folder / f"{SCENE}_MTL.txt"),
                  "BAND": "4", "OUTPUT_FOLDER": str(out)})
    assert [Path(p).name for p in result["OUTPUT_LAYERS"]] == ["renamed_B4_toa.tif"]


def test_damaged_metadata_names_the_file_and_the_key(shared_data, tmp_path):
    folder = band_copy(shared_data, tmp_path, f"{SCENE}_B4_crop.TIF", f"{SCENE}_MTL.txt")
    mtl = folder / f"{SCENE}_MTL.txt"
    text = mtl.read_text()
    assert "REFLECTANCE_MULT_BAND_4 = 2.0000E-05" in text
    mtl.write_text(text.replace("REFLECTANCE_MULT_BAND_4 = 2.0000E-05",
                                "REFLECTANCE_MULT_BAND_4 = 2.0000E-O5"))
    out = tmp_path / "out"
    message = run_fails({"INPUT": [str(folder / f"{SCENE}_B4_crop.TIF")],
                         "OUTPUT_FOLDER": str(out)}, "REFLECTANCE_MULT_BAND_4")
    assert mtl.name in message and "not a number" in message
    assert not out.exists()


def test_quality_band_is_refused(shared_data, tmp_path):
    run_fails({"INPUT": [str(shared_data / THERMAL / f"{SCENE}_BQA_crop.TIF")],
               "OUTPUT_FOLDER": str(tmp_path / "out")}, "quality")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("extra", "match"), [
    ({"BAND": "B4"}, "BAND names the band of a single file"),
    ({"OUTPUT": "TEMPORARY_OUTPUT"}, "single output file"),
])
def test_single_file_options_with_several_inputs_are_refused(shared_data, tmp_path, extra,
                                                              match):
    folder = shared_data / THERMAL
    out = tmp_path / "out"
    run_fails({"INPUT": [str(folder / f"{SCENE}_B4_crop.TIF"),
                         str(folder / f"{SCENE}_B5_crop.TIF")],
               "OUTPUT_FOLDER": str(out), **extra}, match)
    assert not out.exists()


def test_unwritable_output_folder(shared_data, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("a file where a folder should be")
    run_fails({"INPUT": [str(shared_data / THERMAL / f"{SCENE}_B4_crop.TIF")],
               "OUTPUT_FOLDER": str(blocker / "out")}, "Cannot create the output folder")
    run_fails({"INPUT": [str(shared_data / THERMAL / f"{SCENE}_B4_crop.TIF")],
               "OUTPUT": str(blocker / "red.tif")}, "output folder .* does not exist")
    assert set(file_names(tmp_path)) == {"a_file"}


def test_output_that_is_not_a_geotiff_is_refused(shared_data, tmp_path):
    run_fails({"INPUT": [str(shared_data / THERMAL / f"{SCENE}_B4_crop.TIF")],
               "OUTPUT": str(tmp_path / "red.sdat")}, "must be a GeoTIFF")
    assert file_names(tmp_path) == []


def test_a_failing_second_band_removes_the_finished_first(shared_data, tmp_path):
    folder = band_copy(shared_data, tmp_path, f"{SCENE}_B4_crop.TIF", f"{SCENE}_MTL.txt")
    truncated = folder / f"{SCENE}_B10_crop.TIF"
    truncated.write_bytes((shared_data / THERMAL / truncated.name).read_bytes()[:300000])
    out = tmp_path / "out"
    run_fails({"INPUT": [str(folder / f"{SCENE}_B4_crop.TIF"), str(truncated)],
               "OUTPUT_FOLDER": str(out)}, "Reading .*B10_crop.TIF failed")
    assert not out.exists()


@pytest.mark.parametrize("band_count", [1, 2])
def test_cancel_after_the_first_progress_report_leaves_nothing(shared_data, tmp_path,
                                                               band_count):
    folder = shared_data / THERMAL
    bands = [str(folder / f"{SCENE}_B{number}_crop.TIF") for number in (4, 5)][:band_count]
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("someone else's file")
    feedback = RecordingFeedback(cancel_after_first_progress=True)
    run_fails({"INPUT": bands, "OUTPUT_FOLDER": str(out)}, "Cancelled", feedback)
    assert feedback.isCanceled()
    assert set(file_names(out)) == {"keep.txt"}


# ---------------------------------------------------------------- models


def test_model_calibrate_then_kmeans(shared_data, tmp_path):
    import processing

    folder = shared_data / THERMAL
    bands = [str(folder / f"{SCENE}_B{number}_crop.TIF") for number in (4, 5)]
    model = build_model(tmp_path / "zones.model3", ["bands"], [
        ("calibrate", ALGORITHM, {"INPUT": ("model", "bands")}, []),
        ("kmeans", "rasterclustering:kmeans",
         {"INPUT": ("child", "calibrate", "OUTPUT_LAYERS"), "CLUSTERS": 3, "SEED": 1},
         ["OUTPUT", "CENTROIDS"]),
    ])
    result = run_algorithm(model, {"bands": bands,
                                    "kmeans:output": str(tmp_path / "zones.tif"),
                                    "kmeans:centroids": str(tmp_path / "zones.json")})
    document = json.loads(Path(result["kmeans:centroids"]).read_text())
    assert document["features"] == ["B4 TOA reflectance", "B5 TOA reflectance"]

    # The same two steps run one after the other give the same classes.
    calibrated = run({"INPUT": bands, "OUTPUT_FOLDER": str(tmp_path / "by_hand")})
    by_hand = processing.run("rasterclustering:kmeans", {
        "INPUT": calibrated["OUTPUT_LAYERS"], "CLUSTERS": 3, "SEED": 1,
        "OUTPUT": str(tmp_path / "by_hand.tif"), "CENTROIDS": str(tmp_path / "by_hand.json"),
        "STATISTICS": "TEMPORARY_OUTPUT"})
    np.testing.assert_array_equal(read_raster(result["kmeans:output"]),
                                  read_raster(by_hand["OUTPUT"]))
    assert json.loads(Path(by_hand["CENTROIDS"]).read_text()) == document


def test_model_calibrate_band_math_kmeans(shared_data, tmp_path):
    from qgis.core import QgsApplication

    if QgsApplication.processingRegistry().algorithmById("rasterclustering:bandmath") is None:
        pytest.skip("rasterclustering:bandmath is not registered yet")
    folder = shared_data / THERMAL
    bands = [str(folder / f"{SCENE}_B{number}_crop.TIF") for number in (4, 5)]
    model = build_model(tmp_path / "ndvi_zones.model3", ["bands"], [
        ("calibrate", ALGORITHM, {"INPUT": ("model", "bands")}, []),
        ("bandmath", "rasterclustering:bandmath",
         {"INPUT": ("child", "calibrate", "OUTPUT_LAYERS"),
          "EXPRESSION": "(B5 - B4) / (B5 + B4)"}, ["OUTPUT"]),
        ("kmeans", "rasterclustering:kmeans",
         {"INPUT": ("child", "bandmath", "OUTPUT"), "CLUSTERS": 3, "SEED": 1}, ["OUTPUT"]),
    ])
    result = run_algorithm(model, {"bands": bands,
                                    "bandmath:output": str(tmp_path / "ndvi.tif"),
                                    "kmeans:output": str(tmp_path / "zones.tif")})
    red = read_raster(folder / f"{SCENE}_B4_crop.TIF")
    nir = read_raster(folder / f"{SCENE}_B5_crop.TIF")
    mtl = folder / f"{SCENE}_MTL.txt"
    sun = mtl_number(mtl, "SUN_ELEVATION")
    red_toa = toa_reflectance(red, mtl_number(mtl, "REFLECTANCE_MULT_BAND_4"),
                              mtl_number(mtl, "REFLECTANCE_ADD_BAND_4"), sun)
    nir_toa = toa_reflectance(nir, mtl_number(mtl, "REFLECTANCE_MULT_BAND_5"),
                              mtl_number(mtl, "REFLECTANCE_ADD_BAND_5"), sun)
    ndvi = read_raster(result["bandmath:output"])
    np.testing.assert_allclose(ndvi, (nir_toa - red_toa) / (nir_toa + red_toa), atol=1e-5)
    zones = read_raster(result["kmeans:output"])
    assert set(np.unique(zones)) == {1, 2, 3}
    means = [float(ndvi[zones == label].mean()) for label in (1, 2, 3)]
    assert means == sorted(means), "classes are numbered by ascending NDVI"
