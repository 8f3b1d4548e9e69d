"""Fuzzy c-means and ISODATA through the raster pipeline, and the per-pixel rasters of every
method: memberships that sum to 1, classes of the highest membership, distances recomputed
independently from the centroid JSON, saved fuzzy centres reapplied, nothing left on failure."""

import json

import numpy as np
import pytest
from helpers import read_raster
from osgeo import gdal
from raster_clustering.core.clustering.apply_centroids import apply_centroids
from raster_clustering.core.clustering.classify import PixelOutputs
from raster_clustering.core.clustering.fuzzy_cmeans import FuzzyCMeansSettings
from raster_clustering.core.clustering.isodata import IsodataOptions, IsodataSettings
from raster_clustering.core.clustering.kmeans import KMeansSettings, cluster_rasters
from raster_clustering.core.errors import CancelledError, InvalidInputError
from raster_clustering.core.io.feature_stack import RasterInput

SHAPE = (60, 80)
MEANS = np.array([[0.1, 0.5, 20.0], [0.6, 0.2, 35.0], [0.3, 0.8, 50.0], [0.8, 0.7, 10.0]])


@pytest.fixture
def blobs(make_raster):
    """Three bands (two in 0..1, one in other units) of four groups in quadrants, with noise and
    a nodata hole; returns (path, values (3, h, w) float64, truth 0..3, valid)."""
    rng = np.random.default_rng(0)
    rows, cols = np.indices(SHAPE)
    truth = (rows >= SHAPE[0] // 2) * 2 + (cols >= SHAPE[1] // 2)
    values = MEANS[truth].transpose(2, 0, 1) * (1 + rng.normal(0, 0.05, (3, *SHAPE)))
    values = values.astype(np.float32)
    values[:, 5:9, 5:12] = -9999.0
    valid = values[0] != -9999.0
    path = make_raster("stack.tif", values, nodata=-9999.0,
                       descriptions=["red", "nir", "temperature"])
    return path, values.astype(np.float64), truth, valid


def run(path, tmp_path, settings, **options):
    outputs = PixelOutputs(distance_path=tmp_path / "distance.tif",
                           membership_path=options.pop("membership", None))
    return cluster_rasters([RasterInput(str(path))], tmp_path / "classes.tif", settings=settings,
                           pixel_outputs=outputs, **options)


def independent_distances(document, values, labels, valid):
    """Each valid pixel's distance to its class centre, from the JSON alone."""
    centres = np.array([entry[1] for entry in document[next(iter(document))]])
    points = values[:, valid].T
    if document.get("standardize"):
        mean = np.array(document["standardize"]["mean"])
        std = np.array(document["standardize"]["std"])
        points, centres = (points - mean) / std, (centres - mean) / std
    transform = document.get("metric_transform")
    if transform is not None:
        points, centres = points @ np.array(transform), centres @ np.array(transform)
    return np.linalg.norm(points - centres[labels[valid] - 1], axis=1)


def bands_of(path):
    dataset = gdal.Open(str(path))
    return np.stack([dataset.GetRasterBand(b + 1).ReadAsArray()
                     for b in range(dataset.RasterCount)])


@pytest.mark.parametrize("metric", ["euclidean", "diagonal", "mahalanobis"])
def test_fuzzy_zones_memberships_classes_and_distances(blobs, tmp_path, metric):
    path, values, truth, valid = blobs
    result = run(path, tmp_path, FuzzyCMeansSettings(n_clusters=4, distance_metric=metric,
                                                     seed=2),
                 membership=tmp_path / "membership.tif")
    result.model.save(tmp_path / "centres.json")
    labels = read_raster(tmp_path / "classes.tif")
    memberships = bands_of(tmp_path / "membership.tif")
    assert memberships.shape == (4, *SHAPE) and memberships.dtype == np.float32
    np.testing.assert_allclose(memberships[:, valid].sum(axis=0), 1.0, atol=1e-5)
    assert np.all(np.isnan(memberships[:, ~valid])) and np.all(labels[~valid] == 0)
    np.testing.assert_array_equal(labels[valid], memberships[:, valid].argmax(axis=0) + 1)
    # Four well-separated groups: one class each.
    for group in range(4):
        assert len(np.unique(labels[valid & (truth == group)])) == 1
    document = json.loads((tmp_path / "centres.json").read_text())
    assert document["method"] == "fuzzy c-means" and document["fuzziness"] == 1.3
    distance = read_raster(tmp_path / "distance.tif")
    np.testing.assert_allclose(distance[valid],
                               independent_distances(document, values, labels, valid),
                               rtol=1e-5, atol=1e-6)
    assert np.all(np.isnan(distance[~valid]))
    for row in result.statistics:  # each class's mean membership of its pixels
        members = labels == row.class_number
        assert row.mean_membership == pytest.approx(
            memberships[row.class_number - 1][members].astype(np.float64).mean(), rel=1e-5)
        assert 0.9 < row.mean_membership <= 1.0
    assert any(note.startswith("Fuzzy c-means converged") for note in result.notes)


def test_saved_fuzzy_centres_reapply_the_same_classes_and_distances(blobs, tmp_path):
    path, *_ = blobs
    fitted = run(path, tmp_path, FuzzyCMeansSettings(n_clusters=4, distance_metric="mahalanobis",
                                                     fuzziness=1.6))
    fitted.model.save(tmp_path / "centres.json")
    applied = apply_centroids([RasterInput(str(path))], tmp_path / "centres.json",
                              tmp_path / "applied.tif",
                              pixel_outputs=PixelOutputs(distance_path=tmp_path / "again.tif"))
    assert (tmp_path / "applied.tif").read_bytes() == (tmp_path / "classes.tif").read_bytes()
    np.testing.assert_array_equal(read_raster(tmp_path / "again.tif"),
                                  read_raster(tmp_path / "distance.tif"))
    assert [row.mean_membership for row in applied.statistics] == pytest.approx(
        [row.mean_membership for row in fitted.statistics])


@pytest.mark.parametrize("settings", [
    KMeansSettings(n_clusters=4, seed=1), KMeansSettings(n_clusters=4, standardize=False),
    IsodataSettings(IsodataOptions(initial_clusters=7, max_clusters=9, merge_distance=1.0)),
])
def test_distance_of_hard_methods_equals_the_distance_from_the_json(blobs, tmp_path, settings):
    path, values, _, valid = blobs
    result = run(path, tmp_path, settings)
    result.model.save(tmp_path / "centres.json")
    document = json.loads((tmp_path / "centres.json").read_text())
    labels = read_raster(tmp_path / "classes.tif")
    distance = read_raster(tmp_path / "distance.tif")
    np.testing.assert_allclose(distance[valid],
                               independent_distances(document, values, labels, valid),
                               rtol=1e-5, atol=1e-6)
    assert all(row.mean_membership is None for row in result.statistics)


def test_isodata_merges_down_to_the_four_groups(blobs, tmp_path):
    path, _, truth, valid = blobs
    result = run(path, tmp_path, IsodataSettings(IsodataOptions(
        initial_clusters=8, min_clusters=2, max_clusters=10, merge_distance=1.0), seed=4))
    assert result.model.n_clusters == 4 and result.model.method == "ISODATA"
    labels = read_raster(tmp_path / "classes.tif")
    for group in range(4):
        assert len(np.unique(labels[valid & (truth == group)])) == 1
    assert result.notes[0].startswith("ISODATA: 4 classes after")


def test_one_band_distance_is_in_the_bands_units(make_raster, tmp_path):
    values = np.array([[0.1, 0.2, 0.9], [1.0, 0.15, 0.95]] * 10, dtype=np.float32)
    path = make_raster("ndvi.tif", values, descriptions=["NDVI"])
    result = run(path, tmp_path, KMeansSettings(n_clusters=2))
    centres = result.model.centres[:, 0]
    labels = read_raster(tmp_path / "classes.tif")
    distance = read_raster(tmp_path / "distance.tif")
    np.testing.assert_allclose(distance, np.abs(values - centres[labels - 1]), rtol=1e-6)
    # The styling limit: every distance is sampled on so small a raster.
    assert result.distance_p98 == pytest.approx(np.percentile(distance, 98), rel=1e-6)
    dataset = gdal.Open(str(tmp_path / "distance.tif"))
    statistics = dataset.GetRasterBand(1).GetStatistics(0, 0)  # recorded, not computed
    np.testing.assert_allclose(statistics, [distance.min(), distance.max(), distance.mean(),
                                            distance.std()], rtol=1e-5, atol=1e-7)


def test_with_a_sieve_distances_describe_the_sieved_classes(blobs, tmp_path):
    path, values, _, valid = blobs
    result = run(path, tmp_path, FuzzyCMeansSettings(n_clusters=6, seed=1), min_area_m2=3000)
    assert result.sieve.changed_pixels > 0
    result.model.save(tmp_path / "centres.json")
    document = json.loads((tmp_path / "centres.json").read_text())
    labels = read_raster(tmp_path / "classes.tif")
    np.testing.assert_allclose(read_raster(tmp_path / "distance.tif")[valid],
                               independent_distances(document, values, labels, valid),
                               rtol=1e-5, atol=1e-6)


def test_the_same_seed_writes_the_same_files(blobs, tmp_path):
    path, *_ = blobs
    written = []
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        run(path, folder, FuzzyCMeansSettings(n_clusters=3, seed=9),
            membership=folder / "membership.tif")
        written.append([(folder / file).read_bytes()
                        for file in ("classes.tif", "distance.tif", "membership.tif")])
    assert written[0] == written[1]


@pytest.mark.parametrize("settings, message", [
    (FuzzyCMeansSettings(fuzziness=1.0), "FUZZINESS must be a number greater than 1"),
    (FuzzyCMeansSettings(distance_metric="manhattan"), "DISTANCE_METRIC"),
    (FuzzyCMeansSettings(n_clusters=1), "CLUSTERS must be a whole number from 2 to 255, not 1"),
    (IsodataSettings(IsodataOptions(min_clusters=6, max_clusters=4)), "MIN_CLUSTERS"),
])
def test_bad_settings_are_refused_before_anything_is_written(blobs, tmp_path, settings, message):
    path, *_ = blobs
    with pytest.raises(InvalidInputError, match=message):
        run(path, tmp_path, settings, membership=tmp_path / "membership.tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.tif"]


def test_memberships_of_hard_centres_are_refused_and_nothing_is_left(blobs, tmp_path):
    path, *_ = blobs
    with pytest.raises(InvalidInputError, match="Memberships need fuzzy c-means centres"):
        run(path, tmp_path, KMeansSettings(n_clusters=3), membership=tmp_path / "m.tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.tif"]


def test_cancelling_while_labelling_leaves_nothing(blobs, tmp_path, monkeypatch):
    from raster_clustering.core.io import rasters

    monkeypatch.setattr(rasters, "BLOCK_TARGET_PIXELS", 600)  # many blocks
    path, *_ = blobs
    reports = []
    with pytest.raises(CancelledError):
        run(path, tmp_path, FuzzyCMeansSettings(n_clusters=3),
            membership=tmp_path / "membership.tif", progress=reports.append,
            is_cancelled=lambda: len(reports) > 0 and reports[-1] > 0.7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.tif"]
