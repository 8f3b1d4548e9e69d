"""Issue 7: fuzzing what reads user files and text: only our own errors, never a crash, never a
hang.

Covers what tests/core does not fuzz yet: the centroid JSON reader, Sentinel-2 MTD XML, Landsat
MTL JSON and XML (tests/core fuzzes MTL text and random bytes), and band-math expressions built
to be slow or deep (tests/core fuzzes random text, token soup and a grammar, without a time
limit). Every example runs under a time limit; a parse that succeeds is used further
(calibrators built and applied, centres applied) and must fail only with RasterClusteringError.
"""

from __future__ import annotations

import copy
import json
import tempfile
import warnings
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from raster_clustering.core.bandmath.expression import compile_expression
from raster_clustering.core.calibration.calibrators import (
    calibrator_for,
    landsat_calibrator,
    sentinel2_calibrator,
)
from raster_clustering.core.calibration.landsat import parse_landsat_band, read_landsat_metadata
from raster_clustering.core.calibration.sentinel2 import SENTINEL2_BANDS, read_sentinel2_metadata
from raster_clustering.core.clustering.apply_centroids import usable_model
from raster_clustering.core.clustering.centroid_model import (
    CentroidModel,
    centroid_model_from_json,
    load_centroid_model,
)
from raster_clustering.core.errors import (
    ExpressionError,
    InvalidInputError,
    MetadataError,
    RasterClusteringError,
)
from reliability_tools import time_limit

EXAMPLE_SECONDS = 5.0
FUZZ = settings(max_examples=50, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

# JSON values of every kind, integers beyond the float range and non-finite floats included.
EXTREME_NUMBERS = (st.sampled_from([10**400, -(10**309), 2**1024, True, 0, -0.0, 1e-320])
                   | st.floats(allow_nan=True, allow_infinity=True))
JSON_SCALARS = (st.none() | st.booleans() | st.integers()
                | st.integers(min_value=-10**400, max_value=10**400) | EXTREME_NUMBERS
                | st.text(max_size=12))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=10), children, max_size=4),
                           max_leaves=16)
DN_BLOCK = np.array([[0, 1, 7000], [30000, 65534, 65535]], dtype=np.uint16)


def dn_block():
    return DN_BLOCK.copy()


_FOLDER = tempfile.TemporaryDirectory(prefix="fuzz_")  # removed when the session ends


def written(text: str | bytes, name: str) -> Path:
    """`text` in a temporary file called `name` (metadata readers look at names), replacing
    the previous example's."""
    path = Path(_FOLDER.name) / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


def only_our_errors(function, *args, **kwargs):
    """Call `function` under the time limit; RasterClusteringError is the only failure allowed.
    Returns its result, or None when it raised RasterClusteringError."""
    with time_limit(EXAMPLE_SECONDS), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy overflow in extreme values
        try:
            return function(*args, **kwargs)
        except RasterClusteringError:
            return None


# --------------------------------------------------------------------------------------------
# Mutating JSON documents and XML trees


def json_paths(document, prefix=()):
    """Every (path, value) inside a JSON document, containers included."""
    yield prefix, document
    if isinstance(document, dict):
        for key, value in document.items():
            yield from json_paths(value, prefix + (key,))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from json_paths(value, prefix + (index,))


def mutate_json(data, document):
    """A copy of `document` with 1-4 random changes drawn from `data`: a value replaced by any
    JSON value or an extreme number, a key deleted, a list cut short, a value wrapped in a
    list."""
    document = copy.deepcopy(document)
    for _ in range(data.draw(st.integers(1, 4))):
        paths = [path for path, _ in json_paths(document) if path]
        leaves = [path for path, value in json_paths(document)
                  if path and not isinstance(value, (dict, list))]
        if leaves and data.draw(st.booleans()):  # values are what parsers convert: favour them
            paths = leaves
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        key = path[-1]
        action = data.draw(st.sampled_from(["replace", "number", "delete", "cut", "wrap"]))
        if action == "replace":
            parent[key] = data.draw(JSON_SCALARS | JSON_VALUES)
        elif action == "number":
            parent[key] = data.draw(EXTREME_NUMBERS)
        elif action == "delete":
            del parent[key]
        elif action == "cut" and isinstance(parent[key], (list, str)):
            parent[key] = parent[key][:data.draw(st.integers(0, len(parent[key])))]
        else:
            parent[key] = [parent[key]]
    return document


#: Elements the metadata readers use (Sentinel-2 and Landsat), favoured by the mutations.
READ_TAGS = {"PRODUCT_TYPE", "QUANTIFICATION_VALUE", "BOA_QUANTIFICATION_VALUE",
             "L2A_BOA_QUANTIFICATION_VALUE", "RADIO_ADD_OFFSET", "BOA_ADD_OFFSET",
             "Special_Values", "SPECIAL_VALUE_TEXT", "SPECIAL_VALUE_INDEX", "IMAGE_FILE",
             "PRODUCT_START_TIME", "PRODUCT_URI", "SPACECRAFT_NAME", "PROCESSING_BASELINE",
             "LANDSAT_PRODUCT_ID", "LANDSAT_SCENE_ID", "SPACECRAFT_ID", "SENSOR_ID",
             "DATE_ACQUIRED", "SUN_ELEVATION", "EARTH_SUN_DISTANCE", "PROCESSING_LEVEL",
             "LEVEL1_RADIOMETRIC_RESCALING", "LEVEL1_THERMAL_CONSTANTS",
             "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS", "LEVEL2_SURFACE_TEMPERATURE_PARAMETERS",
             "REFLECTANCE_MULT_BAND_4", "REFLECTANCE_ADD_BAND_4", "RADIANCE_MULT_BAND_6_VCID_1",
             "K1_CONSTANT_BAND_6_VCID_1", "K2_CONSTANT_BAND_6_VCID_1",
             "TEMPERATURE_MULT_BAND_ST_B10", "TEMPERATURE_ADD_BAND_ST_B10"}
# Number-like text in any script: '²' and '١' are digits to str.isdigit(), not all to int().
NUMBERISH = st.text(alphabet=st.characters(whitelist_categories=("Nd", "No"))
                    | st.sampled_from(list("0123456789-+.e ")), max_size=6)
XML_TEXTS = (NUMBERISH | st.text(max_size=20)
             | st.sampled_from(["", "0", "-1000", "1e400", "nan", "1" * 5000, "10000"])
             | st.integers(-10**6, 10**6).map(str))


def mutate_xml(data, text: str) -> str:
    """The XML `text` with 1-5 random changes to its elements (text, removal, band_id, tag,
    duplication), maybe cut at a random point."""
    root = ElementTree.fromstring(text)
    for _ in range(data.draw(st.integers(1, 5))):
        parents = {child: parent for parent in root.iter() for child in parent}
        elements = list(parents)
        read = [element for element in elements if element.attrib
                or element.tag.rsplit("}", 1)[-1] in READ_TAGS]
        if read and data.draw(st.integers(0, 3)):  # favour what the readers look at
            elements = read
        action = data.draw(st.sampled_from(["text", "remove", "band_id", "tag", "duplicate"]))
        with_band_id = [element for element in elements if "band_id" in element.attrib]
        if action == "band_id" and with_band_id:
            elements = with_band_id
        element = data.draw(st.sampled_from(elements))
        if action == "text":
            element.text = data.draw(XML_TEXTS)
        elif action == "remove":
            parents[element].remove(element)
        elif action == "band_id":
            element.set("band_id", data.draw(XML_TEXTS))
        elif action == "tag":
            element.tag = data.draw(st.sampled_from(["X", element.tag.upper(),
                                                     "QUANTIFICATION_VALUE", "BOA_ADD_OFFSET",
                                                     "Special_Values", "SPACECRAFT_ID"]))
        else:
            parents[element].append(copy.deepcopy(element))
    mutated = ElementTree.tostring(root, encoding="unicode")
    if data.draw(st.booleans()):
        mutated = mutated[:data.draw(st.integers(0, len(mutated)))]
    return mutated


# --------------------------------------------------------------------------------------------
# Centroid JSON


PLAIN_CENTRES = st.floats(-1e6, 1e6)


@st.composite
def centroid_documents(draw, values=PLAIN_CENTRES):
    """Centroid JSON documents of k-means (one or several features, scaling, clipping): valid
    ones, or with any JSON scalar as a centre value when `values` says so."""
    n_features = draw(st.integers(1, 3))
    names = draw(st.lists(st.text(min_size=1, max_size=8), min_size=n_features,
                          max_size=n_features))
    centres = draw(st.lists(st.lists(values, min_size=n_features,
                                     max_size=n_features), min_size=1, max_size=6))
    document = {", ".join(names): [[i + 1, row] for i, row in enumerate(centres)]}
    if n_features > 1:
        document["features"] = names
        if draw(st.booleans()):
            document["standardize"] = {
                "mean": draw(st.lists(st.floats(-10, 10), min_size=n_features,
                                      max_size=n_features)),
                "std": draw(st.lists(st.floats(0.01, 10), min_size=n_features,
                                     max_size=n_features))}
        if draw(st.booleans()):
            document["clip"] = {"quantiles": [1, 99], "lower": [-1e6] * n_features,
                                "upper": [1e6] * n_features}
    return document


def use_model(model: CentroidModel) -> None:
    """What applying the centres does with a model: check it, label pixels, write it back."""
    model = usable_model(model)
    pixels = np.random.default_rng(0).normal(size=(7, model.n_features))
    labels = model.label(pixels)
    assert labels.shape == (7,) and labels.min() >= 1 and labels.max() <= model.n_clusters
    json.dumps(model.to_json())


@FUZZ
@given(document=centroid_documents())
def test_valid_centroid_documents_round_trip(document):
    model = centroid_model_from_json(document)
    again = centroid_model_from_json(json.loads(json.dumps(model.to_json())))
    np.testing.assert_array_equal(again.centres, model.centres)
    assert again.feature_names == model.feature_names
    only_our_errors(use_model, model)  # twin centres are refused by usable_model


@FUZZ
@given(document=JSON_VALUES)
def test_any_json_value_as_centroid_document(document):
    model = only_our_errors(centroid_model_from_json, document)
    if model is not None:
        only_our_errors(use_model, model)


@FUZZ
@given(document=centroid_documents(values=JSON_SCALARS))
def test_any_scalar_as_centre_value(document):
    model = only_our_errors(centroid_model_from_json, document)
    if model is not None:
        only_our_errors(use_model, model)


@FUZZ
@given(document=centroid_documents(), data=st.data())
def test_damaged_centroid_documents(document, data):
    model = only_our_errors(centroid_model_from_json, mutate_json(data, document))
    if model is not None:
        only_our_errors(use_model, model)


@FUZZ
@given(document=centroid_documents(), cut=st.floats(0, 1), noise=st.binary(max_size=40))
def test_damaged_centroid_files(document, cut, noise):
    text = json.dumps(document).encode()
    path = written(text[:int(len(text) * cut)] + noise, "centres.json")
    with pytest.raises(InvalidInputError) if cut < 1 or noise else _allowed():
        with time_limit(EXAMPLE_SECONDS):
            load_centroid_model(path)


class _allowed:  # noqa: N801 - used like pytest.raises
    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        return kind is not None and issubclass(kind, RasterClusteringError)


@pytest.mark.parametrize("text", [
    "[" * 100_000 + "]" * 100_000,                      # nesting beyond the recursion limit
    '{"x": [[1, [' + "9" * 5000 + "]]]}",               # an integer Python will not convert
    '{"x": [[1, [' + "9" * 400 + "]]]}",                # an integer beyond the float range
    '{"x": [[1, [NaN]], [2, [Infinity]]]}',
    "\ufeff{}", "", "null", '"text"',
])
def test_hostile_centroid_files(text, tmp_path):
    path = tmp_path / "centres.json"
    path.write_text(text)
    with time_limit(EXAMPLE_SECONDS), pytest.raises(InvalidInputError):
        load_centroid_model(path)


# --------------------------------------------------------------------------------------------
# Sentinel-2 MTD XML


def sentinel2_files(shared_data) -> list[Path]:
    return sorted((shared_data / "sentinel2-mtd").glob("*.xml"))


def use_sentinel2(path: Path) -> None:
    metadata = read_sentinel2_metadata(path)
    for band in SENTINEL2_BANDS:
        try:
            calibrator = sentinel2_calibrator(metadata, band)
        except RasterClusteringError:
            continue
        assert calibrator.apply(dn_block()).shape == DN_BLOCK.shape


@pytest.fixture(scope="module")
def sentinel2_texts(shared_data):
    return [(path.name.split("_MTD_")[-1], path.read_text()) for path in
            sentinel2_files(shared_data)]


@FUZZ
@given(data=st.data())
def test_damaged_sentinel2_metadata(sentinel2_texts, data):
    name, text = data.draw(st.sampled_from(sentinel2_texts))
    only_our_errors(use_sentinel2, written(mutate_xml(data, text), name))


@FUZZ
@given(content=st.binary(max_size=3000) | st.text(max_size=3000).map(str.encode))
def test_random_bytes_as_sentinel2_metadata(content):
    path = written(content, "MTD_MSIL1C.xml")
    with time_limit(EXAMPLE_SECONDS), pytest.raises(MetadataError):
        read_sentinel2_metadata(path)


def _entities(depth: int, width: int) -> str:
    names = [f"e{i}" for i in range(depth + 1)]
    lines = [f'<!ENTITY {names[0]} "{"x" * 100}">']
    lines += [f'<!ENTITY {names[i]} "{("&" + names[i - 1] + ";") * width}">'
              for i in range(1, depth + 1)]
    return "".join(lines), names[-1]


_LAUGHS, _LAUGHS_ROOT = _entities(9, 10)
HOSTILE_XML = {
    "billion laughs": f'<!DOCTYPE p [{_LAUGHS}]><Level-1C_User_Product>&{_LAUGHS_ROOT};'
                      "</Level-1C_User_Product>",
    "quadratic blowup": f'<!DOCTYPE p [<!ENTITY a "{"x" * 100_000}">]><Level-1C_User_Product>'
                        + "&a;" * 20_000 + "</Level-1C_User_Product>",
    "external entity": '<!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                       "<Level-1C_User_Product><PRODUCT_TYPE>&x;</PRODUCT_TYPE>"
                       "</Level-1C_User_Product>",
    "deep nesting": "<Level-1C_User_Product>" + "<a>" * 50_000 + "</a>" * 50_000
                    + "</Level-1C_User_Product>",
    "many offsets": "<Level-1C_User_Product><PRODUCT_TYPE>S2MSI1C</PRODUCT_TYPE>"
                    "<QUANTIFICATION_VALUE>10000</QUANTIFICATION_VALUE>"
                    + '<RADIO_ADD_OFFSET band_id="99">1</RADIO_ADD_OFFSET>' * 10_000
                    + "</Level-1C_User_Product>",
}


@pytest.mark.parametrize("name", list(HOSTILE_XML))
def test_hostile_sentinel2_metadata(name, tmp_path):
    path = tmp_path / "MTD_MSIL1C.xml"
    path.write_text(HOSTILE_XML[name])
    with time_limit(EXAMPLE_SECONDS), pytest.raises(MetadataError) as error:
        use_sentinel2(path)
    assert "root:" not in str(error.value)  # /etc/passwd is never read into a message


@pytest.mark.parametrize("old, new, refused", [
    ('band_id="3"', 'band_id="²"', True),             # a digit to str.isdigit(), not to int()
    ('band_id="3"', f'band_id="{"1" * 5000}"', True),  # more digits than int() converts
    ("<SPECIAL_VALUE_INDEX>0<", "<SPECIAL_VALUE_INDEX>²<", False),  # ignored: default kept
    ("<SPECIAL_VALUE_INDEX>0<", f"<SPECIAL_VALUE_INDEX>{'9' * 5000}<", False),
])
def test_odd_digits_in_sentinel2_metadata(shared_data, tmp_path, old, new, refused):
    source = shared_data / "sentinel2-mtd" / "S2B_MSIL2A_20220413_N0400_T33XWJ_MTD_MSIL2A.xml"
    text = source.read_text()
    assert old in text
    path = tmp_path / "MTD_MSIL2A.xml"
    path.write_text(text.replace(old, new, 1))
    if refused:
        with pytest.raises(MetadataError, match="band_id must be 0–12"):
            read_sentinel2_metadata(path)
    else:
        assert read_sentinel2_metadata(path).nodata_dn == 0


# --------------------------------------------------------------------------------------------
# Landsat MTL JSON and XML


LANDSAT_BANDS = ["1", "4", "5", "6", "B6_VCID_1", "10", "11", "SR_B4", "ST_B10"]


def use_landsat(path: Path, product_id: str) -> None:
    """Read the metadata, then build and apply the calibrator of every kind of band, through
    the file-name route (scene check included) and directly."""
    metadata = read_landsat_metadata(path)
    for band in LANDSAT_BANDS:
        try:
            calibrator = calibrator_for(f"{product_id}_B4.TIF", metadata_path=path, band=band)
            assert calibrator.apply(dn_block()).shape == DN_BLOCK.shape
        except RasterClusteringError:
            pass
        try:
            product = band.split("_")[0] if band.startswith(("SR", "ST")) else "DN"
            direct = landsat_calibrator(metadata, parse_landsat_band(band, product=product))
            assert direct.apply(dn_block()).shape == DN_BLOCK.shape
        except RasterClusteringError:
            pass


@pytest.fixture(scope="module")
def landsat_documents(shared_data):
    files = sorted((shared_data / "landsat8").glob("*_MTL.json"))
    files += sorted((shared_data / "landsat-mtl").glob("*_MTL.xml"))
    assert len(files) >= 4
    return [(path.name, path.stem[:-len("_MTL")], path.read_text()) for path in files]


@FUZZ
@given(data=st.data())
def test_damaged_landsat_json_and_xml(landsat_documents, data):
    name, product_id, text = data.draw(st.sampled_from(landsat_documents))
    if name.endswith(".json"):
        mutated = json.dumps(mutate_json(data, json.loads(text)))
        if data.draw(st.booleans()):
            mutated = mutated[:data.draw(st.integers(0, len(mutated)))]
    else:
        mutated = mutate_xml(data, text)
    only_our_errors(use_landsat, written(mutated, name), product_id)


@FUZZ
@given(document=JSON_VALUES, root=st.sampled_from(["L1_METADATA_FILE",
                                                   "LANDSAT_METADATA_FILE", "OTHER"]))
def test_any_json_under_a_landsat_root(document, root):
    path = written(json.dumps({root: document}),
                   "LC08_L1TP_188018_20200927_20201005_02_T1_MTL.json")
    only_our_errors(use_landsat, path, "LC08_L1TP_188018_20200927_20201005_02_T1")


@pytest.mark.parametrize("text", [
    '{"L1_METADATA_FILE": ' * 5000 + "{}" + "}" * 5000,   # nesting beyond every limit
    '{"L1_METADATA_FILE": {"SUN_ELEVATION": ' + "9" * 5000 + "}}",
    *(value.replace("Level-1C_User_Product", "LANDSAT_METADATA_FILE")
      for name, value in HOSTILE_XML.items() if name != "many offsets"),
])
def test_hostile_landsat_metadata(text, tmp_path):
    path = tmp_path / "LC08_L1TP_188018_20200927_20201005_02_T1_MTL.json"
    path.write_text(text)
    with time_limit(EXAMPLE_SECONDS), pytest.raises(MetadataError):
        use_landsat(path, "LC08_L1TP_188018_20200927_20201005_02_T1")


# --------------------------------------------------------------------------------------------
# Band-math expressions built to be slow or deep


VARIABLES = ["B1", "B2", "B3", "B4", "B5", "B8", "B8A", "B11"]
BLOCK = {name: np.linspace(-2, 2, 64, dtype=np.float32) for name in VARIABLES}


@st.composite
def heavy_expressions(draw):
    """Expressions at and beyond the parser's limits: deep nesting, long chains, exponent
    towers, huge literals, many aliases."""
    atom = draw(st.sampled_from(VARIABLES + ["NDVI", "EVI", "SAVI", "1e308", "9" * 300,
                                             "0.5", "1e-308"]))
    depth = draw(st.integers(1, 140))
    shape = draw(st.sampled_from(["parentheses", "functions", "unary", "power", "chain",
                                  "where", "sum"]))
    if shape == "parentheses":
        return "(" * depth + atom + ")" * depth
    if shape == "functions":
        function = draw(st.sampled_from(["abs", "sqrt", "log", "exp", "log10"]))
        return f"{function}(" * depth + atom + ")" * depth
    if shape == "unary":
        return draw(st.sampled_from(["-", "+", "not "])) * depth + atom
    if shape == "power":
        exponent = draw(st.sampled_from(["2", "10", "0.5", "B1", "99", "-99"]))
        return atom + f" ** {exponent}" * depth
    if shape == "chain":
        operator = draw(st.sampled_from([" < ", " == ", " and ", " or ", " / ", " * "]))
        return operator.join([atom] * depth)
    if shape == "where":
        return "where(B1 > 0, " * depth + atom + ", B2)" * depth
    return " + ".join(draw(st.lists(st.sampled_from(VARIABLES + ["NDVI", "EVI"]),
                                    min_size=depth, max_size=depth)))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=heavy_expressions(), sensor=st.sampled_from([None, "sentinel2", "landsat89"]))
def test_heavy_expressions_finish_quickly(text, sensor):
    with time_limit(2.0), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            compiled = compile_expression(text, variables=VARIABLES, sensor=sensor)
        except ExpressionError:
            return
        result = compiled.evaluate(BLOCK)
    assert result.shape == (64,)
    assert not np.isinf(result).any()
