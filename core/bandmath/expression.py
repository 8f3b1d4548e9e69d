"""Band math: parse a raster-calculator expression safely (an `ast` whitelist, never eval) and
evaluate it on blocks of pixels, with index aliases (NDVI, …) expanded for a sensor preset."""

from __future__ import annotations

import ast
import html
import re
from bisect import bisect_right
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..errors import ExpressionError, InvalidInputError
from .band_names import normalize_band_code
from .spectral_indices import (
    ALIASES,
    BandPreset,
    alias_expression,
    find_alias,
    sensor_choices,
    sensor_preset,
)

MAX_EXPRESSION_LENGTH = 10_000
"""Longest accepted expression, in characters."""

MAX_NESTING_DEPTH = 100
"""Deepest accepted nesting of operations (a sum of n terms nests n deep)."""

MAX_CONSTANT_EXPONENT = 100.0
"""Largest magnitude of a constant exponent (`B1 ** 2` fine, `2 ** 10 ** 10` refused)."""

_LISTED_VARIABLES = 40  # longer lists of available variables in messages are cut

# Python precedence levels, used to print expressions with only the parentheses they need.
_OR, _AND, _NOT, _COMPARE, _SUM, _PRODUCT, _UNARY, _POWER, _ATOM = range(1, 10)


# --------------------------------------------------------------------------------------------
# Functions


@dataclass(frozen=True)
class _Function:
    name: str
    min_args: int
    max_args: int | None
    signature: str
    description: str


_FUNCTIONS: Mapping[str, _Function] = {
    function.name: function
    for function in (
        _Function("where", 3, 3, "where(condition, a, b)",
                  "a where condition is non-zero, else b; NaN where condition is NaN"),
        _Function("min", 2, None, "min(a, b, ...)", "smallest of the arguments"),
        _Function("max", 2, None, "max(a, b, ...)", "largest of the arguments"),
        _Function("clip", 3, 3, "clip(x, low, high)", "x limited to low..high"),
        _Function("abs", 1, 1, "abs(x)", "absolute value"),
        _Function("sqrt", 1, 1, "sqrt(x)", "square root (NaN for x < 0)"),
        _Function("log", 1, 1, "log(x)", "natural logarithm (NaN for x <= 0)"),
        _Function("log10", 1, 1, "log10(x)", "base-10 logarithm (NaN for x <= 0)"),
        _Function("exp", 1, 1, "exp(x)", "e to the power x"),
    )
}


# --------------------------------------------------------------------------------------------
# Error messages that point at the text


def _error(text: str, start: int, end: int, problem: str, fix: str = "") -> ExpressionError:
    """An ExpressionError naming the column and showing the offending part of `text`."""
    start = min(max(start, 0), len(text))
    end = min(max(end, start), len(text))
    snippet = " ".join(text[start:end].split())
    if len(snippet) > 40:
        snippet = snippet[:39] + "…"
    where = f"column {start + 1}: '{snippet}'" if snippet else f"column {start + 1}"
    left = max(0, start - 30)
    right = min(len(text), max(end, start + 1) + 30)
    shown = "".join(" " if char.isspace() else char for char in text[left:right])
    prefix = "…" if left > 0 else ""
    suffix = "…" if right < len(text) else ""
    caret = " " * (len(prefix) + start - left) + "^" * max(1, min(end, right) - start)
    message = f"{problem} ({where})\n    {prefix}{shown}{suffix}\n    {caret}"
    return ExpressionError(f"{message}\n{fix}" if fix else message)


# --------------------------------------------------------------------------------------------
# From the user's text to Python syntax


@dataclass(frozen=True)
class _Reference:
    """A `"layer name@band"` token."""

    layer_name: str
    band: int

    @property
    def text(self) -> str:
        return f"{self.layer_name}@{self.band}"


class _Segment(NamedTuple):
    python_start: int
    python_end: int
    original_start: int
    original_end: int
    verbatim: bool  # same length in both texts, so positions map one to one


_TOKEN = re.compile(
    r"""
      (?P<quoted>"[^"]*"?)
    | (?P<single>'[^']*'?)
    | (?P<reference>[^\W\d]\w*@\d+)(?!\w)
    | (?P<number>(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+
                  |(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?[jJ]?)
                 (?P<glued>[\w.])?)
    | (?P<name>[^\W\d]\w*)
    | (?P<operator>==|!=|<=|>=|\*\*|[-+*/(),<>=^.])
    | (?P<space>\s)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_REFERENCE = re.compile(r"(.+)@(\d+)", re.DOTALL)
# QGIS raster-calculator spellings, made Python: `=` compares, `^` raises to a power.
_OPERATOR_SPELLINGS = {"=": "==", "^": "**"}


class _Source:
    """The user's text, the Python text made from it, and the way back between positions."""

    def __init__(self, original: str):
        self.original = original
        self.references: dict[str, _Reference] = {}
        pieces: list[str] = []
        self._segments: list[_Segment] = []
        python_length = 0
        for match in _TOKEN.finditer(original):
            replacement = self._translate(match)
            if not pieces:  # Python's eval mode refuses leading whitespace
                replacement = replacement.lstrip()
                if not replacement:
                    continue
            self._segments.append(
                _Segment(python_length, python_length + len(replacement), match.start(),
                         match.end(), len(replacement) == len(match.group()))
            )
            pieces.append(replacement)
            python_length += len(replacement)
        self.python = "".join(pieces)
        self._python_utf8 = self.python.encode("utf-8")
        self._starts = [segment.python_start for segment in self._segments]

    def _translate(self, match: re.Match) -> str:
        kind, token = match.lastgroup, match.group()
        start, end = match.span()
        if kind == "quoted":
            if len(token) < 2 or not token.endswith('"'):
                raise self.error_at(start, end, "The double quote is never closed",
                                    'Close the layer reference: "layer name@1".')
            return self._placeholder(token[1:-1], start, end)
        if kind == "reference":
            return self._placeholder(token, start, end)
        if kind == "single":
            raise self.error_at(
                start, end, "Text in single quotes is not allowed",
                'Expressions hold numbers, bands and functions; layer references use double '
                'quotes: "layer name@1".')
        if kind == "name":
            if token.startswith("_"):
                raise self.error_at(start, end, "Names starting with '_' are not allowed",
                                    _available_hint())
            lowered = token.lower()
            return lowered if lowered in ("and", "or", "not") else token
        if kind == "operator":
            return _OPERATOR_SPELLINGS.get(token, token)
        if kind == "space":
            return " "
        if kind == "other":
            hint = ('"@" belongs inside a layer reference: "layer name@1".' if token == "@"
                    else _SYNTAX_SUMMARY)
            raise self.error_at(start, end, f"The character {token!r} is not allowed", hint)
        if match.group("glued"):  # `1and`, `1.real`: Python would only warn, or misread
            raise self.error_at(start, end, "A number runs into the text after it",
                                "Put a space or an operator between a number and a name.")
        return token  # number

    def _placeholder(self, reference_text: str, start: int, end: int) -> str:
        match = _REFERENCE.fullmatch(reference_text)
        if not match:
            raise self.error_at(
                start, end, "Text in double quotes must be a layer band reference",
                'Write "layer name@band", e.g. "my layer@1" for band 1 of layer "my layer".')
        band = int(match.group(2))
        if band < 1:
            raise self.error_at(start, end, "Band numbers start at 1", 'Use "layer name@1".')
        # Names the user cannot type (user names never start with '_'), padded with spaces so
        # that a reference never fuses with a neighbouring token.
        placeholder = f"_v{len(self.references)}_"
        self.references[placeholder] = _Reference(match.group(1), band)
        return f" {placeholder} "

    def error_at(self, start: int, end: int, problem: str, fix: str = "") -> ExpressionError:
        """An error at original positions [start, end)."""
        return _error(self.original, start, end, problem, fix)

    def error_at_python(self, start: int, end: int, problem: str, fix: str = "") -> ExpressionError:
        """An error at character positions [start, end) of the Python text."""
        original_start = self._original_position(start, at_end=False)
        original_end = self._original_position(max(end - 1, start), at_end=True)
        return _error(self.original, original_start, original_end, problem, fix)

    def error_at_node(self, node: ast.AST, problem: str, fix: str = "") -> ExpressionError:
        """An error at an ast node (whose offsets count UTF-8 bytes of the Python text)."""
        start = self._char_offset(node.col_offset)
        end = self._char_offset(node.end_col_offset)
        return self.error_at_python(start, end, problem, fix)

    def _char_offset(self, byte_offset: int) -> int:
        return len(self._python_utf8[:byte_offset].decode("utf-8", errors="ignore"))

    def _original_position(self, python_position: int, *, at_end: bool) -> int:
        if not self._segments or python_position >= self._segments[-1].python_end:
            return len(self.original)
        segment = self._segments[max(bisect_right(self._starts, python_position) - 1, 0)]
        if segment.verbatim:
            return segment.original_start + python_position - segment.python_start + at_end
        return segment.original_end if at_end else segment.original_start

    def segment_text(self, node: ast.AST) -> str:
        """The Python text of a node (for number literals)."""
        start = self._char_offset(node.col_offset)
        end = self._char_offset(node.end_col_offset)
        return self.python[start:end]


def _parse(source: _Source) -> ast.expr:
    """The ast of the Python text, with every parser failure as an ExpressionError."""
    try:
        tree = ast.parse(source.python, mode="eval")
    except SyntaxError as error:
        # SyntaxError offsets are 1-based characters; 0/None when Python knows no position.
        message = (error.msg or "invalid syntax").rstrip(".")
        if "nested" in message:
            raise source.error_at(0, len(source.original), "The expression is nested too deeply",
                                  _nesting_hint()) from None
        if "digits" in message:  # Python's limit on integer literals
            raise source.error_at(0, len(source.original), "A number has too many digits",
                                  "Use a number below 1e308.") from None
        if not error.offset:  # Python puts errors at the end of the input at offset 0
            raise source.error_at(len(source.original), len(source.original),
                                  "The expression ends too early",
                                  "Complete it: a value or a closing ')' is missing.") from None
        start = error.offset - 1
        end = max((error.end_offset or 0) - 1, start + 1)
        raise source.error_at_python(start, end, f"Syntax error: {message}",
                                     _SYNTAX_SUMMARY) from None
    except (RecursionError, MemoryError):
        raise source.error_at(0, len(source.original), "The expression is nested too deeply",
                              _nesting_hint()) from None
    except ValueError as error:  # e.g. null bytes
        raise source.error_at(0, len(source.original), f"The expression cannot be read: {error}",
                              "Remove control characters from the text.") from None
    _check_depth(tree, source)
    return tree.body


def _check_depth(tree: ast.AST, source: _Source) -> None:
    # Iterative, so that the depth check itself cannot overflow the stack.
    # Operator nodes carry no position, so each entry keeps the nearest node that has one.
    stack = [(tree.body, tree.body, 1)]
    while stack:
        node, located, depth = stack.pop()
        if depth > MAX_NESTING_DEPTH:
            raise source.error_at_node(located, "The expression is nested too deeply",
                                       _nesting_hint())
        stack.extend((child, child if hasattr(child, "col_offset") else located, depth + 1)
                     for child in ast.iter_child_nodes(node))


def _nesting_hint() -> str:
    return (f"Expressions may nest at most {MAX_NESTING_DEPTH} operations deep: "
            "split the calculation into several runs.")


# --------------------------------------------------------------------------------------------
# Compiled form: a small tree that evaluates blocks and prints itself


class _Value(NamedTuple):
    array: np.ndarray  # the block shape, or 0-d for constants
    owned: bool  # a temporary of this evaluation, so later operations may overwrite it


class _Env(NamedTuple):
    arrays: Mapping[str, np.ndarray]
    dtype: np.dtype


def _apply(function: Callable, operands: Sequence[_Value], dtype: np.dtype, *,
           invalid_to_nan: bool) -> _Value:
    """Apply a numpy ufunc, writing into an owned temporary of the right shape when one exists."""
    arrays = [operand.array for operand in operands]
    shape = np.broadcast_shapes(*(array.shape for array in arrays))
    out = next((operand.array for operand in operands
                if operand.owned and operand.array.shape == shape), None)
    result = np.asarray(function(*arrays, out=out) if out is not None else function(*arrays))
    if result.dtype != dtype:
        result = result.astype(dtype)
    if invalid_to_nan:
        # An infinite intermediate (x / 0, log(0), overflow) is invalid, like NaN.
        np.copyto(result, np.nan, where=np.isinf(result))
    return _Value(result, True)


def _nan_where_any_nan(result: np.ndarray, operands: Sequence[_Value]) -> np.ndarray:
    """Mark NaN wherever an operand is NaN (comparisons and truth tests would hide it)."""
    for operand in operands:
        np.copyto(result, np.nan, where=np.isnan(operand.array))
    return result


def _truth(value: _Value, dtype: np.dtype) -> _Value:
    """1.0 where non-zero, 0.0 where zero, NaN where NaN."""
    truth = np.asarray(value.array != 0).astype(dtype)
    return _Value(_nan_where_any_nan(truth, [value]), True)


class _Node:
    precedence = _ATOM
    is_constant = False

    def evaluate(self, env: _Env) -> _Value:
        raise NotImplementedError

    def render(self, *, expand: bool) -> tuple[str, int]:
        """The text of the node and its precedence (aliases as names, or expanded)."""
        raise NotImplementedError

    def constant_value(self) -> float:
        """The value of a constant subtree (scalars only, so it cannot take long)."""
        with np.errstate(all="ignore"):
            return float(self.evaluate(_Env({}, np.dtype(np.float64))).array)


def _wrapped(node: _Node, needs_parentheses: Callable[[int], bool], *, expand: bool) -> str:
    text, precedence = node.render(expand=expand)
    return f"({text})" if needs_parentheses(precedence) else text


class _Constant(_Node):
    is_constant = True

    def __init__(self, value: float, literal: str):
        self.value = value
        self.literal = literal

    def evaluate(self, env: _Env) -> _Value:
        return _Value(np.asarray(self.value, dtype=env.dtype), False)

    def render(self, *, expand: bool) -> tuple[str, int]:
        return self.literal, _ATOM


class _Variable(_Node):
    def __init__(self, name: str):
        self.name = name

    def evaluate(self, env: _Env) -> _Value:
        return _Value(env.arrays[self.name], False)

    def render(self, *, expand: bool) -> tuple[str, int]:
        return _variable_text(self.name), _ATOM


class _Alias(_Node):
    def __init__(self, name: str, expansion: _Node):
        self.name = name
        self.expansion = expansion

    def evaluate(self, env: _Env) -> _Value:
        return self.expansion.evaluate(env)

    def render(self, *, expand: bool) -> tuple[str, int]:
        return self.expansion.render(expand=True) if expand else (self.name, _ATOM)


class _Unary(_Node):
    precedence = _UNARY

    def __init__(self, symbol: str, operand: _Node):
        self.symbol = symbol
        self.operand = operand
        self.is_constant = operand.is_constant
        if symbol == "not":
            self.precedence = _NOT

    def evaluate(self, env: _Env) -> _Value:
        value = self.operand.evaluate(env)
        if self.symbol == "+":
            return value
        if self.symbol == "-":
            return _apply(np.negative, [value], env.dtype, invalid_to_nan=False)
        truth = _truth(value, env.dtype)
        return _apply(np.subtract, [_Value(np.asarray(1, dtype=env.dtype), False), truth],
                      env.dtype, invalid_to_nan=False)

    def render(self, *, expand: bool) -> tuple[str, int]:
        operand = _wrapped(self.operand, lambda p: p < self.precedence, expand=expand)
        separator = " " if self.symbol == "not" else ""
        return f"{self.symbol}{separator}{operand}", self.precedence


class _Binary(_Node):
    def __init__(self, symbol: str, function: Callable, precedence: int, left: _Node,
                 right: _Node):
        self.symbol = symbol
        self.function = function
        self.precedence = precedence
        self.left = left
        self.right = right
        self.is_constant = left.is_constant and right.is_constant

    def evaluate(self, env: _Env) -> _Value:
        operands = [self.left.evaluate(env), self.right.evaluate(env)]
        return _apply(self.function, operands, env.dtype, invalid_to_nan=True)

    def render(self, *, expand: bool) -> tuple[str, int]:
        own = self.precedence
        if own == _POWER:  # right-associative; a unary minus base needs parentheses
            left = _wrapped(self.left, lambda p: p <= own, expand=expand)
            right = _wrapped(self.right, lambda p: p < _UNARY, expand=expand)
        else:
            left = _wrapped(self.left, lambda p: p < own, expand=expand)
            right = _wrapped(self.right, lambda p: p <= own, expand=expand)
        return f"{left} {self.symbol} {right}", own


class _Comparison(_Node):
    """A comparison chain `a < b <= c`: 1.0 where all hold, 0.0 where not, NaN where any is NaN."""

    precedence = _COMPARE

    def __init__(self, symbols: Sequence[str], functions: Sequence[Callable],
                 operands: Sequence[_Node]):
        self.symbols = tuple(symbols)
        self.functions = tuple(functions)
        self.operands = tuple(operands)
        self.is_constant = all(operand.is_constant for operand in operands)

    def evaluate(self, env: _Env) -> _Value:
        values = [operand.evaluate(env) for operand in self.operands]
        result = None
        for function, left, right in zip(self.functions, values, values[1:]):
            holds = np.asarray(function(left.array, right.array)).astype(env.dtype)
            step = _Value(_nan_where_any_nan(holds, [left, right]), True)
            result = step if result is None else _apply(
                np.multiply, [result, step], env.dtype, invalid_to_nan=False)
        return result

    def render(self, *, expand: bool) -> tuple[str, int]:
        parts = [_wrapped(self.operands[0], lambda p: p <= _COMPARE, expand=expand)]
        for symbol, operand in zip(self.symbols, self.operands[1:]):
            parts += [symbol, _wrapped(operand, lambda p: p <= _COMPARE, expand=expand)]
        return " ".join(parts), _COMPARE


class _Logical(_Node):
    """`and` / `or` on truth values (non-zero is true): 1.0 or 0.0, NaN where any operand is NaN."""

    def __init__(self, symbol: str, operands: Sequence[_Node]):
        self.symbol = symbol
        self.precedence = _AND if symbol == "and" else _OR
        self.operands = tuple(operands)
        self.is_constant = all(operand.is_constant for operand in operands)

    def evaluate(self, env: _Env) -> _Value:
        one = _Value(np.asarray(1, dtype=env.dtype), False)
        result = None
        for operand in self.operands:
            truth = _truth(operand.evaluate(env), env.dtype)
            if self.symbol == "or":  # a or b = not (not a and not b)
                truth = _apply(np.subtract, [one, truth], env.dtype, invalid_to_nan=False)
            result = truth if result is None else _apply(
                np.multiply, [result, truth], env.dtype, invalid_to_nan=False)
        if self.symbol == "or":
            result = _apply(np.subtract, [one, result], env.dtype, invalid_to_nan=False)
        return result

    def render(self, *, expand: bool) -> tuple[str, int]:
        parts = [_wrapped(operand, lambda p: p <= self.precedence, expand=expand)
                 for operand in self.operands]
        return f" {self.symbol} ".join(parts), self.precedence


_UNARY_FUNCTIONS = {"abs": np.abs, "sqrt": np.sqrt, "log": np.log, "log10": np.log10,
                    "exp": np.exp}


class _Call(_Node):
    def __init__(self, name: str, arguments: Sequence[_Node]):
        self.name = name
        self.arguments = tuple(arguments)
        self.is_constant = all(argument.is_constant for argument in arguments)

    def evaluate(self, env: _Env) -> _Value:
        values = [argument.evaluate(env) for argument in self.arguments]
        if self.name in _UNARY_FUNCTIONS:
            return _apply(_UNARY_FUNCTIONS[self.name], values, env.dtype, invalid_to_nan=True)
        if self.name == "where":
            condition, if_true, if_false = values
            chosen = np.asarray(np.where(condition.array != 0, if_true.array, if_false.array))
            return _Value(_nan_where_any_nan(chosen.astype(env.dtype, copy=False), [condition]),
                          True)
        if self.name == "clip":
            values = [_apply(np.maximum, values[:2], env.dtype, invalid_to_nan=False), values[2]]
        reduce = np.maximum if self.name == "max" else np.minimum  # min, and the upper clip
        result = values[0]
        for value in values[1:]:
            result = _apply(reduce, [result, value], env.dtype, invalid_to_nan=False)
        return result

    def render(self, *, expand: bool) -> tuple[str, int]:
        arguments = ", ".join(argument.render(expand=expand)[0] for argument in self.arguments)
        return f"{self.name}({arguments})", _ATOM


def _variable_text(name: str) -> str:
    """How a variable is typed: band codes and identifiers bare, layer references quoted."""
    if name.isidentifier() and not name.startswith("_"):
        return name
    return f'"{name}"'


# --------------------------------------------------------------------------------------------
# Resolving names


class _Variables:
    """The variables an expression may use, looked up the way users type them."""

    def __init__(self, variables: Collection[str],
                 ambiguous: Mapping[str, Sequence[str]] | None):
        self.names = tuple(dict.fromkeys(variables))
        self._exact: dict[tuple, str] = {}
        self._folded: dict[tuple, list[str]] = {}
        for name in self.names:
            key = self._key(name)
            self._exact[key] = name
            self._folded.setdefault(self._folded_key(key), []).append(name)
        self._ambiguous = {self._key(name): tuple(alternatives)
                           for name, alternatives in (ambiguous or {}).items()}

    @staticmethod
    def _key(name: str) -> tuple:
        code = normalize_band_code(name)
        if code:
            return ("code", code)
        layer_name, at, band = name.rpartition("@")
        if at and layer_name and band.isdigit():
            return ("reference", layer_name, int(band))
        return ("name", name)

    @staticmethod
    def _folded_key(key: tuple) -> tuple:
        return tuple(part.casefold() if isinstance(part, str) else part for part in key)

    def find(self, typed: str | _Reference) -> tuple[str | None, tuple[str, ...] | None]:
        """(variable, None) when found; (None, alternatives) when ambiguous; (None, None)."""
        key = (("reference", typed.layer_name, typed.band) if isinstance(typed, _Reference)
               else self._key(typed))
        if key in self._exact:
            return self._exact[key], None
        if key in self._ambiguous:
            return None, self._ambiguous[key]
        folded = self._folded.get(self._folded_key(key), [])
        if len(folded) == 1:
            return folded[0], None
        if len(folded) > 1:
            return None, tuple(folded)
        return None, None

    def listing(self) -> str:
        """The variables as the user would type them, band codes first."""
        codes = sorted((name for name in self.names if self._key(name)[0] == "code"),
                       key=lambda name: (int(re.sub(r"\D", "", name)), name))
        others = [name for name in self.names if self._key(name)[0] != "code"]
        shown = [_variable_text(name) for name in codes + others]
        if len(shown) > _LISTED_VARIABLES:
            shown = shown[:_LISTED_VARIABLES] + [f"… ({len(shown) - _LISTED_VARIABLES} more)"]
        return ", ".join(shown) if shown else "(none)"


def _available_hint(variables: _Variables | None = None) -> str:
    listed = f"Variables: {variables.listing()}. " if variables is not None else ""
    return (f"{listed}Indices: {', '.join(ALIASES)}. "
            f"Functions: {', '.join(_FUNCTIONS)}.")


_SYNTAX_SUMMARY = (
    "Use numbers, band variables (B4, \"layer name@1\"), indices (NDVI), + - * / ** ( ), "
    "comparisons < <= > >= == !=, and/or/not, and the functions "
    + ", ".join(_FUNCTIONS) + "."
)


# --------------------------------------------------------------------------------------------
# From the ast to the compiled tree


_BINARY = {
    ast.Add: ("+", np.add, _SUM),
    ast.Sub: ("-", np.subtract, _SUM),
    ast.Mult: ("*", np.multiply, _PRODUCT),
    ast.Div: ("/", np.divide, _PRODUCT),
    ast.Pow: ("**", np.power, _POWER),
}
_COMPARISONS = {
    ast.Lt: ("<", np.less),
    ast.LtE: ("<=", np.less_equal),
    ast.Gt: (">", np.greater),
    ast.GtE: (">=", np.greater_equal),
    ast.Eq: ("==", np.equal),
    ast.NotEq: ("!=", np.not_equal),
}
_UNARY_SYMBOLS = {ast.USub: "-", ast.UAdd: "+", ast.Not: "not"}
_REFUSED_OPERATORS = {
    ast.FloorDiv: "Floor division '//' is not supported",
    ast.Mod: "The remainder operator '%' is not supported",
    ast.MatMult: "'@' is only allowed inside a layer reference such as \"layer name@1\"",
    ast.Is: "'is' is not supported: compare with ==",
    ast.IsNot: "'is not' is not supported: compare with !=",
    ast.In: "'in' is not supported",
    ast.NotIn: "'not in' is not supported",
}
_REFUSED_NODES = {
    ast.IfExp: ("A conditional 'a if condition else b' is not supported",
                "Use where(condition, a, b)."),
    ast.Attribute: ("Attribute access (a '.' after a value) is not allowed", _SYNTAX_SUMMARY),
    ast.Tuple: ("A comma is only allowed between the arguments of a function", _SYNTAX_SUMMARY),
    ast.NamedExpr: ("Assignments are not allowed", "Compare with == instead."),
    ast.Lambda: ("lambda is not allowed", _SYNTAX_SUMMARY),
}


class _Compiler:
    """Turns a parsed expression into the compiled tree, refusing anything off the whitelist."""

    def __init__(self, source: _Source, variables: _Variables, sensor: BandPreset | None,
                 used: dict[str, None], alias_site: tuple[_Compiler, ast.AST, str] | None = None):
        self.source = source
        self.variables = variables
        self.sensor = sensor
        self.used = used  # variable names in order of first use
        # Inside an alias, errors point at the alias in the user's text and quote its formula.
        self.alias_site = alias_site

    def fail(self, node: ast.AST, problem: str, fix: str = "") -> ExpressionError:
        if self.alias_site is None:
            return self.source.error_at_node(node, problem, fix)
        outer, alias_node, context = self.alias_site
        return outer.fail(alias_node, f"{context}, but: {problem}", fix)

    def compile(self, node: ast.AST) -> _Node:
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.BinOp):
            return self._binary(node)
        if isinstance(node, ast.UnaryOp):
            if type(node.op) not in _UNARY_SYMBOLS:
                raise self.fail(node, "This operator is not supported", _SYNTAX_SUMMARY)
            return _Unary(_UNARY_SYMBOLS[type(node.op)], self.compile(node.operand))
        if isinstance(node, ast.BoolOp):
            symbol = "and" if isinstance(node.op, ast.And) else "or"
            return _Logical(symbol, [self.compile(value) for value in node.values])
        if isinstance(node, ast.Compare):
            return self._comparison(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        problem, fix = _REFUSED_NODES.get(
            type(node), ("This construct is not allowed in band math", _SYNTAX_SUMMARY))
        raise self.fail(node, problem, fix)

    def _constant(self, node: ast.Constant) -> _Node:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            kind = "Text" if isinstance(value, (str, bytes)) else f"The value {value!r}"
            raise self.fail(node, f"{kind} is not allowed: only numbers", _SYNTAX_SUMMARY)
        try:
            number = float(value)
        except OverflowError:
            number = float("inf")
        if not np.isfinite(number):
            raise self.fail(node, "This number is too large", "Use a number below 1e308.")
        return _Constant(number, self.source.segment_text(node))

    def _name(self, node: ast.Name) -> _Node:
        typed = self.source.references.get(node.id, node.id)
        variable, alternatives = self.variables.find(typed)
        if variable is not None:
            self.used.setdefault(variable, None)
            return _Variable(variable)
        shown = (_variable_text(typed.text) if isinstance(typed, _Reference)
                 else normalize_band_code(typed) or typed)
        if alternatives is not None:
            instead = (f"Use one of {', '.join(map(_variable_text, alternatives))} instead."
                       if alternatives else "Give the layers different names.")
            raise self.fail(node, f"{shown} is ambiguous: several input bands have this name",
                            instead)
        if isinstance(typed, str):
            index = find_alias(typed)
            if index is not None:
                return self._alias(node, index.name)
            if typed.lower() in _FUNCTIONS:
                function = _FUNCTIONS[typed.lower()]
                raise self.fail(node, f"{function.name} is a function",
                                f"Call it with arguments: {function.signature}.")
        raise self.fail(node, f"{shown} is not an input band, an index or a function",
                        _available_hint(self.variables))

    def _alias(self, node: ast.Name, name: str) -> _Node:
        if self.sensor is None:
            raise self.fail(
                node, f"{name} needs a sensor preset to know which bands to read",
                f"Choose the sensor ({sensor_choices()}) or type the formula with bands, "
                "e.g. (B5 - B4) / (B5 + B4).")
        try:
            formula = alias_expression(name, self.sensor)
        except ExpressionError as error:
            raise self.fail(node, str(error).rstrip(".")) from None
        source = _Source(formula)
        context = f"{name} for {self.sensor.title} is {formula}"
        inner = _Compiler(source, self.variables, self.sensor, self.used, (self, node, context))
        return _Alias(name, inner.compile(_parse(source)))

    def _binary(self, node: ast.BinOp) -> _Node:
        if type(node.op) not in _BINARY:
            problem = _REFUSED_OPERATORS.get(type(node.op), "This operator is not supported")
            raise self.fail(node, problem, _SYNTAX_SUMMARY)
        symbol, function, precedence = _BINARY[type(node.op)]
        left, right = self.compile(node.left), self.compile(node.right)
        if symbol == "**" and right.is_constant:
            exponent = right.constant_value()
            if not abs(exponent) <= MAX_CONSTANT_EXPONENT:
                raise self.fail(
                    node.right, f"The exponent {exponent:g} is too large",
                    f"Constant exponents must lie between -{MAX_CONSTANT_EXPONENT:g} and "
                    f"{MAX_CONSTANT_EXPONENT:g}.")
        return _Binary(symbol, function, precedence, left, right)

    def _comparison(self, node: ast.Compare) -> _Node:
        for operator in node.ops:
            if type(operator) not in _COMPARISONS:
                raise self.fail(node, _REFUSED_OPERATORS.get(type(operator), "Unsupported "
                                "comparison"), _SYNTAX_SUMMARY)
        symbols, functions = zip(*(_COMPARISONS[type(operator)] for operator in node.ops))
        operands = [self.compile(operand) for operand in [node.left, *node.comparators]]
        return _Comparison(symbols, functions, operands)

    def _call(self, node: ast.Call) -> _Node:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        function = _FUNCTIONS.get(name.lower()) if name else None
        if function is None:
            fix = (f"{name.upper()} is an index: write it without parentheses."
                   if name and find_alias(name) else
                   f"The functions are {', '.join(f.signature for f in _FUNCTIONS.values())}.")
            raise self.fail(node.func, "Only the band-math functions can be called", fix)
        if node.keywords or any(isinstance(argument, ast.Starred) for argument in node.args):
            raise self.fail(node, f"{function.name} takes plain arguments only",
                            f"Write {function.signature}.")
        count = len(node.args)
        if count < function.min_args or (function.max_args is not None
                                         and count > function.max_args):
            raise self.fail(node, f"{function.name} got {count} argument(s)",
                            f"Write {function.signature}.")
        arguments = [self.compile(argument) for argument in node.args]
        if function.name == "clip" and arguments[1].is_constant and arguments[2].is_constant:
            if arguments[1].constant_value() > arguments[2].constant_value():
                raise self.fail(node, "clip's low bound is above its high bound",
                                "Write clip(x, low, high) with low <= high.")
        return _Call(function.name, arguments)


# --------------------------------------------------------------------------------------------
# Public API


class CompiledExpression:
    """A checked band-math expression, ready to evaluate block after block.

    Attributes:
        text: the expression as typed.
        variables_used: the variables the evaluation reads, in order of first use (the names
            given to compile_expression, e.g. "B4" or "my layer@1").
        display_name: the index name when the whole expression is one alias ("NDVI"), else the
            normalised expression (a good band description).
        expanded_text: the normalised expression with aliases replaced by their formulas; it
            compiles back to the same expression.
    """

    def __init__(self, text: str, root: _Node, variables_used: tuple[str, ...]):
        self.text = text
        self._root = root
        self.variables_used = variables_used
        self.display_name = root.name if isinstance(root, _Alias) else root.render(expand=False)[0]
        self.expanded_text = root.render(expand=True)[0]

    def __repr__(self) -> str:
        return f"CompiledExpression({self.expanded_text!r})"

    def evaluate(self, values: Mapping[str, np.ndarray], *,
                 dtype: type | np.dtype = np.float64) -> np.ndarray:
        """Evaluate the expression on one block.

        Args:
            values: variable name -> block, an array of any numeric dtype; every name in
                `variables_used` is needed and all blocks share one shape (e.g. (rows, cols)).
                NaN marks nodata. The arrays are never modified.
            dtype: float64 (default) or float32, the precision of the calculation and result.

        Returns:
            A new array of the blocks' shape and `dtype`. Invalid results (NaN input, division
            by zero, log or sqrt out of domain, overflow: any non-finite intermediate) are NaN;
            comparisons and and/or/not give 1.0 or 0.0 (NaN where an operand is NaN).

        Raises:
            InvalidInputError: a variable's block is missing, blocks differ in shape, or dtype is
                neither float32 nor float64.
        """
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise InvalidInputError(f"Band math computes in float32 or float64, not {dtype}.")
        missing = [name for name in self.variables_used if name not in values]
        if missing:
            raise InvalidInputError(
                f"No block given for {', '.join(missing)}: pass one array per name in "
                "variables_used.")
        shapes = {name: np.shape(values[name]) for name in self.variables_used}
        if len(set(shapes.values())) > 1:
            raise InvalidInputError(
                f"Band-math blocks differ in shape ({shapes}): read the same window of each band.")
        with np.errstate(all="ignore"):
            arrays = {name: _as_block(values[name], dtype) for name in self.variables_used}
            result = self._root.evaluate(_Env(arrays, dtype))
        shape = next(iter(shapes.values()))
        if result.array.shape != shape:
            return np.full(shape, result.array, dtype=dtype)
        return result.array if result.owned else result.array.copy()


def _as_block(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    block = np.asarray(values, dtype=dtype)
    infinite = np.isinf(block)
    return np.where(infinite, np.nan, block) if infinite.any() else block


def compile_expression(text: str, *, variables: Collection[str],
                       sensor: str | BandPreset | None = None,
                       ambiguous: Mapping[str, Sequence[str]] | None = None
                       ) -> CompiledExpression:
    """Parse and check a band-math expression.

    Syntax: numbers; variables (band codes such as `B4`, `b04`, `B8A`; layer references
    `"layer name@1"` or `name@1`); index aliases (`NDVI`, …, see spectral_indices.ALIASES);
    `+ - * / **` (also `^`), parentheses, unary minus; comparisons `< <= > >= == !=` (also `=`);
    `and`, `or`, `not`; the functions where, min, max, clip, abs, sqrt, log, log10, exp. Band
    codes, aliases, functions and and/or/not are case-insensitive.

    Args:
        text: the expression as typed.
        variables: the variable names available, e.g. `band_variables(...).bands`. Band-code
            names match however they are typed (`B04` finds `B4`).
        sensor: what aliases expand for: a sensor of spectral_indices.SENSORS or a BandPreset;
            None refuses aliases.
        ambiguous: names to refuse as ambiguous -> the variables to suggest instead
            (`band_variables(...).ambiguous`).

    Returns:
        The compiled expression.

    Raises:
        ExpressionError: the text is not a valid expression over these variables; the message
            names the column and the offending part and says how to fix it.
        InvalidInputError: an unknown sensor preset.
    """
    if isinstance(sensor, str):
        sensor = sensor_preset(sensor)
    if not isinstance(text, str):
        raise ExpressionError(f"The expression must be text, not {type(text).__name__}.")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"The expression has {len(text)} characters: at most "
                              f"{MAX_EXPRESSION_LENGTH} are accepted. Shorten it.")
    if not text.strip():
        raise ExpressionError("The expression is empty: type a formula such as "
                              "(B5 - B4) / (B5 + B4), or an index name such as NDVI.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise _error(text, error.start, error.end, "The expression holds an invalid character",
                     "Retype the expression.") from None
    source = _Source(text)
    used: dict[str, None] = {}
    root = _Compiler(source, _Variables(variables, ambiguous), sensor, used).compile(
        _parse(source))
    if not used:
        raise source.error_at(0, len(text), "The expression reads no band",
                              f"Use at least one input band. {_available_hint(None)}")
    return CompiledExpression(text, root, tuple(used))


def syntax_help(*, html_format: bool = False) -> str:
    """The help on expression syntax: operators, functions, variables, NaN rules.

    Args:
        html_format: True for an HTML fragment (well-formed XML in one `<div>`), else plain text.

    Returns:
        The help text.
    """
    lines = [
        "Variables: B1…Bn are the bands of a single multiband layer; with several single-band "
        "layers, the band code in each file name (…_B4.TIF, …_B04.jp2, …_B8A_20m.jp2; B4 and "
        "B04 are the same band); always \"layer name@band\" (name@band without quotes when the "
        "name is a plain word).",
        "Operators: + - * / ** (or ^), parentheses; comparisons < <= > >= == != (or =) give "
        "1 or 0; and, or, not (non-zero is true).",
        "Functions: " + "; ".join(f"{f.signature}: {f.description}"
                                  for f in _FUNCTIONS.values()) + ".",
        "Invalid results (division by zero, log of 0, nodata in any input) are nodata; "
        "comparisons with nodata are nodata too.",
    ]
    if html_format:
        return "<div>" + "".join(f"<p>{html.escape(line)}</p>" for line in lines) + "</div>"
    return "\n".join(lines)
