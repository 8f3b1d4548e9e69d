"""rasterclustering:applycentroids run through processing.run, as the toolbox and models run it."""

import json

import numpy as np
import pytest
from helpers import assert_metadata_complete, build_model, read_raster, run_algorithm, styled_layer
from osgeo import gdal

ALGORITHM = "rasterclustering:applycentroids"
PARAMETERS = ["INPUT", "CENTROIDS", "STRICT_NAMES", "AOI", "EXTENT", "CLIP", "MIN_AREA",
              "CONNECTIVITY", "OUTPUT", "STATISTICS", "DISTANCE", "ZONES_PER_CLASS", "ZONES"]


def kmeans(parameters, tmp_path, name="kmeans"):
    return run_algorithm("rasterclustering:kmeans", {
        "OUTPUT": str(tmp_path / f"{name}.tif"), "CENTROIDS": str(tmp_path / f"{name}.json"),
        "STATISTICS": str(tmp_path / f"{name}.csv"), **parameters})


def apply(parameters, tmp_path, name="applied", feedback=None):
    return run_algorithm(ALGORITHM, {"OUTPUT": str(tmp_path / f"{name}.tif"),
                                     "STATISTICS": str(tmp_path / f"{name}.csv"), **parameters},
                         feedback)


def warnings_of(parameters, tmp_path, name="applied"):
    from qgis.core import QgsProcessingFeedback

    class Collecting(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.warnings = []

        def pushWarning(self, warning):
            self.warnings.append(warning)
            super().pushWarning(warning)

    feedback = Collecting()
    result = apply(parameters, tmp_path, name, feedback=feedback)
    return result, feedback.warnings


def renderer_classes(qml_path, raster_path):
    layer = styled_layer(raster_path, qml_path)
    return [(int(c.value), c.color.getRgb(), c.label) for c in layer.renderer().classes()]


@pytest.fixture(scope="module")
def second_date(tmp_path_factory):
    """Another landscape (seed 1) of the synthetic scene: "date 2"."""
    from synthetic_scene import make_scene

    return make_scene(tmp_path_factory.mktemp("date2"), size=200, seed=1)


def test_metadata_is_complete(provider):
    assert_metadata_complete(provider.algorithm("applycentroids"),
                             display_name="Classify with saved centres", parameters=PARAMETERS,
                             outputs=["OUTPUT", "STATISTICS", "DISTANCE", "ZONES"])


def test_same_raster_and_aoi_reproduce_kmeans_exactly(provider, scene, tmp_path):
    fitted = kmeans({"INPUT": [str(scene.scene)], "CLUSTERS": 5, "SEED": 3,
                     "AOI": str(scene.aoi)}, tmp_path)
    applied = apply({"INPUT": [str(scene.scene)], "CENTROIDS": fitted["CENTROIDS"],
                     "AOI": str(scene.aoi)}, tmp_path)
    assert set(applied) == {"OUTPUT", "STATISTICS", "DISTANCE", "ZONES"}
    assert applied["ZONES"] is None
    assert (tmp_path / "applied.tif").read_bytes() == (tmp_path / "kmeans.tif").read_bytes()
    assert (tmp_path / "applied.csv").read_text() == (tmp_path / "kmeans.csv").read_text()
    assert (renderer_classes(tmp_path / "applied.qml", applied["OUTPUT"])
            == renderer_classes(tmp_path / "kmeans.qml", fitted["OUTPUT"]))


def test_min_area_and_no_clip_reproduce_kmeans_exactly(provider, scene, tmp_path):
    options = {"INPUT": [str(scene.ndvi)], "AOI": str(scene.aoi), "CLIP": False,
               "MIN_AREA": 3000, "CONNECTIVITY": 4}
    fitted = kmeans({**options, "CLUSTERS": 4}, tmp_path)
    apply({**options, "CENTROIDS": fitted["CENTROIDS"]}, tmp_path)
    assert (tmp_path / "applied.tif").read_bytes() == (tmp_path / "kmeans.tif").read_bytes()
    assert read_raster(tmp_path / "applied.tif").shape == (300, 300)


def test_second_date_keeps_water_in_class_1(provider, scene, second_date, tmp_path):
    fitted = kmeans({"INPUT": [str(scene.nir)], "CLUSTERS": 2}, tmp_path)
    result, warnings = warnings_of({"INPUT": [str(second_date.nir)],
                                    "CENTROIDS": fitted["CENTROIDS"]}, tmp_path)
    assert warnings == []
    labels, truth = read_raster(result["OUTPUT"]), read_raster(second_date.truth)
    valid = truth > 0
    assert np.array_equal(labels > 0, valid)
    water = truth[valid] == 1
    assert water.sum() > 100
    assert np.mean((labels[valid] == 1) == water) >= 0.99


def test_hand_written_reference_json(provider, scene, tmp_path):
    centres = [0.1, 0.45, 0.8]
    path = tmp_path / "reference.json"
    path.write_text(json.dumps({"NDVI": [[i + 1, [c]] for i, c in enumerate(centres)]}))
    result = apply({"INPUT": [str(scene.ndvi)], "CENTROIDS": str(path)}, tmp_path)
    ndvi = read_raster(scene.ndvi).astype(np.float64)
    valid = ndvi != scene.nodata
    expected = np.argmin(np.abs(ndvi[..., None] - centres), axis=-1) + 1
    labels = read_raster(result["OUTPUT"])
    assert np.array_equal(labels[valid], expected[valid]) and np.all(labels[~valid] == 0)
    labels_in_style = [label for _, _, label in renderer_classes(tmp_path / "applied.qml",
                                                                 result["OUTPUT"])]
    assert labels_in_style == ["1 · 0.100", "2 · 0.450", "3 · 0.800"]


def test_other_band_names_warn_or_fail_when_strict(provider, scene, tmp_path):
    from qgis.core import QgsProcessingException

    path = tmp_path / "other.json"
    path.write_text(json.dumps({"NDVI 2021-05-01": [[1, [0.2]], [2, [0.7]]]}))
    result, warnings = warnings_of({"INPUT": [str(scene.ndvi)], "CENTROIDS": str(path)},
                                   tmp_path)
    assert any("'NDVI 2021-05-01'" in w and "'NDVI'" in w for w in warnings)
    assert set(np.unique(read_raster(result["OUTPUT"]))) == {0, 1, 2}
    with pytest.raises(QgsProcessingException, match="names differ"):
        apply({"INPUT": [str(scene.ndvi)], "CENTROIDS": str(path), "STRICT_NAMES": True},
              tmp_path, name="strict")
    assert not (tmp_path / "strict.tif").exists()


@pytest.mark.parametrize("content, message", [
    ('{"red, nir": [[1, [0.1, 0.2]], [2, [0.3, 0.4]]], "features": ["red", "nir"]}',
     r"2 feature\(s\).*1 band\(s\)"),
    ("{this is not json", "Cannot read the centroid JSON"),
    ('{"NDVI": [[1, 0.2], [2, 0.7]]}', "not a centroid JSON"),
])
def test_bad_json_fails_clearly_and_leaves_no_output(provider, scene, tmp_path, content,
                                                     message):
    from qgis.core import QgsProcessingException

    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(QgsProcessingException, match=message):
        apply({"INPUT": [str(scene.ndvi)], "CENTROIDS": str(path)}, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]


def test_band_count_mismatch_from_a_kmeans_json(provider, scene, tmp_path):
    from qgis.core import QgsProcessingException

    fitted = kmeans({"INPUT": [str(scene.scene)], "CLUSTERS": 3}, tmp_path)
    with pytest.raises(QgsProcessingException, match=r"6 feature\(s\).*1 band\(s\)"):
        apply({"INPUT": [str(scene.ndvi)], "CENTROIDS": fitted["CENTROIDS"]}, tmp_path)
    assert not (tmp_path / "applied.tif").exists()


def test_output_over_an_input_is_refused(provider, scene, tmp_path, make_raster):
    from qgis.core import QgsProcessingException

    copy = make_raster("copy.tif", read_raster(scene.ndvi))
    before = copy.read_bytes()
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"copy": [[1, [0.2]], [2, [0.7]]]}))
    with pytest.raises(QgsProcessingException, match="one of the inputs"):
        apply({"INPUT": [str(copy)], "CENTROIDS": str(path), "OUTPUT": str(copy)}, tmp_path)
    assert copy.read_bytes() == before


def test_extent_limits_the_classified_area(provider, scene, tmp_path):
    dataset = gdal.Open(str(scene.ndvi))
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    extent = f"{x0 + 20 * dx},{x0 + 70 * dx},{y0 + 90 * dy},{y0 + 30 * dy} [EPSG:32633]"
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"NDVI": [[1, [0.2]], [2, [0.7]]]}))
    result = apply({"INPUT": [str(scene.ndvi)], "CENTROIDS": str(path), "EXTENT": extent},
                   tmp_path)
    output = gdal.Open(result["OUTPUT"])
    assert (output.RasterXSize, output.RasterYSize) == (50, 60)
    assert output.GetGeoTransform()[0] == pytest.approx(x0 + 20 * dx)


def test_model_carries_kmeans_centres_to_another_date(provider, scene, second_date, tmp_path):
    """kmeans on date 1 -> applycentroids on date 2 in one model, as the modeler builds it."""
    loaded = build_model(tmp_path / "compare.model3", ["date1", "date2"], [
        ("kmeans", "rasterclustering:kmeans", {"INPUT": ("model", "date1"), "CLUSTERS": 2}, []),
        ("apply", ALGORITHM,
         {"INPUT": ("model", "date2"), "CENTROIDS": ("child", "kmeans", "CENTROIDS")},
         ["OUTPUT"]),
    ])

    result = run_algorithm(loaded, {"date1": [str(scene.nir)], "date2": [str(second_date.nir)],
                                    "apply:output": str(tmp_path / "date2.tif")})
    labels, truth = read_raster(result["apply:output"]), read_raster(second_date.truth)
    valid = truth > 0
    assert np.mean((labels[valid] == 1) == (truth[valid] == 1)) >= 0.99
