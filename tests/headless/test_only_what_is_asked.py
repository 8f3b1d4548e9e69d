"""qgis_process with only the required inputs and the main output writes only that output (and
its style), as QGIS's own algorithms do: secondary outputs are optional."""

import json
import shutil

import numpy as np
import pytest
from helpers import read_raster


def _files(folder):
    return sorted(path.name for path in folder.iterdir())


def _classes(name):
    """A classified output: the GeoTIFF, its .qml, and the .aux.xml where GDAL keeps the category
    names (the legend labels) a GeoTIFF cannot hold."""
    return [f"{name}.qml", f"{name}.tif", f"{name}.tif.aux.xml"]


def _run(qgis_process, algorithm, arguments):
    completed = qgis_process.run(["--json", "run", f"rasterclustering:{algorithm}", "--",
                                  *(f"{name}={value}" for name, value in arguments.items())])
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads(completed.stdout[completed.stdout.index("{"):])["results"]


@pytest.fixture
def out(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def test_kmeans_writes_only_the_classes(qgis_process, scene, out):
    results = _run(qgis_process, "kmeans", {"INPUT": scene.ndvi, "CLUSTERS": 5,
                                            "OUTPUT": out / "zones.tif"})
    assert _files(out) == _classes("zones")
    assert set(np.unique(read_raster(out / "zones.tif"))) == {1, 2, 3, 4, 5} | (
        {0} if (read_raster(out / "zones.tif") == 0).any() else set())
    assert results["CENTROIDS"] is None and results["STATISTICS"] is None


def test_applycentroids_writes_only_the_classes(qgis_process, scene, tmp_path, out):
    centres = tmp_path / "centres.json"
    centres.write_text(json.dumps({"NDVI": [[1, [0.1]], [2, [0.4]], [3, [0.7]]]}))
    _run(qgis_process, "applycentroids", {"INPUT": scene.ndvi, "CENTROIDS": centres,
                                          "OUTPUT": out / "classes.tif"})
    assert _files(out) == _classes("classes")


def test_zones_with_defaults_on_the_described_scene_writes_only_the_zones(qgis_process, scene,
                                                                          out):
    # scene.tif's bands are described blue…swir2: the default sensor (auto) finds red and NIR.
    _run(qgis_process, "zones", {"INPUT": scene.scene, "OUTPUT": out / "zones.tif"})
    assert _files(out) == _classes("zones")
    assert read_raster(out / "zones.tif").max() == 5


def test_bandmath_with_defaults_on_the_described_scene(qgis_process, scene, out):
    _run(qgis_process, "bandmath", {"INPUT": scene.scene, "OUTPUT": out / "ndvi.tif"})
    assert _files(out) == ["ndvi.qml", "ndvi.tif"]
    expected = read_raster(scene.ndvi)  # the generator's own NDVI, nodata -9999
    valid = expected != scene.nodata
    assert np.allclose(read_raster(out / "ndvi.tif")[valid], expected[valid], atol=1e-6)
    assert np.isnan(read_raster(out / "ndvi.tif")[~valid]).all()


def test_choosek_writes_nothing_unless_asked(qgis_process, scene, out):
    results = _run(qgis_process, "choosek", {"INPUT": scene.ndvi, "K_MAX": 4})
    assert 2 <= results["RECOMMENDED_K"] <= 4
    assert results["TABLE"] is None and results["REPORT"] is None


def test_sieve_and_calibrate_write_their_one_output(qgis_process, scene, shared_data, tmp_path,
                                                    out):
    classes = tmp_path / "classes.tif"
    _run(qgis_process, "kmeans", {"INPUT": scene.ndvi, "CLUSTERS": 5, "OUTPUT": classes})
    _run(qgis_process, "sieve", {"INPUT": classes, "OUTPUT": out / "sieved.tif"})
    band = tmp_path / "LC80200392015216LGN00_B4_crop.TIF"
    for name in (band.name, "LC80200392015216LGN00_MTL.txt"):
        shutil.copyfile(shared_data / "landsat8-thermal" / name, tmp_path / name)
    _run(qgis_process, "calibrate", {"INPUT": band, "OUTPUT": out / "red.tif"})
    assert _files(out) == ["red.qml", "red.tif", *_classes("sieved")]
