"""Landsat metadata: every real file and format, group-aware keys, bands, legacy text, errors."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

import pytest
from helpers import write_variant
from hypothesis import given, settings
from hypothesis import strategies as st
from raster_clustering.core.calibration import landsat as lm
from raster_clustering.core.errors import InvalidInputError, MetadataError

# Values read by eye from the files in ../shared/data:
# relative path → (product id, spacecraft, sensor, level, date, SUN_ELEVATION, EARTH_SUN_DISTANCE)
REAL_FILES = {
    "landsat-mtl/LC08_L1TP_188018_20200927_20201005_02_T1_MTL.txt": (
        "LC08_L1TP_188018_20200927_20201005_02_T1", "LANDSAT_8", "OLI_TIRS", "L1",
        date(2020, 9, 27), 27.52435766, 1.0021963,
    ),
    "landsat-mtl/LC08_L2SP_047027_20201204_20210313_02_T1_MTL.txt": (
        "LC08_L2SP_047027_20201204_20210313_02_T1", "LANDSAT_8", "OLI_TIRS", "L2",
        date(2020, 12, 4), 18.80722985, 0.9854607,
    ),
    "landsat-mtl/LC08_L2SP_047027_20201204_20210313_02_T1_MTL.xml": (
        "LC08_L2SP_047027_20201204_20210313_02_T1", "LANDSAT_8", "OLI_TIRS", "L2",
        date(2020, 12, 4), 18.80722985, 0.9854607,
    ),
    "landsat-mtl/LC09_L2SP_010065_20220129_20220131_02_T1_MTL.txt": (
        "LC09_L2SP_010065_20220129_20220131_02_T1", "LANDSAT_9", "OLI_TIRS", "L2",
        date(2022, 1, 29), 57.84396063, 0.9849984,
    ),
    "landsat-mtl/LE07_L2SP_021030_20100109_20200911_02_T1_MTL.xml": (
        "LE07_L2SP_021030_20100109_20200911_02_T1", "LANDSAT_7", "ETM", "L2",
        date(2010, 1, 9), 21.38957268, 0.9833890,
    ),
    "landsat8-thermal/LC80200392015216LGN00_MTL.txt": (
        "LC80200392015216LGN00", "LANDSAT_8", "OLI_TIRS", "L1",
        date(2015, 8, 4), 64.74360932, 1.0145544,
    ),
    "landsat8/LC80460282016177LGN00_MTL.json": (
        "LC80460282016177LGN00", "LANDSAT_8", "OLI_TIRS", "L1",
        date(2016, 6, 25), 62.58246948, 1.0165183,
    ),
    "landsat8/LC81060712016134LGN00_MTL.txt": (
        "LC81060712016134LGN00", "LANDSAT_8", "OLI_TIRS", "L1",
        date(2016, 5, 13), 45.66897551, 1.0104922,
    ),
    "landsat8/LC81060712016134LGN00_MTL.json": (
        "LC81060712016134LGN00", "LANDSAT_8", "OLI_TIRS", "L1",
        date(2016, 5, 13), 45.66897551, 1.0104922,
    ),
}
L2SP_TXT = "landsat-mtl/LC08_L2SP_047027_20201204_20210313_02_T1_MTL.txt"
L2SP_XML = "landsat-mtl/LC08_L2SP_047027_20201204_20210313_02_T1_MTL.xml"
LE07_XML = "landsat-mtl/LE07_L2SP_021030_20100109_20200911_02_T1_MTL.xml"
THERMAL_TXT = "landsat8-thermal/LC80200392015216LGN00_MTL.txt"

# A pre-2012 ETM+ file: LMAX/LMIN/QCALMAX/QCALMIN only, sun angles in PRODUCT_PARAMETERS.
LEGACY_ETM_MTL = """GROUP = L1_METADATA_FILE
  GROUP = METADATA_FILE_INFO
    ORIGIN = "Image courtesy of the U.S. Geological Survey, Sioux Falls (é)"
  END_GROUP = METADATA_FILE_INFO
  GROUP = PRODUCT_METADATA
    SPACECRAFT_ID = "Landsat7"
    SENSOR_ID = "ETM+"
    ACQUISITION_DATE = 2010-03-15
    BAND61_FILE_NAME = "L71092085_08520100315_B61.TIF"
    METADATA_L1_FILE_NAME = "L71092085_08520100315_MTL.txt"
  END_GROUP = PRODUCT_METADATA
  GROUP = MIN_MAX_RADIANCE
    LMAX_BAND3 = 152.900
    LMIN_BAND3 = -5.000
    LMAX_BAND61 = 17.040
    LMIN_BAND61 = 0.000
  END_GROUP = MIN_MAX_RADIANCE
  GROUP = MIN_MAX_PIXEL_VALUE
    QCALMAX_BAND3 = 255.0
    QCALMIN_BAND3 = 1.0
    QCALMAX_BAND61 = 255.0
    QCALMIN_BAND61 = 1.0
  END_GROUP = MIN_MAX_PIXEL_VALUE
  GROUP = PRODUCT_PARAMETERS
    SUN_AZIMUTH = 53.7730377
    SUN_ELEVATION = 41.5610274
  END_GROUP = PRODUCT_PARAMETERS
END_GROUP = L1_METADATA_FILE
END
"""


@pytest.mark.shared_data
def test_every_real_landsat_metadata_file_is_listed(shared_data):
    found = {
        str(path.relative_to(shared_data))
        for folder in ("landsat-mtl", "landsat8", "landsat8-thermal")
        for path in (shared_data / folder).glob("*_MTL.*")
    }
    assert found == set(REAL_FILES)


@pytest.mark.shared_data
@pytest.mark.parametrize("relative_path", sorted(REAL_FILES))
def test_real_file_parses_to_the_values_in_the_file(shared_data, relative_path):
    product_id, spacecraft, sensor, level, acquired, elevation, distance = REAL_FILES[relative_path]
    metadata = lm.read_landsat_metadata(shared_data / relative_path)
    assert metadata.product_id == product_id
    assert (metadata.spacecraft, metadata.sensor, metadata.level) == (spacecraft, sensor, level)
    assert metadata.acquisition_date == acquired
    assert metadata.sun_elevation_deg == elevation
    assert metadata.earth_sun_distance_au == distance
    assert metadata.tree.name in ("L1_METADATA_FILE", "LANDSAT_METADATA_FILE")
    assert not metadata.legacy_keys


@pytest.mark.shared_data
@pytest.mark.parametrize("relative_path", [L2SP_TXT, L2SP_XML])
def test_level2_file_keeps_the_two_reflectance_multipliers_apart(shared_data, relative_path):
    metadata = lm.read_landsat_metadata(shared_data / relative_path)
    tree = metadata.tree
    assert tree.group("LEVEL2_SURFACE_REFLECTANCE_PARAMETERS").number(
        "REFLECTANCE_MULT_BAND_4"
    ) == 2.75e-05
    assert tree.group("LEVEL1_RADIOMETRIC_RESCALING").number("REFLECTANCE_MULT_BAND_4") == 2.0e-05
    band4 = lm.LandsatBand(4)
    assert metadata.reflectance_rescaling(band4)[:2] == (2.0e-05, -0.1)
    assert metadata.radiance_rescaling(band4)[:2] == (1.0288e-02, -51.43874)
    assert metadata.surface_reflectance_rescaling(band4)[:2] == (2.75e-05, -0.2)
    assert "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS" in metadata.surface_reflectance_rescaling(
        band4
    ).source
    st_b10 = lm.LandsatBand(10, product="ST")
    assert metadata.surface_temperature_rescaling(st_b10)[:2] == (0.00341802, 149.0)
    assert metadata.thermal_constants(lm.LandsatBand(10))[:2] == (774.8853, 1321.0789)
    assert metadata.known_ids[:2] == (
        "LC08_L2SP_047027_20201204_20210313_02_T1",
        "LC08_L1TP_047027_20201204_20210313_02_T1",
    )


@pytest.mark.shared_data
def test_landsat9_thermal_coefficients_are_its_own(shared_data):
    metadata = lm.read_landsat_metadata(
        shared_data / "landsat-mtl/LC09_L2SP_010065_20220129_20220131_02_T1_MTL.txt"
    )
    assert metadata.radiance_rescaling(lm.LandsatBand(10))[:2] == (3.8e-04, 0.1)
    assert metadata.radiance_rescaling(lm.LandsatBand(11))[:2] == (3.49e-04, 0.1)
    assert metadata.thermal_constants(lm.LandsatBand(10))[:2] == (799.0284, 1329.2405)
    assert metadata.thermal_constants(lm.LandsatBand(11))[:2] == (475.6581, 1198.3494)


@pytest.mark.shared_data
def test_landsat7_thermal_keys_carry_vcid(shared_data):
    metadata = lm.read_landsat_metadata(shared_data / LE07_XML)
    low, high = lm.LandsatBand(6, 1), lm.LandsatBand(6, 2)
    assert (low.key, low.name, low.legacy_key) == ("6_VCID_1", "B6_VCID_1", "61")
    assert metadata.radiance_rescaling(low)[:2] == (6.7087e-02, -0.06709)
    assert metadata.radiance_rescaling(high)[:2] == (3.7205e-02, 3.16280)
    assert metadata.thermal_constants(high)[:2] == (666.09, 1282.71)
    assert metadata.radiance_rescaling(lm.LandsatBand(6)) is None
    assert metadata.reflectance_rescaling(low) is None
    assert metadata.reflectance_rescaling(lm.LandsatBand(7))[:2] == (1.6392e-03, -0.014709)
    limits = metadata.radiance_limits(low)
    assert limits[:4] == (17.040, 0.000, 255.0, 1.0)
    assert metadata.surface_temperature_rescaling(lm.LandsatBand(6, product="ST"))[:2] == (
        0.00341802,
        149.0,
    )
    assert metadata.is_thermal(low) and not metadata.is_thermal(lm.LandsatBand(5))


@pytest.mark.shared_data
def test_pre_collection_thermal_constants_come_from_their_group(shared_data):
    metadata = lm.read_landsat_metadata(shared_data / THERMAL_TXT)
    constants = metadata.thermal_constants(lm.LandsatBand(11))
    assert constants[:2] == (480.8883, 1201.1442)
    assert "TIRS_THERMAL_CONSTANTS" in constants.source
    assert metadata.radiance_rescaling(lm.LandsatBand(10))[:2] == (3.3420e-04, 0.1)
    assert metadata.radiance_limits(lm.LandsatBand(4))[:4] == (587.56342, -48.52118, 65535, 1)


@pytest.mark.parametrize(
    ("file_name", "band", "product_id"),
    [
        ("LC80200392015216LGN00_B10_crop.TIF", lm.LandsatBand(10), "LC80200392015216LGN00"),
        ("tiny_LC80460282016177LGN00_B2.TIF", lm.LandsatBand(2), "tiny_LC80460282016177LGN00"),
        (
            "LC08_L2SP_047027_20201204_20210313_02_T1_SR_B4.TIF",
            lm.LandsatBand(4, product="SR"),
            "LC08_L2SP_047027_20201204_20210313_02_T1",
        ),
        (
            "LC08_L2SP_047027_20201204_20210313_02_T1_ST_B10.TIF",
            lm.LandsatBand(10, product="ST"),
            "LC08_L2SP_047027_20201204_20210313_02_T1",
        ),
        (
            "LE07_L1TP_021030_20100109_20200911_02_T1_B6_VCID_2.TIF",
            lm.LandsatBand(6, 2),
            "LE07_L1TP_021030_20100109_20200911_02_T1",
        ),
        ("L71092085_08520100315_B61.TIF", lm.LandsatBand(61), "L71092085_08520100315"),
        (
            "lc08_l1tp_188018_20200927_20201005_02_t1_b5.tif",
            lm.LandsatBand(5),
            "lc08_l1tp_188018_20200927_20201005_02_t1",
        ),
        ("LC08_L1TP_188018_20200927_20201005_02_T1_QA_PIXEL.TIF", None, None),
        ("LC80200392015216LGN00_BQA_crop.TIF", None, None),
        ("red.tif", None, None),
    ],
)
def test_band_and_product_id_from_file_name(file_name, band, product_id):
    assert lm.landsat_band_from_file_name(file_name) == band
    assert lm.landsat_product_id_from_file_name(file_name) == product_id


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (4, lm.LandsatBand(4)),
        ("B10", lm.LandsatBand(10)),
        ("b6_vcid_1", lm.LandsatBand(6, 1)),
        ("SR_B4", lm.LandsatBand(4, product="SR")),
        ("ST_B10", lm.LandsatBand(10, product="ST")),
    ],
)
def test_band_argument(text, expected):
    assert lm.parse_landsat_band(text) == expected


def test_band_argument_rejects_nonsense():
    with pytest.raises(InvalidInputError, match="not a Landsat band"):
        lm.parse_landsat_band("red")


@pytest.mark.parametrize(
    ("file_name", "is_auxiliary"),
    [
        ("LC80200392015216LGN00_BQA_crop.TIF", True),
        ("LC08_L1TP_188018_20200927_20201005_02_T1_QA_PIXEL.TIF", True),
        ("LC08_L2SP_047027_20201204_20210313_02_T1_ST_TRAD.TIF", True),
        ("LC08_L2SP_047027_20201204_20210313_02_T1_SR_QA_AEROSOL.TIF", True),
        ("LC08_L1TP_188018_20200927_20201005_02_T1_SZA.TIF", True),
        ("LC08_L2SP_047027_20201204_20210313_02_T1_SR_B4.TIF", False),
        ("LC80200392015216LGN00_B10_crop.TIF", False),
    ],
)
def test_auxiliary_layers_are_recognised_by_name(file_name, is_auxiliary):
    assert (lm.auxiliary_layer_kind(file_name) is not None) == is_auxiliary


def test_legacy_text_with_nul_padding_latin1_and_crlf(tmp_path):
    path = tmp_path / "L71092085_08520100315_MTL.txt"
    path.write_bytes(LEGACY_ETM_MTL.replace("\n", "\r\n").encode("latin-1") + b"\x00" * 700)
    metadata = lm.read_landsat_metadata(path)
    assert metadata.legacy_keys
    assert (metadata.spacecraft, metadata.sensor, metadata.level) == ("LANDSAT_7", "ETM", "L1")
    assert metadata.acquisition_date == date(2010, 3, 15)
    assert metadata.sun_elevation_deg == 41.5610274
    assert metadata.earth_sun_distance_au is None
    assert metadata.product_id == "L71092085_08520100315"
    assert metadata.tree.group("METADATA_FILE_INFO")["ORIGIN"].endswith("(é)")
    assert metadata.radiance_limits(lm.LandsatBand(3))[:4] == (152.9, -5.0, 255.0, 1.0)
    assert metadata.radiance_limits(lm.LandsatBand(6, 1))[:4] == (17.04, 0.0, 255.0, 1.0)
    assert metadata.reflectance_rescaling(lm.LandsatBand(3)) is None
    assert metadata.resolve_band(lm.LandsatBand(61)) == lm.LandsatBand(6, 1)
    assert metadata.resolve_band(lm.LandsatBand(30)) == lm.LandsatBand(3)


@pytest.mark.shared_data
def test_landsat8_band_numbers_are_never_remapped(shared_data):
    metadata = lm.read_landsat_metadata(shared_data / THERMAL_TXT)
    assert metadata.resolve_band(lm.LandsatBand(10)) == lm.LandsatBand(10)
    assert metadata.is_thermal(lm.LandsatBand(10)) and not metadata.is_thermal(lm.LandsatBand(9))


@pytest.mark.shared_data
def test_band_of_another_scene_is_refused(shared_data):
    metadata = lm.read_landsat_metadata(shared_data / THERMAL_TXT)
    with pytest.raises(MetadataError, match="LC81060712016134LGN00.*LC80200392015216LGN00"):
        metadata.check_band_file("LC81060712016134LGN00_B3.TIF")
    metadata.check_band_file("tiny_LC80200392015216LGN00_B3_crop.TIF")
    metadata.check_band_file("red.tif")


@pytest.mark.shared_data
def test_level2_metadata_accepts_its_level1_source_band(shared_data):
    metadata = lm.read_landsat_metadata(shared_data / L2SP_TXT)
    metadata.check_band_file("LC08_L1TP_047027_20201204_20210313_02_T1_B4.TIF")
    metadata.check_band_file("LC08_L2SP_047027_20201204_20210313_02_T1_SR_B4.TIF")
    with pytest.raises(MetadataError, match="LC08_L2SP_047027_20201204_20210314_02_T1"):
        metadata.check_band_file("LC08_L2SP_047027_20201204_20210314_02_T1_SR_B4.TIF")


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("band_file", "expected"),
    [
        ("landsat8-thermal/LC80200392015216LGN00_B10_crop.TIF", "LC80200392015216LGN00_MTL.txt"),
        ("landsat8/tiny_LC80460282016177LGN00_B2.TIF", "LC80460282016177LGN00_MTL.json"),
        ("landsat8/LC81060712016134LGN00_B3.TIF", "LC81060712016134LGN00_MTL.txt"),
        (
            "landsat-mtl/LC08_L2SP_047027_20201204_20210313_02_T1_SR_B4.TIF",
            "LC08_L2SP_047027_20201204_20210313_02_T1_MTL.txt",
        ),
    ],
)
def test_find_metadata_beside_the_band(shared_data, band_file, expected):
    found = lm.find_landsat_mtl(shared_data / band_file)
    assert found == shared_data / Path(band_file).parent / expected


def test_find_metadata_says_what_it_looked_for(tmp_path):
    (tmp_path / "LC80200392015216LGN00_B4.TIF").write_bytes(b"")
    with pytest.raises(MetadataError) as raised:
        lm.find_landsat_mtl(tmp_path / "LC80200392015216LGN00_B4.TIF")
    assert "LC80200392015216LGN00_MTL.txt" in str(raised.value)
    assert "LC80200392015216LGN00_MTL.json" in str(raised.value)


def test_find_metadata_refuses_to_guess_between_scenes(tmp_path):
    (tmp_path / "LC8AAA_MTL.txt").write_text("x")
    (tmp_path / "LC8BBB_MTL.txt").write_text("x")
    with pytest.raises(MetadataError, match="Several"):
        lm.find_landsat_mtl(tmp_path / "tiny_LC8AAA_LC8BBB_B4.TIF")


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "relative_path", [L2SP_TXT, L2SP_XML, "landsat8/LC80460282016177LGN00_MTL.json"]
)
def test_truncated_real_files_are_refused(shared_data, tmp_path, relative_path):
    data = (shared_data / relative_path).read_bytes()
    path = tmp_path / Path(relative_path).name
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MetadataError, match=path.name):
        lm.read_landsat_metadata(path)


@pytest.mark.shared_data
def test_a_raster_given_as_metadata_is_refused(shared_data):
    with pytest.raises(MetadataError, match="LC80200392015216LGN00_B4_crop.TIF"):
        lm.read_landsat_metadata(shared_data / "landsat8-thermal/LC80200392015216LGN00_B4_crop.TIF")


@pytest.mark.parametrize(
    "content",
    [
        b"",
        bytes(range(256)) * 40,
        b'{"SOMETHING": {"A": 1}}',
        b"[1, 2, 3]",
        b"<PRODUCT><A>1</A></PRODUCT>",
        b"GROUP = OTHER_FILE\nEND_GROUP = OTHER_FILE\n",
    ],
)
def test_other_content_is_not_landsat_metadata(tmp_path, content):
    path = tmp_path / "X_MTL.txt"
    path.write_bytes(content)
    with pytest.raises(MetadataError, match="X_MTL.txt"):
        lm.read_landsat_metadata(path)


def test_missing_file_is_a_metadata_error(tmp_path):
    with pytest.raises(MetadataError, match="Cannot read"):
        lm.read_landsat_metadata(tmp_path / "absent_MTL.txt")


@pytest.mark.shared_data
def test_half_a_coefficient_pair_names_the_missing_key(shared_data, tmp_path):
    path = write_variant(
        shared_data / THERMAL_TXT,
        tmp_path / "LC80200392015216LGN00_MTL.txt",
        ("    REFLECTANCE_ADD_BAND_4 = -0.100000\n", ""),
    )
    metadata = lm.read_landsat_metadata(path)
    with pytest.raises(MetadataError, match="no REFLECTANCE_ADD_BAND_4"):
        metadata.reflectance_rescaling(lm.LandsatBand(4))


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=2000))
def test_reader_on_random_bytes_raises_only_metadata_error(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random_MTL.txt"
        path.write_bytes(content)
        with pytest.raises(MetadataError):
            lm.read_landsat_metadata(path)
