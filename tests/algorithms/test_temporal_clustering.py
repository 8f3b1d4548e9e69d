"""Temporal clustering: k-means on an index over several dates, one feature per date.

The synthetic time series has the landscape of make_scene(size, seed), whose truth.tif is the
truth of every date; its dates are not pixel-aligned, as real ones (NAIP) are not.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import read_raster
from osgeo import gdal
from scipy.optimize import linear_sum_assignment
from synthetic_scene import CROP, FOREST, WATER, make_time_series

DATES = ("2021-04-10", "2021-05-20", "2021-06-25", "2021-07-30", "2021-09-10")
NAIP_NDVI = "(B4 - B1) / (B4 + B1)"  # NAIP bands: red, green, blue, NIR


def kmeans(inputs, tmp_path, name="classes", **parameters):
    import processing

    return processing.run("rasterclustering:kmeans", {
        "INPUT": [str(path) for path in inputs], "CLUSTERS": 5, "SEED": 0,
        "OUTPUT": str(tmp_path / f"{name}.tif"), "CENTROIDS": str(tmp_path / f"{name}.json"),
        "STATISTICS": "TEMPORARY_OUTPUT", **parameters})


def best_matching(labels, truth, k=5):
    """The fraction of valid pixels whose class matches the truth once classes are paired
    one-to-one to maximise that fraction (Hungarian method), and the pairs {class: true class}."""
    valid = truth > 0
    table = np.zeros((k + 1, k + 1))
    np.add.at(table, (labels[valid], truth[valid]), 1)
    rows, cols = linear_sum_assignment(-table[1:, 1:])
    return table[rows + 1, cols + 1].sum() / valid.sum(), dict(zip(rows + 1, cols + 1))


@pytest.fixture(scope="module")
def time_series(tmp_path_factory, scene):
    """Five NDVI dates of the scene fixture's landscape (size 300, seed 0)."""
    return make_time_series(tmp_path_factory.mktemp("time_series"), dates=DATES, size=300,
                            seed=0)


@pytest.mark.usefixtures("provider")
class TestSyntheticDates:
    def test_dates_are_not_aligned_and_the_output_is_on_the_first_grid(self, time_series,
                                                                       tmp_path):
        grids = {(gdal.Open(str(p)).GetGeoTransform(), gdal.Open(str(p)).RasterXSize)
                 for p in time_series}
        assert len(grids) == len(DATES), "each date has its own grid"
        result = kmeans(time_series, tmp_path)
        output, first = gdal.Open(result["OUTPUT"]), gdal.Open(str(time_series[0]))
        assert output.GetGeoTransform() == first.GetGeoTransform()
        assert (output.RasterXSize, output.RasterYSize) == (300, 300)

    def test_five_dates_find_the_true_classes(self, time_series, scene, tmp_path):
        result = kmeans(time_series, tmp_path)
        labels, truth = read_raster(result["OUTPUT"]), read_raster(scene.truth)
        agreement, pairs = best_matching(labels, truth)
        assert agreement >= 0.9
        document = json.loads(open(result["CENTROIDS"]).read())
        assert document["features"] == [f"NDVI {date}" for date in DATES]
        # The centres follow each class's phenology, date by date (features in date order).
        centre = {true: np.array(document[next(iter(document))][label - 1][1])
                  for label, true in pairs.items()}
        assert np.all(centre[WATER] < 0) and np.all(centre[FOREST] > 0.5)
        april, june, september = centre[CROP][0], centre[CROP][2], centre[CROP][4]
        assert june > 0.6 and april < june - 0.3 and september < june - 0.3

    def test_one_date_cannot_tell_crops_from_forest(self, time_series, scene, tmp_path):
        """The control: in late June crops and forest look alike, so one date is not enough."""
        result = kmeans(time_series[2:3], tmp_path)
        agreement, _ = best_matching(read_raster(result["OUTPUT"]), read_raster(scene.truth))
        assert agreement < 0.9

    def test_clip_quantiles_record_each_dates_percentiles(self, time_series, scene, tmp_path):
        result = kmeans(time_series, tmp_path, CLIP_QUANTILES="1,99")
        agreement, _ = best_matching(read_raster(result["OUTPUT"]), read_raster(scene.truth))
        assert agreement >= 0.9
        document = json.loads(open(result["CENTROIDS"]).read())
        assert document["features"] == [f"NDVI {date}" for date in DATES]
        clip = document["clip"]
        assert clip["quantiles"] == [1.0, 99.0]
        for path, lower, upper in zip(time_series, clip["lower"], clip["upper"]):
            # Estimated on the pixels aligned onto the first grid (nearest neighbour): the
            # same landscape, so the file's own percentiles within a small tolerance.
            values = read_raster(path).ravel()
            assert lower == pytest.approx(np.percentile(values, 1), abs=0.02)
            assert upper == pytest.approx(np.percentile(values, 99), abs=0.02)
        for row in document[next(iter(document))]:
            assert all(low <= v <= high for v, low, high in zip(row[1], clip["lower"],
                                                                 clip["upper"]))


@pytest.fixture(scope="module")
def naip_ndvi(provider, shared_data, tmp_path_factory):
    """The five NAIP dates and the NDVI of each, by band math."""
    import processing

    folder = tmp_path_factory.mktemp("naip_ndvi")
    files = sorted((shared_data / "naip-timeseries").glob("*.tif"))
    assert len(files) == 5
    return files, [processing.run("rasterclustering:bandmath", {
        "INPUT": [str(path)], "EXPRESSION": NAIP_NDVI,
        "OUTPUT": str(folder / f"ndvi_{path.name.split('_')[5]}.tif")})["OUTPUT"]
        for path in files]


@pytest.mark.usefixtures("provider")
class TestNaipDates:
    """The reference tutorial's analysis: NDVI of each NAIP date, then k-means on the dates."""

    def test_ndvi_dates_cluster_on_the_first_dates_grid(self, naip_ndvi, tmp_path):
        files, ndvi = naip_ndvi
        result = kmeans(ndvi, tmp_path, SAMPLE_SIZE=50000)
        output, first = gdal.Open(result["OUTPUT"]), gdal.Open(str(files[0]))
        assert output.GetGeoTransform() == first.GetGeoTransform()
        assert (output.RasterXSize, output.RasterYSize) == (first.RasterXSize,
                                                            first.RasterYSize)
        document = json.loads(open(result["CENTROIDS"]).read())
        # One feature per date. Band math describes every layer with the same expression, so
        # the layer names (the files' names, one per date) tell the dates apart.
        assert document["features"] == [Path(path).stem for path in ndvi]
        assert document["features"][0] == "ndvi_20090818"
        assert len(document[next(iter(document))]) == 5
        assert all(len(row[1]) == 5 for row in document[next(iter(document))])

    def test_the_classes_match_scikit_learn_on_an_independently_aligned_stack(
            self, naip_ndvi, tmp_path):
        from sklearn.cluster import KMeans
        from sklearn.metrics import adjusted_rand_score

        _, ndvi = naip_ndvi
        labels = read_raster(kmeans(ndvi, tmp_path, SAMPLE_SIZE=50000)["OUTPUT"])
        first = gdal.Open(ndvi[0])
        x0, dx, _, y0, _, dy = first.GetGeoTransform()
        width, height = first.RasterXSize, first.RasterYSize
        bounds = (x0, y0 + dy * height, x0 + dx * width, y0)
        stack = np.stack([gdal.Warp("", path, format="MEM", outputBounds=bounds, width=width,
                                    height=height, resampleAlg="near").ReadAsArray()
                          for path in ndvi], axis=-1).reshape(-1, len(ndvi)).astype(np.float64)
        valid = np.all(np.isfinite(stack), axis=1)
        np.testing.assert_array_equal(labels.ravel() > 0, valid)
        features = stack[valid]
        features = (features - features.mean(axis=0)) / features.std(axis=0)
        oracle = KMeans(5, n_init=10, random_state=0).fit(features)
        assert adjusted_rand_score(oracle.labels_, labels.ravel()[valid]) > 0.95
