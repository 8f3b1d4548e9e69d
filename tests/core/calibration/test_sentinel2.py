"""Sentinel-2 product metadata: real L1C/L2A files, offsets by band_id, names, SAFE discovery."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from helpers import write_safe_tree, write_variant
from raster_clustering.core.calibration import sentinel2 as s2
from raster_clustering.core.errors import InvalidInputError, MetadataError

L1C = "sentinel2-mtd/S2A_MSIL1C_20210908_N0301_T46RER_MTD_MSIL1C.xml"
L2A_N0400 = "sentinel2-mtd/S2B_MSIL2A_20220413_N0400_T33XWJ_MTD_MSIL2A.xml"
L2A_N0509 = "sentinel2-mtd/S2A_MSIL2A_20230821_N0509_T01KAB_MTD_MSIL2A.xml"
ALL_BANDS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]

# Read by eye from the files: level, baseline, spacecraft, sensing date, offset of every band.
REAL_FILES = {
    L1C: ("L1C", "03.01", "Sentinel-2A", date(2021, 9, 8), 0.0),
    L2A_N0400: ("L2A", "04.00", "Sentinel-2B", date(2022, 4, 13), -1000.0),
    L2A_N0509: ("L2A", "05.09", "Sentinel-2A", date(2023, 8, 21), -1000.0),
}


def _without_offset_list(text: str) -> str:
    start = text.index("<BOA_ADD_OFFSET_VALUES_LIST>")
    end = text.index("</BOA_ADD_OFFSET_VALUES_LIST>") + len("</BOA_ADD_OFFSET_VALUES_LIST>")
    return text[:start] + text[end:]


@pytest.mark.shared_data
def test_every_real_sentinel2_metadata_file_is_listed(shared_data):
    found = {str(p.relative_to(shared_data)) for p in (shared_data / "sentinel2-mtd").iterdir()}
    assert found == set(REAL_FILES)


@pytest.mark.shared_data
@pytest.mark.parametrize("relative_path", sorted(REAL_FILES))
def test_real_file_parses_to_the_values_in_the_file(shared_data, relative_path):
    level, baseline, spacecraft, sensed, offset = REAL_FILES[relative_path]
    metadata = s2.read_sentinel2_metadata(shared_data / relative_path)
    assert metadata.level == level
    assert metadata.processing_baseline == baseline
    assert metadata.spacecraft == spacecraft
    assert metadata.sensing_date == sensed
    assert metadata.quantification == 10000.0
    assert dict(metadata.offsets) == {band: offset for band in ALL_BANDS}
    assert metadata.offsets_in_metadata == (offset != 0.0)
    assert (metadata.nodata_dn, metadata.saturated_dn) == (0, 65535)


@pytest.mark.shared_data
def test_image_bands_come_from_the_image_file_list(shared_data):
    l1c = s2.read_sentinel2_metadata(shared_data / L1C)
    l2a = s2.read_sentinel2_metadata(shared_data / L2A_N0400)
    assert l1c.image_bands == frozenset(ALL_BANDS)
    assert l2a.image_bands == frozenset(ALL_BANDS) - {"B10"}
    assert l2a.product_uri == "S2B_MSIL2A_20220413T150759_N0400_R025_T33XWJ_20220414T082126.SAFE"


@pytest.mark.shared_data
def test_level1c_offsets_from_baseline_04_are_read_by_band_id(shared_data, tmp_path):
    offsets = "".join(
        f'<RADIO_ADD_OFFSET band_id="{band_id}">{-1000 - band_id}</RADIO_ADD_OFFSET>'
        for band_id in range(13)
    )
    path = write_variant(
        shared_data / L1C,
        tmp_path / "MTD_MSIL1C.xml",
        ("<PROCESSING_BASELINE>03.01</PROCESSING_BASELINE>",
         "<PROCESSING_BASELINE>04.00</PROCESSING_BASELINE>"),
        ('<QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>',
         '<QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>'
         f"<Radiometric_Offset_List>{offsets}</Radiometric_Offset_List>"),
    )
    metadata = s2.read_sentinel2_metadata(path)
    assert metadata.offsets_in_metadata
    assert metadata.offsets["B1"] == -1000.0
    assert metadata.offsets["B8"] == -1007.0
    assert metadata.offsets["B8A"] == -1008.0
    assert metadata.offsets["B12"] == -1012.0


@pytest.mark.shared_data
def test_the_metadata_not_the_baseline_decides_the_offset(shared_data, tmp_path):
    source = shared_data / L2A_N0509
    path = tmp_path / "MTD_MSIL2A.xml"
    path.write_text(_without_offset_list(source.read_text(encoding="utf-8")), encoding="utf-8")
    metadata = s2.read_sentinel2_metadata(path)
    assert metadata.processing_baseline == "05.09"
    assert not metadata.offsets_in_metadata
    assert set(metadata.offsets.values()) == {0.0}


@pytest.mark.shared_data
def test_older_level2a_quantification_tag(shared_data, tmp_path):
    path = write_variant(
        shared_data / L2A_N0400,
        tmp_path / "MTD_MSIL2A.xml",
        ('<BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>',
         '<L2A_BOA_QUANTIFICATION_VALUE unit="none">10000.0</L2A_BOA_QUANTIFICATION_VALUE>'),
    )
    assert s2.read_sentinel2_metadata(path).quantification == 10000.0


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("replacement", "message"),
    [
        (('<BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>', ""),
         "BOA_QUANTIFICATION_VALUE"),
        (('<BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>',
          '<BOA_QUANTIFICATION_VALUE unit="none">0</BOA_QUANTIFICATION_VALUE>'), "positive"),
        (('<BOA_ADD_OFFSET band_id="12">-1000</BOA_ADD_OFFSET>',
          '<BOA_ADD_OFFSET band_id="13">-1000</BOA_ADD_OFFSET>'), "band_id"),
        (('<BOA_ADD_OFFSET band_id="3">-1000</BOA_ADD_OFFSET>',
          '<BOA_ADD_OFFSET band_id="3">minus</BOA_ADD_OFFSET>'), "band_id='3'"),
    ],
)
def test_damaged_values_are_metadata_errors(shared_data, tmp_path, replacement, message):
    path = write_variant(shared_data / L2A_N0400, tmp_path / "MTD_MSIL2A.xml", replacement)
    with pytest.raises(MetadataError, match=message):
        s2.read_sentinel2_metadata(path)


@pytest.mark.shared_data
def test_offset_list_without_the_band_is_an_error_for_that_band(shared_data, tmp_path):
    path = write_variant(
        shared_data / L2A_N0400,
        tmp_path / "MTD_MSIL2A.xml",
        ('<BOA_ADD_OFFSET band_id="8">-1000</BOA_ADD_OFFSET>', ""),
    )
    metadata = s2.read_sentinel2_metadata(path)
    assert metadata.offset_for("B4") == -1000.0
    with pytest.raises(MetadataError, match="B8A.*band_id 8"):
        metadata.offset_for("B8A")


@pytest.mark.shared_data
def test_truncated_and_foreign_files_are_refused(shared_data, tmp_path):
    data = (shared_data / L1C).read_bytes()
    truncated = tmp_path / "MTD_MSIL1C.xml"
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(MetadataError, match="not well-formed"):
        s2.read_sentinel2_metadata(truncated)
    landsat = shared_data / "landsat-mtl/LE07_L2SP_021030_20100109_20200911_02_T1_MTL.xml"
    with pytest.raises(MetadataError, match="LANDSAT_METADATA_FILE"):
        s2.read_sentinel2_metadata(landsat)
    garbage = tmp_path / "garbage.xml"
    garbage.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(MetadataError, match="garbage.xml"):
        s2.read_sentinel2_metadata(garbage)


@pytest.mark.parametrize(
    ("file_name", "band"),
    [
        ("T33XWJ_20220413T150759_B8A_20m.jp2", "B8A"),
        ("T46RER_20210908T042701_B01.jp2", "B1"),
        ("T46RER_20210908T042701_B10.jp2", "B10"),
        ("T01KAB_20230821T221941_B12_60m.jp2", "B12"),
        ("T01KAB_20230821T221941_b04_10m.tif", "B4"),
        ("S2A_OPER_MSI_L1C_TL_SGS__20160101T000000_A002_T31TCJ_B08.jp2", "B8"),
        ("T33XWJ_20220413T150759_SCL_20m.jp2", None),
        ("T33XWJ_20220413T150759_TCI_10m.jp2", None),
    ],
)
def test_band_from_file_name(file_name, band):
    assert s2.sentinel2_band_from_file_name(file_name) == band


@pytest.mark.parametrize(
    ("file_name", "is_auxiliary"),
    [
        ("T33XWJ_20220413T150759_SCL_20m.jp2", True),
        ("T33XWJ_20220413T150759_AOT_10m.jp2", True),
        ("T33XWJ_20220413T150759_WVP_60m.jp2", True),
        ("T46RER_20210908T042701_TCI.jp2", True),
        ("MSK_CLDPRB_20m.jp2", True),
        ("T46RER_20210908T042701_PVI.jp2", True),
        ("T33XWJ_20220413T150759_B04_10m.jp2", False),
        ("T33XWJ_20220413T150759_B8A_20m.jp2", False),
    ],
)
def test_non_reflectance_layers_are_recognised_by_name(file_name, is_auxiliary):
    assert (s2.auxiliary_layer_kind(file_name) is not None) == is_auxiliary


@pytest.mark.parametrize(
    ("given", "band"), [(4, "B4"), ("B04", "B4"), ("8a", "B8A"), ("12", "B12")]
)
def test_band_argument(given, band):
    assert s2.parse_sentinel2_band(given) == band


@pytest.mark.parametrize("given", ["B13", "B0", "SCL", 14])
def test_band_argument_rejects_other_values(given):
    with pytest.raises(InvalidInputError, match="not a Sentinel-2 band"):
        s2.parse_sentinel2_band(given)


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("source", "metadata_name", "band_relative"),
    [
        (L2A_N0400, "MTD_MSIL2A.xml",
         "GRANULE/L2A_T33XWJ_A026649_20220413T150756/IMG_DATA/R20m/"
         "T33XWJ_20220413T150759_B8A_20m.jp2"),
        (L1C, "MTD_MSIL1C.xml",
         "GRANULE/L1C_T46RER_A032448_20210908T043714/IMG_DATA/T46RER_20210908T042701_B04.jp2"),
    ],
)
def test_find_metadata_up_thewrite_safe_tree(
    shared_data, tmp_path, source, metadata_name, band_relative
):
    band = write_safe_tree(tmp_path, shared_data / source, metadata_name, band_relative)
    found = s2.find_sentinel2_metadata(band)
    assert found == tmp_path / "PRODUCT.SAFE" / metadata_name
    s2.read_sentinel2_metadata(found).check_band_file(band)


@pytest.mark.shared_data
def test_find_renamed_metadata_by_tile_and_date(shared_data, tmp_path):
    for relative in REAL_FILES:
        shutil.copy(shared_data / relative, tmp_path)
    found = s2.find_sentinel2_metadata(tmp_path / "T33XWJ_20220413T150759_B04_10m.jp2")
    assert found.name == Path(L2A_N0400).name


def test_find_metadata_lists_where_it_looked(tmp_path):
    band = tmp_path / "A.SAFE" / "GRANULE" / "G" / "IMG_DATA" / "T33XWJ_20220413T150759_B04.jp2"
    band.parent.mkdir(parents=True)
    with pytest.raises(MetadataError, match="MTD_MSIL1C.xml / MTD_MSIL2A.xml") as raised:
        s2.find_sentinel2_metadata(band)
    assert str(tmp_path / "A.SAFE") in str(raised.value)


@pytest.mark.shared_data
def test_band_of_another_product_is_refused(shared_data):
    metadata = s2.read_sentinel2_metadata(shared_data / L2A_N0400)
    metadata.check_band_file("T33XWJ_20220413T150759_B04_10m.jp2")
    metadata.check_band_file("renamed_red.tif")
    with pytest.raises(MetadataError, match="T46RER.*S2B_MSIL2A_20220413T150759"):
        metadata.check_band_file("T46RER_20210908T042701_B04.jp2")


def test_sentinel2_paths_are_recognised():
    assert s2.looks_like_sentinel2(Path("T33XWJ_20220413T150759_B04_10m.jp2"))
    assert s2.looks_like_sentinel2(Path("x.SAFE/GRANULE/g/IMG_DATA/red.jp2"))
    assert not s2.looks_like_sentinel2(Path("landsat/LC80200392015216LGN00_B4.TIF"))
