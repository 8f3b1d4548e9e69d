"""Fuzzy c-means zones (Bezdek 1981) with the distance norms of Management Zone Analyst
(Fridgen et al. 2004, Agron. J. 96:100–108), fitted on a seeded sample of the area's pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import parameters
from ..io.feature_stack import AreaBlocks, FeatureStack, area_windows
from ..io.rasters import Window
from ..progress import Progress
from .distances import memberships_of, metric_transform, squared_distances
from .kmeans import Fit, FitSample, check_sample_settings, draw_fit_sample, fit_centres

#: MZA's default exponent (see `parameters.FUZZINESS`).
DEFAULT_FUZZINESS = parameters.FUZZINESS.default
#: MZA's stopping rule: memberships change by less than this, or this many iterations.
DEFAULT_TOLERANCE = 1e-4
DEFAULT_MAX_ITERATIONS = 300
#: Pixels sampled to fit (see `parameters.FUZZY_SAMPLE_SIZE`).
DEFAULT_SAMPLE_SIZE = parameters.FUZZY_SAMPLE_SIZE.default
METHOD = "fuzzy c-means"


@dataclass(frozen=True)
class FuzzyCMeansSettings:
    """How to fit fuzzy c-means zones.

    Attributes:
        n_clusters: number of zones c, 2..255.
        fuzziness: the exponent m > 1 (see DEFAULT_FUZZINESS).
        distance_metric: one of DISTANCE_METRICS; its norm matrix comes from the sample (after
            standardizing, with which "diagonal" equals "euclidean").
        seed, sample_size, standardize, clip_quantiles: as for k-means (`KMeansSettings`);
            the fit always uses the sample, also for one feature (standardizing is ignored for
            one feature: it changes no membership).
        tolerance, max_iterations: the stopping rule (MZA's defaults).
    """

    n_clusters: int = parameters.CLUSTERS.default
    fuzziness: float = DEFAULT_FUZZINESS
    distance_metric: str = parameters.DISTANCE_METRIC.default
    seed: int = parameters.SEED.default
    sample_size: int = DEFAULT_SAMPLE_SIZE
    standardize: bool = True
    clip_quantiles: tuple[float, float] | None = None
    tolerance: float = DEFAULT_TOLERANCE
    max_iterations: int = DEFAULT_MAX_ITERATIONS

    def validate(self) -> None:
        """Raise InvalidInputError naming the allowed values of a setting that is not."""
        parameters.CLUSTERS.validate(self.n_clusters)
        check_sample_settings(self, parameters.FUZZY_SAMPLE_SIZE)
        check_fuzzy_options(self.fuzziness, self.distance_metric)

    def fit(self, stack: FeatureStack, blocks: AreaBlocks, window: Window,
            steps: Progress) -> Fit:
        """Fuzzy c-means on the area's sample; the ordered model and its log lines."""
        sample = draw_fit_sample(blocks, area_windows(stack, window), stack.names, self,
                                 steps.span(0.0, 0.5))
        transform, points = in_norm(sample, self.distance_metric)
        fit = fit_fuzzy_cmeans(points, self.n_clusters, fuzziness=self.fuzziness, seed=self.seed,
                               tolerance=self.tolerance, max_iterations=self.max_iterations,
                               is_cancelled=steps.cancelled)
        steps.check()
        model = sample.model(centres_of(sample.points, fit.memberships, self.fuzziness),
                             metric_transform=transform, distance_metric=self.distance_metric,
                             fuzziness=self.fuzziness, method=METHOD)
        state = "converged" if fit.converged else "stopped at the iteration limit"
        return Fit(model, len(sample.points), (
            f"Fuzzy c-means {state} after {fit.iterations} iterations (m = {self.fuzziness:g}, "
            f"{self.distance_metric} distance); objective J = {fit.objective:.6g}.",))


@dataclass(frozen=True)
class FuzzyFit:
    """A fuzzy c-partition of the points.

    Attributes:
        centres: float64 (n_clusters, n_features), in the points' space.
        memberships: float64 (n_points, n_clusters), each row summing to 1.
        iterations: centre updates made.
        objective: J_m = Σ_k Σ_i u_ik^m d_ik², at the returned centres and memberships.
        converged: the largest membership change fell below the tolerance.
    """

    centres: np.ndarray
    memberships: np.ndarray
    iterations: int
    objective: float
    converged: bool


def in_norm(sample: FitSample, metric: str) -> tuple[np.ndarray | None, np.ndarray]:
    """The metric's transform of the sample's space (see `distances.metric_transform`) and the
    sample's points in it, where Euclidean distances are the norm's."""
    transform = metric_transform(sample.points, metric)
    return transform, sample.points if transform is None else sample.points @ transform


def check_fuzzy_options(fuzziness: float, metric: str) -> None:
    """Refuse an exponent m ≤ 1 (hard k-means, memberships undefined) or an unknown norm."""
    parameters.FUZZINESS.validate(fuzziness)
    parameters.DISTANCE_METRIC.validate(metric)


def fuzzy_memberships(points: np.ndarray, centres: np.ndarray, fuzziness: float) -> np.ndarray:
    """Memberships (n, c) of points (n, f) in the clusters of centres (c, f), same space."""
    return memberships_of(squared_distances(points, centres), fuzziness)


def fit_fuzzy_cmeans(points: np.ndarray, n_clusters: int, *, fuzziness: float = DEFAULT_FUZZINESS,
                     seed: int = 0, tolerance: float = DEFAULT_TOLERANCE,
                     max_iterations: int = DEFAULT_MAX_ITERATIONS,
                     initial_centres: np.ndarray | None = None, is_cancelled=None) -> FuzzyFit:
    """Fuzzy c-means by Bezdek's alternating optimisation, vectorised.

    Starts from the k-means centres of the points (`kmeans.fit_centres`: the best of many
    seeded k-means++ starts, so the fit starts in a good basin), whose memberships are U⁽⁰⁾; then
    repeats v_i = Σ_k u_ik^m x_k / Σ_k u_ik^m and the membership update until no membership
    changes by `tolerance` or more (max_ik |u_ik⁽ʳ⁺¹⁾ − u_ik⁽ʳ⁾|) or `max_iterations` updates.

    Args:
        points: float64 (n, f), already in the metric's space (see `metric_transform`).
        n_clusters: c, 2 ≤ c ≤ n.
        fuzziness: the exponent m > 1.
        seed: seeds the k-means start.
        initial_centres: (c, f) to start from instead of k-means's centres.
        is_cancelled: returns True to stop (CancelledError is the caller's to raise).

    Raises:
        InvalidInputError: m ≤ 1, or fewer distinct points than clusters.
    """
    check_fuzzy_options(fuzziness, "euclidean")
    points = np.asarray(points, dtype=np.float64)
    if initial_centres is None:
        initial_centres = fit_centres(points, n_clusters, seed)
    centres = np.array(initial_centres, dtype=np.float64)
    memberships = fuzzy_memberships(points, centres, fuzziness)
    converged = False
    iterations = 0
    while iterations < max_iterations and not converged:
        if is_cancelled is not None and is_cancelled():
            break
        centres = centres_of(points, memberships, fuzziness)
        updated = fuzzy_memberships(points, centres, fuzziness)
        converged = float(np.abs(updated - memberships).max()) < tolerance
        memberships = updated
        iterations += 1
    squared = squared_distances(points, centres)
    objective = float(np.sum(memberships ** fuzziness * squared))
    return FuzzyFit(centres, memberships, iterations, objective, converged)


def centres_of(points: np.ndarray, memberships: np.ndarray, fuzziness: float) -> np.ndarray:
    """The centres (c, f) of a fuzzy partition: v_i = Σ_k u_ik^m x_k / Σ_k u_ik^m."""
    weights = memberships ** fuzziness
    return (weights.T @ points) / weights.sum(axis=0)[:, None]


def hard_labels(memberships: np.ndarray) -> np.ndarray:
    """Class numbers 1..c of the highest membership (the lower class on a tie)."""
    return np.argmax(memberships, axis=1) + 1
