"""The Dask executor against the in-process one (`python bench/run.py dask`): k-means of a
10980² tile, one band and four bands, and the sieve in degrees (its exact step's strip jobs),
in this process and on 1 and 2 `dask worker` processes started as an operator starts them.

Each run is a client process of its own (`measure`): wall time and the client's peak memory.
The client counts, through a wrapper around the executor it runs on, the block jobs and the
bytes that travel (pickled descriptors out, the jobs' results back, by `dask.sizeof`), and
its own CPU time during the run. An empty-job probe gives the cluster's own cost per job.
`python bench/on_dask.py 2000` runs the same cases on a 2000² tile (a smoke test).
"""

from __future__ import annotations

import json
import os
import sys

from measure import measure, python_path
from run import TILE, WORK, make_classes_in_degrees, make_inputs

sys.path[:0] = python_path().split(os.pathsep)
from dask_processes import dask_processes  # noqa: E402

WORKER_COUNTS = (1, 2)
PROBE_JOBS = 2000

# Runs in the measured client: the executor the scheduler names, wrapped to count what travels.
_CLIENT = """\
import json, pickle, time
from dask.sizeof import sizeof
from raster_clustering.core.engine import use_executor
from raster_clustering.core.engine.dask_executor import executor_for

class Counting:
    def __init__(self, inner):
        self.inner, self.name = inner, inner.name
        self.jobs = self.sent = self.back = 0
    def describe(self):
        return self.inner.describe()
    def release(self, scope):
        self.inner.release(scope)
    def map_blocks(self, job, shared, blocks, *, steps=None):
        blocks = list(blocks)
        self.jobs += len(blocks)
        self.sent += len(pickle.dumps(shared)) + sum(len(pickle.dumps(b)) for b in blocks)
        for result in self.inner.map_blocks(job, shared, blocks, steps=steps):
            self.back += sizeof(result)
            yield result

start = time.perf_counter()
executor = Counting(executor_for({scheduler!r}))
connected, cpu = time.perf_counter(), time.process_time()
with use_executor(executor):
{run}
done = time.perf_counter()
print("COUNTS " + json.dumps({{"jobs": executor.jobs, "sent": executor.sent,
                              "back": executor.back, "connect_s": connected - start,
                              "run_s": done - connected,
                              "client_cpu_s": time.process_time() - cpu}}))
"""

_KMEANS = """\
    from raster_clustering.core.clustering.kmeans import KMeansSettings, cluster_rasters
    from raster_clustering.core.io.feature_stack import RasterInput
    cluster_rasters([RasterInput(path) for path in {inputs!r}], {output!r},
                    settings=KMeansSettings(n_clusters=5, seed=0))
"""

_SIEVE = """\
    from raster_clustering.core.sieve.sieve import sieve_raster
    sieve_raster({inputs[0]!r}, {output!r}, min_area_m2=2000, connectivity=8)
"""

# The client-side steps of the sieve, timed in this process (where every step runs).
_SIEVE_STEPS = """\
import json, time
from raster_clustering.core.sieve import region_merge, sieve
spent = {{}}
def timed(module, name, key):
    original = getattr(module, name)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[key] = spent.get(key, 0.0) + time.perf_counter() - start
    setattr(module, name, wrapper)
timed(sieve, "_sieve_with_gdal", "gdal_pass")
timed(region_merge, "label_strip", "label_jobs")
timed(region_merge, "_region_graph", "graph_with_label_jobs")
timed(region_merge, "resolve_merges", "resolve")
timed(region_merge, "relabel_strip", "relabel_jobs")
timed(region_merge, "merge_small_regions", "exact_step")
timed(sieve, "_finish_output", "finish")
start = time.perf_counter()
sieve.sieve_raster({inputs[0]!r}, {output!r}, min_area_m2=2000, connectivity=8)
spent["total"] = time.perf_counter() - start
print("STEPS " + json.dumps(spent))
"""

_PROBE = """\
import operator, time
from raster_clustering.core.engine.dask_executor import executor_for
executor = executor_for({scheduler!r})
list(executor.map_blocks(operator.mul, 3, range(50)))  # warm
start = time.perf_counter()
assert list(executor.map_blocks(operator.mul, 3, range({jobs}))) == [3 * i for i in range({jobs})]
print("PROBE", (time.perf_counter() - start) / {jobs})
"""


def _tagged(stdout: str, tag: str) -> str:
    return next(line[len(tag) + 1:] for line in stdout.splitlines() if line.startswith(tag))


def _cases(size: int) -> list[tuple[str, str, list[str], int]]:
    """(label, code template, inputs, pixels) of each measured case."""
    from peers import make_stack

    ndvi, _ = make_inputs(size)
    degrees = make_classes_in_degrees(size)
    pixels = size * size
    return [("k-means, one band", _KMEANS, [str(ndvi)], pixels),
            ("k-means, four bands", _KMEANS, [str(path) for path in make_stack(size)], pixels),
            ("sieve in degrees", _SIEVE, [str(degrees)], pixels)]


def _run(label: str, template: str, inputs: list[str], pixels: int, scheduler: str,
         engine: str) -> dict:
    output = WORK / "dask" / f"{label.replace(' ', '_').replace(',', '')}_{engine}.tif"
    output.parent.mkdir(parents=True, exist_ok=True)
    code = _CLIENT.format(scheduler=scheduler,
                          run=template.format(inputs=inputs, output=str(output)))
    row = measure(f"{label}, {engine}", code)
    counts = json.loads(_tagged(row["stdout"], "COUNTS"))
    return {**row, **counts, "engine": engine, "label": label, "pixels": pixels,
            "output": output}


def bench_dask(size: int = TILE) -> list[dict]:
    cases = _cases(size)
    print(f"Dask executor, {size}×{size}: in this process, then on 1 and 2 dask workers",
          flush=True)
    rows = [_run(*case, scheduler="", engine="in-process") for case in cases]
    steps = measure("sieve in degrees, client steps (in-process)", _SIEVE_STEPS.format(
        inputs=cases[2][2], output=str(WORK / "dask" / "sieve_steps.tif")))
    probes = {}
    for workers in WORKER_COUNTS:
        # A fresh cluster for each count: no worker starts with another run's blocks cached.
        with dask_processes(workers) as address:
            engine = f"{workers} worker(s)"
            rows += [_run(*case, scheduler=address, engine=engine) for case in cases]
            probe = measure(f"empty jobs, {engine}", _PROBE.format(scheduler=address,
                                                                  jobs=PROBE_JOBS))
            probes[workers] = float(_tagged(probe["stdout"], "PROBE"))
    for row in rows:  # every engine writes the same pixels
        reference = next(other for other in rows if other["label"] == row["label"])
        row["identical"] = row["output"].read_bytes() == reference["output"].read_bytes()
    _print(rows, probes, json.loads(_tagged(steps["stdout"], "STEPS")))
    return [{"case": f"dask: {row['label']}, {row['engine']}", "size": size,
             "seconds": row["seconds"], "peak_mib": row["peak_mib"]} for row in rows]


def _print(rows: list[dict], probes: dict[int, float], steps: dict[str, float]) -> None:
    print("\n| case | engine | wall time (s) | of which run (s) | client CPU (s) "
          "| client peak (MiB) | jobs | bytes out / px | bytes back / px | parallel efficiency "
          "| same output |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        one = next((other for other in rows if other["label"] == row["label"]
                    and other["engine"] == "1 worker(s)"), None)
        workers = 1 if row["engine"] == "in-process" else int(row["engine"].split()[0])
        efficiency = (f"{one['run_s'] / (workers * row['run_s']):.2f}"
                      if one and row["engine"] != "in-process" else "")
        print(f"| {row['label']} | {row['engine']} | {row['seconds']:.1f} | {row['run_s']:.1f} "
              f"| {row['client_cpu_s']:.1f} | {row['peak_mib']:.0f} | {row['jobs']} "
              f"| {row['sent'] / row['pixels']:.4f} "
              f"| {row['back'] / row['pixels']:.3f} | {efficiency} "
              f"| {'yes' if row['identical'] else 'NO'} |")
    print("\nEmpty jobs: " + ", ".join(f"{workers} worker(s) {seconds * 1e3:.2f} ms per job"
                                         for workers, seconds in probes.items()))
    print("Sieve in degrees, client steps in this process (s): "
          + ", ".join(f"{name} {seconds:.1f}" for name, seconds in steps.items()))


if __name__ == "__main__":
    bench_dask(int(sys.argv[1]) if len(sys.argv) > 1 else TILE)
