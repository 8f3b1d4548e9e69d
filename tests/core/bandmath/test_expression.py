"""Band-math expressions: what is accepted and computed, what is refused, NaN rules, fuzzing."""

import ast
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from raster_clustering.core.bandmath import expression as band_math
from raster_clustering.core.bandmath.band_names import LayerBands, band_variables
from raster_clustering.core.bandmath.expression import compile_expression
from raster_clustering.core.errors import ExpressionError, InvalidInputError

VARIABLES = ["B1", "B2", "B3", "B4", "B5", "B8", "B8A", "B11", "B12", "my layer@1",
             "my layer@2", "dem@1", "é layer@1"]
SHAPE = (7, 9)


@pytest.fixture(scope="module")
def blocks():
    rng = np.random.default_rng(42)
    return {name: rng.uniform(0.1, 2.0, size=SHAPE) for name in VARIABLES}


def _evaluate(text, values, *, sensor=None, variables=VARIABLES, dtype=np.float64):
    """Compile and evaluate with every warning turned into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compiled = compile_expression(text, variables=variables, sensor=sensor)
        return compiled.evaluate(values, dtype=dtype)


# Each oracle is the plain numpy formula for the expression, written out by hand.
ACCEPTED = [
    ("B1 + B2 * B3", lambda b: b["B1"] + b["B2"] * b["B3"]),
    ("(B1 + B2) * B3", lambda b: (b["B1"] + b["B2"]) * b["B3"]),
    ("B1 - B2 - B3", lambda b: (b["B1"] - b["B2"]) - b["B3"]),
    ("B1 - (B2 - B3)", lambda b: b["B1"] - (b["B2"] - b["B3"])),
    ("B1 / B2 / B3", lambda b: (b["B1"] / b["B2"]) / b["B3"]),
    ("-B1 ** 2", lambda b: -(b["B1"] ** 2)),
    ("(-B1) ** 2", lambda b: b["B1"] ** 2),
    ("2 ** -B1", lambda b: 2.0 ** -b["B1"]),
    ("B1 ** B2 ** 0.5", lambda b: b["B1"] ** (b["B2"] ** 0.5)),
    ("B1 ^ 2", lambda b: b["B1"] ** 2),
    ("+B1 - -B2", lambda b: b["B1"] + b["B2"]),
    ("B1 > B2", lambda b: (b["B1"] > b["B2"]).astype(float)),
    ("B1 >= B2", lambda b: (b["B1"] >= b["B2"]).astype(float)),
    ("B1 < B2", lambda b: (b["B1"] < b["B2"]).astype(float)),
    ("B1 <= B2", lambda b: (b["B1"] <= b["B2"]).astype(float)),
    ("B1 == B1", lambda b: np.ones(SHAPE)),
    ("B1 != B2", lambda b: np.ones(SHAPE)),
    ("B1 = B1", lambda b: np.ones(SHAPE)),
    ("B1 < B2 < B3", lambda b: ((b["B1"] < b["B2"]) & (b["B2"] < b["B3"])).astype(float)),
    ("B1 > 1 and B2 > 1", lambda b: ((b["B1"] > 1) & (b["B2"] > 1)).astype(float)),
    ("B1 > 1 or B2 > 1", lambda b: ((b["B1"] > 1) | (b["B2"] > 1)).astype(float)),
    ("not B1 > 1", lambda b: (b["B1"] <= 1).astype(float)),
    ("B1 > 1 AND NOT B2 > 1", lambda b: ((b["B1"] > 1) & (b["B2"] <= 1)).astype(float)),
    ("where(B1 > B2, B1, B2)", lambda b: np.maximum(b["B1"], b["B2"])),
    ("where(B1 > 1, 1, 0)", lambda b: (b["B1"] > 1).astype(float)),
    ("min(B1, B2, B3)", lambda b: np.minimum(np.minimum(b["B1"], b["B2"]), b["B3"])),
    ("max(B1, 0.5)", lambda b: np.maximum(b["B1"], 0.5)),
    ("clip(B1, 0.5, 1.5)", lambda b: np.clip(b["B1"], 0.5, 1.5)),
    ("abs(B1 - B2)", lambda b: np.abs(b["B1"] - b["B2"])),
    ("sqrt(B1)", lambda b: np.sqrt(b["B1"])),
    ("log(B1)", lambda b: np.log(b["B1"])),
    ("log10(B1)", lambda b: np.log10(b["B1"])),
    ("exp(B1)", lambda b: np.exp(b["B1"])),
    ("WHERE(b1 > 1, MIN(B1, B2), Max(B2, B3))",
     lambda b: np.where(b["B1"] > 1, np.minimum(b["B1"], b["B2"]), np.maximum(b["B2"], b["B3"]))),
    ("B04 + b4 + B0004", lambda b: 3 * b["B4"]),
    ("B8A - B8", lambda b: b["B8A"] - b["B8"]),
    ("b8a * B12", lambda b: b["B8A"] * b["B12"]),
    ('"my layer@1" - "my layer@2"', lambda b: b["my layer@1"] - b["my layer@2"]),
    ("dem@1 * 2", lambda b: b["dem@1"] * 2),
    ('"dem@01"', lambda b: b["dem@1"]),
    ('"MY LAYER@2"', lambda b: b["my layer@2"]),
    ('"é layer@1" + 1', lambda b: b["é layer@1"] + 1),
    ("B1 * 1e-4 + 0x10 + .5 + 1_000", lambda b: b["B1"] * 1e-4 + 16 + 0.5 + 1000),
    ("  B1\n+\tB2  ", lambda b: b["B1"] + b["B2"]),
    ("1 / B1", lambda b: 1 / b["B1"]),
    ("B1 ** 100", lambda b: b["B1"] ** 100),
    ("B1 ** (50 * 2)", lambda b: b["B1"] ** 100),
    ("B1 ** B2 ** 2", lambda b: b["B1"] ** (b["B2"] ** 2)),
]


@pytest.mark.parametrize(("text", "oracle"), ACCEPTED, ids=[text for text, _ in ACCEPTED])
def test_accepted_expressions_compute_their_formula(text, oracle, blocks):
    result = _evaluate(text, blocks)
    expected = np.broadcast_to(oracle(blocks), SHAPE)
    assert result.shape == SHAPE and result.dtype == np.float64
    np.testing.assert_allclose(result, expected, rtol=1e-12)


REJECTED = [
    ("__import__('os')", "Names starting with '_'"),
    ("().__class__", "not allowed"),
    ("B1.real", "Attribute"),
    ("B1.__class__", "'_'"),
    ("[B1]", r"'\['"),
    ("{B1}", r"'\{'"),
    ("lambda: B1", "not allowed"),
    ("lambda x: x", "not allowed"),
    ("open('x')", "single quotes"),
    ("open(B1)", "Only the band-math functions"),
    ("B1(2)", "Only the band-math functions"),
    ("B1 if B2 else 3", "where"),
    ("2**10**10", "exponent"),
    ("9**999999", "exponent"),
    ("B1 ** 1000", "exponent"),
    ("B1 ** -101", "exponent"),
    ("B1 ** (0/0)", "exponent"),
    ("'B1'", "single quotes"),
    ('"B1"', "layer band reference"),
    ('b"x@1"', "Syntax"),
    ('f"{B1}"', "layer band reference"),
    ("B1 + 'x'", "single quotes"),
    ("[x for x in B1]", r"'\['"),
    ("B9", "not an input band"),
    ("NDVI", "sensor"),
    ("xyz", "not an input band"),
    ("B1 +", "ends too early"),
    ("(B1 + B2", "never closed"),
    ("B1 + B2)", "unmatched"),
    ("B1 B2", "Syntax"),
    ("", "empty"),
    ("   ", "empty"),
    ("1 + 2", "reads no band"),
    ("B1 // 2", "Floor"),
    ("B1 % 2", "'%'"),
    ("B1 @ 2", "'@'"),
    ("B1 & B2", "'&'"),
    ("B1 | B2", r"'\|'"),
    ("~B1", "'~'"),
    ("B1 << 2", "not supported"),
    ("B1 is B2", "'is'"),
    ("B1 in B2", "'in'"),
    ("min(B1)", "argument"),
    ("where(B1, B2)", "argument"),
    ("abs(B1, B2)", "argument"),
    ("min(B1, key=B2)", "key is not"),  # `=` compares, as in QGIS
    ("min(*B1)", "plain arguments"),
    ("B1, B2", "comma"),
    ("(B1 := 2)", "':'"),
    ("True + B1", "True"),
    ("None", "None"),
    ("B1 + 1j", "1j"),
    ("1e999 + B1", "too large"),
    ("1" + "0" * 400 + " + B1", "too large"),
    ("1" + "0" * 5000 + " + B1", "too many digits"),
    ("clip(B1, 2, 1)", "low bound"),
    ("sqrt", "function"),
    ("NDVI()", "index"),
    ("B1\x00", "not allowed"),
    ("B1 # comment", "'#'"),
    ("B1; B2", "';'"),
    ("B1 \\\n + B2", r"'\\\\'"),
    ("yield B1", "Syntax"),
    ("await B1", "not allowed"),
    ('"unterminated@1', "never closed"),
    ('"@1"', "layer band reference"),
    ('"dem@0"', "start at 1"),
    ('"nolayer@1" + B1', '"nolayer@1" is not an input band'),
    ("B1 $ 2", "'\\$'"),
    ("B1 > 1and B2", "runs into"),
    ("1.real + B1", "runs into"),
    ("0x1For B1", "runs into"),
    ("1..2 + B1", "runs into"),
]


@pytest.mark.parametrize(("text", "message"), REJECTED, ids=[repr(t)[:40] for t, _ in REJECTED])
def test_rejected_expressions_raise_expression_error(text, message):
    with pytest.raises(ExpressionError, match=message):
        compile_expression(text, variables=VARIABLES, sensor=None)


@pytest.mark.parametrize(
    ("text", "column", "snippet"),
    [
        ("B1 + B9", 6, "B9"),
        ("__import__('os')", 1, "__import__"),
        ('"my layer@1" * B1.real', 16, "B1.real"),
        ('"é layer@1" + B9', 15, "B9"),
        ('"my layer@1" + nolayer@1', 16, "nolayer@1"),
        ("where(B1 > 0, 1, 2 ** 999)", 23, "999"),
        ("B1 + (B2 * B3", 6, "("),
        ("B1 + 'text'", 6, "'text'"),
        ("abs(B1) + NDVI", 11, "NDVI"),
    ],
)
def test_errors_point_at_the_offending_part(text, column, snippet):
    with pytest.raises(ExpressionError) as raised:
        compile_expression(text, variables=VARIABLES, sensor=None)
    message = str(raised.value)
    assert f"(column {column}: '{snippet}')" in message
    shown, caret = message.splitlines()[1:3]
    caret_start = caret.index("^")
    assert shown[caret_start:caret_start + len(snippet)] == snippet
    assert caret.strip() == "^" * len(snippet)


def test_unknown_variable_message_lists_the_available_ones():
    with pytest.raises(ExpressionError) as raised:
        compile_expression("B9 - B4", variables=["B4", "B11", "B8A", "my layer@1", "dem@1"])
    message = str(raised.value)
    assert 'Variables: B4, B8A, B11, "my layer@1", "dem@1".' in message
    assert "NDVI" in message and "where" in message


def test_errors_inside_an_alias_point_at_the_alias():
    with pytest.raises(ExpressionError) as raised:
        compile_expression("100 * NDVI", variables=["B4", "B5"], sensor="sentinel2")
    message = str(raised.value)
    assert message.startswith("NDVI for Sentinel-2 MSI is (B8 - B4) / (B8 + B4), but: B8 is not")
    assert "(column 7: 'NDVI')" in message


@pytest.mark.parametrize(
    "text",
    [
        "(" * 5000 + "B1" + ")" * 5000,  # beyond the length limit
        "(" * 300 + "B1" + ")" * 300,
        "-" * 5000 + "B1",
        "not " * 2000 + "B1",
        "B1+" * 3000 + "B1",
        "B1**" * 2000 + "B1",
        "abs(" * 150 + "B1" + ")" * 150,
        "where(B1, " * 150 + "B1" + ", 1)" * 150,
        "min(B1, " * 120 + "B1" + ")" * 120,
        "B1" + " " * 20000,
    ],
    ids=lambda text: f"{text[:12]}…{len(text)}",
)
def test_long_or_deeply_nested_input_is_an_expression_error(text):
    started = time.perf_counter()
    with pytest.raises(ExpressionError):
        compile_expression(text, variables=VARIABLES)
    assert time.perf_counter() - started < 2.0


def test_nesting_below_the_limit_is_accepted(blocks):
    text = " + ".join(["B1"] * 90)
    np.testing.assert_allclose(_evaluate(text, blocks), 90 * blocks["B1"], rtol=1e-12)
    nested = "abs(" * 45 + "-B1" + ")" * 45
    np.testing.assert_allclose(_evaluate(nested, blocks), blocks["B1"])


def test_huge_exponents_are_refused_before_any_evaluation():
    started = time.perf_counter()
    for text in ("B1 * 2**10**10", "9**999999 + B1", "B1 ** (10 ** 400)", "B1 ** 1e308 ** 2"):
        with pytest.raises(ExpressionError, match="exponent"):
            compile_expression(text, variables=["B1"])
    assert time.perf_counter() - started < 1.0


X = np.array([np.nan, 1.0, 0.0, -1.0, np.inf, 2.0])
SEVENS = np.full(6, 7.0)
NAN = np.nan
NAN_RULES = [
    ("B1 > 0", [NAN, 1, 0, 0, NAN, 1]),
    ("B1 <= 0", [NAN, 0, 1, 1, NAN, 0]),
    ("B1 == B1", [NAN, 1, 1, 1, NAN, 1]),
    ("0 < B1 < 2", [NAN, 1, 0, 0, NAN, 0]),
    ("where(B1 > 0, 10, 20)", [NAN, 10, 20, 20, NAN, 10]),
    ("where(B1, B2, 5)", [NAN, 7, 5, 7, NAN, 7]),
    ("where(B2 > 0, 1, B1)", [1, 1, 1, 1, 1, 1]),  # NaN only in the branch not taken
    ("not B1", [NAN, 0, 1, 0, NAN, 0]),
    ("B1 and B2", [NAN, 1, 0, 1, NAN, 1]),
    ("B1 or 0", [NAN, 1, 0, 1, NAN, 1]),
    ("0 and B1", [NAN, 0, 0, 0, NAN, 0]),
    ("1 / B1", [NAN, 1, NAN, -1, NAN, 0.5]),
    ("0 / B1", [NAN, 0, NAN, 0, NAN, 0]),
    ("1 / (1 / B1)", [NAN, 1, NAN, -1, NAN, 2]),  # x / 0 stays invalid, never turns into 0
    ("B1 ** -1", [NAN, 1, NAN, -1, NAN, 0.5]),
    ("log(B1)", [NAN, 0, NAN, NAN, NAN, np.log(2.0)]),
    ("log10(B1)", [NAN, 0, NAN, NAN, NAN, np.log10(2.0)]),
    ("sqrt(B1)", [NAN, 1, 0, NAN, NAN, np.sqrt(2.0)]),
    ("(-8 * B1) ** (1 / 3)", [NAN, NAN, 0, 2, NAN, NAN]),
    ("exp(B1 * 1000)", [NAN, NAN, 1, 0, NAN, NAN]),
    ("B2 * 1e308 * 10", [NAN] * 6),
    ("min(B1, 5)", [NAN, 1, 0, -1, NAN, 2]),
    ("max(B1, B2)", [NAN, 7, 7, 7, NAN, 7]),
    ("clip(B1, 0, 1)", [NAN, 1, 0, 0, NAN, 1]),
    ("abs(B1)", [NAN, 1, 0, 1, NAN, 2]),
    ("B1 * 0 + 3", [NAN, 3, 3, 3, NAN, 3]),
    ("B1 - B1", [NAN, 0, 0, 0, NAN, 0]),
    ("B1", [NAN, 1, 0, -1, NAN, 2]),
]


@pytest.mark.parametrize(("text", "expected"), NAN_RULES, ids=[t for t, _ in NAN_RULES])
def test_invalid_values_become_nan_and_nan_propagates(text, expected):
    result = _evaluate(text, {"B1": X, "B2": SEVENS}, variables=["B1", "B2"])
    np.testing.assert_array_equal(result, np.array(expected, dtype=float))


def test_inputs_are_never_modified_and_results_are_new_arrays(blocks):
    inputs = {name: block.copy() for name, block in blocks.items()}
    for text in ("B1", "B1 * 2 + B1", "-B1", "where(B1 > 1, B1, B2)", "min(B1, B2)", "+B1"):
        result = _evaluate(text, inputs)
        assert not any(np.shares_memory(result, block) for block in inputs.values())
        result[...] = -99.0
    for name, block in blocks.items():
        np.testing.assert_array_equal(inputs[name], block)


def test_integer_blocks_and_float32_precision():
    digital_numbers = {"B4": np.array([[100, 0], [65535, 7]], dtype=np.uint16),
                       "B5": np.array([[300, 0], [1, 7]], dtype=np.uint16)}
    red = digital_numbers["B4"].astype(np.float64)
    nir = digital_numbers["B5"].astype(np.float64)
    with np.errstate(all="ignore"):
        expected = (nir - red) / (nir + red)
    result64 = _evaluate("(B5 - B4) / (B5 + B4)", digital_numbers, variables=["B4", "B5"])
    np.testing.assert_array_equal(result64, expected)
    result32 = _evaluate("(B5 - B4) / (B5 + B4)", digital_numbers, variables=["B4", "B5"],
                         dtype=np.float32)
    assert result32.dtype == np.float32
    np.testing.assert_allclose(result32, expected, rtol=1e-6)


def test_constant_results_fill_the_block():
    compiled = compile_expression("where(B1 > 0, 1, 1) * 0 + 5", variables=["B1"])
    np.testing.assert_array_equal(compiled.evaluate({"B1": np.zeros((3, 4))}), np.full((3, 4), 5))


def test_evaluate_checks_its_blocks():
    compiled = compile_expression("B1 + B2", variables=["B1", "B2"])
    with pytest.raises(InvalidInputError, match="B2"):
        compiled.evaluate({"B1": np.zeros(3)})
    with pytest.raises(InvalidInputError, match="shape"):
        compiled.evaluate({"B1": np.zeros(3), "B2": np.zeros(4)})
    with pytest.raises(InvalidInputError, match="float32 or float64"):
        compiled.evaluate({"B1": np.zeros(3), "B2": np.zeros(3)}, dtype=np.int32)
    extra = compiled.evaluate({"B1": np.ones(3), "B2": np.ones(3), "B3": np.zeros(5)})
    np.testing.assert_array_equal(extra, np.full(3, 2.0))


def test_unknown_sensor_is_an_input_error():
    with pytest.raises(InvalidInputError, match="sentinel2"):
        compile_expression("B1", variables=["B1"], sensor="sentinel-2")


def test_variables_used_display_name_and_expanded_text():
    compiled = compile_expression('"my layer@2" + b01 + "my layer@2" * NDVI',
                                  variables=VARIABLES, sensor="landsat89")
    assert compiled.variables_used == ("my layer@2", "B1", "B5", "B4")
    assert compiled.display_name == '"my layer@2" + B1 + "my layer@2" * NDVI'
    assert compiled.expanded_text == '"my layer@2" + B1 + "my layer@2" * ((B5 - B4) / (B5 + B4))'
    whole = compile_expression(" ndvi ", variables=VARIABLES, sensor="sentinel2")
    assert whole.display_name == "NDVI"
    assert whole.expanded_text == "(B8 - B4) / (B8 + B4)"
    assert whole.text == " ndvi "


def test_ambiguous_band_codes_name_their_alternatives(blocks):
    layers = [LayerBands("red", "LC08_X_B4.TIF", 1), LayerBands("red s2", "T33UXX_B04.jp2", 1),
              LayerBands("nir", "LC08_X_B5.TIF", 1)]
    variables = band_variables(layers)
    for text in ("B4 + 1", "b04 + 1", "NDVI"):
        with pytest.raises(ExpressionError, match=r'B4 is ambiguous[\s\S]*"red@1", "red s2@1"'):
            compile_expression(text, variables=variables.bands, ambiguous=variables.ambiguous,
                               sensor="landsat89")
    compiled = compile_expression('(B5 - "red@1") / (B5 + red@1)', variables=variables.bands,
                                  ambiguous=variables.ambiguous)
    assert compiled.variables_used == ("B5", "red@1")
    assert [variables.bands[name] for name in compiled.variables_used] == [(2, 1), (0, 1)]


def test_layer_names_with_odd_characters():
    variables = ["Sentinel 2 (2021-05-27) B4@1", "a@b@3", "räster@1"]
    values = {name: np.full(2, float(index + 1)) for index, name in enumerate(variables)}
    result = _evaluate('"Sentinel 2 (2021-05-27) B4@1" + 10 * "a@b@3" + 100 * räster@1',
                       values, variables=variables)
    np.testing.assert_array_equal(result, np.full(2, 321.0))


def test_module_never_evaluates_user_text():
    tree = ast.parse(Path(band_math.__file__).read_text(encoding="utf-8"))
    called = {node.func.id for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert not called & {"eval", "exec", "compile", "__import__", "getattr", "globals"}


def test_syntax_help_mentions_every_function():
    text = band_math.syntax_help()
    for name in ("where", "min", "max", "clip", "abs", "sqrt", "log", "log10", "exp"):
        assert f"{name}(" in text
    assert band_math.syntax_help(html_format=True).startswith("<div><p>")


# --------------------------------------------------------------------------------------------
# Fuzzing: compile_expression raises nothing but ExpressionError, whatever the text.

FUZZ_VARIABLES = ["B1", "B2", "B3", "B4", "B5", "B8", "my layer@1"]
FUZZ_BLOCKS = {name: np.array([np.nan, 0.0, -1.5, 0.25, 3.0, 1e200]) for name in FUZZ_VARIABLES}
TOKENS = ["B1", "b2", "B04", "B8A", "B9", "NDVI", "evi", "NDRE", '"my layer@1"', "dem@1",
          '"x@0"', '"', "'", "(", ")", "+", "-", "*", "/", "**", "^", "<", "<=", "==", "=",
          "!=", ">", ">=", "and", "or", "not", "where(", "min(", "max(", "clip(", "abs(",
          "sqrt(", "log(", "exp(", ",", "0", "1", "2.5", "1e308", "1e-5", "10", "999999",
          "__import__", "lambda", "if", "else", ".", "real", "[", "]", "@", "#", "\n", " ",
          "True", "None", "x", ":", "=", "1j", "0x1F", "é"]


def _compile_and_run(text: str, sensor) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            compiled = compile_expression(text, variables=FUZZ_VARIABLES, sensor=sensor)
        except ExpressionError:
            compiled = None
    assert not caught, [str(warning.message) for warning in caught]
    if compiled is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = compiled.evaluate(FUZZ_BLOCKS)
    assert result.shape == (6,) and result.dtype == np.float64
    assert not np.isinf(result).any()


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=120), sensor=st.sampled_from([None, "sentinel2", "generic"]))
def test_fuzz_random_text(text, sensor):
    _compile_and_run(text, sensor)


@settings(max_examples=150, deadline=None)
@given(tokens=st.lists(st.sampled_from(TOKENS), max_size=30),
       separator=st.sampled_from(["", " "]),
       sensor=st.sampled_from([None, "sentinel2", "landsat89"]))
def test_fuzz_token_soup(tokens, separator, sensor):
    _compile_and_run(separator.join(tokens), sensor)


# Grammar-generated expressions with their meaning computed by a plain-numpy oracle.

def _clean(values):
    values = np.asarray(values, dtype=float)
    return np.where(np.isinf(values), np.nan, values)


def _nan_where_nan(result, *operands):
    invalid = np.zeros(np.shape(result), dtype=bool)
    for operand in operands:
        invalid = invalid | np.isnan(operand)
    return np.where(invalid, np.nan, result)


ORACLE_ARITHMETIC = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}
ORACLE_COMPARISON = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
                     "==": np.equal, "!=": np.not_equal}
LEAVES = st.one_of(
    st.sampled_from(["B1", "B2", "B3"]).map(lambda name: (name, lambda b, n=name: b[n])),
    st.sampled_from(["0", "1", "2", "0.5", "3.25", "10"]).map(
        lambda literal: (literal, lambda b, c=float(literal): np.float64(c))),
)


def _extend(children):
    def arithmetic(args):
        symbol, (text_a, a), (text_b, b) = args
        return (f"({text_a} {symbol} {text_b})",
                lambda v: _clean(ORACLE_ARITHMETIC[symbol](a(v), b(v))))

    def comparison(args):
        symbol, (text_a, a), (text_b, b) = args
        return (f"({text_a} {symbol} {text_b})",
                lambda v: _nan_where_nan(ORACLE_COMPARISON[symbol](a(v), b(v)) * 1.0, a(v), b(v)))

    def logical(args):
        symbol, (text_a, a), (text_b, b) = args
        combine = np.logical_and if symbol == "and" else np.logical_or
        return (f"({text_a} {symbol} {text_b})",
                lambda v: _nan_where_nan(combine(a(v) != 0, b(v) != 0) * 1.0, a(v), b(v)))

    def unary(args):
        name, (text, a) = args
        oracles = {
            "-": ("(-{})", lambda x: -x),
            "not": ("(not {})", lambda x: _nan_where_nan((x == 0) * 1.0, x)),
            "abs": ("abs({})", np.abs),
            "sqrt": ("sqrt({})", lambda x: _clean(np.sqrt(x))),
            "square": ("({}) ** 2", lambda x: _clean(np.power(x, 2.0))),
        }
        template, function = oracles[name]
        return template.format(text), lambda v: function(a(v))

    def call(args):
        name, (text_a, a), (text_b, b), (text_c, c) = args
        if name == "where":
            return (f"where({text_a}, {text_b}, {text_c})",
                    lambda v: _nan_where_nan(np.where(a(v) != 0, b(v), c(v)), a(v)))
        function = np.minimum if name == "min" else np.maximum
        return (f"{name}({text_a}, {text_b}, {text_c})",
                lambda v: function(function(a(v), b(v)), c(v)))

    return st.one_of(
        st.tuples(st.sampled_from(list(ORACLE_ARITHMETIC)), children, children).map(arithmetic),
        st.tuples(st.sampled_from(list(ORACLE_COMPARISON)), children, children).map(comparison),
        st.tuples(st.sampled_from(["and", "or"]), children, children).map(logical),
        st.tuples(st.sampled_from(["-", "not", "abs", "sqrt", "square"]), children).map(unary),
        st.tuples(st.sampled_from(["where", "min", "max"]), children, children, children).map(call),
    )


GRAMMAR = st.recursive(LEAVES, _extend, max_leaves=16)
GRAMMAR_BLOCKS = {
    "B1": np.array([np.nan, 0.0, -1.5, 0.25, 3.0, 1e200, 2.0, -0.0]),
    "B2": np.array([1.0, 0.0, 2.0, np.nan, -3.0, 1e200, 2.0, 5.0]),
    "B3": np.array([0.5, 0.0, 0.0, 4.0, np.nan, -1e-300, 1.0, 0.0]),
}


@settings(max_examples=80, deadline=None)
@given(expression=GRAMMAR)
def test_grammar_expressions_match_the_numpy_oracle_and_round_trip(expression):
    text, oracle = expression
    assume(any(name in text for name in GRAMMAR_BLOCKS))
    result = _evaluate(text, GRAMMAR_BLOCKS, variables=list(GRAMMAR_BLOCKS))
    with np.errstate(all="ignore"):
        expected = np.broadcast_to(_clean(oracle(GRAMMAR_BLOCKS)), result.shape)
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=0, equal_nan=True)

    compiled = compile_expression(text, variables=list(GRAMMAR_BLOCKS))
    again = compile_expression(compiled.expanded_text, variables=list(GRAMMAR_BLOCKS))
    assert again.expanded_text == compiled.expanded_text
    np.testing.assert_array_equal(_evaluate(compiled.expanded_text, GRAMMAR_BLOCKS,
                                            variables=list(GRAMMAR_BLOCKS)), result)
