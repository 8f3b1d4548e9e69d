"""Class colours (a sequential ramp, low to high) and legend labels showing each class's centre."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Anchors of matplotlib's "viridis": perceptually uniform, readable by colour-blind users and in
# greyscale print, dark for low centres and bright for high ones.
_VIRIDIS = np.array([
    (68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142),
    (31, 158, 137), (53, 183, 121), (109, 205, 89), (180, 222, 44), (253, 231, 37),
], dtype=float)


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


def class_label(class_number: int, centre: Sequence[float]) -> str:
    """Legend label of a class: its number and its centre, e.g. "1 · 0.171" or "2 · 0.05, 0.31"."""
    return f"{class_number} · " + ", ".join(format_value(v) for v in centre)


def legend(centres: np.ndarray) -> list[tuple[int, tuple[int, int, int], str]]:
    """(class number, RGB colour, label) of each class, from centres (n_classes, n_features)."""
    colours = class_colours(len(centres))
    return [(number, colours[number - 1], class_label(number, centres[number - 1]))
            for number in range(1, len(centres) + 1)]
