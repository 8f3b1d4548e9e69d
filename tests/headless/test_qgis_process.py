"""The plugin through the real qgis_process.bin in a throwaway profile, as scripts and CI use it."""

import json

import numpy as np
import pytest
from helpers import read_raster, small_regions_with_neighbours


def test_list_shows_the_provider_and_its_algorithms(qgis_process):
    listing = qgis_process.run(["list"], check=True).stdout
    assert "Raster clustering" in listing
    assert "rasterclustering:kmeans" in listing


def test_help_describes_every_parameter(qgis_process):
    text = qgis_process.run(["help", "rasterclustering:kmeans"], check=True).stdout
    for name in ("INPUT", "CLUSTERS", "AOI", "EXTENT", "CLIP", "SEED", "SAMPLE_SIZE",
                 "STANDARDIZE", "CLIP_QUANTILES", "MIN_AREA", "CONNECTIVITY", "OUTPUT",
                 "CENTROIDS", "STATISTICS"):
        assert name in text


def test_plain_run_writes_every_output(qgis_process, scene, tmp_path):
    completed = qgis_process.run([
        "run", "rasterclustering:kmeans", "--", f"INPUT={scene.ndvi}", "CLUSTERS=3",
        f"AOI={scene.aoi}", f"OUTPUT={tmp_path / 'zones.tif'}",
        f"CENTROIDS={tmp_path / 'zones.json'}", f"STATISTICS={tmp_path / 'zones.csv'}"],
        check=True)
    assert "OUTPUT:" in completed.stdout or "OUTPUT\t" in completed.stdout
    labels = read_raster(tmp_path / "zones.tif")
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    assert (tmp_path / "zones.qml").exists()
    document = json.loads((tmp_path / "zones.json").read_text())
    centres = [entry[1][0] for entry in document["NDVI"]]
    assert centres == sorted(centres)
    lines = (tmp_path / "zones.csv").read_text().splitlines()
    assert lines[0].startswith("class,centre_NDVI,pixel_count,area_m2") and len(lines) == 4


def test_json_run_reports_results_and_matches_processing_run(qgis_process, scene, tmp_path):
    document = qgis_process.run_algorithm("rasterclustering:kmeans", {
        "INPUT": scene.scene, "CLUSTERS": 5, "SEED": 2, "OUTPUT": tmp_path / "a.tif",
        "CENTROIDS": tmp_path / "a.json", "STATISTICS": tmp_path / "a.csv"})
    results = document["results"]
    assert results["OUTPUT"] == str(tmp_path / "a.tif")
    again = qgis_process.run_algorithm("rasterclustering:kmeans", {
        "INPUT": scene.scene, "CLUSTERS": 5, "SEED": 2, "OUTPUT": tmp_path / "b.tif",
        "CENTROIDS": tmp_path / "b.json", "STATISTICS": tmp_path / "b.csv"})
    assert (tmp_path / "a.tif").read_bytes() == (tmp_path / "b.tif").read_bytes()
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()
    assert again["results"]["CENTROIDS"] == str(tmp_path / "b.json")


@pytest.mark.parametrize("name", ["missing.tif", "broken.tif"])
def test_bad_input_fails_with_a_clear_message(qgis_process, tmp_path, name):
    (tmp_path / "broken.tif").write_bytes(b"not a raster")
    completed = qgis_process.run([
        "run", "rasterclustering:kmeans", "--", f"INPUT={tmp_path / name}", "CLUSTERS=3",
        f"OUTPUT={tmp_path / 'o.tif'}"])
    assert completed.returncode != 0
    assert "Select at least one raster layer as input." in completed.stdout + completed.stderr
    assert not (tmp_path / "o.tif").exists()


def test_out_of_range_number_names_the_allowed_range(qgis_process, scene, tmp_path):
    completed = qgis_process.run([
        "run", "rasterclustering:kmeans", "--", f"INPUT={scene.ndvi}", "CLUSTERS=300",
        f"OUTPUT={tmp_path / 'o.tif'}", f"CENTROIDS={tmp_path / 'o.json'}",
        f"STATISTICS={tmp_path / 'o.csv'}"])
    assert completed.returncode != 0
    assert "CLUSTERS must be a whole number from 2 to 255, not 300." in (
        completed.stdout + completed.stderr)
    assert not (tmp_path / "o.tif").exists()


def test_kmeans_with_min_area_headless(qgis_process, scene, tmp_path):
    document = qgis_process.run_algorithm("rasterclustering:kmeans", {
        "INPUT": scene.ndvi, "CLUSTERS": 5, "MIN_AREA": 5000, "CONNECTIVITY": 8,
        "OUTPUT": tmp_path / "z.tif", "CENTROIDS": tmp_path / "z.json",
        "STATISTICS": tmp_path / "z.csv"})
    labels = read_raster(document["results"]["OUTPUT"])
    # 5000 m² = 50 pixels of 100 m²: a smaller region may only remain where it touches no other.
    assert len(small_regions_with_neighbours(labels, labels != 0, connectivity=8,
                                             min_size=50)) == 0
