"""rasterclustering:fuzzycmeans through processing.run: the scene's true classes, memberships,
distances, statistics, styles, its refusals, and its centres reapplied by applycentroids."""

import json

import numpy as np
import pytest
from helpers import (
    assert_metadata_complete,
    file_names,
    read_raster,
    run_algorithm,
    styled_layer,
    vector_rows,
)
from osgeo import gdal

ALGORITHM = "rasterclustering:fuzzycmeans"
PARAMETERS = ["INPUT", "CLUSTERS", "FUZZINESS", "DISTANCE_METRIC", "AOI", "EXTENT", "CLIP", "SEED",
              "SAMPLE_SIZE", "STANDARDIZE", "MIN_AREA", "CONNECTIVITY", "OUTPUT", "CENTROIDS",
              "STATISTICS", "DISTANCE", "MEMBERSHIP", "ZONES_PER_CLASS", "ZONES"]


def run(parameters, tmp_path, name="zones"):
    defaults = {"OUTPUT": str(tmp_path / f"{name}.tif"),
                "CENTROIDS": str(tmp_path / f"{name}.json"),
                "STATISTICS": str(tmp_path / f"{name}.csv"),
                "DISTANCE": str(tmp_path / f"{name}_distance.tif"),
                "MEMBERSHIP": str(tmp_path / f"{name}_membership.tif")}
    return run_algorithm(ALGORITHM, {**defaults, **parameters})


def test_metadata_is_complete(provider):
    algorithm = provider.algorithm("fuzzycmeans")
    assert_metadata_complete(algorithm, display_name="Fuzzy c-means zones", parameters=PARAMETERS,
                             outputs=["OUTPUT", "CENTROIDS", "STATISTICS", "DISTANCE",
                                      "MEMBERSHIP", "ZONES"])
    defaults = {p.name(): p.defaultValue() for p in algorithm.parameterDefinitions()}
    assert (defaults["CLUSTERS"], defaults["FUZZINESS"], defaults["DISTANCE_METRIC"]) == (5, 1.3, 0)
    for name in ("CENTROIDS", "STATISTICS", "DISTANCE", "MEMBERSHIP"):
        definition = algorithm.parameterDefinition(name)
        assert definition.flags() & definition.FlagOptional and definition.createByDefault()


@pytest.mark.parametrize("metric", [0, 2])
def test_scene_zones_are_its_true_classes_with_memberships(provider, scene, tmp_path, metric):
    from scipy.optimize import linear_sum_assignment

    result = run({"INPUT": [str(scene.scene)], "CLUSTERS": 5, "DISTANCE_METRIC": metric},
                 tmp_path)
    labels = read_raster(result["OUTPUT"])
    truth = read_raster(scene.truth)
    valid = truth > 0
    assert np.array_equal(labels > 0, valid)
    table = np.zeros((6, 6))
    np.add.at(table, (labels[valid], truth[valid]), 1)
    rows, cols = linear_sum_assignment(-table)
    # Mahalanobis whitens the noise directions too, which costs some agreement on this scene.
    assert table[rows, cols].sum() / valid.sum() >= (0.95 if metric == 0 else 0.9)
    memberships = gdal.Open(result["MEMBERSHIP"]).ReadAsArray()
    assert memberships.shape == (5, *labels.shape)
    np.testing.assert_allclose(memberships[:, valid].sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(labels[valid], memberships[:, valid].argmax(axis=0) + 1)
    statistics = vector_rows(result["STATISTICS"])
    for row in statistics:  # a CSV: text
        number = int(row["class"])
        assert float(row["mean_membership"]) == pytest.approx(
            memberships[number - 1][labels == number].mean(), rel=1e-4)
    document = json.loads(open(result["CENTROIDS"]).read())
    assert document.get("distance_metric", "euclidean") == ("euclidean", "",
                                                            "mahalanobis")[metric]
    distance = read_raster(result["DISTANCE"])
    assert np.all(distance[valid] >= 0) and np.all(np.isnan(distance[~valid]))
    for path in (result["OUTPUT"], result["DISTANCE"], result["MEMBERSHIP"]):
        assert styled_layer(path).renderer() is not None


def test_log_tells_the_fit_and_each_zone(provider, scene, tmp_path, recorder):
    run_algorithm(ALGORITHM, {"INPUT": [str(scene.ndvi)], "CLUSTERS": 3, "FUZZINESS": 2.0,
                              "OUTPUT": str(tmp_path / "zones.tif")}, recorder)
    assert any(line.startswith("Fuzzy c-means converged after") and "m = 2" in line
               for line in recorder.infos), recorder.infos
    assert sum(line.startswith("Class ") for line in recorder.infos) == 3
    # Only what was asked: the classes, their style and GDAL's sidecar of the category names.
    assert file_names(tmp_path) == ["zones.qml", "zones.tif", "zones.tif.aux.xml"]


def test_saved_zones_reapply_with_the_same_classes_and_distances(provider, scene, tmp_path):
    fitted = run({"INPUT": [str(scene.scene)], "CLUSTERS": 4, "DISTANCE_METRIC": 1, "SEED": 3},
                 tmp_path)
    applied = run_algorithm("rasterclustering:applycentroids", {
        "INPUT": [str(scene.scene)], "CENTROIDS": fitted["CENTROIDS"],
        "OUTPUT": str(tmp_path / "applied.tif"), "DISTANCE": str(tmp_path / "again.tif"),
        "STATISTICS": "TEMPORARY_OUTPUT"})
    np.testing.assert_array_equal(read_raster(applied["OUTPUT"]), read_raster(fitted["OUTPUT"]))
    np.testing.assert_array_equal(read_raster(applied["DISTANCE"]),
                                  read_raster(fitted["DISTANCE"]))


@pytest.mark.parametrize("options, message", [
    ({"FUZZINESS": 1.0}, "FUZZINESS must be a number greater than 1"),
    ({"FUZZINESS": 0.5}, "FUZZINESS"),
    ({"CLUSTERS": 1}, "CLUSTERS"),
    ({"CONNECTIVITY": 6}, "CONNECTIVITY must be 4 or 8"),
])
def test_bad_input_is_refused_up_front(provider, scene, tmp_path, options, message):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match=message):
        run({"INPUT": [str(scene.ndvi)], **options}, tmp_path)
    assert file_names(tmp_path) == []
