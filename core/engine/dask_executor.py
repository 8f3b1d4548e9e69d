"""Block jobs on a Dask distributed cluster: the executor, and the choice of where jobs run from
the scheduler setting ("", `tcp://HOST:PORT`, `local`, `local:N`).

Workers open the rasters themselves from the jobs' descriptors (paths, GDAL URIs); only the small
descriptors go out and only the jobs' small results come back, in block order, with a bounded
number of jobs in flight, so the caller writes its one output in order with bounded memory.
Dask is imported only when a scheduler is asked for.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import re
import shutil
import sys
import tempfile
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import EngineError, InvalidInputError, RasterClusteringError
from ..progress import Progress
from . import cache, plugin_code
from .executor import IN_PROCESS, Executor

#: The environment variable that chooses the scheduler (it overrides the provider's setting).
SCHEDULER_VARIABLE = "RASTERCLUSTERING_DASK_SCHEDULER"
#: How long to try to reach a scheduler, and then to wait for its first worker, seconds.
CONNECT_TIMEOUT_S = 20
WORKERS_TIMEOUT_S = 10
#: Jobs in flight per worker thread: enough to keep every thread busy while results travel.
IN_FLIGHT_PER_THREAD = 2
_POLL_S = 0.2  # how often cancellation is checked while waiting for a job
_MISSING_DASK = (
    "Running on a Dask scheduler needs the Python packages dask and distributed, which are not "
    "installed here. Install them (Debian/Ubuntu: apt install python3-dask python3-distributed; "
    "elsewhere: python -m pip install \"dask[distributed]\"), or leave the 'Dask scheduler' "
    f"setting and {SCHEDULER_VARIABLE} empty to run in this process.")


@dataclass(frozen=True)
class SchedulerChoice:
    """Where block jobs run: in this process (neither set), on the scheduler at `address`, or on
    a LocalCluster of `local_workers` worker processes on this machine."""

    address: str | None = None
    local_workers: int | None = None

    @property
    def in_process(self) -> bool:
        return self.address is None and self.local_workers is None


_ADDRESS = re.compile(r"tcp://[^\s/:]+(:\d{1,5})?")
_LOCAL = re.compile(r"local(?::(\d+))?")


def parse_scheduler(text: str | None) -> SchedulerChoice:
    """The choice a scheduler setting states: "" (in this process), `tcp://HOST:PORT`, `local`
    (one worker process per core) or `local:N`.

    Raises:
        InvalidInputError: any other text.
    """
    text = (text or "").strip()
    if not text:
        return SchedulerChoice()
    if _ADDRESS.fullmatch(text):
        return SchedulerChoice(address=text)
    local = _LOCAL.fullmatch(text)
    if local and (local.group(1) is None or int(local.group(1)) >= 1):
        return SchedulerChoice(local_workers=int(local.group(1) or os.cpu_count() or 1))
    raise InvalidInputError(
        f"'{text}' is not a Dask scheduler. Use tcp://HOST:PORT for a running scheduler, "
        "'local' or 'local:N' for N worker processes on this machine, or nothing to run in "
        "this process.")


def executor_for(text: str | None) -> Executor:
    """The executor the scheduler setting `text` chooses (`parse_scheduler`), connected and with
    every worker running this plugin code (uploaded to the workers that lack it).

    Raises:
        InvalidInputError: `text` is no scheduler.
        EngineError: Dask is not installed, the scheduler cannot be reached or has no worker,
            or a worker runs another version of the plugin code.
    """
    choice = parse_scheduler(text)
    if choice.in_process:
        return IN_PROCESS
    executor = DaskExecutor(_client_for(choice), choice)
    executor.check_workers()
    return executor


class DaskExecutor:
    """Runs block jobs on the workers of a dask.distributed Client.

    Each `map_blocks` call sends its `shared` value once (a task the jobs depend on, so a worker
    that dies takes nothing that cannot be recomputed), submits at most `max_in_flight` jobs
    ahead of the block the caller waits for, and hands results back in block order. Cancelling,
    or leaving the loop early, cancels every job still outstanding.
    """

    name = "Dask"

    def __init__(self, client, choice: SchedulerChoice):
        self.client = client
        self.choice = choice

    @property
    def address(self) -> str:
        return self.client.scheduler.address

    def threads(self) -> dict[str, int]:
        """Worker address → threads, as the scheduler knows them now."""
        return dict(self.client.nthreads())

    def describe(self) -> str:
        threads = self.threads()
        kind = "a LocalCluster on this machine" if self.choice.local_workers else "scheduler"
        return (f"Dask distributed, {kind} {self.address}, {len(threads)} worker(s) with "
                f"{sum(threads.values())} thread(s)")

    def max_in_flight(self) -> int:
        return max(2, IN_FLIGHT_PER_THREAD * sum(self.threads().values()))

    def check_workers(self) -> None:
        """Wait for a worker, put the plugin code on the workers that lack it, and refuse any
        worker that runs other plugin code.

        Raises:
            EngineError: no worker came, or a worker runs another version of the plugin code.
        """
        try:
            self.client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
        except TimeoutError:
            raise EngineError(
                f"The Dask scheduler at {self.address} has no worker (none joined within "
                f"{WORKERS_TIMEOUT_S} s). Start workers where the data can be read: "
                f"dask worker {self.address}") from None
        install_plugin_code(self.client)

    def map_blocks(self, job: Callable, shared, blocks: Sequence, *,
                   steps: Progress | None = None) -> Iterator:
        steps = steps or Progress()
        blocks = list(blocks)
        if not blocks:
            return
        steps.check()
        token = uuid.uuid4().hex[:12]
        submit = self.client.submit
        shared_key = f"{job.__name__}-shared-{token}"
        shared_future = submit(_unwrap, _Opaque(shared), key=shared_key, pure=False)
        expected = plugin_code.LOADED_FINGERPRINT
        in_flight = collections.deque()
        limit = self.max_in_flight()

        def submit_next() -> None:
            index = len(in_flight) + done
            if index < len(blocks):
                in_flight.append(submit(run_block_job, expected, job, shared_future,
                                        _Opaque(blocks[index]), key=f"{job.__name__}-{token}-"
                                        f"{index}", pure=False))

        done = 0
        try:
            while len(in_flight) < min(limit, len(blocks)):
                submit_next()
            while done < len(blocks):
                future = in_flight.popleft()
                result = self._result(future, steps)
                future.release()
                done += 1
                submit_next()
                yield result
                steps(done / len(blocks))
        finally:
            # Cancelled, failed, or left early: nothing of this pass stays on the cluster.
            outstanding = [*in_flight, shared_future]
            if done < len(blocks):
                self.client.cancel(outstanding)
            for future in outstanding:
                future.release()

    def _result(self, future, steps: Progress):
        """The future's result, checking cancellation while waiting; a job's own error is
        raised as the job raised it on the worker (`run_block_job`)."""
        from distributed.scheduler import KilledWorker

        while True:
            steps.check()
            try:
                return future.result(timeout=_POLL_S)
            except TimeoutError:
                continue
            except RasterClusteringError:
                raise
            except KilledWorker as error:
                raise EngineError(
                    f"A block job was lost with every Dask worker that ran it ({error}); the "
                    "workers probably ran out of memory: give them more, or run fewer threads "
                    "per worker.") from None
            except (OSError, concurrent.futures.CancelledError) as error:
                raise EngineError(f"Lost the Dask scheduler at {self.address} during the run "
                                  f"({error or type(error).__name__}); nothing was written."
                                  ) from None
            except Exception as error:  # noqa: BLE001 - cancelled futures, comm failures
                raise EngineError(f"The Dask scheduler at {self.address} could not run a block "
                                  f"job ({type(error).__name__}: {error}).") from None

    def release(self, scope: str) -> None:
        """Forget, on every worker, what the jobs of `scope` opened (best effort: a worker
        that is gone has nothing left to forget)."""
        cache.release(scope)
        try:
            self.client.run(cache.release, scope, on_error="ignore")
        except (OSError, RuntimeError):
            pass


@dataclass(frozen=True)
class _Opaque:
    """A job's argument as it is, never read by Dask as a task (a tuple whose first item is
    callable would be)."""

    value: object


def _unwrap(opaque: _Opaque):
    return opaque.value


def run_block_job(expected_fingerprint: str, job: Callable, shared, block: _Opaque):
    """On a worker: `job(shared, block)`, refused if the worker runs other plugin code; a
    failure names the worker.

    Raises:
        EngineError: the worker's plugin code is not the client's, or the job failed with an
            error that is not the core's.
        RasterClusteringError: the job's own error (same class), its message prefixed by the
            worker's address.
    """
    where = f"Dask worker {_worker_address()}"
    if plugin_code.LOADED_FINGERPRINT != expected_fingerprint:
        raise EngineError(f"{where} {_other_code_message(plugin_code.loaded_code())}")
    try:
        return job(shared, block.value)
    except RasterClusteringError as error:
        raise type(error)(f"{where}: {error}") from None
    except Exception as error:  # noqa: BLE001 - any failure on a worker must name the worker
        raise EngineError(f"{where}: {type(error).__name__}: {error}") from None


def _worker_address() -> str:
    from distributed import get_worker

    try:
        return get_worker().address
    except ValueError:  # not on a worker (tests run the function directly)
        return "(none)"


def _other_code_message(worker_code: tuple[str, str]) -> str:
    version, fingerprint = worker_code
    return (f"runs version {version} of the Raster Clustering plugin code (fingerprint "
            f"{fingerprint[:12]}), not this one's {plugin_code.LOADED_VERSION} "
            f"({plugin_code.LOADED_FINGERPRINT[:12]}). A worker keeps the code it first "
            "imported: restart the workers (dask worker) so they load this version.")


# --------------------------------------------------------------------------------------------
# Connecting, and the plugin code on the workers

_clients: dict[SchedulerChoice, object] = {}
_clusters: dict[SchedulerChoice, object] = {}
_installed: weakref.WeakSet = weakref.WeakSet()  # the clients that registered the plugin code
_lock = threading.Lock()
PLUGIN_CODE_NAME = f"{plugin_code.PACKAGE}-plugin-code"


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise EngineError(_MISSING_DASK) from None
    return distributed


def _client_for(choice: SchedulerChoice):
    """A Client of the choice's scheduler, kept for the next runs (a LocalCluster is started
    once per process); a client whose scheduler went away is replaced."""
    distributed = _import_distributed()
    with _lock:
        client = _clients.get(choice)
        if client is not None and client.status == "running":
            return client
        if choice.local_workers:
            cluster = _clusters.get(choice)
            if cluster is None or cluster.status.name != "running":
                cluster = _start_local_cluster(distributed, choice.local_workers)
                _clusters[choice] = cluster
            client = distributed.Client(cluster, set_as_default=False)
        else:
            client = _connect(distributed, choice.address)
        _clients[choice] = client
        return client


def _connect(distributed, address: str):
    try:
        return distributed.Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise EngineError(
            f"Cannot reach the Dask scheduler at {address} within {CONNECT_TIMEOUT_S} s "
            f"({error}). Check that it runs (dask scheduler) and that this machine can reach "
            f"it, or leave the 'Dask scheduler' setting and {SCHEDULER_VARIABLE} empty to run "
            "in this process.") from None


def _start_local_cluster(distributed, n_workers: int):
    """A LocalCluster of `n_workers` single-threaded worker processes on the loopback."""
    import multiprocessing

    python = python_executable()
    if python != sys.executable:
        multiprocessing.set_executable(python)  # the worker processes are started with it
    return distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                    host="127.0.0.1", dashboard_address=None)


def python_executable() -> str:
    """The Python this interpreter is: `sys.executable`, unless a program that embeds Python
    (QGIS, qgis_process) left there itself or another Python found on PATH."""
    executable = Path(sys.executable)
    prefixes = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    if executable.name.startswith("python") and prefixes & set(executable.resolve().parents):
        return sys.executable
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (Path(sys.base_exec_prefix) / "bin" / f"python{version}",
                      Path(sys.base_exec_prefix) / "python.exe"):
        if candidate.is_file():
            return str(candidate)
    return sys.executable


def install_plugin_code(client) -> None:
    """Make every worker of `client` run this plugin code: register it (a zip of
    `plugin_code.code_files`) for the workers that lack it, then compare what each one runs.

    Raises:
        EngineError: the plugin's files changed since this process imported them, or a worker
            runs another version.
    """
    files = plugin_code.installed_files()
    if plugin_code.fingerprint(files) != plugin_code.LOADED_FINGERPRINT:
        raise EngineError(
            "The Raster Clustering plugin's files changed since this program loaded them, so "
            "the workers would run other code than this one. Restart QGIS (or reload the "
            "plugin) first.")
    if client not in _installed:
        _register_plugin_code(client, files)
        _installed.add(client)
    reports = client.run(plugin_code.loaded_code, on_error="return")
    if any(isinstance(report, Exception) for report in reports.values()):
        # Workers that lost it (a scheduler restarted since): register it again.
        _register_plugin_code(client, files)
        reports = client.run(plugin_code.loaded_code, on_error="return")
    refused = {address: report for address, report in reports.items()
               if tuple(report) != plugin_code.loaded_code()} if reports else {}
    if refused:
        address, report = sorted(refused.items())[0]
        others = f" (and {len(refused) - 1} other worker(s))" if len(refused) > 1 else ""
        problem = (f"cannot load the plugin code ({type(report).__name__}: {report})"
                   if isinstance(report, Exception) else _other_code_message(report))
        raise EngineError(f"Dask worker {address}{others} {problem}")


def _register_plugin_code(client, files: list[tuple[str, bytes]]) -> None:
    """Upload the zip of `files` to every worker, present and future, and import it there."""
    from distributed.diagnostics.plugin import UploadFile

    folder = tempfile.mkdtemp(prefix="raster_clustering_code_")
    try:
        # Named by the fingerprint: a worker never overwrites a zip it imported other code from.
        archive = Path(folder) / f"{plugin_code.PACKAGE}-{plugin_code.fingerprint(files)[:16]}.zip"
        archive.write_bytes(plugin_code.package_archive(files))
        client.register_worker_plugin(UploadFile(str(archive)), name=PLUGIN_CODE_NAME)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def close_clients() -> None:
    """Close every client and LocalCluster this process started (the provider's unload)."""
    with _lock:
        for client in _clients.values():
            client.close()
        for cluster in _clusters.values():
            cluster.close()
        _clients.clear()
        _clusters.clear()
        _installed.clear()
