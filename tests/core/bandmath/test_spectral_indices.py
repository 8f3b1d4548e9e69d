"""Index aliases against their handbook formulas, sensor presets, and the help text."""

import warnings
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest
from osgeo import gdal
from raster_clustering.core.bandmath import spectral_indices
from raster_clustering.core.bandmath.band_names import LayerBands, band_variables, detect_sensor
from raster_clustering.core.bandmath.expression import compile_expression
from raster_clustering.core.errors import ExpressionError, InvalidInputError

# Band designations from the sensors' handbooks (USGS Landsat 8-9 / 4-7 band tables, ESA
# Sentinel-2 MSI user guide). Sentinel-2 red edge: B5 (705 nm), NIR: B8 (842 nm).
HANDBOOK_BANDS = {
    "sentinel2": {"blue": "B2", "green": "B3", "red": "B4", "red_edge": "B5", "nir": "B8",
                  "swir1": "B11", "swir2": "B12"},
    "landsat89": {"blue": "B2", "green": "B3", "red": "B4", "nir": "B5", "swir1": "B6",
                  "swir2": "B7"},
    "landsat457": {"blue": "B1", "green": "B2", "red": "B3", "nir": "B4", "swir1": "B5",
                   "swir2": "B7"},
    "generic": {"blue": "B1", "green": "B2", "red": "B3", "nir": "B4", "swir1": "B5",
                "swir2": "B6"},
}

# The formulas as published, written out independently of the module under test.
HANDBOOK_FORMULAS = {
    "NDVI": lambda b: (b["nir"] - b["red"]) / (b["nir"] + b["red"]),
    "NDWI": lambda b: (b["green"] - b["nir"]) / (b["green"] + b["nir"]),
    "MNDWI": lambda b: (b["green"] - b["swir1"]) / (b["green"] + b["swir1"]),
    "NDMI": lambda b: (b["nir"] - b["swir1"]) / (b["nir"] + b["swir1"]),
    "NBR": lambda b: (b["nir"] - b["swir2"]) / (b["nir"] + b["swir2"]),
    "EVI": lambda b: 2.5 * (b["nir"] - b["red"])
    / (b["nir"] + 6.0 * b["red"] - 7.5 * b["blue"] + 1.0),
    "SAVI": lambda b: (1.0 + 0.5) * (b["nir"] - b["red"]) / (b["nir"] + b["red"] + 0.5),
    "GNDVI": lambda b: (b["nir"] - b["green"]) / (b["nir"] + b["green"]),
    "NDRE": lambda b: (b["nir"] - b["red_edge"]) / (b["nir"] + b["red_edge"]),
    "BSI": lambda b: ((b["swir1"] + b["red"]) - (b["nir"] + b["blue"]))
    / ((b["swir1"] + b["red"]) + (b["nir"] + b["blue"])),
}

SENSOR_SEEDS = {sensor: seed for seed, sensor in enumerate(HANDBOOK_BANDS)}
ALL_CODES = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]


def test_the_aliases_are_the_required_ones():
    assert set(spectral_indices.ALIASES) == set(HANDBOOK_FORMULAS)
    assert spectral_indices.SENSORS == ("sentinel2", "landsat89", "landsat457", "generic")


@pytest.mark.parametrize("sensor", list(HANDBOOK_BANDS))
@pytest.mark.parametrize("alias", list(HANDBOOK_FORMULAS))
def test_alias_equals_its_handbook_formula(alias, sensor):
    rng = np.random.default_rng([list(HANDBOOK_FORMULAS).index(alias), SENSOR_SEEDS[sensor]])
    blocks = {code: rng.uniform(0.01, 0.6, size=(40, 50)) for code in ALL_CODES}
    bands = HANDBOOK_BANDS[sensor]
    if alias == "NDRE" and "red_edge" not in bands:
        with pytest.raises(ExpressionError, match="red_edge"):
            compile_expression(alias, variables=ALL_CODES, sensor=sensor)
        return
    compiled = compile_expression(alias, variables=ALL_CODES, sensor=sensor)
    with np.errstate(all="ignore"):
        expected = HANDBOOK_FORMULAS[alias]({role: blocks[code] for role, code in bands.items()})
    expected[~np.isfinite(expected)] = np.nan
    np.testing.assert_allclose(compiled.evaluate(blocks), expected, rtol=1e-12, atol=1e-12)
    assert compiled.display_name == alias
    assert set(compiled.variables_used) <= set(bands.values())


@pytest.mark.parametrize(
    ("alias", "sensor", "text"),
    [
        ("NDVI", "sentinel2", "(B8 - B4) / (B8 + B4)"),
        ("ndvi", "landsat89", "(B5 - B4) / (B5 + B4)"),
        ("NDVI", "landsat457", "(B4 - B3) / (B4 + B3)"),
        ("NDVI", "generic", "(B4 - B3) / (B4 + B3)"),
        ("NBR", "landsat89", "(B5 - B7) / (B5 + B7)"),
        ("MNDWI", "sentinel2", "(B3 - B11) / (B3 + B11)"),
        ("NDRE", "sentinel2", "(B8 - B5) / (B8 + B5)"),
    ],
)
def test_alias_expression_text(alias, sensor, text):
    assert spectral_indices.alias_expression(alias, sensor) == text


@pytest.mark.parametrize("sensor", ["landsat89", "landsat457", "generic"])
def test_ndre_is_refused_without_a_red_edge(sensor):
    # Named as the Sensor drop-down shows them, not by internal ids.
    with pytest.raises(ExpressionError, match="none in .*: choose the sensor Sentinel-2 MSI "):
        spectral_indices.alias_expression("NDRE", sensor)


def test_alias_expression_refuses_unknown_names():
    with pytest.raises(ExpressionError, match="NDVI"):
        spectral_indices.alias_expression("NDXI", "sentinel2")
    with pytest.raises(InvalidInputError, match="landsat89"):
        spectral_indices.alias_expression("NDVI", "landsat")


def test_alias_inside_an_expression_on_landsat_codes():
    rng = np.random.default_rng(3)
    blocks = {code: rng.uniform(0.05, 0.5, size=(10, 10)) for code in ("B4", "B5")}
    ndvi = (blocks["B5"] - blocks["B4"]) / (blocks["B5"] + blocks["B4"])
    scaled = compile_expression("ndvi * 100", variables=["B4", "B5"], sensor="landsat89")
    np.testing.assert_allclose(scaled.evaluate(blocks), ndvi * 100)
    mask = compile_expression("where(NDVI > 0.3, 1, 0)", variables=["B4", "B5"],
                              sensor="landsat89")
    np.testing.assert_array_equal(mask.evaluate(blocks), (ndvi > 0.3).astype(float))
    assert scaled.display_name == "NDVI * 100"
    assert scaled.expanded_text == "(B5 - B4) / (B5 + B4) * 100"


def test_alias_needs_a_sensor_and_its_bands():
    with pytest.raises(ExpressionError, match="sensor"):
        compile_expression("NDVI", variables=["B4", "B5"], sensor=None)
    with pytest.raises(ExpressionError, match=r"B8 is not an input band[\s\S]*B4, B5"):
        compile_expression("NDVI * 2", variables=["B4", "B5"], sensor="sentinel2")


def test_real_ndvi_of_the_landsat8_crop(shared_data):
    """NDVI through band_variables + detect_sensor on the real scene, against GDAL reads."""
    folder = shared_data / "landsat8-thermal"
    paths = sorted(folder.glob("*_B[0-9]*_crop.TIF"))
    layers = [LayerBands(path.stem, str(path), 1) for path in paths]
    variables = band_variables(layers)
    sensor = detect_sensor([str(path) for path in paths])
    assert sensor == "landsat89"
    compiled = compile_expression("NDVI", variables=variables.bands, sensor=sensor)
    assert set(compiled.variables_used) == {"B4", "B5"}

    def read(path, band: int = 1) -> np.ndarray:
        dataset = gdal.Open(str(path))
        assert dataset is not None
        return dataset.GetRasterBand(band).ReadAsArray().astype(np.float64)

    blocks = {}
    for name in compiled.variables_used:
        layer_index, band = variables.bands[name]
        blocks[name] = read(paths[layer_index], band)
    red = read(folder / "LC80200392015216LGN00_B4_crop.TIF")
    nir = read(folder / "LC80200392015216LGN00_B5_crop.TIF")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = compiled.evaluate(blocks)
    with np.errstate(all="ignore"):
        expected = (nir - red) / (nir + red)
    expected[~np.isfinite(expected)] = np.nan
    np.testing.assert_allclose(result, expected, rtol=1e-12, equal_nan=True)
    vegetated = np.nanmean(result > 0.3)
    assert 0.05 < vegetated < 0.95  # a real coastal scene: some vegetation, some water/cloud


def test_plain_text_help_lists_every_alias_per_sensor():
    text = spectral_indices.alias_help()
    for name in HANDBOOK_FORMULAS:
        assert f"{name}: " in text
    assert "(B8 - B4) / (B8 + B4)" in text  # NDVI, Sentinel-2
    assert "(B5 - B4) / (B5 + B4)" in text  # NDVI, Landsat 8-9
    assert "(B4 - B3) / (B4 + B3)" in text  # NDVI, Landsat 4-7 and generic
    assert "not available" in text  # NDRE on Landsat
    ndre_lines = text.split("NDRE: ")[1].split("\n\n")[0]
    assert "landsat89" in ndre_lines and "not available" in ndre_lines


def test_html_help_is_well_formed_with_one_row_per_alias():
    root = ElementTree.fromstring(spectral_indices.alias_help(html_format=True))
    tables = root.findall("table")
    assert len(tables) == 2
    rows = tables[0].findall("tr")
    assert [cell.text for cell in rows[0]] == ["Index", "Description", "Formula", "sentinel2",
                                                "landsat89", "landsat457", "generic"]
    by_name = {row[0].text: [cell.text for cell in row] for row in rows[1:]}
    assert set(by_name) == set(HANDBOOK_FORMULAS)
    assert by_name["NBR"][3:] == ["(B8 - B12) / (B8 + B12)", "(B5 - B7) / (B5 + B7)",
                                  "(B4 - B7) / (B4 + B7)", "(B4 - B6) / (B4 + B6)"]
    assert by_name["NDRE"][4:] == ["not available"] * 3
    presets = {row[0].text: [cell.text for cell in row[1:]] for row in tables[1].findall("tr")}
    assert presets["nir"] == ["B8", "B5", "B4", "B4"]
    assert presets["red_edge"] == ["B5", "-", "-", "-"]
