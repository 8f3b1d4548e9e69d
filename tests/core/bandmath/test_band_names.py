"""Band codes from file names, sensor detection and band-math variable names."""

from pathlib import Path

import pytest
from osgeo import gdal
from raster_clustering.core.bandmath import band_names
from raster_clustering.core.bandmath.band_names import (
    LayerBands,
    band_variables,
    described_bands,
    detect_sensor,
)
from raster_clustering.core.bandmath.spectral_indices import SENSORS
from raster_clustering.core.errors import InvalidInputError

C2_PREFIX = "LC08_L2SP_047027_20201204_20210313_02_T1"


@pytest.mark.parametrize(
    ("file_name", "code"),
    [
        (f"{C2_PREFIX}_SR_B4.TIF", "B4"),
        (f"{C2_PREFIX}_ST_B10.TIF", "B10"),
        (f"{C2_PREFIX}_QA_PIXEL.TIF", None),
        ("LC80200392015216LGN00_B4_crop.TIF", "B4"),
        ("LC80200392015216LGN00_B10_crop.TIF", "B10"),
        ("LC80200392015216LGN00_BQA_crop.TIF", None),
        ("tiny_LC80460282016177LGN00_B2.TIF", "B2"),
        ("LE07_L1TP_021030_20100109_20161216_01_T1_B6_VCID_1.TIF", "B6"),
        ("T33UXX_20210527T102021_B04_10m.jp2", "B4"),
        ("B04.jp2", "B4"),
        ("B04.tif", "B4"),
        ("b04.tif", "B4"),
        ("T33UXX_20210527_B8A.tif", "B8A"),
        ("T33UXX_20210527T102021_B8A_20m.jp2", "B8A"),
        ("b8a.tif", "B8A"),
        ("B12.jp2", "B12"),
        ("/data/GRANULE/IMG_DATA/R20m/T33UXX_20210527T102021_B11_20m.jp2", "B11"),
        (r"C:\data\LC08_L1TP_188018_20200927_20201005_02_T1_B5.TIF", "B5"),
        ("/vsizip//data/LC08_L1TP_188018_20200927_20201005_02_T1.zip/x_B5.TIF", "B5"),
        ("sur_refl_b01.tif", "B1"),
        ("B4_copy_B04.tif", "B4"),  # the same band twice is still one band
        ("B4_B5_ratio.tif", None),  # two bands: no single code
        ("B0.tif", None),
        ("B1A.tif", None),
        ("mosaicB4.tif", None),
        ("B4x.tif", None),
        ("S2B_MSIL2A_20220413_N0400_T33XWJ_MTD_MSIL2A.xml", None),
        ("S2_20210527_Aberystwyth_SR_10band_EPSG27700_10m.tif", None),
        ("RGB.byte.tif", None),
        ("", None),
    ],
)
def test_parse_band_code_table(file_name, code):
    assert band_names.parse_band_code(file_name) == code


@pytest.mark.parametrize(
    ("text", "code"),
    [("B4", "B4"), ("b04", "B4"), ("B004", "B4"), ("B8a", "B8A"), ("B08A", "B8A"), ("B10", "B10"),
     ("B120", "B120"), ("B0", None), ("B4A", None), ("B", None), ("4", None), (" B4", None)],
)
def test_normalize_band_code(text, code):
    assert band_names.normalize_band_code(text) == code


# Written out from the folder listing: the real file names and the band each holds.
REAL_BAND_CODES = {
    "landsat8-thermal/LC80200392015216LGN00_B1_crop.TIF": "B1",
    "landsat8-thermal/LC80200392015216LGN00_B2_crop.TIF": "B2",
    "landsat8-thermal/LC80200392015216LGN00_B3_crop.TIF": "B3",
    "landsat8-thermal/LC80200392015216LGN00_B4_crop.TIF": "B4",
    "landsat8-thermal/LC80200392015216LGN00_B5_crop.TIF": "B5",
    "landsat8-thermal/LC80200392015216LGN00_B6_crop.TIF": "B6",
    "landsat8-thermal/LC80200392015216LGN00_B7_crop.TIF": "B7",
    "landsat8-thermal/LC80200392015216LGN00_B9_crop.TIF": "B9",
    "landsat8-thermal/LC80200392015216LGN00_B10_crop.TIF": "B10",
    "landsat8-thermal/LC80200392015216LGN00_B11_crop.TIF": "B11",
    "landsat8-thermal/LC80200392015216LGN00_BQA_crop.TIF": None,
    "landsat8-thermal/LC80200392015216LGN00_MTL.txt": None,
    "landsat8/LC80460282016177LGN00_MTL.json": None,
    "landsat8/LC81060712016134LGN00_B3.TIF": "B3",
    "landsat8/LC81060712016134LGN00_MTL.json": None,
    "landsat8/LC81060712016134LGN00_MTL.txt": None,
    "landsat8/tiny_LC80460282016177LGN00_B2.TIF": "B2",
    "landsat8/tiny_LC80460282016177LGN00_B3.TIF": "B3",
    "landsat8/tiny_LC80460282016177LGN00_B4.TIF": "B4",
}


def _real_files(shared_data: Path, *folders: str) -> list[Path]:
    # GDAL may have written statistics (.aux.xml) beside the rasters; they are not bands.
    return sorted(path for folder in folders for path in (shared_data / folder).iterdir()
                  if not path.name.endswith(".aux.xml"))


def test_band_codes_of_the_real_landsat_files(shared_data):
    files = _real_files(shared_data, "landsat8-thermal", "landsat8")
    assert {path.relative_to(shared_data).as_posix() for path in files} == set(REAL_BAND_CODES)
    for path in files:
        assert band_names.parse_band_code(str(path)) == REAL_BAND_CODES[
            path.relative_to(shared_data).as_posix()], path.name


@pytest.mark.parametrize(
    ("file_names", "sensor"),
    [
        ([f"{C2_PREFIX}_SR_B4.TIF"], "landsat89"),
        (["LC09_L2SP_010065_20220129_20220131_02_T1_SR_B5.TIF"], "landsat89"),
        (["LC80200392015216LGN00_B4_crop.TIF"], "landsat89"),
        (["lc08_l1tp_188018_20200927_20201005_02_t1_b4.tif"], "landsat89"),
        (["LO08_L1GT_188018_20200927_20201005_02_T2_B4.TIF"], "landsat89"),
        (["LT05_L1TP_044034_20060630_20160908_01_T1_B3.TIF"], "landsat457"),
        (["LT04_L1TP_044034_19890630_20160908_01_T1_B3.TIF"], "landsat457"),
        (["LE07_L2SP_021030_20100109_20200911_02_T1_SR_B3.TIF"], "landsat457"),
        (["LT50440342006181PAC01_B3.TIF"], "landsat457"),
        (["LE70440342006181EDC00_B4.TIF"], "landsat457"),
        (["LM05_L1TP_044034_19900630_20160908_01_T2_B4.TIF"], None),  # MSS: no preset
        (["S2A_MSIL2A_20210527T102021_N0300_R065_T33UXX_20210527T131000.tif"], "sentinel2"),
        (["S2B_MSIL1C_20220413_N0400_T33XWJ.tif"], "sentinel2"),
        (["T33UXX_20210527T102021_B04_10m.jp2", "T33UXX_20210527T102021_B08_10m.jp2"],
         "sentinel2"),
        (["T33UXX_20210527_B8A.tif"], "sentinel2"),
        (["B04.tif", "B8A.tif"], "sentinel2"),
        (["B4.tif", "B5.tif"], None),  # Landsat or Sentinel-2 alike
        (["LC08_L1TP_188018_20200927_20201005_02_T1_B4.TIF", "my_mask.tif"], "landsat89"),
        (["LC08_L1TP_188018_20200927_20201005_02_T1_B4.TIF", "B04.jp2"], None),  # disagree
        (["LC08_L1TP_188018_20200927_20201005_02_T1_B4.TIF",
          "LE07_L2SP_021030_20100109_20200911_02_T1_SR_B3.TIF"], None),
        (["ndvi.tif"], None),
        ([], None),
    ],
)
def test_detect_sensor_table(file_names, sensor):
    assert detect_sensor(file_names) == sensor


def test_detected_sensors_are_presets():
    for names in (["LC08_X_B4.TIF"], ["LT05_X_B4.TIF"], ["B04.jp2"]):
        assert detect_sensor(names) in SENSORS


@pytest.mark.parametrize(
    ("folder", "sensor"),
    [
        ("landsat8-thermal", "landsat89"),
        ("landsat8", "landsat89"),
        ("sentinel2-mtd", "sentinel2"),
        # A 10-band stack named "S2_…": no product id, and its band order is not Sentinel-2's.
        ("sentinel2", None),
        ("naip-timeseries", None),
        ("misc", None),
    ],
)
def test_detect_sensor_on_real_folders(shared_data, folder, sensor):
    assert detect_sensor([str(path) for path in _real_files(shared_data, folder)]) == sensor


@pytest.mark.parametrize(
    ("file_name", "sensor"),
    [
        ("LC08_L1TP_188018_20200927_20201005_02_T1_MTL.txt", "landsat89"),
        ("LC08_L2SP_047027_20201204_20210313_02_T1_MTL.xml", "landsat89"),
        ("LC09_L2SP_010065_20220129_20220131_02_T1_MTL.txt", "landsat89"),
        ("LE07_L2SP_021030_20100109_20200911_02_T1_MTL.xml", "landsat457"),
    ],
)
def test_detect_sensor_on_real_metadata_names(shared_data, file_name, sensor):
    path = shared_data / "landsat-mtl" / file_name
    assert path.is_file()
    assert detect_sensor([str(path)]) == sensor


def _layer(path: Path) -> LayerBands:
    """A layer as QGIS would name it (the file's base name), band count read by GDAL."""
    dataset = gdal.Open(str(path))
    assert dataset is not None, path
    return LayerBands(name=path.stem, file_name=str(path), band_count=dataset.RasterCount)


def test_band_variables_of_the_real_thermal_scene(shared_data):
    paths = sorted((shared_data / "landsat8-thermal").glob("*.TIF"))
    layers = [_layer(path) for path in paths]
    result = band_variables(layers)
    codes = {name: target for name, target in result.bands.items() if "@" not in name}
    expected = {REAL_BAND_CODES[f"landsat8-thermal/{path.name}"]: (index, 1)
                for index, path in enumerate(paths)
                if REAL_BAND_CODES[f"landsat8-thermal/{path.name}"]}
    assert codes == expected
    assert set(codes) == {"B1", "B2", "B3", "B4", "B5", "B6", "B7", "B9", "B10", "B11"}
    for index, path in enumerate(paths):
        assert result.bands[f"{path.stem}@1"] == (index, 1)
    assert len(result.bands) == len(codes) + len(paths)
    assert result.ambiguous == {}


def test_single_multiband_layer_numbers_its_bands():
    result = band_variables([LayerBands("stack", "/data/LC08_X_B4.TIF", 3)])
    assert result.bands == {"B1": (0, 1), "B2": (0, 2), "B3": (0, 3),
                            "stack@1": (0, 1), "stack@2": (0, 2), "stack@3": (0, 3)}
    assert result.ambiguous == {}


def test_single_single_band_layer_is_named_by_its_code_or_b1():
    coded = band_variables([LayerBands("nir", "LC08_X_B5.TIF", 1)])
    assert coded.bands == {"B5": (0, 1), "nir@1": (0, 1)}
    plain = band_variables([LayerBands("dem", "dem.tif", 1)])
    assert plain.bands == {"B1": (0, 1), "dem@1": (0, 1)}


def test_b4_and_b04_name_the_same_band_so_two_such_layers_are_ambiguous():
    layers = [
        LayerBands("red", "LC08_X_B4.TIF", 1),
        LayerBands("red s2", "T33UXX_20210527_B04.jp2", 1),
        LayerBands("nir", "T33UXX_20210527_B08.jp2", 1),
    ]
    result = band_variables(layers)
    assert "B4" not in result.bands
    assert result.ambiguous == {"B4": ("red@1", "red s2@1")}
    assert result.bands["B8"] == (2, 1)
    assert result.bands["red s2@1"] == (1, 1)


def test_multiband_layers_among_several_get_no_codes():
    layers = [LayerBands("rgb", "rgb_B4.tif", 3), LayerBands("nir", "x_B5.tif", 1)]
    result = band_variables(layers)
    assert result.bands == {"B5": (1, 1), "rgb@1": (0, 1), "rgb@2": (0, 2), "rgb@3": (0, 3),
                            "nir@1": (1, 1)}


def test_layers_with_the_same_name_are_ambiguous_without_alternatives():
    layers = [LayerBands("band", "a/x_B4.tif", 1), LayerBands("band", "b/x_B5.tif", 1)]
    result = band_variables(layers)
    assert result.bands == {"B4": (0, 1), "B5": (1, 1)}
    assert result.ambiguous == {"band@1": ()}


def test_band_variables_refuses_empty_input():
    with pytest.raises(InvalidInputError, match="at least one"):
        band_variables([])
    with pytest.raises(InvalidInputError, match="no bands"):
        band_variables([LayerBands("empty", "empty.tif", 0)])


@pytest.mark.parametrize(("descriptions", "expected"), [
    (("blue", "green", "red", "nir", "swir1", "swir2"),
     {"blue": (0, 1), "green": (0, 2), "red": (0, 3), "nir": (0, 4), "swir1": (0, 5),
      "swir2": (0, 6)}),
    (("Red", "Near infrared", "SWIR 1", "Red-edge"),
     {"red": (0, 1), "nir": (0, 2), "swir1": (0, 3), "red_edge": (0, 4)}),
    (("B02", "B8A", "SR_B5", "B4 TOA reflectance"),
     {"B2": (0, 1), "B8A": (0, 2), "B5": (0, 3), "B4": (0, 4)}),
    (("red", "red", "nir"), {"nir": (0, 3)}),  # a role two bands claim names neither
    (("NDVI", "", "band 1"), {}),
])
def test_band_descriptions_name_roles_and_codes(descriptions, expected):
    layer = LayerBands("stack", "stack.tif", len(descriptions), tuple(descriptions))
    assert described_bands([layer]) == expected


def test_band_descriptions_in_several_layers_name_their_layer():
    layers = [LayerBands("a", "a.tif", 1, ("red",)), LayerBands("b", "b.tif", 1, ("nir",))]
    assert described_bands(layers) == {"red": (0, 1), "nir": (1, 1)}


@pytest.mark.parametrize(("clues", "sensor"), [
    (["stack.tif", "B02", "B03", "B04", "B8A"], "sentinel2"),
    (["stack.tif", "blue", "green", "red", "nir"], None),
    (["LC08_L2SP_047027_20201204_20210313_02_T1_stack.tif", "B4", "B5"], "landsat89"),
])
def test_band_codes_in_descriptions_reveal_the_sensor_as_file_names_do(clues, sensor):
    assert detect_sensor(clues) == sensor
