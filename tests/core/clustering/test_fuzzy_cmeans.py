"""Fuzzy c-means against a slow, loop-by-loop implementation of Bezdek's update equations, the
MZA norms against their matrices, and FPI/NCE worked out by hand."""

import math

import numpy as np
import pytest
from raster_clustering.core.clustering.distances import metric_transform
from raster_clustering.core.clustering.fuzzy_cmeans import (
    DEFAULT_FUZZINESS,
    fit_fuzzy_cmeans,
    fuzzy_memberships,
    hard_labels,
)
from raster_clustering.core.clustering.fuzzy_validity import (
    fuzziness_performance_index,
    normalized_classification_entropy,
    recommend_fuzzy_k,
)
from raster_clustering.core.errors import InvalidInputError


def textbook_fuzzy_cmeans(points, centres, fuzziness, iterations, norm=None):
    """Bezdek (1981), eqs. 11.3a/b, one scalar at a time: memberships from the centres, then
    centres from the memberships, `iterations` times; distances in the norm ‖y‖²_A = yᵀAy."""
    n, c = len(points), len(centres)
    norm = np.eye(points.shape[1]) if norm is None else norm
    centres = [np.array(v, dtype=float) for v in centres]

    def memberships():
        u = np.zeros((n, c))
        for k in range(n):
            d = [math.sqrt((points[k] - v) @ norm @ (points[k] - v)) for v in centres]
            for i in range(c):
                u[k, i] = 1.0 / sum((d[i] / d[j]) ** (2.0 / (fuzziness - 1.0)) for j in range(c))
        return u

    u = memberships()
    for _ in range(iterations):
        for i in range(c):
            weights = [u[k, i] ** fuzziness for k in range(n)]
            centres[i] = sum(w * x for w, x in zip(weights, points)) / sum(weights)
        u = memberships()
    return np.array(centres), u


def three_blobs(n_per_blob=40, seed=0, spread=0.3):
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0], [3.0, 0.5], [1.0, 3.0]])
    return np.concatenate([rng.normal(mean, spread, (n_per_blob, 2)) for mean in means])


@pytest.mark.parametrize("fuzziness", [1.3, 2.0, 3.5])
def test_memberships_and_centres_follow_the_textbook_equations(fuzziness):
    points = three_blobs()
    start = points[[0, 50, 100]] + 0.1
    expected_centres, expected_u = textbook_fuzzy_cmeans(points, start, fuzziness, 7)
    fit = fit_fuzzy_cmeans(points, 3, fuzziness=fuzziness, initial_centres=start, tolerance=0,
                           max_iterations=7)
    assert fit.iterations == 7 and not fit.converged
    np.testing.assert_allclose(fit.centres, expected_centres, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fit.memberships, expected_u, rtol=0, atol=1e-6)


def test_the_mza_norms_are_the_textbook_norm_matrices():
    rng = np.random.default_rng(4)
    points = rng.normal(size=(300, 3)) @ np.array([[2.0, 0.3, 0.0], [0.0, 0.5, 0.4],
                                                   [0.0, 0.0, 1.5]])
    covariance = np.cov(points, rowvar=False)
    matrices = {"euclidean": np.eye(3), "diagonal": np.diag(1.0 / points.var(axis=0)),
                "mahalanobis": np.linalg.inv(covariance)}
    start = points[:3] + 0.05
    for metric, norm in matrices.items():
        transform = metric_transform(points, metric)
        transformed = points if transform is None else points @ transform
        fit = fit_fuzzy_cmeans(transformed, 3, fuzziness=1.5,
                               initial_centres=start if transform is None else start @ transform,
                               tolerance=0, max_iterations=3)
        centres, memberships = textbook_fuzzy_cmeans(points, start, 1.5, 3, norm=norm)
        np.testing.assert_allclose(fit.memberships, memberships, atol=1e-6, err_msg=metric)
        back = fit.centres if transform is None else fit.centres @ np.linalg.inv(transform)
        np.testing.assert_allclose(back, centres, atol=1e-6, err_msg=metric)


def test_a_singular_covariance_still_gives_a_mahalanobis_norm():
    rng = np.random.default_rng(0)
    first = rng.normal(size=500)
    points = np.stack([first, 2 * first, rng.normal(size=500)], axis=1)  # collinear bands
    transform = metric_transform(points, "mahalanobis")
    assert np.all(np.isfinite(transform))
    whitened = points @ transform
    # Whitened along the directions with variance: unit variance there, nothing elsewhere.
    assert sorted(np.round(np.linalg.svd(np.cov(whitened, rowvar=False))[1], 6)) == [0, 1, 1]


def test_memberships_sum_to_one_and_hard_classes_are_the_highest():
    points = three_blobs(seed=2)
    fit = fit_fuzzy_cmeans(points, 3, seed=5)
    assert fit.converged
    np.testing.assert_allclose(fit.memberships.sum(axis=1), 1.0, atol=1e-12)
    labels = hard_labels(fit.memberships)
    assert set(labels) == {1, 2, 3}
    nearest = np.argmin(((points[:, None] - fit.centres[None]) ** 2).sum(-1), axis=1) + 1
    np.testing.assert_array_equal(labels, nearest)
    for blob in range(3):  # well separated: each blob one class
        assert len(set(labels[blob * 40:(blob + 1) * 40])) == 1


def test_a_point_on_a_centre_belongs_to_it_alone_and_m_near_one_stays_finite():
    centres = np.array([[0.0, 0.0], [1.0, 0.0]])
    points = np.array([[0.0, 0.0], [0.5, 0.0], [0.9, 0.0], [100.0, 0.0]])
    u = fuzzy_memberships(points, centres, 1.3)
    np.testing.assert_allclose(u[0], [1.0, 0.0])
    np.testing.assert_allclose(u[1], [0.5, 0.5])
    nearly_hard = fuzzy_memberships(points, centres, 1.0001)
    assert np.all(np.isfinite(nearly_hard))
    np.testing.assert_allclose(nearly_hard[2], [0.0, 1.0], atol=1e-12)


def test_the_same_seed_gives_the_same_fit():
    points = three_blobs(seed=8, spread=0.9)
    first, second = (fit_fuzzy_cmeans(points, 4, seed=3) for _ in range(2))
    np.testing.assert_array_equal(first.centres, second.centres)
    np.testing.assert_array_equal(first.memberships, second.memberships)


@pytest.mark.parametrize("fuzziness", [1.0, 0.5, -2.0, math.nan])
def test_fuzziness_of_one_or_less_is_refused(fuzziness):
    with pytest.raises(InvalidInputError, match="FUZZINESS must be a number greater than 1"):
        fit_fuzzy_cmeans(three_blobs(), 3, fuzziness=fuzziness)


def test_fewer_distinct_points_than_clusters_is_refused():
    points = np.repeat(np.array([[0.0, 1.0], [2.0, 3.0]]), 20, axis=0)
    with pytest.raises(InvalidInputError, match="fewer distinct"):
        fit_fuzzy_cmeans(points, 3)


def test_the_default_fuzziness_is_mzas():
    assert DEFAULT_FUZZINESS == 1.3


def test_fpi_and_nce_by_hand():
    u = np.array([[1.0, 0.0], [0.5, 0.5], [0.8, 0.2]])
    # F = Σu² / n = (1 + 0.5 + 0.68) / 3 = 0.726667; FPI = 1 − (2F − 1) / (2 − 1) = 0.546667
    assert fuzziness_performance_index(u) == pytest.approx(0.5466666667, abs=1e-9)
    # −Σ u ln u = ln 2 + 0.178515 + 0.321888 = 1.193549; NCE = (1.193549 / 3) · 3 / (3 − 2)
    assert normalized_classification_entropy(u) == pytest.approx(1.1935496, abs=1e-6)
    hard = np.eye(3)[[0, 1, 2, 1]]
    assert fuzziness_performance_index(hard) == 0.0
    assert normalized_classification_entropy(hard) == 0.0
    uniform = np.full((5, 4), 0.25)
    assert fuzziness_performance_index(uniform) == pytest.approx(1.0)
    assert normalized_classification_entropy(uniform) == pytest.approx(math.log(4) * 5 / 1)


def test_mzas_rule_and_how_disagreements_are_settled():
    ks = [2, 3, 4, 5]
    assert recommend_fuzzy_k(ks, [0.3, 0.1, 0.2, 0.4], [0.5, 0.2, 0.3, 0.6]) == 3
    # FPI lowest at 4, NCE lowest at 2: the scaled sums are 0.5, 1.04, 0.2, 2.0 → 4.
    assert recommend_fuzzy_k(ks, [0.5, 0.45, 0.1, 0.9], [0.0, 0.6, 0.2, 1.0]) == 4
    # A tie of the scaled sums goes to the smaller k.
    assert recommend_fuzzy_k(ks, [1.0, 0.0, 0.5, 1.0], [0.0, 1.0, 0.5, 1.0]) == 2
    assert recommend_fuzzy_k(ks, [math.nan] * 4, [math.nan] * 4) == 2
