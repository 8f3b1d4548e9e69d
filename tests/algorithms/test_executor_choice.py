"""Where the algorithms' block jobs run: the provider's "Dask scheduler" setting and the
RASTERCLUSTERING_DASK_SCHEDULER variable; every algorithm writes and returns the same on the
session's two-worker Dask cluster as in this process; the faults a run meets there (an
unreachable scheduler, a worker that cannot read the input, a cancel) fail it cleanly and leave
nothing."""

import os
import socket
import time

import pytest
from dask_processes import dask_processes
from helpers import run_algorithm, vector_rows
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsProcessingFeedback
from raster_clustering.algorithms.executor_choice import (
    SCHEDULER_SETTING,
    register_scheduler_setting,
    scheduler_text,
)
from raster_clustering.core.engine.dask_executor import SCHEDULER_VARIABLE

pytest.importorskip("distributed")


@pytest.fixture
def setting(provider):
    """The provider's registered setting; its value is restored after the test (never saved)."""
    from processing.core.ProcessingConfig import ProcessingConfig

    registered = ProcessingConfig.settings[SCHEDULER_SETTING]
    value = registered.value
    yield registered
    registered.value = value


def test_the_provider_registers_the_dask_scheduler_setting_and_removes_it(provider, setting):
    from processing.core.ProcessingConfig import ProcessingConfig
    from raster_clustering.provider import RasterClusteringProvider

    assert (setting.group, setting.description, setting.default) == (
        "Raster clustering", "Dask scheduler", "")
    with pytest.raises(ValueError, match="is not a Dask scheduler"):
        setting.setValue("tcp//missing-colon:8786")
    setting.setValue("local:2")
    other = RasterClusteringProvider()
    other.unload()
    assert SCHEDULER_SETTING not in ProcessingConfig.settings
    register_scheduler_setting(provider)
    assert ProcessingConfig.settings[SCHEDULER_SETTING].description == "Dask scheduler"


def test_the_environment_variable_overrides_the_setting(setting, monkeypatch):
    setting.value = "tcp://127.0.0.1:8786"
    monkeypatch.delenv(SCHEDULER_VARIABLE, raising=False)
    assert scheduler_text() == "tcp://127.0.0.1:8786"
    monkeypatch.setenv(SCHEDULER_VARIABLE, "local:1")
    assert scheduler_text() == "local:1"
    monkeypatch.setenv(SCHEDULER_VARIABLE, "")
    assert scheduler_text() == ""


# --------------------------------------------------------------------------------------------
# Every algorithm, here and on the cluster


@pytest.fixture
def small_blocks(monkeypatch):
    """Many blocks and strips per pass, so that every merge merges many results."""
    from raster_clustering.core.bandmath import raster as band_math
    from raster_clustering.core.io import rasters as raster_io
    from raster_clustering.core.sieve import sieve

    monkeypatch.setattr(raster_io, "BLOCK_TARGET_PIXELS", 1 << 13)
    monkeypatch.setattr(band_math, "_OUTPUT_TILE_ROWS", 16)
    monkeypatch.setattr(sieve, "_STRIP_ROWS", 16)


@pytest.fixture(scope="module")
def inputs(provider, scene, tmp_path_factory):
    """The synthetic scene in 16 × 16 tiles (so its passes have many blocks), and the centres
    and classes k-means makes of it (in this process)."""
    folder = tmp_path_factory.mktemp("made")
    tiled = {}
    for name in ("scene", "ndvi"):
        tiled[name] = str(folder / f"{name}.tif")
        gdal.Translate(tiled[name], str(getattr(scene, name)),
                       creationOptions=["TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16"])
    run_algorithm("rasterclustering:kmeans", {
        "INPUT": [tiled["scene"]], "CLUSTERS": 4, "OUTPUT": str(folder / "classes.tif"),
        "CENTROIDS": str(folder / "centres.json")})
    # The classes in degrees: pixel areas change with the latitude, so the sieve's exact step
    # (strip jobs) runs after GDAL's pass.
    gdal.Translate(str(folder / "classes_degrees.tif"), str(folder / "classes.tif"),
                   outputSRS="EPSG:4326", outputBounds=[15.0, 61.5, 15.06, 60.0])
    return {**tiled, "aoi": str(scene.aoi), "classes": str(folder / "classes.tif"),
            "classes_degrees": str(folder / "classes_degrees.tif"),
            "centres": str(folder / "centres.json")}


def _cases(inputs, out, shared_data):
    landsat = shared_data / "landsat8-thermal" / "LC80200392015216LGN00_B4_crop.TIF"
    return {
        "kmeans one band, AOI, sieve": ("kmeans", {
            "INPUT": [inputs["ndvi"]], "CLUSTERS": 4, "AOI": inputs["aoi"], "MIN_AREA": 500,
            "OUTPUT": f"{out}/k.tif", "CENTROIDS": f"{out}/k.json",
            "STATISTICS": f"{out}/k.csv"}),
        "kmeans six bands, clipped quantiles": ("kmeans", {
            "INPUT": [inputs["scene"]], "CLUSTERS": 5, "SEED": 3, "SAMPLE_SIZE": 3000,
            "CLIP_QUANTILES": "1,99", "OUTPUT": f"{out}/k6.tif", "CENTROIDS": f"{out}/k6.json",
            "STATISTICS": f"{out}/k6.csv"}),
        "fuzzy c-means, Mahalanobis, memberships, zone polygons": ("fuzzycmeans", {
            "INPUT": [inputs["scene"]], "CLUSTERS": 4, "DISTANCE_METRIC": 2,
            "SAMPLE_SIZE": 3000, "MIN_AREA": 300, "OUTPUT": f"{out}/f.tif",
            "CENTROIDS": f"{out}/f.json", "STATISTICS": f"{out}/f.csv",
            "DISTANCE": f"{out}/f_distance.tif", "MEMBERSHIP": f"{out}/f_membership.tif",
            "ZONES": f"{out}/f_zones.geojson"}),
        "isodata, distances": ("isodata", {
            "INPUT": [inputs["scene"]], "CLUSTERS": 3, "SAMPLE_SIZE": 3000,
            "OUTPUT": f"{out}/i.tif", "CENTROIDS": f"{out}/i.json",
            "STATISTICS": f"{out}/i.csv", "DISTANCE": f"{out}/i_distance.tif"}),
        "apply centroids": ("applycentroids", {
            "INPUT": [inputs["scene"]], "CENTROIDS": inputs["centres"], "MIN_AREA": 300,
            "OUTPUT": f"{out}/applied.tif", "STATISTICS": f"{out}/applied.csv"}),
        "choose k, one band": ("choosek", {
            "INPUT": [inputs["ndvi"]], "K_MIN": 2, "K_MAX": 4, "SAMPLE_SIZE": 800,
            "TABLE": f"{out}/scores.gpkg", "REPORT": f"{out}/scores.html"}),
        "choose k, six bands": ("choosek", {
            "INPUT": [inputs["scene"]], "K_MIN": 2, "K_MAX": 4, "SAMPLE_SIZE": 800,
            "TABLE": f"{out}/scores6.gpkg", "REPORT": f"{out}/scores6.html"}),
        "band math": ("bandmath", {
            "INPUT": [inputs["scene"]], "EXPRESSION": '("scene@4" - "scene@3") / 2',
            "OUTPUT": f"{out}/math.tif"}),
        "calibrate": ("calibrate", {"INPUT": [str(landsat)], "OUTPUT": f"{out}/toa.tif"}),
        "sieve": ("sieve", {"INPUT": inputs["classes_degrees"], "MIN_AREA": 200000,
                            "CONNECTIVITY": 4, "OUTPUT": f"{out}/sieved.tif"}),
        "zones": ("zones", {
            "INPUT": [inputs["scene"]], "SENSOR": 4, "CLUSTERS": 3, "MIN_AREA": 800,
            "OUTPUT": f"{out}/zones.tif", "CENTROIDS": f"{out}/zones.json",
            "STATISTICS": f"{out}/zones.csv", "INDEX": f"{out}/index.tif"}),
        # GeoJSON: GeoPackage and Shapefile store the time they were written.
        "zone polygons": ("polygonize", {"INPUT": inputs["classes_degrees"], "SMOOTHING": 1,
                                         "OUTPUT": f"{out}/zones.geojson"}),
    }


CASES = ["kmeans one band, AOI, sieve", "kmeans six bands, clipped quantiles",
         "fuzzy c-means, Mahalanobis, memberships, zone polygons", "isodata, distances",
         "apply centroids", "choose k, one band", "choose k, six bands", "band math",
         "calibrate", "sieve", "zones", "zone polygons"]


def _outcome(algorithm, parameters, folder, feedback=None):
    """What a run returns (outputs named by file, not by folder) and every file it writes; the
    choose-k table by its rows (a GeoPackage stores its creation time)."""
    folder.mkdir()
    results = run_algorithm(f"rasterclustering:{algorithm}", parameters, feedback)
    returned = {key: str(value).replace(str(folder), "") for key, value in results.items()}
    files = {}
    for path in sorted(folder.iterdir()):
        files[path.name] = (vector_rows(path) if path.suffix == ".gpkg"
                            else path.read_bytes())
    return returned, files


@pytest.mark.shared_data
@pytest.mark.parametrize("case", CASES)
def test_every_algorithm_gives_the_same_on_the_dask_cluster(case, inputs, shared_data,
                                                           small_blocks, dask_executor,
                                                           recorder, monkeypatch, tmp_path):
    here, there = tmp_path / "here", tmp_path / "there"
    algorithm, parameters = _cases(inputs, here, shared_data)[case]
    monkeypatch.setenv(SCHEDULER_VARIABLE, "")
    expected = _outcome(algorithm, parameters, here)
    monkeypatch.setenv(SCHEDULER_VARIABLE, dask_executor.address)
    algorithm, parameters = _cases(inputs, there, shared_data)[case]
    assert _outcome(algorithm, parameters, there, recorder) == expected
    engine = [info for info in recorder.infos if info.startswith("Engine:")]
    assert engine and all(dask_executor.address in line and "2 worker(s)" in line
                          for line in engine), recorder.infos


def test_the_log_says_when_the_jobs_run_in_this_process(inputs, recorder, monkeypatch, tmp_path):
    monkeypatch.setenv(SCHEDULER_VARIABLE, "")
    run_algorithm("rasterclustering:bandmath", {"INPUT": [inputs["scene"]],
                                                "EXPRESSION": '"scene@1"',
                                                "OUTPUT": str(tmp_path / "b.tif")}, recorder)
    assert "Engine: in-process (block jobs run one after another in this process)" in \
        recorder.infos


def test_an_unreachable_scheduler_fails_within_30_s_naming_it_and_writes_nothing(
        inputs, monkeypatch, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv(SCHEDULER_VARIABLE, address)
    start = time.monotonic()
    with pytest.raises(QgsProcessingException, match=f"Cannot reach the Dask scheduler at "
                                                     f"{address}"):
        run_algorithm("rasterclustering:kmeans", {
            "INPUT": [inputs["ndvi"]], "CLUSTERS": 3, "OUTPUT": str(tmp_path / "k.tif"),
            "CENTROIDS": str(tmp_path / "k.json")})
    assert time.monotonic() - start < 30
    assert os.listdir(tmp_path) == []


def _kmeans(inputs, folder, feedback=None):
    """k-means of the six-band scene (many blocks in each pass), written into `folder`."""
    return run_algorithm("rasterclustering:kmeans", {
        "INPUT": [inputs["scene"]], "CLUSTERS": 4, "MIN_AREA": 300,
        "OUTPUT": str(folder / "k.tif"), "CENTROIDS": str(folder / "k.json"),
        "STATISTICS": str(folder / "k.csv")}, feedback)


def test_a_worker_that_cannot_read_the_input_fails_the_run_with_its_message_and_writes_nothing(
        inputs, small_blocks, monkeypatch, tmp_path):
    # The worker's GDAL has no GeoTIFF driver, as a worker without the right GDAL, or that
    # sees another filesystem, cannot open the file the client can.
    with dask_processes(1, worker_environment={"GDAL_SKIP": "GTiff"}) as address:
        monkeypatch.setenv(SCHEDULER_VARIABLE, address)
        with pytest.raises(QgsProcessingException) as raised:
            _kmeans(inputs, tmp_path)
    message = str(raised.value)
    assert message.startswith("Dask worker tcp://127.0.0.1:"), message
    assert inputs["scene"] in message
    assert os.listdir(tmp_path) == []


def test_cancelling_a_run_on_the_cluster_leaves_nothing_and_the_workers_free_for_the_next(
        inputs, small_blocks, dask_cluster, dask_executor, monkeypatch, tmp_path):
    here, cancelled, there = tmp_path / "here", tmp_path / "cancelled", tmp_path / "there"
    for folder in (here, cancelled, there):
        folder.mkdir()
    monkeypatch.setenv(SCHEDULER_VARIABLE, "")
    _kmeans(inputs, here)
    monkeypatch.setenv(SCHEDULER_VARIABLE, dask_executor.address)
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda percent: percent > 20 and feedback.cancel())
    with pytest.raises(QgsProcessingException, match="Cancelled by the user"):
        _kmeans(inputs, cancelled, feedback)
    assert feedback.isCanceled() and os.listdir(cancelled) == []

    def idle():
        return not dask_cluster.scheduler.tasks and not any(
            dask_executor.client.processing().values())

    deadline = time.monotonic() + 20
    while not idle() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert idle(), "jobs of the cancelled run stayed on the cluster"
    _kmeans(inputs, there)
    assert {path.name: path.read_bytes() for path in there.iterdir()} == {
        path.name: path.read_bytes() for path in here.iterdir()}
