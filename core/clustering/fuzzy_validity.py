"""Validity of a fuzzy partition for choosing the number of zones, as Management Zone Analyst
does (Fridgen et al. 2004): the fuzziness performance index and the normalized classification
entropy, both lowest for the best-organised number of classes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def fuzziness_performance_index(memberships: np.ndarray) -> float:
    """FPI = 1 − (c·F − 1) / (c − 1), F = Σ_k Σ_i u_ik² / n (Roubens 1982; Odeh et al. 1992;
    MZA): one minus the normalised partition coefficient.

    0 for a hard partition, 1 when every membership is 1/c.

    Args:
        memberships: (n, c), rows summing to 1, c ≥ 2.
    """
    n, c = memberships.shape
    partition_coefficient = float(np.einsum("ij,ij->", memberships, memberships)) / n
    return 1.0 - (c * partition_coefficient - 1.0) / (c - 1)


def normalized_classification_entropy(memberships: np.ndarray) -> float:
    """NCE = n / (n − c) · (−Σ_k Σ_i u_ik ln u_ik / n) (Bezdek's normalised partition entropy,
    as MZA computes it; natural logarithms — the base only scales every k alike).

    0 for a hard partition.

    Args:
        memberships: (n, c), rows summing to 1, n > c.
    """
    n, c = memberships.shape
    positive = memberships[memberships > 0]
    entropy = -float(np.sum(positive * np.log(positive))) / n
    return entropy * n / (n - c)


def recommend_fuzzy_k(ks: Sequence[int], fpi: Sequence[float], nce: Sequence[float]) -> int:
    """MZA's rule: the k where FPI and NCE are both lowest.

    When their minima fall on different k, the k with the lowest sum of the two indices, each
    scaled to 0..1 over the k tried (so both count alike whatever their ranges); on a tie, the
    smaller k (fewer zones are easier to manage).
    """
    fpi_values, nce_values = np.asarray(fpi, float), np.asarray(nce, float)
    finite = np.isfinite(fpi_values) & np.isfinite(nce_values)
    if not finite.any():
        return int(ks[0])
    candidates = np.flatnonzero(finite)
    best_fpi = candidates[np.argmin(fpi_values[candidates])]
    best_nce = candidates[np.argmin(nce_values[candidates])]
    if best_fpi == best_nce:
        return int(ks[best_fpi])
    combined = _scaled(fpi_values, finite) + _scaled(nce_values, finite)
    return int(ks[candidates[np.argmin(combined[candidates])]])


def _scaled(values: np.ndarray, finite: np.ndarray) -> np.ndarray:
    low, high = values[finite].min(), values[finite].max()
    span = high - low
    return np.where(finite, (values - low) / span if span > 0 else 0.0, math.inf)
