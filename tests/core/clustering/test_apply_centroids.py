"""Classifying with saved centres, against k-means's own output, numpy oracles and the truth."""

import json

import numpy as np
import pytest
from helpers import read_raster, three_level_field
from hypothesis import given, settings
from hypothesis import strategies as st
from osgeo import gdal
from raster_clustering.core.clustering.apply_centroids import (
    apply_centroids,
    check_features,
    usable_model,
)
from raster_clustering.core.clustering.centroid_model import CentroidModel
from raster_clustering.core.clustering.kmeans import KMeansSettings, cluster_rasters
from raster_clustering.core.errors import CancelledError, InvalidInputError
from raster_clustering.core.io.feature_stack import RasterInput
from raster_clustering.core.palette import class_colours
from scipy.optimize import linear_sum_assignment
from synthetic_scene import make_scene

ORIGIN = (500000.0, 5800000.0)


def field_values(seed=0):
    return three_level_field(seed, shape=(60, 80), noise=0.05)


def inputs(*paths):
    return [RasterInput(str(path)) for path in paths]


def polygon_wkt(col0, row0, col1, row1, pixel=10.0):
    x0, x1 = ORIGIN[0] + col0 * pixel, ORIGIN[0] + col1 * pixel
    y0, y1 = ORIGIN[1] - row1 * pixel, ORIGIN[1] - row0 * pixel
    return f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"


def write_json(path, document):
    path.write_text(json.dumps(document))
    return path


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if "partial" in p.name)


@pytest.fixture(scope="module")
def two_dates(tmp_path_factory):
    """Two synthetic scenes of different landscapes (seeds 0 and 1): "date 1" and "date 2"."""
    folder = tmp_path_factory.mktemp("dates")
    return make_scene(folder / "d1", size=120, seed=0), make_scene(folder / "d2", size=120, seed=1)


@pytest.mark.parametrize("options", [
    {},
    {"geometry_wkt": polygon_wkt(5, 5, 50, 40)},
    {"geometry_wkt": polygon_wkt(5, 5, 50, 40), "clip_to_area": False},
    {"bbox": (ORIGIN[0] + 100, ORIGIN[1] - 500, ORIGIN[0] + 600, ORIGIN[1] - 50),
     "min_area_m2": 800.0, "connectivity": 4},
])
def test_same_raster_reproduces_kmeans_byte_for_byte(make_raster, tmp_path, options):
    path = make_raster("ndvi.tif", field_values(), descriptions=["NDVI"])
    fitted = cluster_rasters(inputs(path), tmp_path / "kmeans.tif",
                             settings=KMeansSettings(n_clusters=4), **options)
    fitted.model.save(tmp_path / "centres.json")
    applied = apply_centroids(inputs(path), tmp_path / "centres.json", tmp_path / "applied.tif",
                              **options)
    assert (tmp_path / "applied.tif").read_bytes() == (tmp_path / "kmeans.tif").read_bytes()
    assert applied.messages == fitted.messages == []
    assert [s.pixel_count for s in applied.statistics] == [s.pixel_count for s in fitted.statistics]
    assert applied.output_grid == fitted.output_grid


def test_several_standardized_clipped_features_reproduce_kmeans(make_raster, tmp_path):
    rng = np.random.default_rng(3)
    bands = np.stack([field_values(1), 1000 * field_values(2) + rng.normal(0, 5, (60, 80))])
    path = make_raster("two.tif", bands.astype(np.float32), descriptions=["red", "nir"])
    settings = KMeansSettings(n_clusters=5, seed=4, clip_quantiles=(1.0, 99.0))
    fitted = cluster_rasters(inputs(path), tmp_path / "kmeans.tif", settings=settings)
    fitted.model.save(tmp_path / "centres.json")
    apply_centroids(inputs(path), tmp_path / "centres.json", tmp_path / "applied.tif")
    assert (tmp_path / "applied.tif").read_bytes() == (tmp_path / "kmeans.tif").read_bytes()


def test_another_date_keeps_water_as_class_1_and_agrees_with_the_truth(two_dates, tmp_path):
    date1, date2 = two_dates
    model = cluster_rasters(inputs(date1.nir), tmp_path / "d1.tif",
                            settings=KMeansSettings(n_clusters=2)).model
    model.save(tmp_path / "nir.json")
    result = apply_centroids(inputs(date2.nir), tmp_path / "nir.json", tmp_path / "d2.tif")
    labels, truth = read_raster(tmp_path / "d2.tif"), read_raster(date2.truth)
    valid = truth > 0
    assert np.array_equal(labels > 0, valid)
    water = truth[valid] == 1
    assert water.sum() > 100, "the second landscape has water"
    assert np.mean((labels[valid] == 1) == water) >= 0.99
    assert result.messages == [], "same band name 'nir' on both dates"


def test_six_band_centres_of_date_1_classify_date_2_like_the_truth(two_dates, tmp_path):
    date1, date2 = two_dates
    result = cluster_rasters(inputs(date1.scene), tmp_path / "d1.tif",
                             settings=KMeansSettings(n_clusters=5, seed=1))
    result.model.save(tmp_path / "scene.json")
    apply_centroids(inputs(date2.scene), tmp_path / "scene.json", tmp_path / "d2.tif")

    def confusion(labels, truth):
        valid = truth > 0
        table = np.zeros((6, 6))
        np.add.at(table, (labels[valid], truth[valid]), 1)
        return table

    # The class -> true class mapping is learnt on date 1 and must hold on date 2.
    table1 = confusion(read_raster(tmp_path / "d1.tif"), read_raster(date1.truth))
    rows, cols = linear_sum_assignment(-table1)
    table2 = confusion(read_raster(tmp_path / "d2.tif"), read_raster(date2.truth))
    assert table2[rows, cols].sum() / table2.sum() >= 0.95


def test_hand_written_reference_json_labels_by_nearest_centre(make_raster, tmp_path):
    values = field_values()
    path = make_raster("ndvi.tif", values, descriptions=["NDVI"])
    centres = [0.17, 0.4, 0.72]
    json_path = write_json(tmp_path / "ref.json",
                           {"NDVI": [[i + 1, [c]] for i, c in enumerate(centres)]})
    result = apply_centroids(inputs(path), json_path, tmp_path / "out.tif")
    expected = np.argmin(np.abs(values.astype(np.float64)[..., None] - centres), axis=-1) + 1
    labels = read_raster(tmp_path / "out.tif")
    assert np.array_equal(labels, expected)
    dataset = gdal.Open(str(tmp_path / "out.tif"))
    band = dataset.GetRasterBand(1)
    # (GDAL 3.6 loads a GeoTIFF's .aux.xml lazily, and GetCategoryNames alone does not load it.)
    assert band.GetDescription() == "k-means class"
    assert band.GetCategoryNames()[1:] == ["1 · 0.170", "2 · 0.400", "3 · 0.720"]
    assert band.GetColorTable().GetColorEntry(3)[:3] == class_colours(3)[2]
    assert [row.pixel_count for row in result.statistics] == [
        int((expected == c).sum()) for c in (1, 2, 3)]


def test_centres_in_any_order_keep_the_json_numbering(make_raster, tmp_path):
    values = field_values()
    path = make_raster("ndvi.tif", values, descriptions=["NDVI"])
    centres = [0.72, 0.17, 0.4]
    json_path = write_json(tmp_path / "ref.json",
                           {"NDVI": [[i + 1, [c]] for i, c in enumerate(centres)]})
    apply_centroids(inputs(path), json_path, tmp_path / "out.tif")
    expected = np.argmin(np.abs(values.astype(np.float64)[..., None] - centres), axis=-1) + 1
    assert np.array_equal(read_raster(tmp_path / "out.tif"), expected)


@settings(max_examples=50, deadline=None)
@given(centres=st.lists(st.floats(-1, 1), min_size=1, max_size=12, unique=True),
       values=st.lists(st.floats(-2, 2), min_size=1, max_size=50))
def test_unordered_one_feature_centres_label_by_nearest_centre(centres, values):
    model = usable_model(CentroidModel(("x",), np.array(centres)[:, None]))
    labels = model.label(np.array(values)[:, None])
    distances = np.abs(np.array(values)[:, None] - np.array(centres)[None, :])
    chosen = distances[np.arange(len(values)), labels.astype(int) - 1]
    assert labels.min() >= 1 and labels.max() <= len(centres)
    assert np.allclose(chosen, distances.min(axis=1), rtol=0, atol=1e-12)


def test_hand_written_standardized_json_is_measured_in_its_scaling(make_raster, tmp_path):
    rng = np.random.default_rng(5)
    bands = np.stack([rng.uniform(0, 1, (30, 40)), rng.uniform(0, 1000, (30, 40))])
    path = make_raster("two.tif", bands.astype(np.float32), descriptions=["a", "b"])
    document = {"a, b": [[1, [0.2, 800.0]], [2, [0.8, 200.0]], [3, [0.5, 500.0]]],
                "features": ["a", "b"], "standardize": {"mean": [0.5, 500], "std": [0.3, 300]},
                "clip": None}
    apply_centroids(inputs(path), write_json(tmp_path / "c.json", document), tmp_path / "o.tif")
    pixels = bands.reshape(2, -1).T.astype(np.float32).astype(np.float64)
    scaled = (pixels - [0.5, 500]) / [0.3, 300]
    centres = (np.array([[0.2, 800], [0.8, 200], [0.5, 500]]) - [0.5, 500]) / [0.3, 300]
    expected = np.argmin(((scaled[:, None] - centres[None]) ** 2).sum(axis=2), axis=1) + 1
    assert np.array_equal(read_raster(tmp_path / "o.tif").ravel(), expected)


def test_band_count_mismatch_is_an_error_and_writes_nothing(make_raster, tmp_path):
    path = make_raster("ndvi.tif", field_values(), descriptions=["NDVI"])
    json_path = write_json(tmp_path / "two.json", {"red, nir": [[1, [0.1, 0.2]], [2, [0.3, 0.4]]],
                                                   "features": ["red", "nir"]})
    with pytest.raises(InvalidInputError, match=r"2 feature\(s\).*1 band\(s\)"):
        apply_centroids(inputs(path), json_path, tmp_path / "out.tif")
    assert not (tmp_path / "out.tif").exists() and leftovers(tmp_path) == []


def test_name_mismatch_warns_by_default_and_fails_when_strict(make_raster, tmp_path):
    path = make_raster("ndvi.tif", field_values(), descriptions=["NDVI 2021-06-15"])
    json_path = write_json(tmp_path / "c.json", {"NDVI 2021-05-01": [[1, [0.2]], [2, [0.7]]]})
    result = apply_centroids(inputs(path), json_path, tmp_path / "out.tif")
    assert len(result.messages) == 1
    assert "'NDVI 2021-05-01'" in result.messages[0] and "'NDVI 2021-06-15'" in result.messages[0]
    assert read_raster(tmp_path / "out.tif").max() == 2
    with pytest.raises(InvalidInputError, match="names differ"):
        apply_centroids(inputs(path), json_path, tmp_path / "strict.tif", strict_names=True)
    assert not (tmp_path / "strict.tif").exists()


def test_layer_without_description_is_named_by_its_layer_name():
    model = CentroidModel(("ndvi_june",), np.array([[0.1], [0.5]]))
    assert check_features(model, ["ndvi_june"], strict_names=True) == []


@pytest.mark.parametrize("content, problem", [
    ("not json at all", "Cannot read the centroid JSON"),
    ('{"NDVI": [[1, 0.17], [2, 0.4]]}', "not a centroid JSON"),
    ('{"NDVI": [[2, [0.17]], [1, [0.4]]]}', "not a centroid JSON"),
    ('[[1, [0.17]]]', "not a centroid JSON"),
    ('{"NDVI": [[1, [0.2]], [2, [0.2]]]}', "same centre"),
])
def test_bad_json_is_refused_before_writing(make_raster, tmp_path, content, problem):
    path = make_raster("ndvi.tif", field_values(), descriptions=["NDVI"])
    (tmp_path / "bad.json").write_text(content)
    with pytest.raises(InvalidInputError, match=problem):
        apply_centroids(inputs(path), tmp_path / "bad.json", tmp_path / "out.tif")
    assert not (tmp_path / "out.tif").exists() and leftovers(tmp_path) == []


def test_more_classes_than_a_byte_holds_are_refused():
    model = CentroidModel(("x",), np.arange(300, dtype=float)[:, None])
    with pytest.raises(InvalidInputError, match="at most 255"):
        usable_model(model)


def test_classes_without_pixels_are_reported(make_raster, tmp_path):
    path = make_raster("ndvi.tif", field_values(), descriptions=["NDVI"])
    json_path = write_json(tmp_path / "c.json", {"NDVI": [[1, [0.2]], [2, [0.7]], [3, [50.0]]]})
    result = apply_centroids(inputs(path), json_path, tmp_path / "out.tif")
    assert result.statistics[2].pixel_count == 0
    assert any("Class(es) 3 received no pixel" in m for m in result.messages)


@pytest.mark.parametrize("min_area_m2, cancel_at_check", [
    (None, 2),  # after the only block is written, before the file is renamed into place
    (500.0, 3),  # during the sieve, once the labels are written to the temporary file
])
def test_cancelling_leaves_nothing(make_raster, tmp_path, min_area_m2, cancel_at_check):
    path = make_raster("ndvi.tif", field_values(), descriptions=["NDVI"])
    json_path = write_json(tmp_path / "c.json", {"NDVI": [[1, [0.2]], [2, [0.7]]]})
    calls = []

    def cancel_later():
        calls.append(1)
        return len(calls) >= cancel_at_check

    with pytest.raises(CancelledError):
        apply_centroids(inputs(path), json_path, tmp_path / "out.tif", min_area_m2=min_area_m2,
                        is_cancelled=cancel_later)
    assert not (tmp_path / "out.tif").exists() and leftovers(tmp_path) == []
