"""`dask scheduler` and `dask worker` processes on the loopback, started as an operator starts
them: for the tests and the benchmark of the Dask executor."""

import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def dask_processes(n_workers=2, *, worker_environment=None, worker_options=()):
    """`dask scheduler` and `dask worker` processes on 127.0.0.1, started as an operator would
    (Debian's /usr/bin/dask, the system Python, no PYTHONPATH: the workers get the plugin code
    from the client), torn down afterwards. Yields the scheduler's address."""
    import distributed

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    folder = Path(tempfile.mkdtemp(prefix="dask_processes_"))
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    log = (folder / "dask.log").open("wb")
    processes = [subprocess.Popen(
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        cwd=folder, env=environment, stdout=log, stderr=subprocess.STDOUT)]
    try:
        processes += [subprocess.Popen(
            [DASK, "worker", address, "--nthreads", "1", "--no-dashboard", "--local-directory",
             str(folder / f"worker{index}"), *worker_options], cwd=folder,
            env={**environment, **(worker_environment or {})}, stdout=log,
            stderr=subprocess.STDOUT) for index in range(n_workers)]
        with distributed.Client(address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(n_workers, timeout=60)
        yield address
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


DASK = shutil.which("dask") or "/usr/bin/dask"
