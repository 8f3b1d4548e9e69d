"""Scores of k-means over a range of k (inertia, silhouette, Calinski–Harabasz) to choose k.

Inertia, the within-cluster sum of squares, comes from the fit k-means itself makes:
- one feature: the exact 1-D optimum (`kmeans_1d`) over ALL valid pixels of the area, so the
  curve is the true minimum inertia for each k and the centres are those k-means would write;
- several features: scikit-learn's k-means++ (k-means's own fit, 4 restarts) on a seeded sample
  of FIT_SAMPLE_FACTOR x SAMPLE_SIZE pixels (100,000 by default); the inertia is summed over that
  sample, in the standardized space when features are standardized.
The silhouette (and Calinski–Harabasz) scores are computed by scikit-learn on a seeded sample of
SAMPLE_SIZE pixels (10,000 by default; the silhouette costs SAMPLE_SIZE² distances per k), each
pixel labelled with its nearest centre, in the space k-means measures distances in. Both samples
are `kmeans.sample_valid_pixels` draws for the seed, so the smaller one is the first SAMPLE_SIZE
pixels of the larger one, and the same seed gives the same scores.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidInputError
from ..io.area_of_interest import AreaOfInterest, BoundingBox
from ..io.feature_stack import FeatureStack, RasterInput, iter_area_blocks
from ..progress import Progress
from .kmeans import (
    MAX_CLUSTERS,
    MIN_CLUSTERS,
    KMeansSettings,
    fit_several_features,
    sample_valid_pixels,
)
from .kmeans_1d import fit_kmeans_1d, label_values

DEFAULT_K_MIN, DEFAULT_K_MAX = 2, 10
DEFAULT_SAMPLE_SIZE = 10_000
MAX_SAMPLE_SIZE = 100_000
#: Several features: k-means is fitted on this many times SAMPLE_SIZE pixels.
FIT_SAMPLE_FACTOR = 10
# One feature: the area's values are kept in memory up to this many (64 MB of float32), so the
# fits of the successive k read the raster once; beyond, each fit streams the raster again.
_IN_MEMORY_VALUES = 1 << 24
_FIT_BLOCK_VALUES = 1 << 20
# scikit-learn computes the silhouette's distances in chunks of this many MB (its default, 1 GB,
# is slower here and would dominate the memory of a run).
_SILHOUETTE_WORKING_MEMORY_MB = 64


@dataclass(frozen=True)
class ChooseKSettings:
    """Which k to try and how to score them.

    Attributes:
        k_min, k_max: the range of k tried, both included, 2..255.
        sample_size: pixels of the silhouette (and Calinski–Harabasz) sample.
        seed: seeds the samples and k-means++; the same inputs and seed give the same scores.
        standardize: several features are scaled to unit variance (on the fit sample) before
            fitting and scoring, as k-means does. No effect on one feature.
        calinski_harabasz: also compute the Calinski–Harabasz score.
    """

    k_min: int = DEFAULT_K_MIN
    k_max: int = DEFAULT_K_MAX
    sample_size: int = DEFAULT_SAMPLE_SIZE
    seed: int = 0
    standardize: bool = True
    calinski_harabasz: bool = False

    @property
    def fit_sample_size(self) -> int:
        """Pixels k-means is fitted on for several features."""
        return FIT_SAMPLE_FACTOR * self.sample_size

    def validate(self) -> None:
        """Raise InvalidInputError for a range or sample size that cannot be scored."""
        if not MIN_CLUSTERS <= self.k_min <= self.k_max <= MAX_CLUSTERS:
            raise InvalidInputError(
                f"K_MIN and K_MAX must satisfy {MIN_CLUSTERS} ≤ K_MIN ≤ K_MAX ≤ {MAX_CLUSTERS}; "
                f"got K_MIN={self.k_min}, K_MAX={self.k_max}.")
        if not self.k_max < self.sample_size <= MAX_SAMPLE_SIZE:
            raise InvalidInputError(
                f"SAMPLE_SIZE must be larger than K_MAX ({self.k_max}) and at most "
                f"{MAX_SAMPLE_SIZE:,} (the silhouette costs SAMPLE_SIZE² distances); "
                f"got {self.sample_size}.")


@dataclass(frozen=True)
class KScores:
    """Scores of one k.

    Attributes:
        k: number of clusters.
        inertia: sum of squared distances of the fitted pixels to their nearest centre.
        silhouette: mean silhouette of the sample, -1..1 (higher: better separated); NaN when
            the sample's pixels fall in fewer than two clusters.
        calinski_harabasz: Calinski–Harabasz score of the sample (higher: better separated);
            None when not asked for, NaN when undefined.
    """

    k: int
    inertia: float
    silhouette: float
    calinski_harabasz: float | None = None


@dataclass
class ChooseKResult:
    """The scores of every k tried and the choice made from them.

    Attributes:
        scores: one KScores per k tried, ascending k (the sweep stops early, with a message,
            at a k larger than the number of distinct values).
        recommended_k: the k with the highest silhouette (the smallest such k on a tie); the
            elbow when no silhouette is defined.
        elbow_k: the elbow of the inertia curve (see `elbow_k`), or None.
        feature_names: the features scored.
        inertia_pixels: pixels the inertia is summed over.
        silhouette_pixels: pixels of the silhouette sample.
        inertia_method: how the inertia was computed, in words, for the report.
        settings: the settings used.
        messages: warnings for the user.
    """

    scores: list[KScores]
    recommended_k: int
    elbow_k: int | None
    feature_names: tuple[str, ...]
    inertia_pixels: int
    silhouette_pixels: int
    inertia_method: str
    settings: ChooseKSettings
    messages: list[str] = field(default_factory=list)

    @property
    def recommendation_reason(self) -> str:
        """Why recommended_k was chosen, in words, for logs and the report."""
        best = next(s for s in self.scores if s.k == self.recommended_k)
        if not math.isnan(best.silhouette):
            return f"the highest silhouette, {best.silhouette:.4f}"
        if self.recommended_k == self.elbow_k:
            return "the elbow of the inertia curve, as no silhouette could be computed"
        return "the smallest k tried, as neither a silhouette nor an elbow could be computed"


def choose_k(inputs: Sequence[RasterInput], *, settings: ChooseKSettings | None = None,
             geometry_wkt: str | None = None, bbox: BoundingBox | None = None,
             progress=None, is_cancelled=None) -> ChooseKResult:
    """Fit k-means for every k of the range on the area's pixels and score each fit.

    Args:
        inputs: rasters whose bands are the features (aligned onto the first one's grid, as in
            k-means).
        settings: the range of k, the sample size, seed, scaling and scores wanted (the
            defaults of ChooseKSettings when None).
        geometry_wkt: polygon/multipolygon area in the first raster's CRS, or None.
        bbox: (xmin, ymin, xmax, ymax) in the first raster's CRS, or None; intersected with the
            geometry when both are given.
        progress, is_cancelled: see `core.progress`.

    Returns:
        ChooseKResult with one KScores per k, the recommended k and the elbow.

    Raises:
        InvalidInputError: bad settings, no overlap, no valid pixels, fewer distinct values
            than K_MIN.
        CancelledError: cancelled.
    """
    settings = settings or ChooseKSettings()
    settings.validate()
    steps = Progress(progress, is_cancelled)
    stack = FeatureStack(inputs)
    try:
        area = AreaOfInterest(stack.grid, geometry_wkt=geometry_wkt, bbox=bbox)
        fits_class = _OneFeatureFits if stack.n_features == 1 else _SampleFits
        fits = fits_class(stack, area, settings, steps.span(0.0, 0.15))
        scores, messages = _score_range(fits, settings, steps.span(0.15, 1.0))
    finally:
        stack.close()
    elbow = elbow_k([s.k for s in scores], [s.inertia for s in scores])
    return ChooseKResult(scores, recommend_k(scores, elbow), elbow, tuple(stack.names),
                         fits.inertia_pixels, len(fits.points), fits.method, settings, messages)


class _OneFeatureFits:
    """Exact 1-D k-means over every valid pixel of the area; raw values as the metric space."""

    def __init__(self, stack: FeatureStack, area: AreaOfInterest, settings: ChooseKSettings,
                 steps: Progress):
        self._stack, self._area = stack, area
        #: The silhouette sample, (n, 1) float64.
        self.points = sample_valid_pixels(stack, area, settings.sample_size, settings.seed,
                                          steps.span(0.0, 0.5))
        self._values, self._value_range, self.inertia_pixels = _area_values(
            stack, area, steps.span(0.5, 1.0))
        self.method = (f"exact 1-D k-means optimum over all {self.inertia_pixels:,} valid pixels "
                       "of the area (the centres k-means writes)")

    def _read_values(self) -> Iterator[np.ndarray]:
        if self._values is not None:
            for start in range(0, self._values.size, _FIT_BLOCK_VALUES):
                yield self._values[start:start + _FIT_BLOCK_VALUES]
            return
        for _, features, valid in iter_area_blocks(self._stack, self._area, self._area.window,
                                                   Progress()):
            yield features[0][valid]

    def fit(self, k: int, steps: Progress) -> tuple[float, np.ndarray]:
        """(inertia, class numbers 1..k of the silhouette sample) of the optimal k clusters."""
        result = fit_kmeans_1d(self._read_values, k, value_range=self._value_range,
                               progress=steps)
        return result.inertia, label_values(self.points[:, 0], result.centres)


def _area_values(stack: FeatureStack, area: AreaOfInterest,
                 steps: Progress) -> tuple[np.ndarray | None, tuple[float, float], int]:
    """One pass: the area's valid values (None past _IN_MEMORY_VALUES), their range and count."""
    parts: list[np.ndarray] | None = []
    low, high, count = math.inf, -math.inf, 0
    for _, features, valid in iter_area_blocks(stack, area, area.window, steps):
        block = features[0][valid]
        if block.size == 0:
            continue
        count += block.size
        low, high = min(low, float(block.min())), max(high, float(block.max()))
        if parts is not None and count <= _IN_MEMORY_VALUES:
            parts.append(block)
        else:
            parts = None
    if count == 0:
        raise InvalidInputError(
            "There is no valid pixel in the area: every pixel is nodata, NaN or outside the "
            "area of interest. Check the inputs' nodata and the area.")
    values = np.concatenate(parts) if parts is not None else None
    return values, (low, high), count


class _SampleFits:
    """k-means's own multi-feature fit on a seeded sample; its scaling as the metric space."""

    def __init__(self, stack: FeatureStack, area: AreaOfInterest, settings: ChooseKSettings,
                 steps: Progress):
        self._names, self._settings = stack.names, settings
        self._sample = sample_valid_pixels(stack, area, settings.fit_sample_size, settings.seed,
                                           steps)
        # The first sample_size pixels of a bottom-k sample are the bottom-sample_size sample.
        self._raw_points = self._sample[:settings.sample_size]
        #: The silhouette sample in the space distances are measured in (set by the first fit:
        #: the scaling is the fit sample's, the same for every k).
        self.points = self._raw_points
        self.inertia_pixels = len(self._sample)
        scaled = "standardized " if settings.standardize else ""
        self.method = (f"k-means++ (4 restarts, k-means's own fit) on a seeded sample of "
                       f"{len(self._sample):,} pixels; inertia summed over that sample, in "
                       f"{scaled}feature units")

    def fit(self, k: int, steps: Progress) -> tuple[float, np.ndarray]:
        """(inertia, class numbers 1..k of the silhouette sample) of k-means with k clusters."""
        steps.check()
        if k > len(self._sample):
            raise InvalidInputError(
                f"the area has only {len(self._sample)} valid pixels, fewer than {k} clusters; "
                "choose a smaller K_MAX or a larger area")
        kmeans_settings = KMeansSettings(n_clusters=k, seed=self._settings.seed,
                                         sample_size=len(self._sample),
                                         standardize=self._settings.standardize)
        model = fit_several_features(self._names, self._sample, kmeans_settings, None, None)
        self.points = model.prepare(self._raw_points)
        inertia = _inertia(model.prepare(self._sample), model.model_centres())
        return inertia, model.label(self._raw_points)


def _inertia(points: np.ndarray, centres: np.ndarray, rows: int = 1 << 16) -> float:
    """Sum over points (n, f) of the squared distance to the nearest of centres (k, f)."""
    total = 0.0
    squared_centres = np.einsum("ij,ij->i", centres, centres)
    for start in range(0, len(points), rows):
        chunk = points[start:start + rows]
        distances = squared_centres - 2.0 * chunk @ centres.T
        nearest = distances.min(axis=1) + np.einsum("ij,ij->i", chunk, chunk)
        total += float(np.maximum(nearest, 0.0).sum())
    return total


def _score_range(fits, settings: ChooseKSettings,
                 steps: Progress) -> tuple[list[KScores], list[str]]:
    from sklearn import config_context
    from sklearn.metrics import calinski_harabasz_score, silhouette_score

    scores: list[KScores] = []
    messages: list[str] = []
    ks = range(settings.k_min, settings.k_max + 1)
    for index, k in enumerate(ks):
        k_steps = steps.span(index / len(ks), (index + 1) / len(ks))
        try:
            inertia, labels = fits.fit(k, k_steps.span(0.0, 0.6))
        except InvalidInputError as error:
            if not scores:
                raise
            messages.append(f"Stopped at k = {k}: {error}")
            break
        k_steps(0.6)
        silhouette = math.nan
        harabasz = math.nan if settings.calinski_harabasz else None
        n_labels = len(np.unique(labels))
        if 2 <= n_labels <= len(fits.points) - 1:
            with config_context(working_memory=_SILHOUETTE_WORKING_MEMORY_MB):
                silhouette = float(silhouette_score(fits.points, labels))
            if settings.calinski_harabasz:
                harabasz = float(calinski_harabasz_score(fits.points, labels))
        else:
            messages.append(f"k = {k}: the {len(fits.points):,} sampled pixels fall in "
                            f"{n_labels} cluster(s); the silhouette is undefined. Use a larger "
                            "SAMPLE_SIZE or area.")
        scores.append(KScores(k, inertia, silhouette, harabasz))
        k_steps(1.0)
    return scores, messages


def elbow_k(ks: Sequence[int], inertias: Sequence[float]) -> int | None:
    """The elbow of an inertia curve: its point farthest below the chord, once normalised.

    k is scaled to 0..1 over the range and the inertia to 0..1 between its minimum and maximum;
    the elbow is the k whose point lies farthest (perpendicularly) below the straight line
    joining the first and the last point — the "knee" of the kneedle method (Satopää et al.,
    2011) for a decreasing, convex curve.

    Args:
        ks: ascending k values.
        inertias: the inertia of each k.

    Returns:
        The elbow's k, or None with fewer than three k, a flat curve, or no point below the
        chord (a straight or concave curve has no elbow).
    """
    x = np.asarray(ks, dtype=np.float64)
    y = np.asarray(inertias, dtype=np.float64)
    if x.size < 3 or not np.all(np.isfinite(y)) or y.max() == y.min():
        return None
    x = (x - x[0]) / (x[-1] - x[0])
    y = (y - y.min()) / (y.max() - y.min())
    dx, dy = x[-1] - x[0], y[-1] - y[0]
    # Cross product of the chord with the point: positive below a chord drawn left to right.
    below = (dy * (x - x[0]) - dx * (y - y[0])) / math.hypot(dx, dy)
    best = int(np.argmax(below[1:-1])) + 1
    return int(ks[best]) if below[best] > 1e-12 else None


def recommend_k(scores: Sequence[KScores], elbow: int | None) -> int:
    """The k of the highest silhouette (the smallest on a tie); else the elbow; else the first k."""
    silhouettes = np.array([s.silhouette for s in scores], dtype=np.float64)
    if np.all(np.isnan(silhouettes)):
        return elbow if elbow is not None else scores[0].k
    return scores[int(np.nanargmax(silhouettes))].k


# --------------------------------------------------------------------------------------------
# HTML report
# --------------------------------------------------------------------------------------------

_CHART_WIDTH, _CHART_HEIGHT = 560, 300
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 78, 24, 34, 48
# Dark colours of the viridis ramp (the classes' ramp), readable on white.
_INERTIA_COLOUR, _SILHOUETTE_COLOUR, _HARABASZ_COLOUR = "#440154", "#21918c", "#3b528b"
_MARK_COLOUR = "#d62728"


def write_report(result: ChooseKResult, path: str | os.PathLike) -> None:
    """Write the HTML report (curves as inline SVG, readable offline) to `path`.

    Written to a temporary name beside `path` and renamed, so no partial file is left.

    Raises:
        InvalidInputError: the folder is missing or not writable.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InvalidInputError(f"The report's folder '{folder}' does not exist.")
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.partial")
    try:
        with open(temporary, "w", encoding="utf-8") as stream:
            stream.write(report_html(result))
        os.replace(temporary, path)
    except OSError as error:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise InvalidInputError(f"Cannot write the report '{path}': {error}") from error


def report_html(result: ChooseKResult) -> str:
    """The report as one well-formed (XHTML-compatible) HTML document."""
    ks = [s.k for s in result.scores]
    recommended, elbow = result.recommended_k, result.elbow_k
    charts = [
        ("Inertia (elbow method)", "inertia",
         _line_chart(ks, [s.inertia for s in result.scores], y_label="inertia",
                     colour=_INERTIA_COLOUR, recommended=recommended, elbow=elbow,
                     css_class="inertia")),
        ("Silhouette", "silhouette",
         _line_chart(ks, [s.silhouette for s in result.scores], y_label="mean silhouette",
                     colour=_SILHOUETTE_COLOUR, recommended=recommended, css_class="silhouette")),
    ]
    if result.settings.calinski_harabasz:
        charts.append(("Calinski–Harabasz", "calinski_harabasz", _line_chart(
            ks, [s.calinski_harabasz for s in result.scores], y_label="Calinski–Harabasz score",
            colour=_HARABASZ_COLOUR, recommended=recommended, css_class="calinski-harabasz")))
    elbow_text = (f"k = {elbow}" if elbow is not None
                  else "none (fewer than three k, or no point below the chord)")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8"/>',
        "<title>Choose the number of clusters</title>",
        "<style>body{font-family:sans-serif;max-width:640px;margin:1em auto;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:2px 8px;"
        "text-align:right}tr.recommended td{font-weight:bold;background:#fde7e7}"
        "svg{display:block;margin:0.5em 0}</style>",
        "</head>",
        "<body>",
        "<h1>Choose the number of clusters</h1>",
        f'<p class="recommendation">Recommended number of clusters: '
        f'<strong id="recommended-k">{recommended}</strong> '
        f"({_text(result.recommendation_reason)}).</p>",
        f'<p class="elbow">Elbow of the inertia curve: <span id="elbow-k">{elbow_text}</span>.'
        "</p>",
    ]
    for title, _, svg in charts:
        parts += [f"<h2>{_text(title)}</h2>", svg]
    parts += _values_table(result)
    parts += _method_section(result)
    if result.messages:
        parts += ["<h2>Messages</h2>", "<ul>"]
        parts += [f"<li>{_text(message)}</li>" for message in result.messages]
        parts.append("</ul>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _values_table(result: ChooseKResult) -> list[str]:
    with_harabasz = result.settings.calinski_harabasz
    header = "<tr><th>k</th><th>inertia</th><th>silhouette</th>"
    header += "<th>Calinski–Harabasz</th>" if with_harabasz else ""
    rows = ["<h2>Values</h2>", '<table class="scores">', header + "</tr>"]
    for score in result.scores:
        css = ' class="recommended"' if score.k == result.recommended_k else ""
        cells = [str(score.k), _number(score.inertia), _number(score.silhouette, 4)]
        if with_harabasz:
            cells.append(_number(score.calinski_harabasz))
        rows.append(f"<tr{css}>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    rows.append("</table>")
    return rows


def _method_section(result: ChooseKResult) -> list[str]:
    settings = result.settings
    scaling = ("standardized to unit variance (on the fit sample), as k-means does"
               if settings.standardize and len(result.feature_names) > 1 else "as they are")
    items = [
        f"Features ({len(result.feature_names)}): "
        f"{', '.join(result.feature_names)}; used {scaling}.",
        f"Inertia (within-cluster sum of squares): {result.inertia_method}.",
        f"Silhouette: scikit-learn's mean silhouette coefficient on a seeded random sample of "
        f"{result.silhouette_pixels:,} valid pixels of the area (SAMPLE_SIZE "
        f"{settings.sample_size:,}, seed {settings.seed}), each labelled with its nearest "
        "centre. It ranges from -1 to 1; higher means tighter, better separated clusters "
        "(above 0.5: a reasonable structure, above 0.7: a strong one).",
        "Recommended k: the highest silhouette; on a tie, the smallest k.",
        "Elbow: with k scaled to 0..1 and the inertia to 0..1, the k whose point lies farthest "
        "below the straight line (chord, dashed) from the first to the last point (the knee of "
        "the kneedle method). The elbow marks where more clusters stop paying off; it is shown "
        "for judgement, the recommendation follows the silhouette.",
    ]
    if settings.calinski_harabasz:
        items.append("Calinski–Harabasz: scikit-learn's variance ratio (between-cluster over "
                     "within-cluster dispersion, each per degree of freedom) on the same "
                     "sample; higher is better.")
    items.append(f"The same inputs, area and seed ({settings.seed}) give the same scores.")
    return ["<h2>Method</h2>", "<ul>", *(f"<li>{_text(item)}</li>" for item in items), "</ul>"]


def _line_chart(ks: Sequence[int], values: Sequence[float], *, y_label: str, colour: str,
                recommended: int, css_class: str, elbow: int | None = None) -> str:
    """An SVG line chart of values against k: one polyline point per finite value."""
    plot_width = _CHART_WIDTH - _MARGIN_LEFT - _MARGIN_RIGHT
    plot_height = _CHART_HEIGHT - _MARGIN_TOP - _MARGIN_BOTTOM
    finite = [(k, float(v)) for k, v in zip(ks, values) if v is not None and math.isfinite(v)]
    ticks = _axis_ticks([v for _, v in finite])
    low, high = float(ticks[0]), float(ticks[-1])
    k_low, k_high = ks[0], ks[-1]

    def x_of(k: float) -> float:
        if k_high == k_low:
            return _MARGIN_LEFT + plot_width / 2
        return _MARGIN_LEFT + (k - k_low) / (k_high - k_low) * plot_width

    def y_of(value: float) -> float:
        return _MARGIN_TOP + (high - value) / (high - low) * plot_height

    bottom, right = _MARGIN_TOP + plot_height, _MARGIN_LEFT + plot_width
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" width="{_CHART_WIDTH}" '
        f'height="{_CHART_HEIGHT}" viewBox="0 0 {_CHART_WIDTH} {_CHART_HEIGHT}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect x="{_MARGIN_LEFT}" y="{_MARGIN_TOP}" width="{plot_width}" height="{plot_height}" '
        'fill="#fafafa" stroke="#999"/>',
    ]
    for tick in ticks:
        y = y_of(tick)
        parts.append(f'<line x1="{_MARGIN_LEFT - 4}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" '
                     'stroke="#e2e2e2"/>')
        parts.append(f'<text x="{_MARGIN_LEFT - 7}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{_number(tick)}</text>")
    step = max(1, math.ceil(len(ks) / 20))
    for k in ks[::step]:
        x = x_of(k)
        parts.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" '
                     'stroke="#666"/>')
        parts.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{k}</text>')
    parts.append(f'<text x="{_MARGIN_LEFT + plot_width / 2:.1f}" y="{_CHART_HEIGHT - 8}" '
                 'text-anchor="middle">number of clusters k</text>')
    parts.append(f'<text transform="translate(14 {_MARGIN_TOP + plot_height / 2:.1f}) '
                 f'rotate(-90)" text-anchor="middle">{_text(y_label)}</text>')
    x = x_of(recommended)
    parts.append(f'<line class="recommended-k" x1="{x:.1f}" y1="{_MARGIN_TOP}" x2="{x:.1f}" '
                 f'y2="{bottom}" stroke="{_MARK_COLOUR}" stroke-dasharray="5 4"/>')
    if elbow is not None and len(finite) >= 2:
        (k0, v0), (k1, v1) = finite[0], finite[-1]
        parts.append(f'<line class="chord" x1="{x_of(k0):.1f}" y1="{y_of(v0):.1f}" '
                     f'x2="{x_of(k1):.1f}" y2="{y_of(v1):.1f}" stroke="#888" '
                     'stroke-dasharray="2 3"/>')
    points = " ".join(f"{x_of(k):.1f},{y_of(v):.1f}" for k, v in finite)
    parts.append(f'<polyline class="curve" points="{points}" fill="none" stroke="{colour}" '
                 'stroke-width="2"/>')
    for k, value in finite:
        parts.append(f'<circle cx="{x_of(k):.1f}" cy="{y_of(value):.1f}" r="3.5" '
                     f'fill="{colour}"><title>k = {k}: {_number(value, 4)}</title></circle>')
    marks = [(recommended, "recommended", f"recommended k = {recommended}", _MARK_COLOUR)]
    if elbow is not None:
        marks.append((elbow, "elbow", f"elbow k = {elbow}", "#222"))
    for k, css, label, mark_colour in marks:
        value = dict(finite).get(k)
        y = y_of(value) if value is not None else _MARGIN_TOP + 10
        parts.append(f'<circle class="{css}" cx="{x_of(k):.1f}" cy="{y:.1f}" r="8" fill="none" '
                     f'stroke="{mark_colour}" stroke-width="2"/>')
        anchor = "end" if x_of(k) > _MARGIN_LEFT + plot_width * 0.6 else "start"
        offset = -10 if anchor == "end" else 10
        # The recommendation is labelled above the plot, the elbow beside its point.
        label_y = _MARGIN_TOP - 8 if css == "recommended" else y - 12
        parts.append(f'<text class="{css}-label" x="{x_of(k) + offset:.1f}" y="{label_y:.1f}" '
                     f'text-anchor="{anchor}" fill="{mark_colour}">{_text(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _axis_ticks(values: Sequence[float], count: int = 5) -> np.ndarray:
    """About `count` round tick values (steps of 1, 2, 2.5 or 5 x 10^n) spanning the values."""
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high == low:
        low, high = low - max(abs(low) * 0.1, 1e-9), high + max(abs(high) * 0.1, 1e-9)
    raw_step = (high - low) / (count - 1)
    magnitude = 10.0 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw_step)
    first, last = math.floor(low / step), math.ceil(high / step)
    return np.arange(first, last + 1) * step


def _number(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    magnitude = abs(value)
    if magnitude != 0 and (magnitude >= 1e6 or magnitude < 1e-3):
        return f"{value:.{digits}g}"
    if magnitude >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}" if digits > 3 else f"{value:.{max(digits, 3)}g}"


def _text(value: str) -> str:
    return html.escape(value, quote=True)
