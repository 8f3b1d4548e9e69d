"""The outputs of a representative set of runs stay byte-identical to those recorded in
golden_outputs.json (sha256 of every file written), across refactorings of how the work is done.

The runs work in many small blocks and strips (the block target and the sieve's strip height
are lowered), so every merge of block results is exercised. The hashes depend on the libraries
that compute and encode them: the test skips, saying so, when GDAL, numpy, scipy or
scikit-learn differ from the versions recorded. `RASTERCLUSTERING_UPDATE_GOLDEN=1` records the
current outputs instead (only when a change of output is intended).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from helpers import run_algorithm
from reliability_tools import EPSG, LANDSAT, ORIGIN, memory_polygons, raster

pytestmark = pytest.mark.usefixtures("provider")

GOLDEN = Path(__file__).with_name("golden_outputs.json")
UPDATE = os.environ.get("RASTERCLUSTERING_UPDATE_GOLDEN") == "1"
SIDE = 240


def library_versions() -> dict[str, str]:
    import scipy
    import sklearn
    from osgeo import gdal

    return {"gdal": gdal.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__}


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of about 16 Ki pixels and sieve strips of 24 rows: every run works in many."""
    from raster_clustering.core.io import rasters as raster_io
    from raster_clustering.core.sieve import sieve

    monkeypatch.setattr(raster_io, "BLOCK_TARGET_PIXELS", 1 << 14)
    monkeypatch.setattr(sieve, "_STRIP_ROWS", 24)


def smooth(seed: int, side: int = SIDE) -> np.ndarray:
    """Float32 patches of 12 × 12 pixels at random levels, with noise: zones of every size."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.0, 1.0, (side // 12, side // 12))
    values = np.kron(coarse, np.ones((12, 12))) + rng.normal(0, 0.04, (side, side))
    return values.astype(np.float32)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, shared_data):
    folder = tmp_path_factory.mktemp("golden_inputs")
    rng = np.random.default_rng(20)
    values = smooth(1)
    values[30:50, 100:130] = np.nan
    second, third = smooth(2), smooth(3)
    classes = (np.digitize(values, [0.3, 0.55, 0.8]) + 1).astype(np.uint8)
    classes[np.isnan(values)] = 0
    # A patch of one-pixel regions enclosed by nodata: GDAL cannot merge it, the exact step must.
    classes[150:170, 150:170] = 0
    classes[153:167, 153:167] = (np.indices((14, 14)).sum(axis=0) % 3 + 1).astype(np.uint8)
    mtl = shared_data / "landsat8-thermal" / f"{LANDSAT}_MTL.txt"
    (folder / mtl.name).write_text(mtl.read_text())
    dn = rng.integers(6000, 24000, (3, SIDE, SIDE)).astype(np.uint16)
    dn[:, :5, :] = 0  # fill
    (folder / "centres.json").write_text(json.dumps({
        "values, second": [[1, [0.2, 0.3]], [2, [0.5, 0.7]], [3, [0.8, 0.2]]],
        "features": ["values", "second"],
        "standardize": {"mean": [0.5, 0.5], "std": [0.25, 0.3]}}))
    return {
        "values": str(raster(folder, "values.tif", values, descriptions=["values"])),
        "three_bands": str(raster(folder, "three.tif", np.stack([values, second, third]),
                                  descriptions=["values", "second", "third"])),
        "two_bands": str(raster(folder, "two.tif", np.stack([values, second]),
                                descriptions=["values", "second"])),
        # 20 m pixels, shifted: aligned onto the first layer's grid, or resampled.
        "coarse": str(raster(folder, "coarse.tif", smooth(4, SIDE // 2),
                             origin=(ORIGIN[0] + 30, ORIGIN[1] - 50), pixel_size=20.0)),
        "classes": str(raster(folder, "classes.tif", classes, nodata=0)),
        "classes_degrees": str(raster(folder, "classes_degrees.tif", classes, nodata=0,
                                      origin=(15.0, 60.5), pixel_size=0.0002, epsg=4326)),
        "red": str(raster(folder, f"{LANDSAT}_B4_crop.TIF", dn[0])),
        "nir": str(raster(folder, f"{LANDSAT}_B5_crop.TIF", dn[1])),
        "thermal": str(raster(folder, f"{LANDSAT}_B10_crop.TIF", dn[2])),
        "centroids": str(folder / "centres.json"),
    }


def area():
    return memory_polygons([
        f"POLYGON(({ORIGIN[0] + 105} {ORIGIN[1] - 95},{ORIGIN[0] + 2103} {ORIGIN[1] - 305},"
        f"{ORIGIN[0] + 1803} {ORIGIN[1] - 2205},{ORIGIN[0] + 255} {ORIGIN[1] - 1905},"
        f"{ORIGIN[0] + 105} {ORIGIN[1] - 95}))"])


def extent() -> str:
    return f"{ORIGIN[0] + 400},{ORIGIN[0] + 2000},{ORIGIN[1] - 2300},{ORIGIN[1] - 150} " \
           f"[EPSG:{EPSG}]"


RUNS = {
    "kmeans-one-band-aoi-sieve": ("kmeans", lambda i, o: {
        "INPUT": [i["values"]], "CLUSTERS": 5, "AOI": area(), "MIN_AREA": 800,
        "OUTPUT": o("out.tif"), "CENTROIDS": o("out.json"), "STATISTICS": o("stats.csv")}),
    "kmeans-one-band-quantiles-extent": ("kmeans", lambda i, o: {
        "INPUT": [i["values"]], "CLUSTERS": 4, "EXTENT": extent(), "CLIP": False,
        "CLIP_QUANTILES": "2,98", "OUTPUT": o("out.tif"), "CENTROIDS": o("out.json"),
        "STATISTICS": o("stats.csv")}),
    "kmeans-three-bands-aoi-quantiles-sieve": ("kmeans", lambda i, o: {
        "INPUT": [i["three_bands"]], "CLUSTERS": 6, "SEED": 7, "SAMPLE_SIZE": 4000,
        "AOI": area(), "CLIP_QUANTILES": "1,99", "MIN_AREA": 1200, "CONNECTIVITY": 4,
        "OUTPUT": o("out.tif"), "CENTROIDS": o("out.json"), "STATISTICS": o("stats.csv")}),
    "kmeans-two-layers-aligned-unstandardized": ("kmeans", lambda i, o: {
        "INPUT": [i["values"], i["coarse"]], "CLUSTERS": 4, "SEED": 2, "STANDARDIZE": False,
        "SAMPLE_SIZE": 30000, "OUTPUT": o("out.tif"), "CENTROIDS": o("out.json"),
        "STATISTICS": o("stats.csv")}),
    "applycentroids-aoi-sieve": ("applycentroids", lambda i, o: {
        "INPUT": [i["two_bands"]], "CENTROIDS": i["centroids"], "AOI": area(),
        "MIN_AREA": 600, "OUTPUT": o("out.tif"), "STATISTICS": o("stats.csv")}),
    "choosek-one-band": ("choosek", lambda i, o: {
        "INPUT": [i["values"]], "K_MIN": 2, "K_MAX": 6, "SAMPLE_SIZE": 1200, "SEED": 5,
        "AOI": area(), "CALINSKI_HARABASZ": True, "TABLE": o("scores.csv"),
        "REPORT": o("report.html")}),
    "choosek-three-bands": ("choosek", lambda i, o: {
        "INPUT": [i["three_bands"]], "K_MIN": 3, "K_MAX": 5, "SAMPLE_SIZE": 800, "SEED": 1,
        "TABLE": o("scores.csv"), "REPORT": o("report.html")}),
    "bandmath-calibrated-ndvi": ("bandmath", lambda i, o: {
        "INPUT": [i["red"], i["nir"]], "EXPRESSION": "NDVI", "CALIBRATE": True,
        "OUTPUT": o("out.tif")}),
    "bandmath-two-grids-bilinear": ("bandmath", lambda i, o: {
        "INPUT": [i["values"], i["coarse"]], "EXPRESSION": '"values@1" * 2 - "coarse@1"',
        "RESAMPLING": 1, "OUTPUT": o("out.tif")}),
    "calibrate": ("calibrate", lambda i, o: {
        "INPUT": [i["red"], i["nir"], i["thermal"]], "CELSIUS": True,
        "OUTPUT_FOLDER": o("calibrated")}),
    "sieve-metres": ("sieve", lambda i, o: {
        "INPUT": i["classes"], "MIN_AREA": 1500, "CONNECTIVITY": 4, "OUTPUT": o("out.tif")}),
    "sieve-degrees": ("sieve", lambda i, o: {
        "INPUT": i["classes_degrees"], "MIN_AREA": 5000, "OUTPUT": o("out.tif")}),
    "zones": ("zones", lambda i, o: {
        "INPUT": [i["two_bands"]], "EXPRESSION": "(B2 - B1) / (B2 + B1)", "CLUSTERS": 4,
        "AOI": area(), "MIN_AREA": 700, "SEED": 3, "OUTPUT": o("out.tif"),
        "CENTROIDS": o("out.json"), "STATISTICS": o("stats.csv"), "INDEX": o("index.tif")}),
}


def content(path: Path) -> bytes:
    """The file's bytes; a QGIS style in canonical XML (Qt writes its attributes in an order
    that changes from one process to the next)."""
    if path.suffix == ".qml":
        return ElementTree.canonicalize(from_file=str(path)).encode()
    return path.read_bytes()


def digests(folder: Path) -> dict[str, str]:
    return {path.relative_to(folder).as_posix(): hashlib.sha256(content(path)).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def recorded() -> dict:
    return json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {"versions": {}, "runs": {}}


@pytest.mark.parametrize("name", list(RUNS))
def test_outputs_are_those_recorded(name, inputs, tmp_path, small_blocks):
    golden = recorded()
    if not UPDATE and golden["versions"] != library_versions():
        pytest.skip(f"outputs recorded with {golden['versions']}, this run has "
                    f"{library_versions()}; set RASTERCLUSTERING_UPDATE_GOLDEN=1 to record")
    algorithm, build = RUNS[name]
    folder = tmp_path / "out"
    folder.mkdir()
    run_algorithm(f"rasterclustering:{algorithm}",
                  build(inputs, lambda file: str(folder / file)))
    written = digests(folder)
    if UPDATE:
        golden["versions"] = library_versions()
        golden["runs"][name] = written
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
        return
    assert written == golden["runs"][name]
