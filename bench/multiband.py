"""Multi-band k-means quality and cost: this plugin's k-means beside scikit-learn on every pixel.

`python bench/multiband.py [--naive] [--repeat N] [size ...]` (default 2000 5000 10980) runs our
k-means (unstandardised, as in bench/peers.py) on the four-band stack of `peers.make_stack` at
k = 5 and 10, each run in its own process (wall time, peak memory), and measures the inertia of
the result's partition as the peers bench does. `--naive` also runs scikit-learn
`KMeans(n_init=10)` on every pixel (the reference the goal is stated against; it needs about
5 GB and minutes at 5000²); `--naive32` the same in float32, which scikit-learn keeps (half the
memory: the only way to a reference at 10980² on 24 GB). Rows are kept in
bench/work/multiband/results.json.
"""

from __future__ import annotations

import argparse
import json
import time

from measure import measure
from peers import CLUSTERS, PEERS, TOOLS, Tool, make_stack, naive, partition_quality

RESULTS = PEERS.parent / "multiband" / "results.json"


def naive_float32(inputs, k, output) -> str:
    return naive(inputs, k, output).replace(".astype('float64')", ".astype('float32')")


NAIVE32 = Tool("scikit-learn KMeans, whole image, float32", naive_float32, "naive32")


def run_tool(tool, size: int, k: int, label: str) -> dict:
    inputs = make_stack(size)
    output = RESULTS.parent / f"{tool.key}_{size}_{k}.tif"
    measured = measure(f"{tool.name}, {size}², k = {k}", tool.command(inputs, k, output))
    row = {"tool": tool.name, "key": tool.key, "label": label, "size": size, "k": k,
           "seconds": measured["seconds"], "cpu_seconds": measured["cpu_seconds"],
           "peak_mib": measured["peak_mib"],
           "date": time.strftime("%Y-%m-%d %H:%M"), **partition_quality(inputs, output)}
    output.unlink()
    print(f"    inertia {row['inertia']:.6g}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[2000, 5000, 10980])
    parser.add_argument("--naive", action="store_true", help="also scikit-learn on all pixels")
    parser.add_argument("--naive32", action="store_true", help="also it in float32")
    parser.add_argument("--repeat", type=int, default=1, help="runs of our k-means per case")
    parser.add_argument("--clusters", type=int, nargs="*", default=list(CLUSTERS))
    parser.add_argument("--label", default="", help="tags the rows, e.g. the code's version")
    arguments = parser.parse_args()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    tools = [tool for tool in TOOLS if tool.key == "ours" or (arguments.naive
                                                              and tool.key == "naive")]
    tools += [NAIVE32] if arguments.naive32 else []
    for size in arguments.sizes:
        for k in arguments.clusters:
            for tool in tools:
                for _ in range(arguments.repeat if tool.key == "ours" else 1):
                    rows.append(run_tool(tool, size, k, arguments.label))
                    RESULTS.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
