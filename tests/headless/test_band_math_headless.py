"""rasterclustering:bandmath through the real qgis_process.bin on the real Landsat red/NIR pair."""

import json

import numpy as np
from helpers import read_raster
from osgeo import gdal

ALGORITHM = "rasterclustering:bandmath"
LANDSAT = "LC80200392015216LGN00"


def landsat_arguments(shared_data):
    folder = shared_data / "landsat8-thermal"
    return [f"INPUT={folder / f'{LANDSAT}_B4_crop.TIF'}",
            f"INPUT={folder / f'{LANDSAT}_B5_crop.TIF'}"]


def expected_ndvi(shared_data):
    folder = shared_data / "landsat8-thermal"
    red = read_raster(folder / f"{LANDSAT}_B4_crop.TIF").astype(np.float64)
    nir = read_raster(folder / f"{LANDSAT}_B5_crop.TIF").astype(np.float64)
    with np.errstate(all="ignore"):
        ndvi = (nir - red) / (nir + red)
    ndvi[~np.isfinite(ndvi)] = np.nan
    return ndvi


def test_help_describes_every_parameter_and_the_indices(qgis_process):
    text = qgis_process.run(["help", ALGORITHM], check=True).stdout
    for name in ("INPUT", "EXPRESSION", "SENSOR", "CALIBRATE", "METADATA", "RESOLUTION",
                 "RESAMPLING", "OUTPUT"):
        assert name in text
    assert "NDVI" in text and "(B8 - B4) / (B8 + B4)" in text


def test_plain_run_writes_the_ndvi_and_its_style(qgis_process, shared_data, tmp_path):
    output = tmp_path / "ndvi.tif"
    completed = qgis_process.run(["run", ALGORITHM, "--", *landsat_arguments(shared_data),
                                  "EXPRESSION=NDVI", f"OUTPUT={output}"], check=True)
    assert "OUTPUT:" in completed.stdout or "OUTPUT\t" in completed.stdout
    values = read_raster(output)
    expected = expected_ndvi(shared_data)
    np.testing.assert_array_equal(np.isnan(values), np.isnan(expected))
    np.testing.assert_allclose(values, expected, rtol=2e-6, atol=1e-7, equal_nan=True)
    dataset = gdal.Open(str(output))
    assert dataset.GetRasterBand(1).GetDescription() == "NDVI"
    assert (tmp_path / "ndvi.qml").exists()
    assert "Landsat 8-9" in completed.stdout + completed.stderr


def test_json_run_reports_the_output_and_is_reproducible(qgis_process, shared_data, tmp_path):
    runs = []
    for name in ("a.tif", "b.tif"):
        completed = qgis_process.run(["--json", "run", ALGORITHM, "--",
                                      *landsat_arguments(shared_data),
                                      "EXPRESSION=(B5 - B4) / (B5 + B4)",
                                      f"OUTPUT={tmp_path / name}"], check=True)
        runs.append(json.loads(completed.stdout[completed.stdout.index("{"):]))
    assert runs[0]["results"]["OUTPUT"] == str(tmp_path / "a.tif")
    assert runs[1]["results"]["OUTPUT"] == str(tmp_path / "b.tif")
    assert runs[0]["inputs"]["EXPRESSION"] == "(B5 - B4) / (B5 + B4)"
    assert (tmp_path / "a.tif").read_bytes() == (tmp_path / "b.tif").read_bytes()
    values = read_raster(tmp_path / "a.tif")
    np.testing.assert_allclose(values, expected_ndvi(shared_data), rtol=2e-6, atol=1e-7,
                               equal_nan=True)


def test_unknown_band_fails_with_the_variables_available(qgis_process, shared_data, tmp_path):
    completed = qgis_process.run(["run", ALGORITHM, "--", *landsat_arguments(shared_data),
                                  "EXPRESSION=B8 - B4", f"OUTPUT={tmp_path / 'o.tif'}"])
    assert completed.returncode != 0
    assert "B4, B5" in completed.stdout + completed.stderr
    assert not (tmp_path / "o.tif").exists()
