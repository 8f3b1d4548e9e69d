"""rasterclustering:calibrate through the real qgis_process.bin: help, plain and --json runs on real
Landsat bands checked against the handbook formulas, and a failing run that leaves no file."""

import json
import math
import shutil

import numpy as np
from helpers import mtl_number, read_raster

ALGORITHM = "rasterclustering:calibrate"
SCENE = "LC80200392015216LGN00"
FLOAT32_RTOL = 2.0**-23


def test_help_describes_every_parameter_and_output(qgis_process):
    text = qgis_process.run(["help", ALGORITHM], check=True).stdout
    for name in ("INPUT", "METADATA", "BAND", "CELSIUS", "CLIP", "OUTPUT_FOLDER", "OUTPUT",
                 "OUTPUT_LAYERS"):
        assert name in text
    assert "Radiometric calibration" in text


def test_plain_run_calibrates_red_and_thermal_into_a_folder(qgis_process, shared_data, tmp_path):
    folder = shared_data / "landsat8-thermal"
    mtl = folder / f"{SCENE}_MTL.txt"
    out = tmp_path / "calibrated"
    completed = qgis_process.run([
        "run", ALGORITHM, "--", f"INPUT={folder / f'{SCENE}_B4_crop.TIF'}",
        f"INPUT={folder / f'{SCENE}_B10_crop.TIF'}", "CELSIUS=true", f"OUTPUT_FOLDER={out}"],
        check=True)
    red_path = out / f"{SCENE}_B4_crop_toa.tif"
    thermal_path = out / f"{SCENE}_B10_crop_bt_celsius.tif"
    layers_line = next(line for line in completed.stdout.splitlines()
                       if line.startswith("OUTPUT_LAYERS"))
    assert str(red_path) in layers_line and str(thermal_path) in layers_line
    assert "REFLECTANCE_MULT_BAND_4" in completed.stdout
    assert "K1_CONSTANT_BAND_10" in completed.stdout

    red_dn = read_raster(folder / f"{SCENE}_B4_crop.TIF").astype(np.float64)
    red = (mtl_number(mtl, "REFLECTANCE_MULT_BAND_4") * red_dn
           + mtl_number(mtl, "REFLECTANCE_ADD_BAND_4")) / math.sin(
        math.radians(mtl_number(mtl, "SUN_ELEVATION")))
    np.testing.assert_allclose(read_raster(red_path), red, rtol=FLOAT32_RTOL, atol=0)

    thermal_dn = read_raster(folder / f"{SCENE}_B10_crop.TIF").astype(np.float64)
    radiance = (mtl_number(mtl, "RADIANCE_MULT_BAND_10") * thermal_dn
                + mtl_number(mtl, "RADIANCE_ADD_BAND_10"))
    kelvin = mtl_number(mtl, "K2_CONSTANT_BAND_10") / np.log(
        mtl_number(mtl, "K1_CONSTANT_BAND_10") / radiance + 1.0)
    np.testing.assert_allclose(read_raster(thermal_path), kelvin - 273.15, rtol=FLOAT32_RTOL,
                               atol=2e-6)
    assert {p.name for p in out.iterdir()} == {
        red_path.name, red_path.with_suffix(".qml").name,
        thermal_path.name, thermal_path.with_suffix(".qml").name}


def test_json_run_of_one_band_with_json_metadata(qgis_process, shared_data, tmp_path):
    folder = shared_data / "landsat8"
    band = folder / "tiny_LC80460282016177LGN00_B3.TIF"
    output = tmp_path / "green.tif"
    document = qgis_process.run_algorithm(ALGORITHM, {"INPUT": band, "OUTPUT": output})
    assert document["results"] == {"OUTPUT": str(output), "OUTPUT_FOLDER": str(tmp_path),
                                   "OUTPUT_LAYERS": [str(output)]}
    assert any("LC80460282016177LGN00_MTL.json (found automatically)" in line
               for line in document["log"]["info"])

    metadata = json.loads((folder / "LC80460282016177LGN00_MTL.json").read_text())
    metadata = metadata["L1_METADATA_FILE"]
    rescaling = metadata["RADIOMETRIC_RESCALING"]
    dn = read_raster(band)
    expected = (rescaling["REFLECTANCE_MULT_BAND_3"] * dn.astype(np.float64)
                + rescaling["REFLECTANCE_ADD_BAND_3"]) / math.sin(
        math.radians(metadata["IMAGE_ATTRIBUTES"]["SUN_ELEVATION"]))
    values = read_raster(output)
    fill = dn == 0
    assert fill.any()
    np.testing.assert_array_equal(np.isnan(values), fill)
    np.testing.assert_allclose(values[~fill], expected[~fill], rtol=FLOAT32_RTOL, atol=0)
    assert (tmp_path / "green.qml").exists()


def test_missing_metadata_fails_clearly_and_writes_nothing(qgis_process, shared_data,
                                                           tmp_path):
    band = tmp_path / f"{SCENE}_B4_crop.TIF"
    shutil.copyfile(shared_data / "landsat8-thermal" / band.name, band)
    out = tmp_path / "out"
    completed = qgis_process.run(["run", ALGORITHM, "--", f"INPUT={band}",
                                  f"OUTPUT_FOLDER={out}"])
    assert completed.returncode != 0
    message = completed.stdout + completed.stderr
    assert "No Landsat metadata found" in message and f"{SCENE}_MTL.txt" in message
    assert not out.exists()
