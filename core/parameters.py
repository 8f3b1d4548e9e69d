"""Every user-facing parameter rule, once: the allowed values and the default of each parameter
(as scikit-learn's `_parameter_constraints`). The core validates with them; the algorithms take
their bounds, defaults and messages from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

from .errors import InvalidInputError

#: Class numbers are written as UInt8, 0 being nodata.
MAX_CLASSES = 255


@dataclass(frozen=True)
class Interval:
    """Numbers from `low` to `high` (None: unbounded), `whole` ones only if asked.

    Attributes:
        low, high: the ends, included unless `low_open` / `high_open`.
        whole: only whole numbers (a float such as 5.0 counts as whole).
        noun: what a value is, in messages ("a number", "a whole number", "an area in m²").
    """

    low: float | None = None
    high: float | None = None
    whole: bool = False
    low_open: bool = False
    high_open: bool = False
    noun: str = ""

    def allows(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            return False
        if self.whole and not (isinstance(value, Integral) or float(value).is_integer()):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None
                    and (value >= self.high if self.high_open else value > self.high))

    def describe(self) -> str:
        """E.g. "a whole number from 2 to 255", "a number of at least 0"."""
        noun = self.noun or ("a whole number" if self.whole else "a number")
        low, high = (None if end is None else f"{end:.16g}" for end in (self.low, self.high))
        if low is not None and high is not None and not (self.low_open or self.high_open):
            return f"{noun} from {low} to {high}"
        parts = []
        if low is not None:
            parts.append(f"greater than {low}" if self.low_open else f"of at least {low}")
        if high is not None:
            parts.append(f"less than {high}" if self.high_open else f"of at most {high}")
        return " ".join([noun, " and ".join(parts)]).strip()


@dataclass(frozen=True)
class Options:
    """One of a few values, e.g. 4 or 8."""

    values: tuple

    def allows(self, value) -> bool:
        return not isinstance(value, bool) and value in self.values

    def describe(self) -> str:
        words = [str(value) for value in self.values]
        return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


@dataclass(frozen=True)
class Percentiles:
    """Two percentiles (low, high) with 0 ≤ low < high ≤ 100."""

    def allows(self, value) -> bool:
        try:
            low, high = value
            return 0 <= low < high <= 100
        except (TypeError, ValueError):
            return False

    def describe(self) -> str:
        return "two percentiles 0 ≤ low < high ≤ 100, e.g. 0.5,99.5"


@dataclass(frozen=True)
class Parameter:
    """A parameter's name (the algorithms' and qgis_process's), what it allows and its default."""

    name: str
    allowed: Interval | Options | Percentiles
    default: object = None
    #: Said after the refusal: what the values mean, an example.
    hint: str = ""

    def problem(self, value) -> str | None:
        """The message refusing `value`, or None when it is allowed."""
        if self.allowed.allows(value):
            return None
        if isinstance(value, float):
            shown = f"{value:g}"
        elif isinstance(value, tuple):
            shown = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        else:
            shown = repr(value) if isinstance(value, str) else str(value)
        hint = f"; {self.hint}" if self.hint else ""
        return f"{self.name} must be {self.allowed.describe()}, not {shown}{hint}."

    def validate(self, value) -> None:
        """Raise InvalidInputError naming the allowed values unless `value` is allowed."""
        problem = self.problem(value)
        if problem:
            raise InvalidInputError(problem)


CLUSTERS = Parameter("CLUSTERS", Interval(2, MAX_CLASSES, whole=True), default=5)
SEED = Parameter("SEED", Interval(0, None, whole=True), default=0)
#: Pixels sampled to fit several features; at least one per possible class.
KMEANS_SAMPLE_SIZE = Parameter("SAMPLE_SIZE", Interval(MAX_CLASSES, None, whole=True),
                               default=1_000_000)
CLIP_QUANTILES = Parameter("CLIP_QUANTILES", Percentiles())
CONNECTIVITY = Parameter("CONNECTIVITY", Options((4, 8)), default=8,
                         hint="4 joins pixels sharing a side, 8 also pixels touching by a corner")
#: The minimum zone area of the classifying algorithms: 0 (or none) means no sieve.
MIN_ZONE_AREA = Parameter("MIN_AREA", Interval(0, None), default=0)
#: The sieve's own minimum region area, which must do something.
MIN_REGION_AREA = Parameter(
    "MIN_AREA", Interval(0, None, low_open=True, noun="an area in m²"), default=1000,
    hint="e.g. 2000 keeps regions of at least 2000 m² (20 pixels of 10 m)")
K_MIN = Parameter("K_MIN", CLUSTERS.allowed, default=2)
K_MAX = Parameter("K_MAX", CLUSTERS.allowed, default=10)
#: The silhouette's sample: it costs the square of its size in distances per k.
SILHOUETTE_SAMPLE_SIZE = Parameter("SAMPLE_SIZE", Interval(100, 100_000, whole=True),
                                   default=10_000)
#: Zone polygons: 0 keeps the exact pixel edges, each level above smooths them more.
SMOOTHING = Parameter("SMOOTHING", Interval(0, 3, whole=True), default=0,
                      hint="0 keeps the exact pixel edges, 1 cuts the corners, 2 rounds them, "
                           "3 draws the straightest lines the pixels allow")
