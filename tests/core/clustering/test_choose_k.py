"""Choosing k: scores against handbook formulas, brute force, scikit-learn and known structure."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from raster_clustering.core.clustering.choose_k import (
    ChooseKSettings,
    KScores,
    choose_k,
    elbow_k,
    recommend_k,
)
from raster_clustering.core.clustering.kmeans import sample_valid_pixels
from raster_clustering.core.engine import opened, run_scope
from raster_clustering.core.errors import CancelledError, InvalidInputError
from raster_clustering.core.io.feature_stack import (
    AreaBlocks,
    FeatureStack,
    RasterInput,
    StackSource,
    area_windows,
)
from raster_clustering.core.progress import Progress
from sklearn.cluster import KMeans


def blobs_raster(make_raster, n_blobs=4, shape=(80, 100), spread=0.3, seed=0, b_scale=100):
    """Two bands; the raster's quarters (or stripes) are well-separated Gaussian blobs."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [10, 10], [0, 10], [10, 0], [5, 20], [20, 5]])[:n_blobs]
    stripe = (np.arange(shape[1]) * n_blobs // shape[1])[None, :].repeat(shape[0], axis=0)
    bands = centres[stripe].transpose(2, 0, 1) + rng.normal(0, spread, (2, *shape))
    # Different units on purpose: standardization must make them weigh alike.
    bands[1] *= b_scale
    return make_raster("blobs.tif", bands.astype(np.float32), descriptions=["a", "b"])


def handbook_silhouette(points, labels):
    """Mean of s(i) = (b - a) / max(a, b), Rousseeuw (1987); s(i) = 0 in a singleton cluster."""
    distances = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=2))
    values = []
    for i in range(len(points)):
        same = labels == labels[i]
        if same.sum() == 1:
            values.append(0.0)
            continue
        a = distances[i, same].sum() / (same.sum() - 1)
        b = min(distances[i, labels == other].mean() for other in set(labels) - {labels[i]})
        values.append((b - a) / max(a, b))
    return float(np.mean(values))


def brute_force_1d(values, k):
    """Least within-cluster sum of squares over every split of the sorted values into k runs."""
    ordered = np.sort(values)
    best = math.inf
    for cuts in itertools.combinations(range(1, len(ordered)), k - 1):
        parts = np.split(ordered, cuts)
        best = min(best, sum(((p - p.mean()) ** 2).sum() for p in parts))
    return best


def test_four_separated_blobs_recommend_four(make_raster):
    path = blobs_raster(make_raster)
    result = choose_k([RasterInput(str(path))], settings=ChooseKSettings(sample_size=1000))
    assert [s.k for s in result.scores] == list(range(2, 11))
    assert result.recommended_k == 4
    assert result.elbow_k == 4
    best = result.scores[2]
    assert best.silhouette > 0.9 and all(s.silhouette < best.silhouette for s in result.scores
                                         if s.k != 4)


@pytest.mark.parametrize("n_levels", [2, 3, 5])
def test_one_band_levels_recommend_their_number(make_raster, n_levels):
    rng = np.random.default_rng(n_levels)
    stripe = (np.arange(90) * n_levels // 90)[None, :].repeat(60, axis=0)
    values = (stripe * 0.2 + rng.normal(0, 0.01, stripe.shape)).astype(np.float32)
    path = make_raster("levels.tif", values, descriptions=["NDVI"])
    result = choose_k([RasterInput(str(path))], settings=ChooseKSettings(sample_size=800))
    assert result.recommended_k == n_levels


def test_one_band_inertia_is_the_exact_optimum_over_every_pixel(make_raster):
    values = np.random.default_rng(7).gamma(2.0, 1.0, (4, 5)).astype(np.float32)
    path = make_raster("v.tif", values)
    result = choose_k([RasterInput(str(path))],
                      settings=ChooseKSettings(k_min=2, k_max=4, sample_size=100))
    assert result.inertia_pixels == 20
    for score in result.scores:
        assert score.inertia == pytest.approx(brute_force_1d(values.ravel().astype(float),
                                                             score.k), rel=1e-9)


def test_silhouette_matches_the_handbook_formula_on_all_pixels(make_raster):
    rng = np.random.default_rng(2)
    values = np.concatenate([rng.normal(0, 1, 60), rng.normal(6, 1, 60), rng.normal(9, 0.5, 30)])
    path = make_raster("v.tif", values.reshape(10, 15).astype(np.float32))
    result = choose_k([RasterInput(str(path))],
                      settings=ChooseKSettings(k_min=2, k_max=4, sample_size=1000,
                                               calinski_harabasz=True))
    assert result.silhouette_pixels == 150, "a sample larger than the area takes every pixel"
    flat = values.astype(np.float32).astype(np.float64)
    for score in result.scores:
        # The optimal 1-D clusters are what sklearn's k-means finds here with many restarts.
        labels = KMeans(score.k, n_init=50, random_state=0).fit(flat[:, None]).labels_
        assert score.silhouette == pytest.approx(handbook_silhouette(flat[:, None], labels),
                                                 abs=1e-9)
        # Calinski-Harabasz: [B / (k - 1)] / [W / (n - k)], written out.
        means = np.array([flat[labels == c].mean() for c in range(score.k)])
        within = sum(((flat[labels == c] - means[c]) ** 2).sum() for c in range(score.k))
        between = sum((labels == c).sum() * (means[c] - flat.mean()) ** 2
                      for c in range(score.k))
        expected = (between / (score.k - 1)) / (within / (len(flat) - score.k))
        assert score.calinski_harabasz == pytest.approx(expected, rel=1e-9)


def test_several_features_inertia_is_sklearns_on_the_standardized_sample(make_raster):
    path = blobs_raster(make_raster, shape=(40, 50))
    result = choose_k([RasterInput(str(path))],
                      settings=ChooseKSettings(k_min=2, k_max=4, sample_size=500, seed=3))
    assert result.inertia_pixels == 2000 and result.silhouette_pixels == 500
    pixels = read_pixels(path)
    scaled = (pixels - pixels.mean(axis=0)) / pixels.std(axis=0)
    for score in result.scores:
        # Not worse than scikit-learn's best of many restarts on all pixels (k < 4 has
        # several near-equal partitions of the four blobs, so equality is not guaranteed).
        reference = KMeans(score.k, n_init=20, random_state=0).fit(scaled)
        assert score.inertia <= reference.inertia_ * (1 + 1e-6)
        assert score.inertia >= 0.9 * reference.inertia_


@pytest.mark.parametrize("standardize, b_scale", [(True, 100), (False, 1)])
def test_inertia_of_the_true_blobs_in_the_units_of_the_scaling(make_raster, standardize, b_scale):
    path = blobs_raster(make_raster, shape=(40, 50), b_scale=b_scale)
    result = choose_k([RasterInput(str(path))],
                      settings=ChooseKSettings(k_min=4, k_max=4, sample_size=500,
                                               standardize=standardize))
    pixels = read_pixels(path)
    if standardize:
        pixels = (pixels - pixels.mean(axis=0)) / pixels.std(axis=0)
    blob = np.tile(np.arange(50) * 4 // 50, 40)  # the stripes the blobs were drawn in
    within = sum(((pixels[blob == b] - pixels[blob == b].mean(axis=0)) ** 2).sum()
                 for b in range(4))
    assert result.scores[0].inertia == pytest.approx(within, rel=1e-6)


def read_pixels(path):
    stack = FeatureStack([RasterInput(str(path))])
    features = stack.read(stack.grid.full_window)[0]
    return features.reshape(features.shape[0], -1).T.astype(np.float64)


def test_the_silhouette_sample_is_the_head_of_the_fit_sample(make_raster):
    path = blobs_raster(make_raster)
    with run_scope() as scope:
        source = StackSource((RasterInput(str(path)),), scope)
        windows = area_windows(opened(source), opened(source).grid.full_window)
        small = sample_valid_pixels(AreaBlocks(source), windows, 700, 5, Progress())
        large = sample_valid_pixels(AreaBlocks(source), windows, 7000, 5, Progress())
    assert np.array_equal(large[:700], small)


def test_same_seed_same_scores_other_seed_other_sample(make_raster):
    path = blobs_raster(make_raster, shape=(40, 50), spread=3.0)
    run = lambda seed: choose_k([RasterInput(str(path))],  # noqa: E731
                                settings=ChooseKSettings(k_min=2, k_max=3, sample_size=150,
                                                         seed=seed))
    assert run(1).scores == run(1).scores
    assert run(1).scores != run(2).scores


def test_area_restricts_the_pixels(make_raster):
    path = blobs_raster(make_raster)  # four vertical stripes, 25 columns each
    x0, y0 = 500000.0, 5800000.0
    # Only the first two stripes: two blobs.
    bbox = (x0, y0 - 800, x0 + 500, y0)
    result = choose_k([RasterInput(str(path))], bbox=bbox,
                      settings=ChooseKSettings(k_min=2, k_max=5, sample_size=500))
    assert result.recommended_k == 2
    assert result.inertia_pixels == 80 * 50


def test_sweep_stops_at_the_number_of_distinct_values(make_raster):
    values = np.repeat(np.array([0.1, 0.5, 0.9], dtype=np.float32), 40).reshape(10, 12)
    path = make_raster("three.tif", values)
    result = choose_k([RasterInput(str(path))],
                      settings=ChooseKSettings(k_min=2, k_max=6, sample_size=100))
    assert [s.k for s in result.scores] == [2, 3]
    assert result.recommended_k == 3
    assert "Stopped at k = 4" in result.messages[0]
    with pytest.raises(InvalidInputError, match="distinct"):
        choose_k([RasterInput(str(path))],
                 settings=ChooseKSettings(k_min=4, k_max=6, sample_size=100))


def test_few_pixels_of_several_features_stop_the_sweep(make_raster):
    bands = np.full((2, 6, 6), -9999.0, dtype=np.float32)
    bands[:, 0, :5] = [[0, 1, 5, 9, 20], [3, 0, 7, 2, 11]]
    path = make_raster("five.tif", bands, nodata=-9999.0)
    result = choose_k([RasterInput(str(path))],
                      settings=ChooseKSettings(k_min=2, k_max=7, sample_size=100))
    assert [s.k for s in result.scores] == [2, 3, 4, 5]
    assert result.scores[-1].inertia == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(result.scores[-1].silhouette), "5 clusters of 5 pixels: undefined"
    assert "Stopped at k = 6: the area has only 5 valid pixels" in result.messages[-1]
    assert not math.isnan(result.scores[result.recommended_k - 2].silhouette)
    assert result.recommendation_reason.startswith("the highest silhouette")


def test_no_valid_pixel_is_a_clear_error(make_raster):
    path = make_raster("empty.tif", np.full((10, 10), -9999.0, dtype=np.float32), nodata=-9999.0)
    with pytest.raises(InvalidInputError, match="no valid pixel"):
        choose_k([RasterInput(str(path))], settings=ChooseKSettings(sample_size=100))


@pytest.mark.parametrize("options, message", [
    ({"k_min": 5, "k_max": 4}, "K_MIN"),
    ({"k_min": 1}, "K_MIN"),
    ({"k_max": 300}, "K_MAX"),
    ({"k_max": 10, "sample_size": 10}, "SAMPLE_SIZE"),
    ({"sample_size": 200_000}, "SAMPLE_SIZE"),
])
def test_bad_settings_are_refused(options, message):
    with pytest.raises(InvalidInputError, match=message):
        ChooseKSettings(**options).validate()


def test_cancelling_stops_the_sweep(make_raster):
    path = blobs_raster(make_raster)
    calls = []

    def cancel_later():
        calls.append(1)
        return len(calls) > 10

    with pytest.raises(CancelledError):
        choose_k([RasterInput(str(path))], settings=ChooseKSettings(sample_size=300),
                 is_cancelled=cancel_later)


def test_elbow_of_a_handbook_curve():
    # x = 0, .25, .5, .75, 1; y = (I - 12) / 88 = 1, .205, .091, .034, 0; chord y = 1 - x;
    # below the chord by .545, .409, .216 at k = 3, 4, 5: the elbow is k = 3.
    assert elbow_k([2, 3, 4, 5, 6], [100, 30, 20, 15, 12]) == 3


@pytest.mark.parametrize("ks, inertias", [
    ([2, 3, 4, 5], [40, 30, 20, 10]),  # straight
    ([2, 3, 4, 5], [40, 39, 35, 10]),  # concave: every point above the chord
    ([2, 3], [40, 10]),  # too few points
    ([2, 3, 4], [5, 5, 5]),  # flat
])
def test_no_elbow(ks, inertias):
    assert elbow_k(ks, inertias) is None


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.1, 1e6), min_size=3, max_size=15))
def test_elbow_is_the_point_farthest_below_the_chord(drops):
    inertias = np.cumsum(drops[::-1])[::-1]  # strictly decreasing
    ks = list(range(2, 2 + len(inertias)))
    elbow = elbow_k(ks, inertias)
    x = (np.array(ks) - ks[0]) / (ks[-1] - ks[0])
    y = (inertias - inertias.min()) / (inertias.max() - inertias.min())
    below = (1 - x) - y  # the chord of a decreasing curve normalised to 0..1 is y = 1 - x
    if below[1:-1].max() <= 1e-9:
        assert elbow is None or below[ks.index(elbow)] >= below[1:-1].max() - 1e-9
    else:
        assert below[ks.index(elbow)] == pytest.approx(below[1:-1].max(), abs=1e-12)


def test_recommendation_is_the_highest_silhouette_smallest_k_on_a_tie():
    scores = [KScores(2, 9.0, 0.5), KScores(3, 5.0, 0.8), KScores(4, 3.0, 0.8),
              KScores(5, 2.0, 0.1)]
    assert recommend_k(scores, elbow=4) == 3
    undefined = [KScores(2, 9.0, math.nan), KScores(3, 5.0, math.nan)]
    assert recommend_k(undefined, elbow=None) == 2
    assert recommend_k(undefined + [KScores(4, 3.0, math.nan)], elbow=3) == 3
