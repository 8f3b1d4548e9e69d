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
#: Fuzzy c-means's exponent m. Management Zone Analyst's default: crisp enough for management
#: zones (memberships near 0 or 1 except at zone borders), where the textbook m = 2 makes five or
#: more zones almost uniform.
FUZZINESS = Parameter("FUZZINESS", Interval(1, None, low_open=True), default=1.3,
                      hint="1 would be hard k-means; Management Zone Analyst's default is 1.3")
#: Management Zone Analyst's norms, in the order the dialogs list them.
DISTANCE_METRIC = Parameter("DISTANCE_METRIC", Options(("euclidean", "diagonal", "mahalanobis")),
                            default="euclidean")
#: Pixels sampled to fit fuzzy c-means: each iteration costs pixels × clusters, so fewer than
#: k-means's million; ample for the centres of a few hundred zones.
FUZZY_SAMPLE_SIZE = Parameter("SAMPLE_SIZE", KMEANS_SAMPLE_SIZE.allowed, default=200_000)
#: The methods choosek scores and zones fits (METHOD 0 and 1).
CHOOSE_K_METHOD = Parameter("METHOD", Options(("k-means", "fuzzy c-means")), default="k-means")
#: ISODATA's bounds on the number of classes (and MIN_CLUSTERS ≤ CLUSTERS ≤ MAX_CLUSTERS).
MIN_CLUSTERS = Parameter("MIN_CLUSTERS", CLUSTERS.allowed, default=2)
MAX_CLUSTERS = Parameter("MAX_CLUSTERS", CLUSTERS.allowed, default=10)
#: ISODATA's θ_N, in % of the sampled pixels: smaller classes are dissolved.
MIN_CLASS_SIZE = Parameter("MIN_CLASS_SIZE", Interval(0, 100, high_open=True,
                                                      noun="a share in %"), default=1.0)
#: ISODATA's θ_S and θ_C, in the fit's units (standard deviations when standardizing); chosen
#: so that the synthetic scene ends with its five true classes started from 2, 5 or 9, and
#: θ_C < 2 θ_S so that the halves of a split (about 1.6 σ apart) are not merged back at once.
SPLIT_STD = Parameter("SPLIT_STD", Interval(0, None, low_open=True), default=0.4)
MERGE_DISTANCE = Parameter("MERGE_DISTANCE", Interval(0, None), default=1.0)
#: ISODATA's I, split-and-merge iterations.
ISODATA_ITERATIONS = Parameter("MAX_ITERATIONS", Interval(1, 1000, whole=True), default=20)
#: Zone polygons: 0 keeps the exact pixel edges, each level above smooths them more.
SMOOTHING = Parameter("SMOOTHING", Interval(0, 3, whole=True), default=0,
                      hint="0 keeps the exact pixel edges, 1 cuts the corners, 2 rounds them, "
                           "3 draws the straightest lines the pixels allow")
