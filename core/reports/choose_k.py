"""The choose-k report: the scores of every k as one HTML page with the curves drawn as inline
SVG (inertia with its elbow, silhouette, optionally Calinski–Harabasz), readable offline."""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence

import numpy as np

from ..clustering.choose_k import ChooseKResult
from ..errors import InvalidInputError

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
