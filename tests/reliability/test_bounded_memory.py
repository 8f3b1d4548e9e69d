"""Bounded memory: k-means, sieve and band math finish, with correct results, on rasters several
times larger than the address space their process may use (issue 7).

Sizes: 23040 × 23040 pixels (530 M). The values raster is Float64 (3.96 GiB decoded) and k-means
and band math run under a 1 GiB address-space limit (RLIMIT_AS), four times smaller. The class
raster is Int32 (1.98 GiB) and the sieve runs under 640 MiB, three times smaller. Larger rasters
would say no more and cost minutes (each pass over 530 M pixels takes ~10 s on 2 cores); the
data are structured, so the DEFLATE files are a few tens of MB and quick to write.

Each run is a subprocess that first limits its address space, shows that the whole raster cannot
be held (a raster-sized allocation fails), then runs the core function. OpenBLAS/OpenMP use one
thread (worker threads reserve address space per thread) and GDAL's block cache is 128 MB
(GDAL's default, 5% of the RAM, would assume a machine far larger than the budget).

The data (oracle: the formula below, evaluated here with numpy): cells of CELL × CELL pixels hold
one of five levels, no two touching cells alike; inside every SPECK_PERIOD × SPECK_PERIOD block
a 2 × 2 speck of another level; a ripple of ±0.02 along the columns; a nodata rectangle at the
top right.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr
from scipy import ndimage

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="RLIMIT_AS and /proc/self/status are Linux's")

SIZE = 23040  # 90 tiles of 256
TILE = 256
CELL = 512
SPECK_PERIOD = 64
SPECK_OFFSET = 30  # a speck covers rows and columns 30, 31 of its block: well inside its cell
LEVELS = np.array([-0.2, 0.1, 0.3, 0.55, 0.8])  # ascending: class n is LEVELS[n - 1]
RIPPLE = 0.02 * (np.arange(SPECK_PERIOD) - 31.5) / 31.5  # by column % SPECK_PERIOD
NODATA_ROWS, NODATA_COLUMNS = 512, 1024  # the nodata rectangle: whole cells of the top right
VALUE_NODATA = -9999.0
PIXEL_M = 10.0
MIN_AREA_M2 = 1000.0  # 10 pixels: every 4-pixel speck is merged, every cell kept
EXPRESSION = "(B1 - 0.3) / (B1 + 0.5)"  # B1 >= -0.22 here, so never a division by zero

GDAL_CACHE_MB = 128
LIMIT_MIB = {"kmeans": 1024, "band_math": 1024, "sieve": 640}
CHILD_TIMEOUT_S = 600


def expression(values: np.ndarray) -> np.ndarray:
    """EXPRESSION written out in numpy (the oracle for band math)."""
    return (values - 0.3) / (values + 0.5)


def truth(rows: np.ndarray, columns: np.ndarray) -> dict[str, np.ndarray]:
    """The generated data over rows × columns (1-D index arrays), as arrays (rows, columns).

    Returns:
        cell: int class 0..4 of the cell (what the sieve must leave); speckled: int class 0..4
        with the specks (what k-means must find); in_speck: bool; values: float64 with
        VALUE_NODATA outside `valid`; valid: bool.
    """
    r, c = rows[:, None], columns[None, :]
    shape = (len(rows), len(columns))
    cell = np.broadcast_to(((r // CELL) * 3 + c // CELL) % 5, shape)  # touching cells differ
    in_speck = np.broadcast_to((r % SPECK_PERIOD) // 2 == SPECK_OFFSET // 2, shape) & (
        (c % SPECK_PERIOD) // 2 == SPECK_OFFSET // 2)
    speckled = np.where(in_speck, (cell + 2) % 5, cell)
    valid = np.broadcast_to(~((r < NODATA_ROWS) & (c >= SIZE - NODATA_COLUMNS)), shape)
    values = np.where(valid, LEVELS[speckled] + RIPPLE[c % SPECK_PERIOD], VALUE_NODATA)
    return {"cell": cell, "speckled": speckled, "in_speck": in_speck, "values": values,
            "valid": valid}


@dataclass(frozen=True)
class BigRasters:
    """The two rasters and what their valid pixels add up to (sums in float64)."""

    values: Path  # Float64, nodata VALUE_NODATA
    classes: Path  # Int32: speckled class + 1, nodata 0
    counts: np.ndarray  # int64 (5,): valid pixels of each speckled class
    means: np.ndarray  # float64 (5,): mean value of each speckled class
    speck_pixels: int  # valid pixels in specks
    expression_sum: float  # sum of expression(values) over the valid pixels
    expression_range: tuple[float, float]  # its minimum and maximum


@dataclass(frozen=True)
class _Strip:
    """One row of tiles: the arrays written and their contribution to the totals."""

    values: np.ndarray
    classes: np.ndarray
    counts: np.ndarray
    sums: np.ndarray
    speck_pixels: int
    expression_sum: float
    expression_range: tuple[float, float]

    @classmethod
    def at(cls, row_off: int) -> _Strip:
        strip = truth(np.arange(row_off, row_off + TILE), np.arange(SIZE))
        valid, speckled, values = strip["valid"], strip["speckled"], strip["values"]
        of_valid = expression(values[valid])
        return cls(values, np.where(valid, speckled + 1, 0).astype(np.int32),
                   np.bincount(speckled[valid], minlength=5),
                   np.bincount(speckled[valid], weights=values[valid], minlength=5),
                   int(np.count_nonzero(strip["in_speck"] & valid)), float(of_valid.sum()),
                   (float(of_valid.min()), float(of_valid.max())))


def _create(path: Path, data_type: int, nodata: float) -> gdal.Dataset:
    options = ["TILED=YES", f"BLOCKXSIZE={TILE}", f"BLOCKYSIZE={TILE}", "COMPRESS=DEFLATE",
               "ZLEVEL=1", "BIGTIFF=YES", "NUM_THREADS=ALL_CPUS"]
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), SIZE, SIZE, 1, data_type, options)
    assert dataset is not None, gdal.GetLastErrorMsg()
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    dataset.SetProjection(srs.ExportToWkt())
    dataset.SetGeoTransform((500000.0, PIXEL_M, 0.0, 5800000.0, 0.0, -PIXEL_M))
    dataset.GetRasterBand(1).SetNoDataValue(nodata)
    return dataset


@pytest.fixture(scope="module")
def big_rasters(tmp_path_factory) -> BigRasters:
    """Both rasters, written a row of tiles at a time, and their totals (~15 s)."""
    folder = tmp_path_factory.mktemp("bounded_memory")
    paths = folder / "values.tif", folder / "classes.tif"
    values_dataset = _create(paths[0], gdal.GDT_Float64, VALUE_NODATA)
    classes_dataset = _create(paths[1], gdal.GDT_Int32, 0)
    strips: dict[tuple[int, bool], _Strip] = {}  # the pattern repeats: each distinct one once
    written = []
    for row_off in range(0, SIZE, TILE):
        key = ((row_off // CELL) % 5, row_off < NODATA_ROWS)
        if key not in strips:
            strips[key] = _Strip.at(row_off)
        strip = strips[key]
        assert values_dataset.GetRasterBand(1).WriteArray(strip.values, 0, row_off) == 0
        assert classes_dataset.GetRasterBand(1).WriteArray(strip.classes, 0, row_off) == 0
        values_dataset.FlushCache()  # keep this process's block cache small too
        classes_dataset.FlushCache()
        written.append(strip)
    values_dataset = classes_dataset = None
    counts = np.sum([strip.counts for strip in written], axis=0)
    return BigRasters(
        paths[0], paths[1], counts, np.sum([strip.sums for strip in written], axis=0) / counts,
        sum(strip.speck_pixels for strip in written),
        math.fsum(strip.expression_sum for strip in written),
        (min(strip.expression_range[0] for strip in written),
         max(strip.expression_range[1] for strip in written)))


@pytest.fixture(scope="module")
def plugin_parent(tmp_path_factory) -> Path:
    """A folder whose `raster_clustering` links to this checkout, for the children's path."""
    parent = tmp_path_factory.mktemp("plugin_path")
    (parent / "raster_clustering").symlink_to(REPO_ROOT, target_is_directory=True)
    return parent


_CHILD_PROLOGUE = """\
import json, resource, sys
arguments = json.loads(sys.argv[1])
limit = arguments["limit_bytes"]
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import numpy as np
try:
    np.empty(arguments["raster_bytes"], dtype=np.uint8)
    whole_raster_fits = True
except MemoryError:
    whole_raster_fits = False
"""

_CHILD_EPILOGUE = """
status = dict(line.split(":", 1) for line in open("/proc/self/status") if line.startswith("Vm"))
print(json.dumps({"result": result, "whole_raster_fits": whole_raster_fits,
                  "peak_address_space_mib": int(status["VmPeak"].split()[0]) / 1024,
                  "peak_rss_mib": int(status["VmHWM"].split()[0]) / 1024}))
"""


def run_limited(body: str, *, limit_mib: int, raster: Path, plugin_parent: Path,
                **arguments) -> dict:
    """Run `body` (it sets `result`, a JSON-able value) in a child limited to limit_mib MiB of
    address space; return the child's report."""
    dataset = gdal.Open(str(raster))
    raster_bytes = (dataset.RasterXSize * dataset.RasterYSize
                    * gdal.GetDataTypeSize(dataset.GetRasterBand(1).DataType) // 8)
    dataset = None
    assert raster_bytes >= 3 * limit_mib * 2**20, "the raster must be several times the limit"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", GDAL_CACHEMAX=str(GDAL_CACHE_MB),
               PYTHONPATH=str(plugin_parent))
    payload = json.dumps({"limit_bytes": limit_mib * 2**20, "raster_bytes": raster_bytes,
                          **arguments})
    completed = subprocess.run(
        [sys.executable, "-c", _CHILD_PROLOGUE + body + _CHILD_EPILOGUE, payload], env=env,
        capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    assert completed.returncode == 0, (
        f"exit {completed.returncode} under a {limit_mib} MiB address-space limit:\n"
        f"{completed.stderr[-3000:]}")
    # GDAL reports failures it survives on stderr: e.g. a colour table set once the tiles of a
    # large output are already on disk.
    gdal_errors = [line for line in completed.stderr.splitlines() if line.startswith("ERROR ")]
    assert not gdal_errors, gdal_errors
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert not report["whole_raster_fits"], "the limit must forbid holding the whole raster"
    print(f"\n{raster.name} ({raster_bytes / 2**30:.2f} GiB decoded) under {limit_mib} MiB: "
          f"peak address space {report['peak_address_space_mib']:.0f} MiB, "
          f"peak RSS {report['peak_rss_mib']:.0f} MiB")
    return report["result"]


# Windows (row, column, height, width) checked pixel by pixel: across the nodata corner, the
# last rows and columns, the middle, and a cell corner.
WINDOWS = [(256, SIZE - 1280, 512, 512), (SIZE - 300, SIZE - 700, 300, 700),
           (SIZE // 2 - 333, SIZE // 2 - 250, 600, 500), (CELL * 7 - 40, CELL * 9 - 40, 80, 80)]


def read_window(path: Path, window: tuple[int, int, int, int]) -> np.ndarray:
    row, column, height, width = window
    dataset = gdal.Open(str(path))
    assert dataset is not None and (dataset.RasterXSize, dataset.RasterYSize) == (SIZE, SIZE)
    return dataset.GetRasterBand(1).ReadAsArray(column, row, width, height)


def window_truth(window: tuple[int, int, int, int]) -> dict[str, np.ndarray]:
    row, column, height, width = window
    return truth(np.arange(row, row + height), np.arange(column, column + width))


def test_kmeans_of_a_raster_four_times_the_memory_limit(big_rasters, plugin_parent, tmp_path):
    output = tmp_path / "classes.tif"
    result = run_limited("""
from raster_clustering.core.io.feature_stack import RasterInput
from raster_clustering.core.clustering.kmeans import KMeansSettings, cluster_rasters
run = cluster_rasters([RasterInput(arguments["input"])], arguments["output"],
                      settings=KMeansSettings(n_clusters=5))
result = {"centres": run.model.centres[:, 0].tolist(), "fitted": run.fitted_pixels,
          "counts": [s.pixel_count for s in run.statistics],
          "means": [float(s.mean[0]) for s in run.statistics]}
""", limit_mib=LIMIT_MIB["kmeans"], raster=big_rasters.values, plugin_parent=plugin_parent,
        input=str(big_rasters.values), output=str(output))

    # The five levels are far apart against the ripple: the optimal partition is the levels, and
    # its centres are the exact class means (the exact 1-D k-means of every valid pixel).
    np.testing.assert_allclose(result["centres"], big_rasters.means, rtol=0, atol=1e-9)
    assert result["fitted"] == big_rasters.counts.sum()
    assert result["counts"] == big_rasters.counts.tolist()
    np.testing.assert_allclose(result["means"], big_rasters.means, rtol=0, atol=1e-9)
    dataset = gdal.Open(str(output))  # kept: the colour table dies with its dataset
    colours = dataset.GetRasterBand(1).GetColorTable()  # the legend made it too
    assert colours is not None and colours.GetCount() > len(LEVELS)
    for window in WINDOWS:
        expected = window_truth(window)
        labels = read_window(output, window)
        np.testing.assert_array_equal(labels, np.where(expected["valid"],
                                                       expected["speckled"] + 1, 0))


def in_degrees(classes: Path, folder: Path) -> Path:
    """The classes on 0.001° pixels from 60°N to 36.96°N (a pixel covers 6,200 m² at the top,
    9,900 m² at the bottom): a VRT, so that nothing is copied."""
    path = folder / "classes_degrees.vrt"
    assert gdal.Translate(str(path), str(classes), format="VRT", outputSRS="EPSG:4326",
                          outputBounds=[10.0, 60.0, 10.0 + SIZE * 1e-3, 60.0 - SIZE * 1e-3])
    return path


@pytest.mark.parametrize("crs", ["metres", "degrees"])
def test_sieve_of_a_raster_three_times_the_memory_limit(big_rasters, plugin_parent, tmp_path,
                                                        crs):
    """In metres GDAL's sieve does it all; in degrees its one pass is followed by the exact
    step over the whole raster (true areas)."""
    output = tmp_path / "sieved.tif"
    source = big_rasters.classes if crs == "metres" else in_degrees(big_rasters.classes, tmp_path)
    # Degrees: 50,000 m² needs 6 pixels at the bottom, 9 at the top; a speck (4) never has it.
    min_area_m2 = MIN_AREA_M2 if crs == "metres" else 50_000.0
    result = run_limited("""
from raster_clustering.core.sieve.sieve import sieve_raster
report = sieve_raster(arguments["input"], arguments["output"],
                      min_area_m2=arguments["min_area_m2"], connectivity=8)
result = {"changed": report.changed_pixels, "threshold": list(report.pixel_threshold)}
""", limit_mib=LIMIT_MIB["sieve"], raster=source, plugin_parent=plugin_parent,
        input=str(source), output=str(output), min_area_m2=min_area_m2)

    if crs == "metres":
        threshold = round(MIN_AREA_M2 / PIXEL_M**2)
        assert result["threshold"] == [threshold, threshold]
    else:
        assert result["threshold"] == [6, 9]
        threshold = 6
    assert result["changed"] == big_rasters.speck_pixels  # every speck, nothing else
    structure = ndimage.generate_binary_structure(2, 2)
    for window in WINDOWS:
        expected = window_truth(window)
        sieved = read_window(output, window)
        # Each speck is merged into the cell around it; nodata stays nodata.
        np.testing.assert_array_equal(sieved, np.where(expected["valid"], expected["cell"] + 1,
                                                       0))
        # The guarantee, checked with scipy: no region inside the window is below the threshold.
        for value in np.unique(sieved[sieved > 0]):
            regions, _ = ndimage.label(sieved == value, structure)
            inner = np.setdiff1d(np.unique(regions), np.unique(np.concatenate(
                [regions[0], regions[-1], regions[:, 0], regions[:, -1]])))
            sizes = np.bincount(regions.ravel())[inner]
            assert (sizes >= threshold).all(), (window, value, sizes.min())


def test_band_math_of_a_raster_four_times_the_memory_limit(big_rasters, plugin_parent,
                                                           tmp_path):
    output = tmp_path / "expression.tif"
    result = run_limited("""
from raster_clustering.core.bandmath.raster import band_math_to_raster
from raster_clustering.core.io.feature_stack import RasterInput
run = band_math_to_raster([RasterInput(arguments["input"])], arguments["expression"],
                          arguments["output"])
result = {"valid": run.valid_pixels, "mean": run.mean, "minimum": run.minimum,
          "maximum": run.maximum}
""", limit_mib=LIMIT_MIB["band_math"], raster=big_rasters.values, plugin_parent=plugin_parent,
        input=str(big_rasters.values), output=str(output), expression=EXPRESSION)

    n_valid = int(big_rasters.counts.sum())
    assert result["valid"] == n_valid
    # The statistics are of the Float32 results: relative rounding ~6e-8 per value.
    assert result["mean"] == pytest.approx(big_rasters.expression_sum / n_valid, rel=1e-6)
    np.testing.assert_allclose([result["minimum"], result["maximum"]],
                               big_rasters.expression_range, rtol=1e-6)
    for window in WINDOWS:
        expected = window_truth(window)
        values = read_window(output, window)
        assert values.dtype == np.float32
        np.testing.assert_array_equal(np.isnan(values), ~expected["valid"])
        np.testing.assert_allclose(values[expected["valid"]],
                                   expression(expected["values"][expected["valid"]]), rtol=1e-6)
