"""rasterclustering:isodata through processing.run: the number of classes found on the scene, the
final count as an output and in the log, and its refusals."""

import json

import numpy as np
import pytest
from helpers import assert_metadata_complete, file_names, read_raster, run_algorithm, vector_rows

ALGORITHM = "rasterclustering:isodata"
PARAMETERS = ["INPUT", "CLUSTERS", "MIN_CLUSTERS", "MAX_CLUSTERS", "MIN_CLASS_SIZE", "SPLIT_STD",
              "MERGE_DISTANCE", "MAX_ITERATIONS", "AOI", "EXTENT", "CLIP", "SEED", "SAMPLE_SIZE",
              "STANDARDIZE", "MIN_AREA", "CONNECTIVITY", "OUTPUT", "CENTROIDS", "STATISTICS",
              "DISTANCE", "ZONES_PER_CLASS", "ZONES"]


def run(parameters, tmp_path, feedback=None):
    defaults = {"OUTPUT": str(tmp_path / "classes.tif"),
                "CENTROIDS": str(tmp_path / "classes.json"),
                "STATISTICS": str(tmp_path / "classes.csv")}
    return run_algorithm(ALGORITHM, {**defaults, **parameters}, feedback)


def test_metadata_is_complete(provider):
    algorithm = provider.algorithm("isodata")
    assert_metadata_complete(algorithm, display_name="ISODATA clustering", parameters=PARAMETERS,
                             outputs=["OUTPUT", "CENTROIDS", "STATISTICS", "DISTANCE",
                                      "FINAL_CLUSTERS", "ZONES"])
    assert algorithm.outputDefinition("FINAL_CLUSTERS").type() == "outputNumber"


@pytest.mark.parametrize("start", [2, 5, 9])
def test_the_scene_ends_with_its_five_classes_from_too_few_or_too_many(
        provider, scene, tmp_path, recorder, start):
    result = run({"INPUT": [str(scene.scene)], "CLUSTERS": start, "MAX_CLUSTERS": 12},
                 tmp_path, recorder)
    assert result["FINAL_CLUSTERS"] == 5
    labels = read_raster(result["OUTPUT"])
    assert set(np.unique(labels)) == set(range(6))
    document = json.loads(open(result["CENTROIDS"]).read())
    assert len(document[next(iter(document))]) == 5 and document["method"] == "ISODATA"
    assert len(vector_rows(result["STATISTICS"])) == 5
    assert any(line.startswith("ISODATA: 5 classes after") and f"from {start}" in line
               for line in recorder.infos), recorder.infos


@pytest.mark.parametrize("options, message", [
    ({"MIN_CLUSTERS": 6, "MAX_CLUSTERS": 4, "CLUSTERS": 5}, "MIN_CLUSTERS"),
    ({"CLUSTERS": 12, "MAX_CLUSTERS": 10}, "CLUSTERS"),
    ({"SPLIT_STD": 0}, "SPLIT_STD"),
    ({"MIN_CLASS_SIZE": 100}, "MIN_CLASS_SIZE"),
])
def test_bad_input_is_refused_up_front(provider, scene, tmp_path, options, message):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match=message):
        run({"INPUT": [str(scene.scene)], **options}, tmp_path)
    assert file_names(tmp_path) == []
