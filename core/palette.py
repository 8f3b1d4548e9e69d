"""Class colours (a sequential ramp, low to high) and legend labels showing each class's centre."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

# matplotlib's "viridis" (perceptually uniform, readable by colour-blind users and in greyscale
# print; dark for low centres, bright for high ones), sampled at 17 points evenly spaced in
# perceived colour difference (CIEDE2000) rather than along the ramp: evenly spaced ramp
# positions put the dark end's classes (1 and 2) much closer to each other than the others.
_VIRIDIS = np.array([
    (68, 1, 84), (72, 33, 115), (68, 57, 131), (61, 77, 138), (53, 94, 141), (47, 107, 142),
    (42, 119, 142), (37, 132, 142), (33, 145, 140), (31, 159, 136), (38, 173, 129),
    (63, 188, 115), (96, 202, 96), (137, 213, 72), (178, 221, 45), (216, 226, 25),
    (253, 231, 37),
], dtype=float)

#: Characters a class's legend label may take (it must fit QGIS's Layers panel on a laptop);
#: the centroid JSON, the statistics and the layer's abstract hold every centre value.
LABEL_LENGTH = 30
_DATE = re.compile(r"(?<!\d)((?:19|20)\d\d)-?([01]\d)-?([0-3]\d)(?!\d)")
_SHORT_NAME = 12


def class_colours(n_classes: int) -> list[tuple[int, int, int]]:
    """RGB colours of classes 1..n, evenly spaced from the ramp's dark end to its bright end."""
    if n_classes == 1:
        return [tuple(int(v) for v in _VIRIDIS[0])]
    positions = np.linspace(0, len(_VIRIDIS) - 1, n_classes)
    anchors = np.arange(len(_VIRIDIS))
    rgb = np.stack([np.interp(positions, anchors, _VIRIDIS[:, c]) for c in range(3)], axis=1)
    return [tuple(int(round(v)) for v in row) for row in rgb]


def format_value(value: float) -> str:
    """A short, readable number: 0.171, 12.35, 1234."""
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def short_feature_name(name: str) -> str:
    """A feature name short enough for a legend: the date in it when it has one (dates of a
    time series: "2009-08-18"), else the name, cut to a dozen characters."""
    band = name.rsplit("@", 1)[1] if "@" in name else ""
    date = _DATE.search(name)
    if date:
        return "-".join(date.groups()) + (f"@{band}" if band.isdigit() else "")
    return name if len(name) <= _SHORT_NAME else name[:_SHORT_NAME - 1] + "…"


def class_label(class_number: int, centre: Sequence[float],
                feature_names: Sequence[str] = ()) -> str:
    """Legend label of a class: its number and its centre, e.g. "1 · 0.171"; with several
    features each value is named, as many as fit in LABEL_LENGTH characters, then "…":
    "2 · red 0.051, nir 0.312"."""
    label = f"{class_number} · "
    if len(centre) == 1:
        return label + format_value(centre[0])
    names = list(feature_names) or [f"f{index}" for index in range(1, len(centre) + 1)]
    for index, (name, value) in enumerate(zip(names, centre)):
        pair = f"{', ' if index else ''}{short_feature_name(name)} {format_value(value)}"
        last = index == len(centre) - 1
        if index and len(label) + len(pair) + (0 if last else 2) > LABEL_LENGTH:
            return label + " …"
        label += pair
    return label


def centres_description(centres: np.ndarray, feature_names: Sequence[str]) -> str:
    """Every class centre with its feature names, one line per class, for a layer's abstract."""
    lines = [f"Class centres ({', '.join(feature_names)}):"]
    lines += [f"{number} · " + ", ".join(f"{name} {value:.6g}"
                                         for name, value in zip(feature_names, centre))
              for number, centre in enumerate(centres, start=1)]
    return "\n".join(lines)


def legend(centres: np.ndarray, feature_names: Sequence[str] = ()
           ) -> list[tuple[int, tuple[int, int, int], str]]:
    """(class number, RGB colour, label) of each class, from centres (n_classes, n_features)."""
    colours = class_colours(len(centres))
    return [(number, colours[number - 1],
             class_label(number, centres[number - 1], feature_names))
            for number in range(1, len(centres) + 1)]
