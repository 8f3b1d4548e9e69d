"""Exact 1-D k-means: checked against a brute-force DP, scikit-learn and real rasters."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from osgeo import gdal
from raster_clustering.core.clustering import kmeans_1d, optimal_cuts
from raster_clustering.core.clustering.kmeans_1d import fit_kmeans_1d, kmeans_1d_exact, label_values
from raster_clustering.core.errors import CancelledError, InvalidInputError
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits


def brute_force_kmeans(values, n_clusters):
    """Optimal 1-D k-means by the textbook O(k n^2) DP over the sorted values.

    Returns (least sum of squares, centres of one optimal partition).
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    # cost[a, b]: sum of squares of x[a:b] about its mean, from sums taken about x[a] (stable).
    cost = np.full((n + 1, n + 1), np.inf)
    for a in range(n):
        d = x[a:] - x[a]
        length = np.arange(1, n - a + 1)
        cost[a, a + 1 :] = np.cumsum(d * d) - np.cumsum(d) ** 2 / length
    best = np.full((n_clusters + 1, n + 1), np.inf)
    best[0, 0] = 0.0
    choice = np.zeros((n_clusters + 1, n + 1), dtype=int)
    for j in range(1, n_clusters + 1):
        for b in range(j, n + 1):
            candidates = best[j - 1, :b] + cost[:b, b]
            choice[j, b] = int(np.argmin(candidates))
            best[j, b] = candidates[choice[j, b]]
    ends, b = [], n
    for j in range(n_clusters, 0, -1):
        ends.append((choice[j, b], b))
        b = choice[j, b]
    centres = [x[a:b].mean() for a, b in reversed(ends)]
    return max(float(best[n_clusters, n]), 0.0), np.array(centres)


def weighted_dp_cost(distinct, counts, n_clusters):
    """Optimal k-means cost of values given as distinct values with counts (O(k D^2) DP)."""
    v = np.asarray(distinct, dtype=np.float64)
    w = np.asarray(counts, dtype=np.float64)
    c0, c1, c2 = (np.r_[0.0, np.cumsum(w * v**p)] for p in (0, 1, 2))
    size = v.size
    best = np.full((n_clusters + 1, size + 1), np.inf)
    best[0, 0] = 0.0
    for j in range(1, n_clusters + 1):
        for b in range(j, size + 1):
            a = np.arange(b)
            s = c1[b] - c1[a]
            best[j, b] = np.min(best[j - 1, a] + (c2[b] - c2[a]) - s * s / (c0[b] - c0[a]))
    return float(best[n_clusters, size])


def assert_consistent(values, result):
    """The result describes the nearest-centre partition of the values: counts, means, SSE."""
    values = np.asarray(values, dtype=np.float64)
    centres = result.centres
    assert centres.dtype == np.float64 and result.counts.dtype == np.int64
    assert np.all(np.diff(centres) > 0)
    labels = label_values(values, centres).astype(int)
    counts = np.bincount(labels, minlength=centres.size + 1)[1:]
    np.testing.assert_array_equal(counts, result.counts)
    scale = np.abs(values).max() + 1.0
    means = np.bincount(labels, weights=values)[1:] / counts
    np.testing.assert_allclose(centres, means, rtol=1e-9, atol=1e-12 * scale)
    sse = float(((values - centres[labels - 1]) ** 2).sum())
    assert result.inertia == pytest.approx(sse, rel=1e-9, abs=1e-12 * scale**2)
    assert result.n_values == values.size


def scikit_learn_inertia(values, n_clusters):
    # One thread: much faster than OpenMP threads competing on a busy machine, and repeatable.
    with threadpool_limits(1):
        model = KMeans(n_clusters=n_clusters, n_init=10, random_state=0)
        return model.fit(np.asarray(values, dtype=np.float64)[:, None]).inertia_


def blocks_of(values, size):
    return lambda: (values[i : i + size] for i in range(0, values.size, size))


def mixture(seed, n_values, n_components=5, dtype=np.float64):
    rng = np.random.default_rng(seed)
    means = np.sort(rng.uniform(0.0, 10.0, n_components))
    spreads = rng.uniform(0.05, 0.8, n_components)
    weights = rng.dirichlet(np.ones(n_components))
    component = rng.choice(n_components, n_values, p=weights)
    return rng.normal(means[component], spreads[component]).astype(dtype)


# Module settings that force every stage of the method onto small data: coarse bins (cuts
# inside bins, gathered values), coarse views, and re-binning passes.
FORCED = {
    "default": {},
    "coarse_bins": {"_HISTOGRAM_BINS": 8, "_COARSEST_VIEW_ATOMS": 2},
    "rebinning": {"_HISTOGRAM_BINS": 4, "_GATHER_VALUES": 6, "_REFINE_BINS": 12,
                  "_COARSEST_VIEW_ATOMS": 2},
}


@pytest.fixture(params=list(FORCED))
def forced(request, monkeypatch):
    force(monkeypatch, FORCED[request.param])
    return request.param


def force(monkeypatch, settings):
    """Set module settings of the fit (kmeans_1d) or of its cut bounds (optimal_cuts)."""
    for name, value in settings.items():
        module = optimal_cuts if hasattr(optimal_cuts, name) else kmeans_1d
        monkeypatch.setattr(module, name, value)


SMALL_DATA = {
    "floats": lambda rng: rng.normal(0.0, 1.0, 300),
    "mixture": lambda rng: mixture(int(rng.integers(1000)), 250),
    "integers_with_ties": lambda rng: rng.integers(0, 40, 200).astype(float),
    "duplicated_floats": lambda rng: np.repeat(rng.uniform(-5, 5, 60), rng.integers(1, 5, 60)),
}


@pytest.mark.parametrize("kind", list(SMALL_DATA))
@pytest.mark.parametrize("n_clusters", [2, 3, 5, 8])
def test_equals_brute_force_dp(forced, kind, n_clusters):
    rng = np.random.default_rng(n_clusters)
    values = SMALL_DATA[kind](rng)
    expected_cost, expected_centres = brute_force_kmeans(values, n_clusters)
    result = kmeans_1d_exact(values, n_clusters)
    assert result.inertia == pytest.approx(expected_cost, rel=1e-9)
    assert_consistent(values, result)
    if kind in ("floats", "mixture"):  # continuous data: the optimum is unique
        np.testing.assert_allclose(result.centres, expected_centres, rtol=1e-9, atol=1e-12)


def clumps(seed):
    """A few normal clumps of a few values each, a cluster count and a (coarse) bin count."""
    rng = np.random.default_rng(seed)
    n_clumps = rng.integers(2, 5)
    centres = np.sort(rng.uniform(0, 10, n_clumps))
    sizes = rng.integers(3, 25, n_clumps)
    spreads = rng.uniform(0.01, 1.5, n_clumps)
    values = np.concatenate([rng.normal(c, s, m) for c, s, m in zip(centres, spreads, sizes)])
    return values, int(rng.integers(2, min(5, values.size))), int(rng.choice([4, 8, 16]))


# Seeds whose optimal partition cuts inside a bin while a different partition, with its cuts on
# bin edges, costs less than moving that cut to an edge: a rounding bound 20 times too weak
# would rule the bin out and return the wrong partition.
@pytest.mark.parametrize("seed", [606, 612, 972, 1334, 1346, 2220, 2681, 2864])
def test_cuts_inside_bins_beside_near_ties(monkeypatch, seed):
    values, n_clusters, n_bins = clumps(seed)
    force(monkeypatch, {"_HISTOGRAM_BINS": n_bins, "_COARSEST_VIEW_ATOMS": 2})
    expected_cost, expected_centres = brute_force_kmeans(values, n_clusters)
    result = kmeans_1d_exact(values, n_clusters)
    assert result.inertia == pytest.approx(expected_cost, rel=1e-9)
    np.testing.assert_allclose(result.centres, expected_centres, rtol=1e-9)


def test_forced_settings_do_take_extra_passes(monkeypatch):
    """The re-binning settings above really exercise the re-binning passes."""
    force(monkeypatch, FORCED["rebinning"])
    monkeypatch.setattr(kmeans_1d, "_CACHE_VALUES", 0)
    values = mixture(3, 300)
    calls = []

    def read():
        calls.append(1)
        return iter([values])

    result = fit_kmeans_1d(read, 4)
    assert len(calls) > 3
    assert result.inertia == pytest.approx(brute_force_kmeans(values, 4)[0], rel=1e-9)


@settings(max_examples=50, deadline=None)
@given(
    values=st.one_of(
        st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=1, max_size=40),
        st.lists(st.integers(-5, 5).map(float), min_size=1, max_size=40),
    ),
    n_clusters=st.integers(1, 5),
)
def test_property_equals_brute_force(values, n_clusters):
    values = np.array(values)
    n_distinct = np.unique(values).size
    if n_distinct < n_clusters:
        with pytest.raises(InvalidInputError, match=f"only {n_distinct} distinct"):
            kmeans_1d_exact(values, n_clusters)
        return
    expected_cost, _ = brute_force_kmeans(values, n_clusters)
    result = kmeans_1d_exact(values, n_clusters)
    scale = float((values - values.mean()) @ (values - values.mean())) + 1.0
    assert result.inertia == pytest.approx(expected_cost, rel=1e-9, abs=1e-12 * scale)
    assert_consistent(values, result)


@pytest.mark.parametrize(
    ("seed", "n_values", "n_clusters"),
    [(0, 10_000, 2), (1, 30_000, 4), (2, 100_000, 3), (3, 20_000, 10)],
)
def test_never_worse_than_scikit_learn(seed, n_values, n_clusters):
    values = mixture(seed, n_values, n_components=6)
    result = kmeans_1d_exact(values, n_clusters)
    assert result.inertia <= scikit_learn_inertia(values, n_clusters) * (1 + 1e-9)
    assert_consistent(values, result)


def test_strictly_better_than_scikit_learn_on_many_small_clusters():
    # Twelve narrow components, nine clusters: Lloyd's local optima are common here.
    rng = np.random.default_rng(8)
    means = np.sort(rng.uniform(0, 10, 12))
    spreads = rng.uniform(0.02, 0.3, 12)
    component = rng.choice(12, 20_000, p=rng.dirichlet(np.ones(12)))
    values = rng.normal(means[component], spreads[component])
    result = kmeans_1d_exact(values, 9)
    assert result.inertia < scikit_learn_inertia(values, 9) * (1 - 1e-3)
    assert_consistent(values, result)


def test_block_sizes_do_not_change_the_result(monkeypatch):
    monkeypatch.setattr(kmeans_1d, "_CACHE_VALUES", 0)  # every pass re-reads the blocks
    values = mixture(4, 20_000, dtype=np.float32)
    results = [fit_kmeans_1d(blocks_of(values, size), 5) for size in (20_000, 4096, 333, 29)]
    for result in results[1:]:
        np.testing.assert_array_equal(result.counts, results[0].counts)
        np.testing.assert_allclose(result.centres, results[0].centres, rtol=1e-12)
        assert result.inertia == pytest.approx(results[0].inertia, rel=1e-12)
    assert_consistent(values, results[0])
    single = fit_kmeans_1d(blocks_of(values[:500], 1), 5)
    np.testing.assert_allclose(single.centres, kmeans_1d_exact(values[:500], 5).centres,
                               rtol=1e-12)


@pytest.mark.parametrize("give_range", [False, True])
def test_passes_over_the_data(monkeypatch, give_range):
    monkeypatch.setattr(kmeans_1d, "_CACHE_VALUES", 0)
    values = mixture(5, 50_000, dtype=np.float32)
    calls = []

    def read():
        calls.append(1)
        return blocks_of(values, 8192)()

    value_range = (float(values.min()), float(values.max())) if give_range else None
    fit_kmeans_1d(read, 6, value_range=value_range)
    assert len(calls) <= (2 if give_range else 3)


def test_uint8_like_data_is_exact_from_the_histogram_alone(monkeypatch):
    monkeypatch.setattr(kmeans_1d, "_CACHE_VALUES", 0)
    rng = np.random.default_rng(6)
    values = np.clip(rng.normal(90, 40, 200_000), 0, 255).round().astype(np.float32)
    values[:5000] = 255  # a saturated spike
    calls = []

    def read():
        calls.append(1)
        return blocks_of(values, 10_000)()

    result = fit_kmeans_1d(read, 7, value_range=(0, 255))
    distinct, counts = np.unique(values, return_counts=True)
    assert result.inertia == pytest.approx(weighted_dp_cost(distinct, counts, 7), rel=1e-9)
    assert len(calls) == 1  # pure bins: no pass to gather values
    assert_consistent(values, result)


def test_values_spread_over_twelve_decades():
    rng = np.random.default_rng(7)
    values = 10.0 ** rng.uniform(-6, 6, 250)
    for n_clusters in (2, 4, 7):
        result = kmeans_1d_exact(values, n_clusters)
        expected_cost, expected_centres = brute_force_kmeans(values, n_clusters)
        assert result.inertia == pytest.approx(expected_cost, rel=1e-9)
        np.testing.assert_allclose(result.centres, expected_centres, rtol=1e-9)


def test_tiny_spread_far_from_zero():
    # Catastrophic cancellation territory: sums of squares near 1e12, differences near 1e-6.
    rng = np.random.default_rng(8)
    values = 1e6 + np.r_[rng.normal(0, 1e-3, 150), rng.normal(0.01, 1e-3, 100)]
    result = kmeans_1d_exact(values, 3)
    expected_cost, expected_centres = brute_force_kmeans(values, 3)
    assert result.inertia == pytest.approx(expected_cost, rel=1e-6)
    np.testing.assert_allclose(result.centres, expected_centres, rtol=1e-12)


def test_a_constant_block_among_others(monkeypatch):
    monkeypatch.setattr(kmeans_1d, "_CACHE_VALUES", 0)
    rng = np.random.default_rng(9)
    parts = [rng.normal(0, 1, 120), np.full(90, 0.25), rng.normal(3, 0.5, 80)]
    values = np.concatenate(parts)
    result = fit_kmeans_1d(lambda: iter(parts), 4)
    assert result.inertia == pytest.approx(brute_force_kmeans(values, 4)[0], rel=1e-9)
    assert_consistent(values, result)


def test_constant_data():
    result = kmeans_1d_exact(np.full(1000, 0.5, dtype=np.float32), 1)
    np.testing.assert_array_equal(result.centres, [0.5])
    assert result.inertia == 0.0
    np.testing.assert_array_equal(result.counts, [1000])
    with pytest.raises(InvalidInputError, match="only 1 distinct valid values but 2 clusters"):
        kmeans_1d_exact(np.full(1000, 0.5), 2)


@pytest.mark.parametrize("blocks", [[], [np.zeros(0, dtype=np.float32)] * 3])
def test_no_values_is_an_error(blocks):
    with pytest.raises(InvalidInputError, match="no valid pixels"):
        fit_kmeans_1d(lambda: iter(blocks), 2)
    with pytest.raises(InvalidInputError, match="no valid pixels"):
        fit_kmeans_1d(lambda: iter(blocks), 2, value_range=(0.0, 1.0))


def test_too_few_distinct_values(monkeypatch):
    with pytest.raises(InvalidInputError, match=r"only 3 distinct valid values but 4 clusters "
                                                 r"requested; choose K \u2264 3"):
        kmeans_1d_exact(np.array([1.0, 1.0, 2.0, 2.0, 3.0]), 4)
    # Values too close to ever share a bin edge: still counted exactly.
    monkeypatch.setattr(kmeans_1d, "_CACHE_VALUES", 0)
    values = np.repeat([0.0, 1e-12, 2e-12, 5.0], 10_000)
    with pytest.raises(InvalidInputError, match="only 4 distinct valid values but 5 clusters"):
        fit_kmeans_1d(blocks_of(values, 3000), 5)
    assert fit_kmeans_1d(blocks_of(values, 3000), 4).inertia == pytest.approx(0.0, abs=1e-20)


@pytest.mark.parametrize("n_clusters", [0, -1, 256, 2.5])
def test_bad_cluster_counts(n_clusters):
    with pytest.raises(InvalidInputError, match="number of clusters"):
        kmeans_1d_exact(np.arange(10.0), n_clusters)


def test_non_finite_values_and_bad_ranges():
    values = np.array([0.0, 1.0, np.nan, 2.0])
    with pytest.raises(InvalidInputError, match="NaN or infinity"):
        kmeans_1d_exact(values, 2)
    with pytest.raises(InvalidInputError, match="NaN or infinity"):
        fit_kmeans_1d(lambda: iter([values]), 2, value_range=(0.0, 2.0))
    with pytest.raises(InvalidInputError, match="value range"):
        fit_kmeans_1d(lambda: iter([np.arange(5.0)]), 2, value_range=(4.0, 0.0))


def test_value_range_wider_or_narrower_than_the_data(monkeypatch):
    monkeypatch.setattr(kmeans_1d, "_CACHE_VALUES", 0)
    values = mixture(10, 3000)
    expected = kmeans_1d_exact(values, 4)
    for value_range in ((-1e4, 1e4), (2.0, 3.0), (values.min(), values.max())):
        result = fit_kmeans_1d(blocks_of(values, 1000), 4, value_range=value_range)
        np.testing.assert_array_equal(result.counts, expected.counts)
        np.testing.assert_allclose(result.centres, expected.centres, rtol=1e-12)


def test_cancellation_between_blocks():
    values = mixture(11, 10_000)
    polls = []

    def is_cancelled():
        polls.append(1)
        return len(polls) > 3

    with pytest.raises(CancelledError):
        fit_kmeans_1d(blocks_of(values, 1000), 3, is_cancelled=is_cancelled)
    assert len(polls) == 4  # stopped at the first poll that said yes


def test_progress_rises_to_one(monkeypatch):
    monkeypatch.setattr(kmeans_1d, "_CACHE_VALUES", 0)
    reported = []
    fit_kmeans_1d(blocks_of(mixture(12, 20_000), 1000), 5, progress=reported.append)
    assert reported[-1] == 1.0
    assert all(0 < f <= 1 for f in reported)
    assert reported == sorted(reported)
    assert len(reported) > 10  # reported within passes, not only at their ends


def test_label_values_is_nearest_centre():
    rng = np.random.default_rng(13)
    centres = np.array([-1.0, 0.5, 0.75, 3.0])
    midpoints = (centres[:-1] + centres[1:]) / 2
    values = np.r_[rng.uniform(-3, 5, 4993), midpoints, centres].astype(np.float32)
    labels = label_values(values.reshape(50, -1), centres)
    assert labels.dtype == np.uint8 and labels.shape == (50, values.size // 50)
    distance = np.abs(values.astype(np.float64)[:, None] - centres[None, :])
    np.testing.assert_array_equal(labels.ravel(), np.argmin(distance, axis=1) + 1)
    np.testing.assert_array_equal(label_values(midpoints, centres), [1, 2, 3])  # ties: lower


def test_real_uint8_band_is_exact(shared_data):
    dataset = gdal.Open(str(shared_data / "misc" / "RGB.byte.tif"))
    assert dataset is not None
    band = dataset.GetRasterBand(1)
    nodata = band.GetNoDataValue()

    def read():
        for row in range(0, dataset.RasterYSize, 64):
            rows = min(64, dataset.RasterYSize - row)
            block = band.ReadAsArray(0, row, dataset.RasterXSize, rows).ravel()
            yield block[block != nodata].astype(np.float32)

    result = fit_kmeans_1d(read, 6)
    values = np.concatenate(list(read()))
    distinct, counts = np.unique(values, return_counts=True)
    assert result.inertia == pytest.approx(weighted_dp_cost(distinct, counts, 6), rel=1e-9)
    assert_consistent(values, result)


def test_real_ndvi_beats_scikit_learn(shared_data):
    folder = shared_data / "landsat8-thermal"
    window = (200, 150, 160, 160)  # xoff, yoff, xsize, ysize
    red, nir = (
        gdal.Open(str(folder / f"LC80200392015216LGN00_{b}_crop.TIF")).ReadAsArray(*window)
        for b in ("B4", "B5")
    )
    valid = (red > 0) & (nir > 0)
    ndvi = ((nir - red.astype(np.float64)) / (nir + red.astype(np.float64)))[valid]
    assert ndvi.size > 20_000
    ndvi = ndvi.astype(np.float32)
    result = kmeans_1d_exact(ndvi, 4)
    assert result.inertia <= scikit_learn_inertia(ndvi, 4) * (1 + 1e-9)
    assert_consistent(ndvi, result)
