"""Every streaming entry point (zone polygons too) gives byte-identical outputs whatever runs
its block jobs: in this process in block order (the default), in reverse order, in other
processes (pickled jobs that open the rasters themselves), or on a Dask cluster's workers
(`DaskExecutor`).

The inputs are read in many small blocks and strips, so every merge has many results to merge.
"""

import concurrent.futures
import multiprocessing
import pickle
from pathlib import Path

import numpy as np
import pytest
from helpers import write_raster
from raster_clustering.core.bandmath.raster import band_math_to_raster
from raster_clustering.core.calibration.calibrators import BandCalibrator
from raster_clustering.core.calibration.raster import CalibrationJob, calibrate_band_files
from raster_clustering.core.clustering.apply_centroids import apply_centroids
from raster_clustering.core.clustering.choose_k import ChooseKSettings, choose_k
from raster_clustering.core.clustering.classify import PixelOutputs
from raster_clustering.core.clustering.fuzzy_cmeans import FuzzyCMeansSettings
from raster_clustering.core.clustering.isodata import IsodataOptions, IsodataSettings
from raster_clustering.core.clustering.kmeans import KMeansSettings, cluster_rasters
from raster_clustering.core.engine import InProcessExecutor, use_executor
from raster_clustering.core.io.feature_stack import RasterInput
from raster_clustering.core.sieve.sieve import sieve_raster
from raster_clustering.core.zones.polygons import polygonize_zones

ORIGIN = (500000.0, 5800000.0)


class ReversedExecutor(InProcessExecutor):
    """Runs every job of a pass, last block first, then hands the results back in order."""

    name = "reversed"

    def map_blocks(self, job, shared, blocks, *, steps=None):
        blocks = list(blocks)
        results = [job(shared, block) for block in reversed(blocks)][::-1]
        yield from super().map_blocks(lambda _, index: results[index], None,
                                      range(len(blocks)), steps=steps)


def _run_pickled(payload: bytes):
    job, shared, block = pickle.loads(payload)
    return pickle.dumps(job(shared, block))


class ProcessPoolExecutor(InProcessExecutor):
    """Runs each job, pickled, in one of two other processes, as a cluster's workers would."""

    name = "process pool"

    def __init__(self, pool):
        self._pool = pool

    def map_blocks(self, job, shared, blocks, *, steps=None):
        blocks = list(blocks)
        futures = [self._pool.submit(_run_pickled, pickle.dumps((job, shared, block)))
                   for block in blocks]
        yield from super().map_blocks(lambda _, index: pickle.loads(futures[index].result()),
                                      None, range(len(blocks)), steps=steps)


@pytest.fixture(scope="module")
def pool():
    with concurrent.futures.ProcessPoolExecutor(
            2, mp_context=multiprocessing.get_context("spawn")) as processes:
        yield processes


@pytest.fixture(params=["reversed", "processes", "dask"])
def other_executor(request):
    """Each other way to run the jobs; "dask" is the distributed executor on the session's
    two-worker LocalCluster (`dask_cluster`)."""
    if request.param == "reversed":
        return ReversedExecutor()
    if request.param == "processes":
        return ProcessPoolExecutor(request.getfixturevalue("pool"))
    return request.getfixturevalue("dask_executor")


@pytest.fixture(scope="module")
def small_blocks():
    from raster_clustering.core.io import rasters as raster_io
    from raster_clustering.core.sieve import sieve

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(raster_io, "BLOCK_TARGET_PIXELS", 1 << 12)
        patch.setattr(sieve, "_STRIP_ROWS", 16)
        yield


def patches(seed, shape=(120, 100), scale=1.0):
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 1, (shape[0] // 10, shape[1] // 10))
    values = np.kron(coarse, np.ones((10, 10))) + rng.normal(0, 0.05, shape)
    return (values * scale).astype(np.float32)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")

    def make_raster(name, array, **options):
        return write_raster(folder / name, array, **options)

    values = patches(1)
    values[20:30, 40:60] = np.nan
    classes = (np.digitize(values, [0.3, 0.6]) + 1).astype(np.uint8)
    classes[np.isnan(values)] = 0
    return {
        "values": make_raster("values.tif", values, descriptions=["values"]),
        "bands": make_raster("bands.tif", np.stack([values, patches(2), patches(3)]),
                             descriptions=["a", "b", "c"]),
        "dn": make_raster("x_B4.tif", (patches(4) * 20000 + 1000).astype(np.uint16)),
        "classes": make_raster("classes.tif", classes, nodata=0),
        "classes_degrees": make_raster("classes_degrees.tif", classes, nodata=0,
                                       origin=(15.0, 60.0), pixel_size=0.0002, epsg=4326),
    }


AREA = (f"POLYGON(({ORIGIN[0] + 55} {ORIGIN[1] - 35},{ORIGIN[0] + 905} {ORIGIN[1] - 105},"
        f"{ORIGIN[0] + 805} {ORIGIN[1] - 1105},{ORIGIN[0] + 105} {ORIGIN[1] - 905},"
        f"{ORIGIN[0] + 55} {ORIGIN[1] - 35}))")
CALIBRATOR = BandCalibrator(band="B4", quantity="TOA reflectance", unit="",
                            description="B4 TOA reflectance", log_message="test",
                            metadata_path=Path("MTL.txt"), gain=2e-5, offset=-0.1)


def runs(inputs, out: Path):
    """Each entry point once; returns what each returned, beside the files it wrote."""
    one = [RasterInput(str(inputs["values"]))]
    three = [RasterInput(str(inputs["bands"]))]
    kmeans_1d = cluster_rasters(one, out / "k1.tif", settings=KMeansSettings(n_clusters=4),
                                geometry_wkt=AREA, min_area_m2=500)
    kmeans_3 = cluster_rasters(three, out / "k3.tif", min_area_m2=300, connectivity=4,
                               settings=KMeansSettings(n_clusters=5, seed=3, sample_size=2000,
                                                       clip_quantiles=(1.0, 99.0)))
    kmeans_3.model.save(out / "k3.json")
    applied = apply_centroids(three, out / "k3.json", out / "applied.tif", geometry_wkt=AREA,
                              pixel_outputs=PixelOutputs(distance_path=out / "applied_d.tif"))
    fuzzy = cluster_rasters(three, out / "fuzzy.tif", min_area_m2=300, settings=FuzzyCMeansSettings(
        n_clusters=4, sample_size=2000, distance_metric="mahalanobis"),
        pixel_outputs=PixelOutputs(out / "fuzzy_d.tif", out / "fuzzy_u.tif"))
    fuzzy_unsieved = cluster_rasters(
        one, out / "fuzzy1.tif", geometry_wkt=AREA,
        settings=FuzzyCMeansSettings(n_clusters=3, sample_size=1000),
        pixel_outputs=PixelOutputs(membership_path=out / "fuzzy1_u.tif"))
    isodata = cluster_rasters(three, out / "isodata.tif", settings=IsodataSettings(
        IsodataOptions(initial_clusters=3), sample_size=2000),
        pixel_outputs=PixelOutputs(distance_path=out / "isodata_d.tif"))
    scores_1d = choose_k(one, settings=ChooseKSettings(k_min=2, k_max=4, sample_size=500),
                         geometry_wkt=AREA)
    scores_3 = choose_k(three, settings=ChooseKSettings(k_min=2, k_max=4, sample_size=400))
    fuzzy_scores = choose_k(three, settings=ChooseKSettings(k_min=2, k_max=3, sample_size=300,
                                                            method="fuzzy c-means"))
    band_math = band_math_to_raster(three, '"bands@1" * 2 - "bands@3"', out / "math.tif")
    calibrated = calibrate_band_files([CalibrationJob(str(inputs["dn"]), out / "toa.tif",
                                                      CALIBRATOR)])
    sieved = sieve_raster(inputs["classes"], out / "sieved.tif", min_area_m2=1500)
    degrees = sieve_raster(inputs["classes_degrees"], out / "degrees.tif", min_area_m2=8000)
    # GeoJSON: a GeoPackage or a Shapefile holds the time it was written.
    zones = polygonize_zones(inputs["classes"], out / "zones.geojson", features=three,
                             smoothing=2)
    zones_degrees = polygonize_zones(inputs["classes_degrees"], out / "zones_degrees.geojson",
                                     connectivity=4, per_class=True)
    return [kmeans_1d.model.to_json(), kmeans_1d.statistics, kmeans_3.model.to_json(),
            kmeans_3.statistics, applied.statistics, applied.distance_p98,
            *[(run.model.to_json(), run.statistics, run.distance_p98)
              for run in (fuzzy, fuzzy_unsieved, isodata)],
            scores_1d.scores, scores_3.scores, fuzzy_scores.scores,
            band_math.mean, band_math.std, calibrated[0].mean, sieved.changed_pixels,
            degrees.changed_pixels, zones, zones_degrees]


def written(folder: Path) -> dict:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def in_process(inputs, small_blocks, tmp_path_factory):
    """What the default executor returns and writes."""
    folder = tmp_path_factory.mktemp("in_process")
    return pickle.dumps(runs(inputs, folder)), written(folder)


def test_outputs_are_identical_whatever_runs_the_jobs(inputs, small_blocks, in_process,
                                                      other_executor, tmp_path):
    with use_executor(other_executor):
        results = runs(inputs, tmp_path)
    assert pickle.dumps(results) == in_process[0]
    assert written(tmp_path) == in_process[1]
