"""The Dask executor: the scheduler choice, results in block order with a bounded number of jobs
in flight, a worker killed mid-run, cancellation, a job failing on a worker, the plugin code
uploaded to workers and a worker with another version refused.

The session's LocalCluster (`dask_cluster`) serves most tests; those that need workers of their
own start `dask scheduler` and `dask worker` processes as an operator would (`dask_processes`).
"""

import operator
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from dask_processes import dask_processes
from helpers import write_raster
from raster_clustering.core.clustering.kmeans import KMeansSettings, cluster_rasters
from raster_clustering.core.engine import dask_executor, plugin_code, use_executor
from raster_clustering.core.engine.dask_executor import (
    DaskExecutor,
    SchedulerChoice,
    executor_for,
    parse_scheduler,
    run_block_job,
)
from raster_clustering.core.engine.executor import IN_PROCESS
from raster_clustering.core.errors import (
    CancelledError,
    EngineError,
    InvalidInputError,
    RasterClusteringError,
)
from raster_clustering.core.io.feature_stack import RasterInput
from raster_clustering.core.progress import Progress
from raster_clustering.core.sieve.sieve import ClassStrips, read_class_strip

distributed = pytest.importorskip("distributed")


@pytest.mark.parametrize(("text", "choice"), [
    ("", SchedulerChoice()),
    ("  ", SchedulerChoice()),
    (None, SchedulerChoice()),
    ("tcp://10.0.0.5:8786", SchedulerChoice(address="tcp://10.0.0.5:8786")),
    ("tcp://scheduler.example.org", SchedulerChoice(address="tcp://scheduler.example.org")),
    ("local:3", SchedulerChoice(local_workers=3)),
    ("local", SchedulerChoice(local_workers=os.cpu_count())),
])
def test_the_scheduler_setting_names_where_jobs_run(text, choice):
    assert parse_scheduler(text) == choice


@pytest.mark.parametrize("text", ["local:0", "local:two", "http://host:8786", "tcp://", "8786"])
def test_other_scheduler_settings_are_refused_with_the_values_allowed(text):
    with pytest.raises(InvalidInputError, match="tcp://HOST:PORT.*'local'"):
        parse_scheduler(text)


def test_without_dask_an_empty_setting_runs_here_and_a_scheduler_names_the_packages(
        monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    assert executor_for("") is IN_PROCESS
    with pytest.raises(EngineError, match="python3-dask python3-distributed"):
        executor_for("local:1")


def test_local_workers_start_with_this_python_even_inside_a_program_that_embeds_it(
        monkeypatch):
    assert dask_executor.python_executable() == sys.executable
    # Inside qgis_process sys.executable is qgis_process itself, and python3 on PATH may be
    # another Python, without GDAL.
    monkeypatch.setattr(sys, "executable", "/usr/bin/qgis_process.bin")
    python = dask_executor.python_executable()
    reported = subprocess.run([python, "-c", "import sys, osgeo; print(sys.version_info[:2])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    assert reported == str(sys.version_info[:2])


def _scheduler_tasks(cluster) -> int:
    return len(cluster.scheduler.tasks)


def _wait_until(condition, timeout_s=20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_results_come_in_block_order_with_a_bounded_number_of_jobs_in_flight(
        dask_cluster, dask_executor):
    blocks = list(range(40))
    limit = dask_executor.max_in_flight()
    assert limit == 2 * 2  # two jobs per worker thread
    reports, seen = [], []
    for result in dask_executor.map_blocks(operator.mul, 3, blocks,
                                           steps=Progress(reports.append)):
        # Every job of the pass the scheduler holds: the ones in flight and the shared value.
        seen.append(_scheduler_tasks(dask_cluster))
        time.sleep(0.01)  # a slow writer: finished jobs must not pile up
        assert result == 3 * blocks[len(reports)]
    assert max(seen) <= limit + 1
    assert reports == pytest.approx([(index + 1) / 40 for index in range(40)])
    assert _wait_until(lambda: _scheduler_tasks(dask_cluster) == 0), "nothing stays behind"


def test_the_log_names_the_engine_the_scheduler_and_the_workers(dask_cluster, dask_executor):
    description = dask_executor.describe()
    assert dask_cluster.scheduler_address in description
    assert "Dask distributed" in description and "2 worker(s)" in description


def test_a_job_failing_on_a_worker_names_the_worker_and_the_file(dask_cluster, dask_executor,
                                                               tmp_path):
    missing = tmp_path / "gone.tif"
    strips = ClassStrips(str(missing), 1, None, 1, "scope")
    with pytest.raises(RasterClusteringError) as raised:
        list(dask_executor.map_blocks(read_class_strip, strips, [(0, 1), (1, 1)]))
    message = str(raised.value)
    assert message.startswith("Dask worker tcp://127.0.0.1:") and str(missing) in message
    assert message.split()[2].rstrip(":") in dask_executor.threads()
    assert _wait_until(lambda: _scheduler_tasks(dask_cluster) == 0)


def test_a_worker_with_other_plugin_code_refuses_each_job():
    with pytest.raises(EngineError, match="restart the workers"):
        run_block_job("0" * 64, operator.mul, 2, dask_executor._Opaque(3))
    assert run_block_job(plugin_code.LOADED_FINGERPRINT, operator.mul, 2,
                         dask_executor._Opaque(3)) == 6


# --------------------------------------------------------------------------------------------
# Whole runs

@pytest.fixture(scope="module")
def bands(tmp_path_factory):
    """Three bands of patches, read in many small blocks by the runs below."""
    rng = np.random.default_rng(5)
    coarse = rng.uniform(0, 1, (3, 16, 16))
    values = np.kron(coarse, np.ones((1, 12, 12))) + rng.normal(0, 0.05, (3, 192, 192))
    return write_raster(tmp_path_factory.mktemp("bands") / "bands.tif",
                        values.astype(np.float32), descriptions=["a", "b", "c"])


@pytest.fixture
def small_blocks(monkeypatch):
    from raster_clustering.core.io import rasters as raster_io
    from raster_clustering.core.sieve import sieve

    monkeypatch.setattr(raster_io, "BLOCK_TARGET_PIXELS", 1 << 11)
    monkeypatch.setattr(sieve, "_STRIP_ROWS", 8)


def _cluster(bands, output, **options):
    return cluster_rasters([RasterInput(str(bands))], output, min_area_m2=2000,
                           settings=KMeansSettings(n_clusters=4, seed=1, sample_size=3000),
                           **options)


@pytest.fixture
def in_process_run(bands, small_blocks, tmp_path_factory):
    """What the run writes and returns in this process."""
    output = tmp_path_factory.mktemp("in_process") / "here.tif"
    return _outcome(output, _cluster(bands, output))


def _outcome(output, result) -> tuple:
    """The pixels, centroid JSON and statistics of a run, to compare exactly."""
    return output.read_bytes(), result.model.to_json(), pickle.dumps(result.statistics)


def test_a_worker_killed_mid_run_has_its_jobs_recomputed_and_the_result_is_the_same(
        bands, small_blocks, in_process_run, dask_executor, tmp_path):
    pids = dask_executor.client.run(os.getpid)
    victim = sorted(pids.values())[0]
    killed = []

    def kill_once(fraction):
        if fraction > 0.3 and not killed:
            os.kill(victim, signal.SIGKILL)
            killed.append(fraction)

    with use_executor(dask_executor):
        result = _cluster(bands, tmp_path / "there.tif", progress=kill_once)
    assert killed, "the worker was killed during the run"
    assert victim not in dask_executor.client.run(os.getpid).values()
    assert _outcome(tmp_path / "there.tif", result) == in_process_run


def test_cancelling_cancels_the_outstanding_jobs_and_leaves_the_workers_free(
        dask_cluster, bands, small_blocks, in_process_run, dask_executor, tmp_path):
    cancelled = []
    with use_executor(dask_executor), pytest.raises(CancelledError):
        _cluster(bands, tmp_path / "cancelled.tif",
                 progress=lambda fraction: fraction > 0.2 and cancelled.append(fraction),
                 is_cancelled=lambda: bool(cancelled))
    assert os.listdir(tmp_path) == []
    assert _wait_until(lambda: _scheduler_tasks(dask_cluster) == 0), "jobs left on the cluster"
    assert _wait_until(lambda: not any(dask_executor.client.processing().values()))
    with use_executor(dask_executor):
        result = _cluster(bands, tmp_path / "next.tif")
    assert _outcome(tmp_path / "next.tif", result) == in_process_run


# --------------------------------------------------------------------------------------------
# Workers started by an operator

def test_fresh_workers_get_the_plugin_code_from_the_client(bands, small_blocks, in_process_run,
                                                          tmp_path):
    with dask_processes(1) as address:
        executor = executor_for(address)
        files = executor.client.run(lambda: sys.modules["raster_clustering"].__file__)
        assert all(".zip/raster_clustering/" in path for path in files.values()), files
        assert executor.client.run(plugin_code.loaded_code) == {
            worker: plugin_code.loaded_code() for worker in files}
        with use_executor(executor):
            result = _cluster(bands, tmp_path / "there.tif")
    assert _outcome(tmp_path / "there.tif", result) == in_process_run


def test_a_worker_running_another_version_of_the_plugin_is_refused(tmp_path):
    other = tmp_path / "other" / "raster_clustering"
    source = plugin_code.code_files(plugin_code.importlib.resources.files("raster_clustering"))
    for name, content in source:
        (other / name).parent.mkdir(parents=True, exist_ok=True)
        (other / name).write_bytes(content)
    metadata = other / "metadata.txt"
    metadata.write_text(metadata.read_text().replace(f"version={plugin_code.LOADED_VERSION}",
                                                     "version=0.0.1"))
    # The worker imports the other copy before any client comes, as an old installation would.
    with dask_processes(1, worker_environment={"PYTHONPATH": str(other.parent)},
                        worker_options=["--preload", "raster_clustering.core.engine"]) as address:
        with pytest.raises(EngineError) as raised:
            executor_for(address)
    message = str(raised.value)
    assert "Dask worker tcp://127.0.0.1:" in message
    assert "runs version 0.0.1" in message
    assert f"not this one's {plugin_code.LOADED_VERSION}" in message
    assert "restart the workers" in message
    shutil.rmtree(other.parent)


def test_a_worker_that_cannot_read_an_input_fails_the_run_naming_it_and_writes_nothing(
        bands, small_blocks, tmp_path):
    with dask_processes(1, worker_environment={"GDAL_SKIP": "GTiff"}) as address:
        executor = executor_for(address)
        with use_executor(executor), pytest.raises(RasterClusteringError) as raised:
            _cluster(bands, tmp_path / "out.tif")
        assert isinstance(executor, DaskExecutor)
    message = str(raised.value)
    assert message.startswith("Dask worker tcp://127.0.0.1:") and str(bands) in message, message
    assert os.listdir(tmp_path) == []
