"""Issue 7: every algorithm run twice with the same inputs and seed writes byte-identical files:
rasters, centroid JSON, statistics and score tables, HTML report, styles."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import run_algorithm
from reliability_tools import (
    LANDSAT,
    ORIGIN,
    box_wkt,
    memory_polygons,
    raster,
    recording_feedback,
    three_levels,
)

pytestmark = pytest.mark.usefixtures("provider")

SIDE = 200


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, shared_data):
    """Shared inputs: three-level values (one band, and two bands), classes, Landsat DN."""
    folder = tmp_path_factory.mktemp("determinism_inputs")
    rng = np.random.default_rng(3)
    values = three_levels(SIDE, SIDE) + rng.normal(0, 0.05, (SIDE, SIDE)).astype(np.float32)
    values[10:20, 10:20] = np.nan
    second = three_levels(SIDE, SIDE, seed=7)
    classes = (np.digitize(values, [0.3, 0.7]) + 1).astype(np.uint8)
    mtl = shared_data / "landsat8-thermal" / f"{LANDSAT}_MTL.txt"
    (folder / mtl.name).write_text(mtl.read_text())
    dn = rng.integers(5000, 25000, (2, SIDE, SIDE)).astype(np.uint16)
    centroids = folder / "centres.json"
    centroids.write_text('{"values, second": [[1, [0.1, 0.5]], [2, [0.5, 0.9]], '
                         '[3, [0.9, 0.1]]], "features": ["values", "second"], '
                         '"standardize": {"mean": [0.5, 0.5], "std": [0.3, 0.3]}}')
    return {
        "values": str(raster(folder, "values.tif", values)),
        "two_bands": str(raster(folder, "two.tif", np.stack([values, second]),
                                descriptions=["values", "second"])),
        "classes": str(raster(folder, "classes.tif", classes, nodata=0)),
        "red": str(raster(folder, f"{LANDSAT}_B4_crop.TIF", dn[0])),
        "nir": str(raster(folder, f"{LANDSAT}_B5_crop.TIF", dn[1])),
        "centroids": str(centroids),
    }


def area():
    return memory_polygons([box_wkt(ORIGIN[0] + 105, ORIGIN[1] - 1805, ORIGIN[0] + 1703,
                                    ORIGIN[1] - 97)])


RUNS = {
    "kmeans-one-band": ("kmeans", lambda i, o: {
        "INPUT": [i["values"]], "CLUSTERS": 4, "MIN_AREA": 500, "AOI": area(),
        "OUTPUT": o("out.tif"), "CENTROIDS": o("out.json"), "STATISTICS": o("stats.csv")}),
    "kmeans-two-bands-sampled": ("kmeans", lambda i, o: {
        "INPUT": [i["two_bands"]], "CLUSTERS": 5, "SEED": 11, "SAMPLE_SIZE": 3000,
        "CLIP_QUANTILES": "1,99", "OUTPUT": o("out.tif"), "CENTROIDS": o("out.json"),
        "STATISTICS": o("stats.csv")}),
    "sieve": ("sieve", lambda i, o: {"INPUT": i["classes"], "MIN_AREA": 1500,
                                     "CONNECTIVITY": 4, "OUTPUT": o("out.tif")}),
    "bandmath": ("bandmath", lambda i, o: {"INPUT": [i["two_bands"]],
                                           "EXPRESSION": "(B2 - B1) / (B2 + B1)",
                                           "OUTPUT": o("out.tif")}),
    "bandmath-calibrated": ("bandmath", lambda i, o: {"INPUT": [i["red"], i["nir"]],
                                                      "EXPRESSION": "NDVI", "CALIBRATE": True,
                                                      "OUTPUT": o("out.tif")}),
    "calibrate": ("calibrate", lambda i, o: {"INPUT": [i["red"], i["nir"]],
                                             "OUTPUT_FOLDER": o("calibrated")}),
    "applycentroids": ("applycentroids", lambda i, o: {
        "INPUT": [i["two_bands"]], "CENTROIDS": i["centroids"], "MIN_AREA": 500,
        "OUTPUT": o("out.tif"), "STATISTICS": o("stats.csv")}),
    "choosek-one-band": ("choosek", lambda i, o: {
        "INPUT": [i["values"]], "K_MIN": 2, "K_MAX": 5, "SAMPLE_SIZE": 1500, "SEED": 5,
        "CALINSKI_HARABASZ": True, "TABLE": o("scores.csv"), "REPORT": o("report.html")}),
    "choosek-two-bands": ("choosek", lambda i, o: {
        "INPUT": [i["two_bands"]], "K_MIN": 2, "K_MAX": 5, "SAMPLE_SIZE": 1500, "SEED": 5,
        "TABLE": o("scores.csv"), "REPORT": o("report.html")}),
    "zones": ("zones", lambda i, o: {
        "INPUT": [i["two_bands"]], "EXPRESSION": "(B2 - B1) / (B2 + B1)", "CLUSTERS": 4,
        "MIN_AREA": 500, "SEED": 3, "OUTPUT": o("out.tif"), "CENTROIDS": o("out.json"),
        "STATISTICS": o("stats.csv"), "INDEX": o("index.tif")}),
}


def files_with_content(folder):
    return {path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("name", list(RUNS))
def test_two_runs_write_identical_files(name, inputs, tmp_path):
    algorithm, build = RUNS[name]
    written = []
    logs = []
    requested = set()

    def output(folder, file):
        requested.add(file)
        return str(folder / file)

    for run in ("first", "second"):
        folder = tmp_path / run
        folder.mkdir()
        feedback = recording_feedback()
        result = run_algorithm(f"rasterclustering:{algorithm}",
                               build(inputs, lambda file, folder=folder: output(folder, file)),
                               feedback)
        written.append(files_with_content(folder))
        logs.append([line.replace(str(folder), "<folder>") for line in feedback.infos])
        if "RECOMMENDED_K" in result:
            logs[-1].append(f"recommended {result['RECOMMENDED_K']}")
    first, second = written
    assert all(file in first or any(name.startswith(f"{file}/") for name in first)
               for file in requested), (requested, sorted(first))
    assert sorted(first) == sorted(second)
    for file in first:
        assert first[file] == second[file], f"{file} differs between two identical runs"
    assert logs[0] == logs[1]
