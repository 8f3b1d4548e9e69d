"""qgis_process runs of fuzzy c-means zones and ISODATA: only what is asked is written, the
per-pixel rasters when asked, the final number of classes in the JSON results."""

import json

import numpy as np
from helpers import read_raster
from osgeo import gdal


def _run(qgis_process, algorithm, arguments):
    completed = qgis_process.run(["--json", "run", f"rasterclustering:{algorithm}", "--",
                                  *(f"{name}={value}" for name, value in arguments.items())])
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads(completed.stdout[completed.stdout.index("{"):])["results"]


def _files(folder):
    return sorted(path.name for path in folder.iterdir())


def test_fuzzy_zones_with_memberships_and_distances(qgis_process, scene, tmp_path):
    results = _run(qgis_process, "fuzzycmeans", {
        "INPUT": scene.scene, "CLUSTERS": 4, "OUTPUT": tmp_path / "zones.tif",
        "MEMBERSHIP": tmp_path / "membership.tif", "DISTANCE": tmp_path / "distance.tif"})
    assert _files(tmp_path) == ["distance.qml", "distance.tif", "membership.qml",
                                "membership.tif", "zones.qml", "zones.tif", "zones.tif.aux.xml"]
    assert results["MEMBERSHIP"] == str(tmp_path / "membership.tif")
    assert results["CENTROIDS"] is None and results["STATISTICS"] is None
    labels = read_raster(tmp_path / "zones.tif")
    memberships = gdal.Open(str(tmp_path / "membership.tif")).ReadAsArray()
    valid = labels > 0
    np.testing.assert_allclose(memberships[:, valid].sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(labels[valid], memberships[:, valid].argmax(axis=0) + 1)


def test_fuzziness_of_one_is_refused_with_nothing_written(qgis_process, scene, tmp_path):
    completed = qgis_process.run([
        "run", "rasterclustering:fuzzycmeans", "--", f"INPUT={scene.ndvi}", "FUZZINESS=1",
        f"OUTPUT={tmp_path / 'zones.tif'}"])
    assert completed.returncode != 0
    assert "FUZZINESS must be a number greater than 1" in completed.stdout + completed.stderr
    assert _files(tmp_path) == []


def test_isodata_reports_the_final_number_of_classes(qgis_process, scene, tmp_path):
    results = _run(qgis_process, "isodata", {"INPUT": scene.scene, "CLUSTERS": 9,
                                             "MAX_CLUSTERS": 12,
                                             "OUTPUT": tmp_path / "classes.tif"})
    assert results["FINAL_CLUSTERS"] == 5
    assert read_raster(tmp_path / "classes.tif").max() == 5
    assert _files(tmp_path) == ["classes.qml", "classes.tif", "classes.tif.aux.xml"]
