"""Block-streaming calibration of band files: values against the handbook formula with numbers read
from the real MTL, nodata, file properties, all-or-nothing outputs, cancellation, names."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import file_names, mtl_number, read_raster, write_raster
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from osgeo import gdal
from raster_clustering.core.bandmath.band_names import parse_band_code
from raster_clustering.core.calibration import calibrators as calibration
from raster_clustering.core.calibration.calibrators import BandCalibrator
from raster_clustering.core.calibration.raster import (
    CalibrationJob,
    calibrate_band_files,
    output_file_name,
)
from raster_clustering.core.errors import CancelledError, InvalidInputError
from raster_clustering.core.io import rasters as raster_io

SCENE = "LC80200392015216LGN00"
THERMAL_DIR = "landsat8-thermal"

# A calibrator written out by hand, for tests about streaming rather than coefficients.
LINEAR = BandCalibrator(band="B4", quantity="TOA reflectance", unit="",
                        description="B4 TOA reflectance", log_message="test",
                        metadata_path=Path("test_MTL.txt"), gain=1e-4, offset=-0.1)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of a few rows, so every file is streamed in many blocks."""
    monkeypatch.setattr(raster_io, "BLOCK_TARGET_PIXELS", 5000)


@pytest.mark.shared_data
def test_red_band_streamed_in_blocks_equals_the_handbook_formula(shared_data, tmp_path,
                                                                 small_blocks):
    band = shared_data / THERMAL_DIR / f"{SCENE}_B4_crop.TIF"
    mtl = shared_data / THERMAL_DIR / f"{SCENE}_MTL.txt"
    calibrator = calibration.calibrator_for(band)
    output = tmp_path / output_file_name(band, calibrator)
    fractions = []
    [result] = calibrate_band_files([CalibrationJob(str(band), output, calibrator)],
                                    progress=fractions.append)

    dn = read_raster(band).astype(np.float64)
    expected = (mtl_number(mtl, "REFLECTANCE_MULT_BAND_4") * dn
                + mtl_number(mtl, "REFLECTANCE_ADD_BAND_4")) / math.sin(
        math.radians(mtl_number(mtl, "SUN_ELEVATION")))
    expected[dn == 0] = np.nan
    values = read_raster(output)
    assert values.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(values), dn == 0)
    np.testing.assert_allclose(values, expected, rtol=2**-23, atol=0)
    # Streaming in blocks gives exactly what one call on the whole band gives.
    np.testing.assert_array_equal(values, calibrator.apply(read_raster(band)))

    assert len(fractions) > 10 and fractions == sorted(fractions) and fractions[-1] == 1.0
    valid = values[np.isfinite(values)]
    assert result.valid_pixels == valid.size
    assert result.minimum == pytest.approx(float(valid.min()), rel=1e-7)
    assert result.maximum == pytest.approx(float(valid.max()), rel=1e-7)
    assert result.mean == pytest.approx(float(valid.astype(np.float64).mean()), rel=1e-9)
    assert result.std == pytest.approx(float(valid.astype(np.float64).std()), rel=1e-6)


@pytest.mark.shared_data
def test_output_keeps_the_grid_and_describes_itself(shared_data, tmp_path):
    band = shared_data / THERMAL_DIR / f"{SCENE}_B10_crop.TIF"
    calibrator = calibration.calibrator_for(band, celsius=True)
    output = tmp_path / output_file_name(band, calibrator)
    calibrate_band_files([CalibrationJob(str(band), output, calibrator)])
    source, written = gdal.Open(str(band)), gdal.Open(str(output))
    assert written.GetGeoTransform() == source.GetGeoTransform()
    assert raster_io.same_crs(written.GetProjection(), source.GetProjection())
    assert (written.RasterXSize, written.RasterYSize) == (627, 603)
    out_band = written.GetRasterBand(1)
    assert out_band.DataType == gdal.GDT_Float32 and math.isnan(out_band.GetNoDataValue())
    assert out_band.GetDescription() == "B10 brightness temperature (°C)"
    assert out_band.GetUnitType() == "°C"
    assert out_band.GetMetadataItem("QUANTITY") == "brightness temperature"
    minimum, maximum, mean, _std = out_band.GetStatistics(False, False)
    values = out_band.ReadAsArray()
    assert minimum == pytest.approx(np.nanmin(values)) and maximum == pytest.approx(
        np.nanmax(values))
    assert -25 < minimum < maximum < 40 and mean == pytest.approx(np.nanmean(values), rel=1e-6)
    assert set(file_names(tmp_path)) == {output.name}, "no temporary or sidecar file remains"


def test_input_nodata_and_mask_become_nan(tmp_path):
    dn = np.arange(1, 101, dtype=np.uint16).reshape(10, 10) * 100
    dn[0, 0] = 0  # fill
    dn[1, :] = 777  # the file's own nodata value
    band = write_raster(tmp_path / "tagged_B4.tif", dn, nodata=777)
    output = tmp_path / "out.tif"
    calibrate_band_files([CalibrationJob(str(band), output, LINEAR)])
    values = read_raster(output)
    invalid = (dn == 0) | (dn == 777)
    assert np.isnan(values[invalid]).all()
    np.testing.assert_allclose(values[~invalid], 1e-4 * dn[~invalid] - 0.1, rtol=2**-23)

    masked = write_raster(tmp_path / "masked_B4.tif", dn)
    dataset = gdal.Open(str(masked), gdal.GA_Update)
    assert dataset.CreateMaskBand(gdal.GMF_PER_DATASET) == 0
    mask = np.full(dn.shape, 255, dtype=np.uint8)
    mask[:, 5:] = 0
    dataset.GetRasterBand(1).GetMaskBand().WriteArray(mask)
    dataset = None
    calibrate_band_files([CalibrationJob(str(masked), tmp_path / "masked_out.tif", LINEAR)])
    values = read_raster(tmp_path / "masked_out.tif")
    assert np.isnan(values[:, 5:]).all()
    assert np.isfinite(values[2:, :5]).all()


@settings(max_examples=30, deadline=None)
@given(dn=hnp.arrays(np.uint16, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40)),
       block_pixels=st.integers(1, 2000))
def test_streaming_equals_calibrating_the_whole_array(dn, block_pixels):
    # Hypothesis reruns the body, so it makes its own folder instead of using tmp_path.
    with tempfile.TemporaryDirectory(prefix="calibration_raster_") as folder:
        band = write_raster(Path(folder) / "band_B4.tif", dn)
        output = Path(folder) / "out.tif"
        original = raster_io.BLOCK_TARGET_PIXELS
        raster_io.BLOCK_TARGET_PIXELS = block_pixels
        try:
            calibrate_band_files([CalibrationJob(str(band), output, LINEAR)])
        finally:
            raster_io.BLOCK_TARGET_PIXELS = original
        np.testing.assert_array_equal(read_raster(output), LINEAR.apply(dn))


@pytest.mark.shared_data
def test_cancel_after_the_first_band_leaves_nothing(shared_data, tmp_path):
    folder = shared_data / THERMAL_DIR
    jobs = []
    for code in ("B4", "B5"):
        band = folder / f"{SCENE}_{code}_crop.TIF"
        calibrator = calibration.calibrator_for(band)
        jobs.append(CalibrationJob(str(band), tmp_path / output_file_name(band, calibrator),
                                   calibrator))
    reports = []
    with pytest.raises(CancelledError):
        calibrate_band_files(jobs, progress=reports.append,
                             is_cancelled=lambda: bool(reports) and reports[-1] >= 0.5)
    assert reports[-1] == 0.5, "the first band (half the pixels) was written completely"
    assert file_names(tmp_path) == []


def test_cancel_during_the_last_block_still_leaves_nothing(tmp_path):
    band = write_raster(tmp_path / "x_B4.tif", np.ones((5, 5), dtype=np.uint16))
    reports = []
    with pytest.raises(CancelledError):
        calibrate_band_files([CalibrationJob(str(band), tmp_path / "out.tif", LINEAR)],
                             progress=reports.append, is_cancelled=lambda: bool(reports))
    assert reports == [1.0] and set(file_names(tmp_path)) == {"x_B4.tif"}


@pytest.mark.shared_data
def test_a_failing_band_takes_the_finished_ones_back_and_keeps_older_files(shared_data,
                                                                           tmp_path):
    good = shared_data / THERMAL_DIR / f"{SCENE}_B4_crop.TIF"
    truncated = tmp_path / f"{SCENE}_B10_crop.TIF"
    truncated.write_bytes((shared_data / THERMAL_DIR / truncated.name).read_bytes()[:300000])
    out = tmp_path / "out"
    out.mkdir()
    older = out / "red.tif"
    older.write_bytes(b"an older result")
    jobs = [CalibrationJob(str(good), older, LINEAR),
            CalibrationJob(str(truncated), out / "thermal.tif", LINEAR)]
    with pytest.raises(InvalidInputError, match="Reading .*B10_crop.TIF failed"):
        calibrate_band_files(jobs)
    assert set(file_names(out)) == {"red.tif"} and older.read_bytes() == b"an older result"


def test_inputs_that_are_not_dn_bands_are_refused_before_writing(tmp_path):
    two_bands = write_raster(tmp_path / "stack_B4.tif", np.ones((2, 4, 4), dtype=np.uint16))
    floats = write_raster(tmp_path / "done_B4.tif", np.ones((4, 4), dtype=np.float32))
    good = write_raster(tmp_path / "good_B4.tif", np.ones((4, 4), dtype=np.uint16))
    with pytest.raises(InvalidInputError, match="has 2 bands"):
        calibrate_band_files([CalibrationJob(str(good), tmp_path / "a.tif", LINEAR),
                              CalibrationJob(str(two_bands), tmp_path / "b.tif", LINEAR)])
    with pytest.raises(InvalidInputError, match="Float32 values, not integer"):
        calibrate_band_files([CalibrationJob(str(floats), tmp_path / "c.tif", LINEAR)])
    with pytest.raises(InvalidInputError, match="GDAL cannot read"):
        calibrate_band_files([CalibrationJob(str(tmp_path / "missing_B4.tif"),
                                             tmp_path / "d.tif", LINEAR)])
    assert set(file_names(tmp_path)) == {"stack_B4.tif", "done_B4.tif", "good_B4.tif"}


def test_colliding_outputs_and_missing_folders_are_refused(tmp_path):
    band = write_raster(tmp_path / "x_B4.tif", np.ones((4, 4), dtype=np.uint16))
    other = write_raster(tmp_path / "y_B4.tif", np.ones((4, 4), dtype=np.uint16))
    with pytest.raises(InvalidInputError, match="one of the inputs"):
        calibrate_band_files([CalibrationJob(str(band), band, LINEAR)])
    with pytest.raises(InvalidInputError, match="would both be written"):
        calibrate_band_files([CalibrationJob(str(band), tmp_path / "o.tif", LINEAR),
                              CalibrationJob(str(other), tmp_path / "o.tif", LINEAR)])
    with pytest.raises(InvalidInputError, match="does not exist"):
        calibrate_band_files([CalibrationJob(str(band), tmp_path / "no" / "o.tif", LINEAR)])
    with pytest.raises(InvalidInputError, match="No band file"):
        calibrate_band_files([])
    assert set(file_names(tmp_path)) == {"x_B4.tif", "y_B4.tif"}


@pytest.mark.parametrize(("input_name", "band", "quantity", "celsius", "expected"), [
    ("LC80200392015216LGN00_B4_crop.TIF", "B4", "TOA reflectance", False,
     "LC80200392015216LGN00_B4_crop_toa.tif"),
    ("tiny_LC80460282016177LGN00_B2.TIF", "B2", "TOA reflectance", False,
     "tiny_LC80460282016177LGN00_B2_toa.tif"),
    ("LC80200392015216LGN00_B10_crop.TIF", "B10", "brightness temperature", True,
     "LC80200392015216LGN00_B10_crop_bt_celsius.tif"),
    ("LC08_L2SP_047027_20201204_20210313_02_T1_SR_B5.TIF", "B5", "surface reflectance", False,
     "LC08_L2SP_047027_20201204_20210313_02_T1_SR_B5_sr.tif"),
    ("LC08_L2SP_047027_20201204_20210313_02_T1_ST_B10.TIF", "B10", "surface temperature", False,
     "LC08_L2SP_047027_20201204_20210313_02_T1_ST_B10_st.tif"),
    ("LE07_L1TP_021030_20100109_20200911_02_T1_B6_VCID_1.TIF", "B6_VCID_1",
     "brightness temperature", False, "LE07_L1TP_021030_20100109_20200911_02_T1_B6_VCID_1_bt.tif"),
    ("T33XWJ_20220413T150759_B8A_20m.jp2", "B8A", "surface reflectance", False,
     "T33XWJ_20220413T150759_B8A_20m_sr.tif"),
    ("red.tif", "B4", "TOA reflectance", False, "red_B4_toa.tif"),
    ("/vsizip/scene.zip/x/T46RER_20210908T042701_B04.jp2", "B4", "TOA reflectance", False,
     "T46RER_20210908T042701_B04_toa.tif"),
])
def test_output_names_keep_the_band_code(input_name, band, quantity, celsius, expected):
    calibrator = BandCalibrator(band=band, quantity=quantity, unit="", description="",
                                log_message="", metadata_path=Path("m"), gain=1.0, offset=0.0,
                                celsius=celsius)
    name = output_file_name(input_name, calibrator)
    assert name == expected
    assert parse_band_code(name) == parse_band_code(f"{band}.tif")
