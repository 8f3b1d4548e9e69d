"""Radiometric calibration against handbook formulas written out here and numbers copied from the
real metadata files; real Landsat 8 DN crops; legacy text; errors; properties."""

from __future__ import annotations

import math
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from helpers import write_safe_tree, write_variant
from hypothesis import given, settings
from hypothesis import strategies as st
from osgeo import gdal
from raster_clustering.core.calibration import calibrators as calibration
from raster_clustering.core.errors import InvalidInputError, MetadataError

THERMAL_DIR = "landsat8-thermal"
THERMAL_MTL = "landsat8-thermal/LC80200392015216LGN00_MTL.txt"
L2SP_DIR = "landsat-mtl"
L2SP_ID = "LC08_L2SP_047027_20201204_20210313_02_T1"
LE07_XML = "landsat-mtl/LE07_L2SP_021030_20100109_20200911_02_T1_MTL.xml"
S2_L1C = "sentinel2-mtd/S2A_MSIL1C_20210908_N0301_T46RER_MTD_MSIL1C.xml"
S2_L2A = "sentinel2-mtd/S2B_MSIL2A_20220413_N0400_T33XWJ_MTD_MSIL2A.xml"

# Pre-2012 Landsat 5 TM text: LMAX/LMIN/QCALMAX/QCALMIN only, no Earth-Sun distance, no K1/K2.
LEGACY_TM_MTL = """GROUP = L1_METADATA_FILE
  GROUP = METADATA_FILE_INFO
    ORIGIN = "Image courtesy of the U.S. Geological Survey (São Paulo relay)"
  END_GROUP = METADATA_FILE_INFO
  GROUP = PRODUCT_METADATA
    SPACECRAFT_ID = "Landsat5"
    SENSOR_ID = "TM"
    ACQUISITION_DATE = 2008-10-11
    METADATA_L1_FILE_NAME = "L5044034_03420081011_MTL.txt"
  END_GROUP = PRODUCT_METADATA
  GROUP = MIN_MAX_RADIANCE
    LMAX_BAND3 = 264.000
    LMIN_BAND3 = -1.170
    LMAX_BAND6 = 15.303
    LMIN_BAND6 = 1.238
  END_GROUP = MIN_MAX_RADIANCE
  GROUP = MIN_MAX_PIXEL_VALUE
    QCALMAX_BAND3 = 255.0
    QCALMIN_BAND3 = 1.0
    QCALMAX_BAND6 = 255.0
    QCALMIN_BAND6 = 1.0
  END_GROUP = MIN_MAX_PIXEL_VALUE
  GROUP = PRODUCT_PARAMETERS
    SUN_AZIMUTH = 149.2442141
    SUN_ELEVATION = 41.3709008
  END_GROUP = PRODUCT_PARAMETERS
END_GROUP = L1_METADATA_FILE
END
"""


def read_dn(path: Path) -> np.ndarray:
    dataset = gdal.Open(str(path))
    assert dataset is not None, f"GDAL cannot open {path}"
    return dataset.GetRasterBand(1).ReadAsArray()


def write_legacy_tm(folder: Path) -> Path:
    """The legacy text as old files come: latin-1 bytes and NUL padding after END."""
    path = folder / "L5044034_03420081011_MTL.txt"
    path.write_bytes(LEGACY_TM_MTL.encode("latin-1") + b"\x00" * 1024)
    return path


def planck_radiance(temperature_k: np.ndarray, k1: float, k2: float) -> np.ndarray:
    """Forward Planck relation behind K1/K2: L = K1 / (exp(K2 / T) − 1)."""
    return k1 / np.expm1(k2 / temperature_k)


# ---------------------------------------------------------------- formulas


@pytest.mark.parametrize(
    ("day", "expected_au"),
    [
        (date(2021, 1, 3), 0.98330),  # perihelion
        (date(2021, 7, 5), 1.01671),  # aphelion
        (date(2021, 4, 4), 1.0),
        (date(2021, 10, 4), 1.0),
    ],
)
def test_earth_sun_distance_at_known_dates(day, expected_au):
    assert calibration.earth_sun_distance_au(day) == pytest.approx(expected_au, abs=1.5e-3)


@pytest.mark.parametrize(
    ("day", "metadata_value"),  # EARTH_SUN_DISTANCE copied from the real files
    [
        (date(2010, 1, 9), 0.9833890),
        (date(2015, 8, 4), 1.0145544),
        (date(2016, 5, 13), 1.0104922),
        (date(2016, 6, 25), 1.0165183),
        (date(2020, 9, 27), 1.0021963),
        (date(2020, 12, 4), 0.9854607),
        (date(2022, 1, 29), 0.9849984),
    ],
)
def test_earth_sun_distance_matches_usgs_metadata(day, metadata_value):
    assert calibration.earth_sun_distance_au(day) == pytest.approx(metadata_value, abs=3e-4)


def test_radiance_from_limits_is_the_handbook_line():
    lmax, lmin, qcalmax, qcalmin = 264.0, -1.17, 255.0, 1.0
    dn = np.arange(0, 256, dtype=np.float64)
    gain, bias = calibration.radiance_rescaling_from_limits(lmax, lmin, qcalmax, qcalmin)
    expected = (lmax - lmin) / (qcalmax - qcalmin) * (dn - qcalmin) + lmin
    np.testing.assert_allclose(gain * dn + bias, expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(MetadataError, match="zero range"):
        calibration.radiance_rescaling_from_limits(10.0, 1.0, 255.0, 255.0)


def test_brightness_temperature_inverts_planck():
    temperatures = np.linspace(180.0, 340.0, 50)
    k1, k2 = 774.8853, 1321.0789  # Landsat 8 band 10
    radiance = planck_radiance(temperatures, k1, k2)
    recovered = calibration.brightness_temperature_k(radiance, k1=k1, k2=k2)
    np.testing.assert_allclose(recovered, temperatures, rtol=1e-12)
    assert np.isnan(calibration.brightness_temperature_k(np.array([0.0, -1.0]), k1=k1, k2=k2)).all()


# ---------------------------------------------------------------- real Landsat 8 DN


@pytest.mark.shared_data
def test_landsat8_red_toa_reflectance(shared_data):
    band = shared_data / THERMAL_DIR / "LC80200392015216LGN00_B4_crop.TIF"
    calibrator = calibration.calibrator_for(band)
    dn = read_dn(band)
    # REFLECTANCE_MULT_BAND_4, REFLECTANCE_ADD_BAND_4, SUN_ELEVATION from the MTL
    expected = (2.0000e-05 * dn.astype(np.float64) - 0.100000) / math.sin(
        math.radians(64.74360932)
    )
    result = calibrator.apply(dn)
    assert result.dtype == np.float32 and result.shape == dn.shape
    np.testing.assert_allclose(result, expected, rtol=2e-6, atol=1e-7)
    assert calibrator.metadata_path == shared_data / THERMAL_MTL
    assert (calibrator.band, calibrator.quantity, calibrator.unit) == ("B4", "TOA reflectance", "")
    assert calibrator.description == "B4 TOA reflectance"
    assert "REFLECTANCE_MULT_BAND_4" in calibrator.log_message
    assert 0.0 < float(np.median(result)) < 0.3


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("band_number", "mult", "add", "k1", "k2"),  # copied from the MTL
    [
        (10, 3.3420e-04, 0.10000, 774.8853, 1321.0789),
        (11, 3.3420e-04, 0.10000, 480.8883, 1201.1442),
    ],
)
def test_landsat8_brightness_temperature(shared_data, band_number, mult, add, k1, k2):
    folder = shared_data / THERMAL_DIR
    band = folder / f"LC80200392015216LGN00_B{band_number}_crop.TIF"
    calibrator = calibration.calibrator_for(band)
    dn = read_dn(band).astype(np.float64)
    expected = k2 / np.log(k1 / (mult * dn + add) + 1.0)
    kelvin = calibrator.apply(read_dn(band))
    np.testing.assert_allclose(kelvin, expected, rtol=1e-6)
    assert calibrator.description == f"B{band_number} brightness temperature (K)"
    assert (calibrator.quantity, calibrator.unit) == ("brightness temperature", "K")
    assert 250.0 < kelvin.min() and kelvin.max() < 310.0
    # Clouds are the cold end: the USGS quality band flags high-confidence cloud in bits 14-15.
    cloud = ((read_dn(folder / "LC80200392015216LGN00_BQA_crop.TIF") >> 14) & 3) == 3
    assert 0.01 < cloud.mean() < 0.5
    assert np.median(kelvin[cloud]) < np.median(kelvin[~cloud]) - 5.0
    celsius = calibration.calibrator_for(band, celsius=True)
    assert celsius.unit == "°C" and celsius.description.endswith("(°C)")
    np.testing.assert_allclose(celsius.apply(read_dn(band)), expected - 273.15, atol=2e-4)


@pytest.mark.shared_data
@pytest.mark.parametrize("band_number", [2, 3, 4])
def test_tiny_scene_reflectance_and_fill(shared_data, band_number):
    band = shared_data / "landsat8" / f"tiny_LC80460282016177LGN00_B{band_number}.TIF"
    calibrator = calibration.calibrator_for(band)
    assert calibrator.metadata_path.name == "LC80460282016177LGN00_MTL.json"
    dn = read_dn(band)
    result = calibrator.apply(dn)
    fill = dn == 0
    assert fill.any() and (~fill).any()
    assert np.isnan(result[fill]).all()
    assert np.isfinite(result[~fill]).all()
    # JSON values: REFLECTANCE_MULT 2e-05, REFLECTANCE_ADD -0.1, SUN_ELEVATION 62.58246948
    expected = (2e-05 * dn[~fill].astype(np.float64) - 0.1) / math.sin(math.radians(62.58246948))
    np.testing.assert_allclose(result[~fill], expected, rtol=2e-6, atol=1e-7)


@pytest.mark.shared_data
def test_txt_and_json_metadata_calibrate_identically(shared_data):
    folder = shared_data / "landsat8"
    band = folder / "LC81060712016134LGN00_B3.TIF"
    dn = read_dn(band)
    from_txt = calibration.calibrator_for(
        band, metadata_path=folder / "LC81060712016134LGN00_MTL.txt"
    )
    from_json = calibration.calibrator_for(
        band, metadata_path=folder / "LC81060712016134LGN00_MTL.json"
    )
    assert (from_txt.gain, from_txt.offset) == (from_json.gain, from_json.offset)
    np.testing.assert_array_equal(from_txt.apply(dn), from_json.apply(dn))


@pytest.mark.shared_data
def test_clip_only_when_asked(shared_data):
    band = shared_data / THERMAL_DIR / "LC80200392015216LGN00_B4_crop.TIF"
    dn = np.array([[0, 1, 20000, 65535]], dtype=np.uint16)
    plain = calibration.calibrator_for(band).apply(dn)
    clipped = calibration.calibrator_for(band, clip=True).apply(dn)
    assert plain[0, 1] < 0 and plain[0, 3] > 1
    assert np.isnan(clipped[0, 0]) and clipped[0, 1] == 0.0 and clipped[0, 3] == 1.0
    assert 0 < plain[0, 2] < 1 and clipped[0, 2] == plain[0, 2]
    thermal_band = band.with_name("LC80200392015216LGN00_B10_crop.TIF")
    thermal = calibration.calibrator_for(thermal_band, clip=True)
    assert thermal.apply(np.array([30000]))[0] > 250.0
    assert "ignored" in thermal.log_message


# ---------------------------------------------------------------- Level-2 and Collection 2


@pytest.mark.shared_data
def test_level2_surface_reflectance_and_temperature(shared_data):
    folder = shared_data / L2SP_DIR
    dn = np.array([0, 7273, 20000, 43636], dtype=np.uint16)
    reflectance = calibration.calibrator_for(folder / f"{L2SP_ID}_SR_B4.TIF")
    assert reflectance.quantity == "surface reflectance"
    assert reflectance.description == "B4 surface reflectance"
    assert "Level-2" in reflectance.log_message
    assert "not a top-of-atmosphere" in reflectance.log_message
    expected = 2.75e-05 * dn.astype(np.float64) - 0.2
    result = reflectance.apply(dn)
    assert np.isnan(result[0])
    np.testing.assert_allclose(result[1:], expected[1:], rtol=1e-6, atol=1e-7)
    temperature = calibration.calibrator_for(
        folder / f"{L2SP_ID}_ST_B10.TIF", metadata_path=folder / f"{L2SP_ID}_MTL.xml", celsius=True
    )
    assert temperature.description == "B10 surface temperature (°C)"
    expected_c = 0.00341802 * dn.astype(np.float64) + 149.0 - 273.15
    np.testing.assert_allclose(temperature.apply(dn)[1:], expected_c[1:], atol=1e-4)


@pytest.mark.shared_data
def test_level1_band_with_level2_metadata_uses_level1_coefficients(shared_data):
    folder = shared_data / L2SP_DIR
    band = folder / "LC08_L1TP_047027_20201204_20210313_02_T1_B4.TIF"
    calibrator = calibration.calibrator_for(band, metadata_path=folder / f"{L2SP_ID}_MTL.txt")
    dn = np.array([1, 10000, 30000], dtype=np.uint16)
    expected = (2.0e-05 * dn - 0.1) / math.sin(math.radians(18.80722985))
    np.testing.assert_allclose(calibrator.apply(dn), expected, rtol=1e-6)
    assert "LEVEL1_RADIOMETRIC_RESCALING" in calibrator.log_message


@pytest.mark.shared_data
def test_landsat7_thermal_gains(shared_data):
    metadata = shared_data / LE07_XML
    folder = metadata.parent
    dn = np.array([0, 100, 150, 200], dtype=np.uint8)
    for vcid, (mult, add) in {1: (6.7087e-02, -0.06709), 2: (3.7205e-02, 3.16280)}.items():
        band = folder / f"LE07_L1TP_021030_20100109_20200911_02_T1_B6_VCID_{vcid}.TIF"
        calibrator = calibration.calibrator_for(band, metadata_path=metadata)
        assert calibrator.band == f"B6_VCID_{vcid}"
        expected = 1282.71 / np.log(666.09 / (mult * dn[1:] + add) + 1.0)
        np.testing.assert_allclose(calibrator.apply(dn)[1:], expected, rtol=1e-6)
        assert np.isnan(calibrator.apply(dn)[0])


@pytest.mark.shared_data
def test_esun_path_agrees_with_usgs_reflectance_coefficients(shared_data, tmp_path):
    """Without REFLECTANCE_* keys the ESUN formula must land close to USGS's own coefficients."""
    source = shared_data / LE07_XML
    stripped = write_variant(
        source,
        tmp_path / source.name,
        ("<REFLECTANCE_MULT_BAND_4>1.8148E-03</REFLECTANCE_MULT_BAND_4>", ""),
        ("<REFLECTANCE_ADD_BAND_4>-0.016282</REFLECTANCE_ADD_BAND_4>", ""),
    )
    band = tmp_path / "LE07_L1TP_021030_20100109_20200911_02_T1_B4.TIF"
    calibrator = calibration.calibrator_for(band, metadata_path=stripped)
    dn = np.arange(1, 256, dtype=np.float64)
    # π·L·d² / (ESUN·sin θ), ESUN(ETM+ band 4) = 1039 (Chander et al. 2009), d and θ from the file
    radiance = 6.3976e-01 * dn - 5.73976
    expected = math.pi * radiance * 0.9833890**2 / (1039.0 * math.sin(math.radians(21.38957268)))
    np.testing.assert_allclose(calibrator.apply(dn), expected, rtol=1e-6, atol=1e-7)
    usgs = (1.8148e-03 * dn - 0.016282) / math.sin(math.radians(21.38957268))
    np.testing.assert_allclose(calibrator.apply(dn)[100:], usgs[100:], rtol=0.05)
    assert "ESUN = 1039" in calibrator.log_message
    assert "EARTH_SUN_DISTANCE" in calibrator.log_message


# ---------------------------------------------------------------- legacy text


def test_legacy_tm_reflectance_from_limits_and_date(tmp_path):
    write_legacy_tm(tmp_path)
    calibrator = calibration.calibrator_for(tmp_path / "L5044034_03420081011_B30.TIF")
    assert calibrator.band == "B3"
    dn = np.arange(0, 256, dtype=np.uint8)
    radiance = (264.0 - -1.17) / (255.0 - 1.0) * (dn.astype(np.float64) - 1.0) + -1.17
    distance = 1 - 0.01672 * math.cos(math.radians(0.9856 * (285 - 4)))  # 11 Oct 2008 = day 285
    expected = math.pi * radiance * distance**2 / (1536.0 * math.sin(math.radians(41.3709008)))
    result = calibrator.apply(dn)
    assert np.isnan(result[0])
    np.testing.assert_allclose(result[1:], expected[1:], rtol=1e-6, atol=1e-7)
    assert "acquisition date 2008-10-11" in calibrator.log_message


def test_legacy_tm_thermal_uses_published_constants(tmp_path):
    write_legacy_tm(tmp_path)
    calibrator = calibration.calibrator_for(tmp_path / "L5044034_03420081011_B60.TIF")
    assert calibrator.band == "B6" and calibrator.quantity == "brightness temperature"
    dn = np.array([60, 130, 200], dtype=np.uint8)
    radiance = (15.303 - 1.238) / (255.0 - 1.0) * (dn - 1.0) + 1.238
    expected = 1260.56 / np.log(607.76 / radiance + 1.0)  # Landsat 5 TM K1, K2
    np.testing.assert_allclose(calibrator.apply(dn), expected, rtol=1e-6)
    assert 250.0 < calibrator.apply(np.array([130]))[0] < 310.0
    assert "Chander" in calibrator.log_message


def test_legacy_sensor_without_published_esun(tmp_path):
    text = LEGACY_TM_MTL.replace('"Landsat5"', '"Landsat3"').replace('"TM"', '"MSS"')
    (tmp_path / "LM3_MTL.txt").write_text(text, encoding="utf-8")
    with pytest.raises(MetadataError, match="ESUN"):
        calibration.calibrator_for(tmp_path / "LM3_B3.TIF")


# ---------------------------------------------------------------- Sentinel-2


@pytest.mark.shared_data
def test_sentinel2_level2a_surface_reflectance_with_offset(shared_data, tmp_path):
    band = write_safe_tree(
        tmp_path, shared_data / S2_L2A, "MTD_MSIL2A.xml",
        "GRANULE/L2A_T33XWJ_A026649_20220413T150756/IMG_DATA/R10m/"
        "T33XWJ_20220413T150759_B04_10m.jp2",
    )
    calibrator = calibration.calibrator_for(band)
    assert calibrator.description == "B4 surface reflectance"
    dn = np.array([0, 500, 1000, 1500, 11000, 65535], dtype=np.uint16)
    result = calibrator.apply(dn)
    expected = (dn.astype(np.float64) - 1000.0) / 10000.0  # BOA_ADD_OFFSET, BOA_QUANTIFICATION
    assert np.isnan(result[0]) and np.isnan(result[-1])
    np.testing.assert_allclose(result[1:-1], expected[1:-1], atol=1e-7)
    clipped = calibration.calibrator_for(band, clip=True).apply(dn)
    assert clipped[1] == 0.0 and clipped[4] == 1.0
    assert "surface reflectance" in calibrator.log_message


@pytest.mark.shared_data
def test_sentinel2_level1c_toa_reflectance_without_offset(shared_data, tmp_path):
    band = write_safe_tree(
        tmp_path, shared_data / S2_L1C, "MTD_MSIL1C.xml",
        "GRANULE/L1C_T46RER_A032448_20210908T043714/IMG_DATA/T46RER_20210908T042701_B8A.jp2",
    )
    calibrator = calibration.calibrator_for(band)
    assert (calibrator.band, calibrator.quantity) == ("B8A", "TOA reflectance")
    dn = np.array([0, 1000, 2500, 65535], dtype=np.uint16)
    result = calibrator.apply(dn)
    np.testing.assert_allclose(result[1:3], [0.1, 0.25], atol=1e-7)
    assert np.isnan(result[[0, 3]]).all()


@pytest.mark.shared_data
def test_sentinel2_band_missing_from_level2a(shared_data, tmp_path):
    band = write_safe_tree(
        tmp_path, shared_data / S2_L2A, "MTD_MSIL2A.xml",
        "GRANULE/L2A_T33XWJ_A026649_20220413T150756/IMG_DATA/R60m/"
        "T33XWJ_20220413T150759_B10_60m.jp2",
    )
    with pytest.raises(MetadataError, match="no image of band B10"):
        calibration.calibrator_for(band)


@pytest.mark.parametrize(
    "name",
    ["T33XWJ_20220413T150759_SCL_20m.jp2", "T33XWJ_20220413T150759_AOT_10m.jp2",
     "T33XWJ_20220413T150759_WVP_10m.jp2", "T46RER_20210908T042701_TCI.jp2",
     "LC80200392015216LGN00_BQA_crop.TIF", "LC08_L1TP_188018_20200927_20201005_02_T1_QA_PIXEL.TIF"],
)
def test_non_reflectance_layers_are_refused_before_looking_for_metadata(tmp_path, name):
    with pytest.raises(InvalidInputError, match="not a band of digital numbers"):
        calibration.calibrator_for(tmp_path / name)


# ---------------------------------------------------------------- errors


@pytest.fixture
def thermal_copy(shared_data, tmp_path):
    """A writable copy folder for variants of the Landsat 8 thermal-crop metadata."""

    def make(*replacements: tuple[str, str]) -> Path:
        return write_variant(
            shared_data / THERMAL_MTL, tmp_path / "LC80200392015216LGN00_MTL.txt", *replacements
        )

    return make


@pytest.mark.shared_data
def test_zero_radiance_multiplier_is_refused(thermal_copy, tmp_path):
    thermal_copy(("RADIANCE_MULT_BAND_10 = 3.3420E-04", "RADIANCE_MULT_BAND_10 = 0.0000E+00"))
    with pytest.raises(MetadataError, match="RADIANCE_MULT_BAND_10 is 0.*LC8020039"):
        calibration.calibrator_for(tmp_path / "LC80200392015216LGN00_B10.TIF")
    calibration.calibrator_for(tmp_path / "LC80200392015216LGN00_B11.TIF")


@pytest.mark.shared_data
def test_missing_key_is_named(thermal_copy, tmp_path):
    thermal_copy(("    K2_CONSTANT_BAND_11 = 1201.1442\n", ""))
    with pytest.raises(MetadataError, match="K2_CONSTANT_BAND_11"):
        calibration.calibrator_for(tmp_path / "LC80200392015216LGN00_B11.TIF")


@pytest.mark.shared_data
@pytest.mark.parametrize("elevation", ["-12.5", "0.0"])
def test_sun_below_horizon_refuses_reflectance_not_temperature(thermal_copy, tmp_path, elevation):
    thermal_copy(("SUN_ELEVATION = 64.74360932", f"SUN_ELEVATION = {elevation}"))
    with pytest.raises(MetadataError, match="SUN_ELEVATION"):
        calibration.calibrator_for(tmp_path / "LC80200392015216LGN00_B4.TIF")
    night = calibration.calibrator_for(tmp_path / "LC80200392015216LGN00_B10.TIF")
    assert night.apply(np.array([30000]))[0] > 250.0


@pytest.mark.shared_data
def test_band_the_metadata_does_not_describe(shared_data):
    with pytest.raises(MetadataError, match="does not describe band B12"):
        calibration.calibrator_for(shared_data / THERMAL_DIR / "LC80200392015216LGN00_B12_crop.TIF")
    with pytest.raises(MetadataError, match="B6_VCID_1"):
        calibration.calibrator_for(
            shared_data / L2SP_DIR / "LE07_L1TP_021030_20100109_20200911_02_T1_B6.TIF",
            metadata_path=shared_data / LE07_XML,
        )
    with pytest.raises(MetadataError, match="LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"):
        calibration.calibrator_for(
            shared_data / THERMAL_DIR / "LC80200392015216LGN00_SR_B4.TIF",
            metadata_path=shared_data / THERMAL_MTL,
        )


@pytest.mark.shared_data
def test_metadata_of_another_scene_is_refused(shared_data):
    with pytest.raises(MetadataError, match="LC81060712016134LGN00"):
        calibration.calibrator_for(
            shared_data / "landsat8/LC81060712016134LGN00_B3.TIF",
            metadata_path=shared_data / THERMAL_MTL,
        )


@pytest.mark.shared_data
def test_truncated_or_garbage_metadata_is_refused(shared_data, tmp_path):
    data = (shared_data / THERMAL_MTL).read_bytes()
    truncated = tmp_path / "LC80200392015216LGN00_MTL.txt"
    truncated.write_bytes(data[:3000])
    band = tmp_path / "LC80200392015216LGN00_B4.TIF"
    with pytest.raises(MetadataError, match="truncated"):
        calibration.calibrator_for(band)
    truncated.write_bytes(np.random.default_rng(7).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(MetadataError, match="LC80200392015216LGN00_MTL.txt"):
        calibration.calibrator_for(band)


@pytest.mark.shared_data
def test_metadata_of_another_mission_is_refused(shared_data, tmp_path):
    with pytest.raises(MetadataError, match="named like a Landsat file"):
        calibration.calibrator_for(
            tmp_path / "LC80200392015216LGN00_B4.TIF", metadata_path=shared_data / S2_L1C
        )
    with pytest.raises(MetadataError, match="named like a Sentinel-2 file"):
        calibration.calibrator_for(
            tmp_path / "T46RER_20210908T042701_B04.jp2", metadata_path=shared_data / THERMAL_MTL
        )


def test_no_metadata_anywhere(tmp_path):
    with pytest.raises(MetadataError) as raised:
        calibration.calibrator_for(tmp_path / "LC80200392015216LGN00_B4.TIF")
    assert "LC80200392015216LGN00_MTL.txt" in str(raised.value)
    with pytest.raises(MetadataError) as raised:
        calibration.calibrator_for(tmp_path / "red.tif", band="B4")
    assert "MTL" in str(raised.value) and "MTD_MSIL2A.xml" in str(raised.value)
    (tmp_path.parent / "MTD_MSIL2A.xml").write_text("<unrelated/>")
    with pytest.raises(MetadataError, match="No Sentinel-2 metadata found"):
        calibration.calibrator_for(tmp_path / "red.tif", band="B4")


def test_a_landsat_band_ignores_sentinel2_metadata_up_the_tree(tmp_path):
    (tmp_path / "MTD_MSIL2A.xml").write_text("<unrelated/>")
    band = tmp_path / "scenes" / "LC80200392015216LGN00_B4.TIF"
    band.parent.mkdir()
    with pytest.raises(MetadataError, match="LC80200392015216LGN00_MTL") as raised:
        calibration.calibrator_for(band)
    assert "Sentinel-2" not in str(raised.value)


@pytest.mark.shared_data
def test_band_from_argument_when_the_name_has_none(shared_data, tmp_path):
    metadata = shared_data / THERMAL_MTL
    with pytest.raises(InvalidInputError, match="Give the band"):
        calibration.calibrator_for(tmp_path / "red.tif", metadata_path=metadata)
    renamed = calibration.calibrator_for(tmp_path / "red.tif", metadata_path=metadata, band="B4")
    original = calibration.calibrator_for(
        shared_data / THERMAL_DIR / "LC80200392015216LGN00_B4_crop.TIF"
    )
    assert (renamed.gain, renamed.offset) == (original.gain, original.offset)


# ---------------------------------------------------------------- properties


@pytest.mark.shared_data
@pytest.mark.parametrize("band_number", [10, 11])
def test_brightness_temperature_increases_with_every_dn(shared_data, band_number):
    band = shared_data / THERMAL_DIR / f"LC80200392015216LGN00_B{band_number}_crop.TIF"
    kelvin = calibration.calibrator_for(band).apply(np.arange(1, 65536, dtype=np.uint16))
    assert np.all(np.diff(kelvin) > 0)


@settings(max_examples=50, deadline=None)
@given(
    k1=st.floats(100.0, 1500.0),
    k2=st.floats(800.0, 1500.0),
    gain=st.floats(1e-5, 0.1),
    offset=st.floats(0.0, 5.0),
    dn=st.lists(st.integers(1, 65535), min_size=2, max_size=30, unique=True),
)
def test_brightness_temperature_strictly_increases(k1, k2, gain, offset, dn):
    ordered = np.sort(np.array(dn, dtype=np.float64))
    kelvin = calibration.brightness_temperature_k(gain * ordered + offset, k1=k1, k2=k2)
    assert np.all(np.diff(kelvin) > 0)


def _assert_affine(calibrator: calibration.BandCalibrator, low: int, mid: int, high: int) -> None:
    values = calibrator.apply(np.array([low, mid, high])).astype(np.float64)
    on_line = values[0] + (values[2] - values[0]) * (mid - low) / (high - low)
    assert values[1] == pytest.approx(on_line, abs=2e-6)


_DN_TRIPLES = st.lists(st.integers(1, 65534), min_size=3, max_size=3, unique=True).map(sorted)


@pytest.mark.shared_data
@settings(max_examples=50, deadline=None)
@given(triple=_DN_TRIPLES)
def test_reflectance_is_affine_in_dn(shared_data, triple):
    low, mid, high = triple
    for band in (
        shared_data / THERMAL_DIR / "LC80200392015216LGN00_B4_crop.TIF",
        shared_data / L2SP_DIR / f"{L2SP_ID}_SR_B5.TIF",
    ):
        _assert_affine(calibration.calibrator_for(band), low, mid, high)


@settings(max_examples=50, deadline=None)
@given(triple=st.lists(st.integers(1, 255), min_size=3, max_size=3, unique=True).map(sorted))
def test_legacy_reflectance_is_affine_in_dn(triple):
    with tempfile.TemporaryDirectory() as folder:
        write_legacy_tm(Path(folder))
        calibrator = calibration.calibrator_for(Path(folder) / "L5044034_03420081011_B30.TIF")
        _assert_affine(calibrator, *triple)
