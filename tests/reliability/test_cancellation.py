"""Issue 7: cancelling any algorithm at its first progress report stops it within one block,
raises QgsProcessingException and leaves no output and no temporary file.

The inputs are 1024 × 1024 pixels with the block target lowered to 64 Ki pixels, so every
algorithm works in many blocks. "Within one block" is measured by counting the blocks of
pixels read through GDAL's Python bindings after the cancel (sieve's own strips included;
GDAL's C sieve reads inside C, where its progress callback stops it).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import run_algorithm
from osgeo import gdal_array
from reliability_tools import (
    LANDSAT,
    left_behind,
    processing_temp_folder,
    raster,
    recording_feedback,
    snapshot,
)

pytestmark = pytest.mark.usefixtures("provider")

SIDE = 1024
BLOCK_TARGET_PIXELS = 1 << 16


@pytest.fixture
def small_blocks(monkeypatch):
    from raster_clustering.core.io import rasters as raster_io

    monkeypatch.setattr(raster_io, "BLOCK_TARGET_PIXELS", BLOCK_TARGET_PIXELS)


@pytest.fixture
def read_counter(monkeypatch):
    """Counts pixel reads (Band.ReadAsArray calls) and the ones made after a cancel."""

    class Counter:
        feedback = None
        total = 0
        after_cancel = 0

    # gdal_array.BandReadAsArray does the reading of every Band.ReadAsArray call.
    original = gdal_array.BandReadAsArray

    def counting(band, *args, **kwargs):
        Counter.total += 1
        if Counter.feedback is not None and Counter.feedback.isCanceled():
            Counter.after_cancel += 1
        return original(band, *args, **kwargs)

    monkeypatch.setattr(gdal_array, "BandReadAsArray", counting)
    return Counter


def smooth_field(seed: int = 0) -> np.ndarray:
    """Float32 1024 × 1024 values with large patches, so classes form large zones."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.0, 1.0, (SIDE // 64, SIDE // 64))
    return (np.kron(coarse, np.ones((64, 64))) + rng.normal(0, 0.01, (SIDE, SIDE))).astype(
        np.float32)


def build(algorithm: str, folder, shared_data_fixture):
    """The parameters of a run of `algorithm` with inputs in `folder` and outputs there too."""
    values = smooth_field()
    if algorithm == "kmeans":
        return {"INPUT": [str(raster(folder, "values.tif", values))], "CLUSTERS": 4,
                "MIN_AREA": 2000, "OUTPUT": str(folder / "out.tif"),
                "CENTROIDS": str(folder / "out.json"),
                "STATISTICS": str(folder / "statistics.csv")}
    if algorithm in ("fuzzycmeans", "isodata"):
        return {"INPUT": [str(raster(folder, "values.tif", np.stack([values, values.T])))],
                "CLUSTERS": 4, "MIN_AREA": 2000, "OUTPUT": str(folder / "out.tif"),
                "CENTROIDS": str(folder / "out.json"), "DISTANCE": str(folder / "distance.tif"),
                **({"MEMBERSHIP": str(folder / "membership.tif")}
                   if algorithm == "fuzzycmeans" else {}),
                "STATISTICS": str(folder / "statistics.csv")}
    if algorithm in ("sieve", "polygonize"):
        classes = (np.digitize(values, [0.25, 0.5, 0.75]) + 1).astype(np.uint8)
        classes_path = str(raster(folder, "classes.tif", classes, nodata=0))
        if algorithm == "polygonize":
            return {"INPUT": classes_path, "SMOOTHING": 1, "OUTPUT": str(folder / "out.gpkg")}
        return {"INPUT": classes_path, "MIN_AREA": 2000, "OUTPUT": str(folder / "out.tif")}
    if algorithm == "bandmath":
        return {"INPUT": [str(raster(folder, "values.tif", np.stack([values, values[::-1]])))],
                "EXPRESSION": "(B2 - B1) / (B2 + B1)", "OUTPUT": str(folder / "out.tif")}
    if algorithm == "calibrate":
        mtl = shared_data_fixture() / "landsat8-thermal" / f"{LANDSAT}_MTL.txt"
        (folder / mtl.name).write_text(mtl.read_text())
        dn = (values * 20000 + 5000).astype(np.uint16)
        bands = [str(raster(folder, f"{LANDSAT}_B{band}_crop.TIF", dn)) for band in (4, 5)]
        return {"INPUT": bands, "OUTPUT_FOLDER": str(folder / "calibrated")}
    if algorithm == "applycentroids":
        (folder / "centres.json").write_text(
            '{"values": [[1, [0.1]], [2, [0.4]], [3, [0.6]], [4, [0.9]]]}')
        return {"INPUT": [str(raster(folder, "values.tif", values))],
                "CENTROIDS": str(folder / "centres.json"), "MIN_AREA": 2000,
                "OUTPUT": str(folder / "out.tif"), "STATISTICS": str(folder / "statistics.csv")}
    if algorithm == "choosek":
        return {"INPUT": [str(raster(folder, "values.tif", np.stack([values, values.T])))],
                "K_MIN": 2, "K_MAX": 6, "SAMPLE_SIZE": 2000,
                "TABLE": str(folder / "scores.csv"), "REPORT": str(folder / "report.html")}
    if algorithm == "zones":
        return {"INPUT": [str(raster(folder, "values.tif", np.stack([values, values[::-1]])))],
                "EXPRESSION": "(B2 - B1) / (B2 + B1)", "CLUSTERS": 4, "MIN_AREA": 2000,
                "OUTPUT": str(folder / "out.tif"), "CENTROIDS": str(folder / "out.json"),
                "STATISTICS": str(folder / "statistics.csv")}
    raise AssertionError(algorithm)


#: Reads of one block: one per band read (bandmath and zones read two bands; calibrate's
#: bands are files read one after the other; sieve compares input and output strips).
READS_PER_BLOCK = {"kmeans": 1, "sieve": 2, "bandmath": 2, "calibrate": 1,
                   "applycentroids": 1, "choosek": 2, "zones": 2, "fuzzycmeans": 2,
                   "isodata": 2, "polygonize": 1}


@pytest.mark.parametrize("algorithm", list(READS_PER_BLOCK))
def test_cancel_at_the_first_progress_report(algorithm, tmp_path, request, small_blocks,
                                             read_counter):
    from qgis.core import QgsProcessingException

    folder = tmp_path / "work"
    folder.mkdir()
    parameters = build(algorithm, folder, lambda: request.getfixturevalue("shared_data"))
    inputs = snapshot(folder)
    temporary = processing_temp_folder()
    temporary_before = snapshot(temporary)

    feedback = recording_feedback(cancel_at_progress_report=1)
    read_counter.feedback = feedback
    with pytest.raises(QgsProcessingException, match="[Cc]ancel"):
        run_algorithm(f"rasterclustering:{algorithm}", parameters, feedback)
    assert feedback.isCanceled()
    assert read_counter.after_cancel <= READS_PER_BLOCK[algorithm], read_counter.after_cancel
    assert left_behind(folder, inputs) == set()
    assert left_behind(temporary, temporary_before) == set()

    # The same run without a cancel reads at least 4 blocks, more than the cancelled one:
    # stopping within one block means something. Its outputs prove the inputs were fine.
    cancelled_reads = read_counter.total
    read_counter.feedback, read_counter.total = None, 0
    run_algorithm(f"rasterclustering:{algorithm}", parameters, recording_feedback())
    assert read_counter.total >= max(4 * READS_PER_BLOCK[algorithm], cancelled_reads + 1), (
        read_counter.total, cancelled_reads)
    assert left_behind(folder, inputs), "the complete run wrote nothing"
