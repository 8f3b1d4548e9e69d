"""Distances of points to cluster centres in the norms of Management Zone Analyst (Fridgen et al.
2004: Euclidean, diagonal, Mahalanobis), and the fuzzy memberships they give (Bezdek 1981)."""

from __future__ import annotations

import numpy as np

from .. import parameters

#: The norms MZA offers: A = I, A = diag(1/variance), A = inverse covariance.
DISTANCE_METRICS = parameters.DISTANCE_METRIC.allowed.values
# Distances below this (a point on a centre) are taken as this: its membership there is 1.
_TINY = np.finfo(np.float64).tiny


def metric_transform(points: np.ndarray, metric: str) -> np.ndarray | None:
    """The matrix T (f, f) with ‖(x − v) T‖² = (x − v)ᵀ A (x − v) for the metric's norm matrix A.

    Euclidean: None (A = I). Diagonal: A = diag(1 / variance). Mahalanobis: A = the inverse
    covariance, T its symmetric square root (a pseudo-inverse when bands are collinear, so a
    direction without variance adds no distance). Variances and covariances are the points'.
    """
    if metric == "euclidean":
        return None
    if metric == "diagonal":
        std = points.std(axis=0)
        std[std == 0] = 1.0
        return np.diag(1.0 / std)
    covariance = np.atleast_2d(np.cov(points, rowvar=False))
    values, vectors = np.linalg.eigh(covariance)
    keep = values > values.max() * 1e-12 if values.max() > 0 else np.zeros_like(values, bool)
    scale = np.zeros_like(values)
    scale[keep] = 1.0 / np.sqrt(values[keep])
    return (vectors * scale) @ vectors.T


def squared_distances(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(n, c) squared Euclidean distances of points (n, f) to centres (c, f), never negative."""
    squared = (np.einsum("ij,ij->i", points, points)[:, None] - 2.0 * points @ centres.T
               + np.einsum("ij,ij->i", centres, centres)[None, :])
    return np.maximum(squared, 0.0, out=squared)


def memberships_of(squared: np.ndarray, fuzziness: float) -> np.ndarray:
    """Bezdek's membership update u_ik = 1 / Σ_j (d_ik² / d_jk²)^(1/(m−1)) from (n, c) squared
    distances, in logarithms so that m near 1 neither overflows nor underflows. A point on a
    centre belongs to it alone (to several coinciding centres equally)."""
    exponent = 1.0 / (fuzziness - 1.0)
    logs = np.log(np.maximum(squared, _TINY))
    logs -= logs.min(axis=1, keepdims=True)
    weights = np.exp(-exponent * logs, out=logs)
    weights /= weights.sum(axis=1, keepdims=True)
    return weights
