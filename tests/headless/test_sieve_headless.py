"""rasterclustering:sieve through the real qgis_process.bin: k-means zones of the scene, sieved."""

import json

import numpy as np
import pytest
from helpers import read_raster, small_regions_with_neighbours
from osgeo import gdal

ALGORITHM = "rasterclustering:sieve"


@pytest.fixture(scope="module")
def zones(qgis_process, scene, tmp_path_factory):
    """K-means zones of the scene's NDVI made by qgis_process, with their .qml beside them."""
    folder = tmp_path_factory.mktemp("zones")
    qgis_process.run(["run", "rasterclustering:kmeans", "--", f"INPUT={scene.ndvi}",
                      "CLUSTERS=5", f"OUTPUT={folder / 'zones.tif'}",
                      f"CENTROIDS={folder / 'zones.json'}",
                      f"STATISTICS={folder / 'zones.csv'}"], check=True)
    assert (folder / "zones.qml").exists()
    return folder / "zones.tif"


def test_help_describes_every_parameter_and_output(qgis_process):
    text = qgis_process.run(["help", ALGORITHM], check=True).stdout
    for name in ("INPUT", "BAND", "MIN_AREA", "CONNECTIVITY", "OUTPUT", "PIXEL_THRESHOLD_MIN",
                 "PIXEL_THRESHOLD_MAX", "PIXEL_AREA_MIN_M2", "PIXEL_AREA_MAX_M2",
                 "CHANGED_PIXELS"):
        assert name in text
    assert "1000–999999 m²" in text


def test_plain_run_sieves_the_zones_and_copies_their_style(qgis_process, zones, tmp_path):
    output = tmp_path / "sieved.tif"
    completed = qgis_process.run(["run", ALGORITHM, "--", f"INPUT={zones}", "MIN_AREA=2000",
                                  "CONNECTIVITY=4", f"OUTPUT={output}"], check=True)
    assert "OUTPUT:" in completed.stdout or "OUTPUT\t" in completed.stdout
    assert "20 pixels, 4-connected" in completed.stdout + completed.stderr
    before, after = read_raster(zones), read_raster(output)
    valid = before != 0
    assert len(small_regions_with_neighbours(before, valid, connectivity=4, min_size=20)) > 0
    assert len(small_regions_with_neighbours(after, valid, connectivity=4, min_size=20)) == 0
    np.testing.assert_array_equal(after == 0, before == 0)
    source, result = gdal.Open(str(zones)), gdal.Open(str(output))
    assert result.GetGeoTransform() == source.GetGeoTransform()
    assert result.GetRasterBand(1).GetCategoryNames() == source.GetRasterBand(1).GetCategoryNames()
    assert (tmp_path / "sieved.qml").exists()
    assert "1 · " in (tmp_path / "sieved.qml").read_text()


def test_json_run_reports_the_thresholds(qgis_process, zones, tmp_path):
    document = qgis_process.run_algorithm(ALGORITHM, {
        "INPUT": zones, "MIN_AREA": 2000, "CONNECTIVITY": 8, "OUTPUT": tmp_path / "s8.tif"})
    results = document["results"]
    assert results["OUTPUT"] == str(tmp_path / "s8.tif")
    assert results["PIXEL_THRESHOLD_MIN"] == results["PIXEL_THRESHOLD_MAX"] == 20
    assert results["PIXEL_AREA_MIN_M2"] == pytest.approx(100.0)
    before, after = read_raster(zones), read_raster(tmp_path / "s8.tif")
    assert results["CHANGED_PIXELS"] == int(np.count_nonzero(before != after)) > 0
    assert len(small_regions_with_neighbours(after, after != 0, connectivity=8, min_size=20)) == 0
    assert json.dumps(document["inputs"]["CONNECTIVITY"]) in ("8", '"8"')


@pytest.mark.parametrize("arguments, message", [
    (["MIN_AREA=2000", "CONNECTIVITY=5"], "CONNECTIVITY must be 4 or 8, not 5"),
    (["MIN_AREA=0"], "MIN_AREA must be an area in m² greater than 0, not 0"),
])
def test_bad_values_fail_with_a_clear_message(qgis_process, zones, tmp_path, arguments, message):
    completed = qgis_process.run(["run", ALGORITHM, "--", f"INPUT={zones}", *arguments,
                                  f"OUTPUT={tmp_path / 'o.tif'}"])
    assert completed.returncode != 0
    assert message in completed.stdout + completed.stderr
    assert not list(tmp_path.iterdir())
