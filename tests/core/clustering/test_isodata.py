"""ISODATA on blobs with a known number of groups: merging down from too many classes, splitting
up from too few, the bounds on the number of classes, and its refusals."""

import numpy as np
import pytest
from raster_clustering.core.clustering.isodata import IsodataOptions, fit_isodata
from raster_clustering.core.errors import InvalidInputError
from scipy.optimize import linear_sum_assignment

TRUE_MEANS = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0], [3.0, 3.0]])


def blobs(seed=0, n_per_blob=1000, spread=0.15):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(mean, spread, (n_per_blob, 2)) for mean in TRUE_MEANS])


def assert_true_centres(centres, tolerance=0.05):
    assert len(centres) == len(TRUE_MEANS)
    cost = np.linalg.norm(centres[:, None] - TRUE_MEANS[None], axis=2)
    rows, cols = linear_sum_assignment(cost)
    assert cost[rows, cols].max() < tolerance


def test_started_with_too_many_classes_it_merges_down_to_the_true_number():
    fit = fit_isodata(blobs(), IsodataOptions(initial_clusters=9, min_clusters=2,
                                               max_clusters=12, merge_distance=1.0), seed=1)
    assert fit.merges + fit.dissolved >= 5
    assert_true_centres(fit.centres)


def test_started_with_too_few_classes_it_splits_the_wide_ones():
    fit = fit_isodata(blobs(seed=3), IsodataOptions(initial_clusters=2, min_clusters=2,
                                                     max_clusters=8, merge_distance=1.0), seed=0)
    assert fit.splits >= 2
    assert_true_centres(fit.centres)


def test_the_number_of_classes_stays_within_its_bounds():
    capped = fit_isodata(blobs(), IsodataOptions(initial_clusters=2, min_clusters=2,
                                                  max_clusters=3, merge_distance=1.0))
    assert len(capped.centres) == 3
    floored = fit_isodata(blobs(), IsodataOptions(initial_clusters=6, min_clusters=5,
                                                   max_clusters=8, merge_distance=10.0))
    assert len(floored.centres) == 5


def test_small_classes_are_dissolved():
    points = np.concatenate([blobs(), [[10.0, 10.0]] * 5])  # 5 outliers: 0.12 % of the points
    fit = fit_isodata(points, IsodataOptions(initial_clusters=5, min_clusters=2,
                                              max_clusters=8, min_class_share=0.01,
                                              merge_distance=1.0))
    assert fit.dissolved >= 1
    # The outliers join the nearest blob, whose mean they move by 5 / 1005 · 7√2 ≈ 0.05.
    assert_true_centres(fit.centres, tolerance=0.06)


def test_the_centres_are_a_k_means_fixed_point_and_the_same_seed_gives_the_same_fit():
    points = blobs(seed=5, spread=0.6)
    options = IsodataOptions(initial_clusters=4, min_clusters=2, max_clusters=8)
    first, second = fit_isodata(points, options, seed=2), fit_isodata(points, options, seed=2)
    np.testing.assert_array_equal(first.centres, second.centres)
    labels = np.argmin(((points[:, None] - first.centres[None]) ** 2).sum(-1), axis=1)
    for index, centre in enumerate(first.centres):
        np.testing.assert_allclose(points[labels == index].mean(axis=0), centre, atol=1e-6)


@pytest.mark.parametrize("options, message", [
    (IsodataOptions(initial_clusters=5, min_clusters=6, max_clusters=4), "MIN_CLUSTERS"),
    (IsodataOptions(initial_clusters=9, min_clusters=2, max_clusters=8), "CLUSTERS"),
    (IsodataOptions(min_class_share=1.0), "MIN_CLASS_SIZE"),
    (IsodataOptions(split_std=0.0), "SPLIT_STD must be a number greater than 0"),
    (IsodataOptions(merge_distance=-1.0), "MERGE_DISTANCE must be a number of at least 0"),
    (IsodataOptions(max_clusters=256), "MAX_CLUSTERS must be a whole number from 2 to 255"),
    (IsodataOptions(max_iterations=0), "MAX_ITERATIONS"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(InvalidInputError, match=message):
        options.validate()
