"""Workflows across algorithms through the real qgis_process.bin, as scripts and CI run them."""

import json

import numpy as np
from helpers import read_raster

# --- rasterclustering:applycentroids ---------------------------------------------------------

def test_applycentroids_reproduces_kmeans_headless(qgis_process, scene, tmp_path):
    qgis_process.run_algorithm("rasterclustering:kmeans", {
        "INPUT": scene.ndvi, "CLUSTERS": 4, "AOI": scene.aoi, "OUTPUT": tmp_path / "k.tif",
        "CENTROIDS": tmp_path / "k.json", "STATISTICS": tmp_path / "k.csv"})
    document = qgis_process.run_algorithm("rasterclustering:applycentroids", {
        "INPUT": scene.ndvi, "CENTROIDS": tmp_path / "k.json", "AOI": scene.aoi,
        "OUTPUT": tmp_path / "a.tif", "STATISTICS": tmp_path / "a.csv"})
    assert document["results"]["OUTPUT"] == str(tmp_path / "a.tif")
    assert (tmp_path / "a.tif").read_bytes() == (tmp_path / "k.tif").read_bytes()
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "k.csv").read_text()
    assert (tmp_path / "a.qml").exists()


def test_applycentroids_bad_json_fails_headless(qgis_process, scene, tmp_path):
    (tmp_path / "two.json").write_text(json.dumps(
        {"red, nir": [[1, [0.1, 0.2]], [2, [0.3, 0.4]]], "features": ["red", "nir"]}))
    completed = qgis_process.run([
        "run", "rasterclustering:applycentroids", "--", f"INPUT={scene.ndvi}",
        f"CENTROIDS={tmp_path / 'two.json'}", f"OUTPUT={tmp_path / 'o.tif'}",
        f"STATISTICS={tmp_path / 'o.csv'}"])
    assert completed.returncode != 0
    assert "2 feature(s)" in completed.stdout + completed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.json"]


# --- rasterclustering:choosek ----------------------------------------------------------------

def test_choosek_help_lists_its_parameters(qgis_process):
    text = qgis_process.run(["help", "rasterclustering:choosek"], check=True).stdout
    for name in ("INPUT", "AOI", "EXTENT", "K_MIN", "K_MAX", "SAMPLE_SIZE", "STANDARDIZE",
                 "SEED", "CALINSKI_HARABASZ", "TABLE", "REPORT", "RECOMMENDED_K"):
        assert name in text


def test_choosek_json_run_reports_the_recommended_k(qgis_process, scene, tmp_path):
    document = qgis_process.run_algorithm("rasterclustering:choosek", {
        "INPUT": scene.scene, "K_MAX": 7, "SAMPLE_SIZE": 2000, "TABLE": tmp_path / "k.csv",
        "REPORT": tmp_path / "k.html"})
    results = document["results"]
    assert results["RECOMMENDED_K"] == 5
    assert results["REPORT"] == str(tmp_path / "k.html")
    lines = (tmp_path / "k.csv").read_text().splitlines()
    assert lines[0] == "k,inertia,silhouette,is_elbow,is_recommended" and len(lines) == 1 + 6
    assert (tmp_path / "k.html").read_text(encoding="utf-8").count("<svg") == 2


def test_choosek_then_kmeans_with_its_k_headless(qgis_process, scene, tmp_path):
    document = qgis_process.run_algorithm("rasterclustering:choosek", {
        "INPUT": scene.ndvi, "AOI": scene.aoi, "K_MAX": 6, "SAMPLE_SIZE": 1000,
        "TABLE": tmp_path / "k.csv", "REPORT": tmp_path / "k.html"})
    k = int(document["results"]["RECOMMENDED_K"])
    qgis_process.run_algorithm("rasterclustering:kmeans", {
        "INPUT": scene.ndvi, "AOI": scene.aoi, "CLUSTERS": k, "OUTPUT": tmp_path / "z.tif",
        "CENTROIDS": tmp_path / "z.json", "STATISTICS": tmp_path / "z.csv"})
    assert set(np.unique(read_raster(tmp_path / "z.tif"))) == set(range(k + 1))
