"""K-means side by side with the tools analysts would pick instead: SAGA, GRASS, scikit-learn.

`python bench/peers.py [size ...]` (default 2000 5000 10980; `bench/setup_peers.sh` installs
SAGA and GRASS) runs every tool on the same inputs, a one-band NDVI and a four-band stack
(green, red, NIR, SWIR1) at each size, k = 5 and 10, each run in its own process (wall time,
peak memory). Quality is measured here, in float64 on the same pixels (the valid pixels of the
input): the k-means objective (inertia) of each result's partition, and for one band the gap
to the exact optimum. Prints Markdown tables, keeps the rows in bench/work/peers/results.json
and draws bench/scaling.svg (time against pixels).

A run is killed after TIMEOUT_S; one whose time or memory, projected linearly in pixels from
the previous size, passes the limits is not started; a tool that failed is not retried at larger
sizes. Each is recorded with its reason. Our k-means runs unstandardised here, so that every tool
minimises the same objective (the plugin standardises several bands by default).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from measure import measure, python_path
from osgeo import gdal
from run import ROOT, WORK, make_inputs

sys.path[:0] = python_path().split(os.pathsep)
from raster_clustering.core.clustering.kmeans_1d import fit_kmeans_1d  # noqa: E402
from raster_clustering.core.io.feature_stack import FeatureStack, RasterInput  # noqa: E402
from raster_clustering.core.io.rasters import iter_windows, rows_per_block  # noqa: E402
from synthetic_scene import SCENE_BANDS, make_scene  # noqa: E402

PEERS = WORK / "peers"
RESULTS = PEERS / "results.json"
PLOT = ROOT / "bench" / "scaling.svg"
SIZES = (2000, 5000, 10980)
CLUSTERS = (5, 10)
TIMEOUT_S = 10 * 60
#: A run whose memory, projected from a smaller size, passes this share of RAM is not started.
MEMORY_SHARE = 0.8
STACK_BANDS = ("green", "red", "nir", "swir1")
ONE_BAND, FOUR_BANDS = "one band (NDVI)", "four bands (green, red, NIR, SWIR1)"

# Runs in a throwaway GRASS location: link the files, group them, i.cluster on GRASS's default
# sample (about 10,000 pixels), i.maxlik over every pixel, export the classes.
GRASS_SCRIPT = """\
set -e
output=$1
classes=$2
shift 2
number=0
for file in "$@"; do
    number=$((number + 1))
    r.external input="$file" output="band$number" --quiet
done
g.region raster=band1
i.group group=stack subgroup=stack \
    input="$(g.list type=raster pattern='band*' separator=comma)" --quiet
i.cluster group=stack subgroup=stack signaturefile=signatures classes="$classes" --quiet
i.maxlik group=stack subgroup=stack signaturefile=signatures output=classes --quiet
r.out.gdal input=classes output="$output" format=GTiff type=Byte nodata=0 \
    createopt=TILED=YES,COMPRESS=DEFLATE --quiet
"""


# --------------------------------------------------------------------------------------------
# Inputs


def make_stack(size: int) -> list[Path]:
    """Four single-band Float32 GeoTIFFs of one synthetic scene, made once (streamed) and cached."""
    folder = PEERS / f"stack_{size}"
    paths = [folder / f"{band}.tif" for band in STACK_BANDS]
    if all(path.exists() for path in paths):
        return paths
    print(f"  generating the four-band stack {size}×{size} (Float32)", flush=True)
    scene_folder = folder / "scene"
    scene = make_scene(scene_folder, size=size, seed=0)
    for band, path in zip(STACK_BANDS, paths):
        options = gdal.TranslateOptions(
            bandList=[SCENE_BANDS.index(band) + 1],
            creationOptions=["TILED=YES", "COMPRESS=DEFLATE", "ZLEVEL=1", "PREDICTOR=3",
                             "BIGTIFF=IF_SAFER"])
        if gdal.Translate(str(path), str(scene.scene), options=options) is None:
            raise SystemExit(f"Cannot write {path}: {gdal.GetLastErrorMsg()}")
    shutil.rmtree(scene_folder)
    return paths


# --------------------------------------------------------------------------------------------
# The tools: each gives the command that clusters `inputs` into k classes at `output`


def ours(inputs: list[Path], k: int, output: Path) -> str:
    rasters = ", ".join(f"RasterInput({str(path)!r})" for path in inputs)
    # Unstandardised, so every tool minimises the same objective (the bands share one unit).
    return ("from raster_clustering.core.io.feature_stack import RasterInput\n"
            "from raster_clustering.core.clustering.kmeans import KMeansSettings, cluster_rasters\n"
            f"cluster_rasters([{rasters}], {str(output)!r}, "
            f"settings=KMeansSettings(n_clusters={k}, standardize=False))\n")


def saga(inputs: list[Path], k: int, output: Path) -> list[str]:
    # SAGA's defaults otherwise: hill-climbing (Rubin 1967), 10 iterations, random start.
    return ["saga_cmd", "-f=q", "imagery_classification", "1",
            "-GRIDS=" + ";".join(str(path) for path in inputs), f"-CLUSTER={output}",
            f"-NCLUSTER={k}"]


def grass(inputs: list[Path], k: int, output: Path) -> list[str]:
    script = PEERS / "grass_kmeans.sh"
    if not script.exists() or script.read_text() != GRASS_SCRIPT:
        script.write_text(GRASS_SCRIPT)
    return ["grass", "--tmp-location", str(inputs[0]), "--exec", "sh", str(script), str(output),
            str(k), *map(str, inputs)]


def naive(inputs: list[Path], k: int, output: Path) -> str:
    """The tutorials' way: every pixel in memory, KMeans(n_init=10).fit_predict, write labels."""
    return (
        "import numpy as np\nfrom osgeo import gdal\nfrom sklearn.cluster import KMeans\n"
        f"datasets = [gdal.Open(path) for path in {[str(path) for path in inputs]!r}]\n"
        "bands = [dataset.GetRasterBand(1) for dataset in datasets]\n"
        "image = np.dstack([band.ReadAsArray() for band in bands]).astype('float64')\n"
        "valid = np.all([image[..., i] != band.GetNoDataValue() "
        "for i, band in enumerate(bands)], axis=0)\n"
        f"labels = KMeans(n_clusters={k}, n_init=10).fit_predict(image[valid])\n"
        "classes = np.zeros(valid.shape, dtype=np.uint8)\n"
        "classes[valid] = labels + 1\n"
        f"target = gdal.GetDriverByName('GTiff').Create({str(output)!r}, classes.shape[1], "
        "classes.shape[0], 1, gdal.GDT_Byte, ['TILED=YES', 'COMPRESS=DEFLATE'])\n"
        "target.SetGeoTransform(datasets[0].GetGeoTransform())\n"
        "target.SetProjection(datasets[0].GetProjection())\n"
        "target.GetRasterBand(1).SetNoDataValue(0)\n"
        "target.GetRasterBand(1).WriteArray(classes)\n"
        "target = None\n")


@dataclass(frozen=True)
class Tool:
    name: str
    command: Callable[[list[Path], int, Path], str | list[str]]
    key: str


TOOLS = (
    Tool("Raster Clustering (core.kmeans)", ours, "ours"),
    Tool("SAGA K-Means Clustering for Grids", saga, "saga"),
    Tool("GRASS i.cluster + i.maxlik", grass, "grass"),
    Tool("scikit-learn KMeans, whole image (tutorials)", naive, "naive"),
)


# --------------------------------------------------------------------------------------------
# Quality, computed here on the same pixels for every tool


def _valid_blocks(inputs: list[Path]):
    """(window, features (n_features, rows, cols) float32, valid) over the whole raster."""
    stack = FeatureStack([RasterInput(str(path)) for path in inputs])
    try:
        rows = rows_per_block(width=stack.grid.width, n_bands=stack.n_features,
                              block_height=stack.block_height)
        for window in iter_windows(stack.grid.full_window, rows):
            features, valid = stack.read(window)
            yield window, features, valid
    finally:
        stack.close()


def partition_quality(inputs: list[Path], labels_path: Path) -> dict:
    """The k-means objective of a result's partition of the input's valid pixels.

    Centres are each label's mean (the best centres for that partition). Each block's sums of
    squares are taken about the block's own label means, in float64, and blocks are merged with
    Chan et al.'s update, so nothing cancels (relative error ~1e-13, not ~1e-10).

    Returns:
        {"inertia", "classes" (labels used), "unlabelled" (valid pixels the result left nodata)}.
    """
    dataset = gdal.Open(str(labels_path))
    if dataset is None:
        raise RuntimeError(f"cannot read the result {labels_path}")
    band = dataset.GetRasterBand(1)
    nodata = band.GetNoDataValue()
    count = mean = m2 = None
    unlabelled = 0
    for window, features, valid in _valid_blocks(inputs):
        labels = band.ReadAsArray(window.col_off, window.row_off, window.width,
                                  window.height).astype(np.int64)
        if nodata is not None:
            unlabelled += int(np.count_nonzero(valid & (labels == nodata)))
            valid &= labels != nodata
        labels = labels[valid]
        if labels.size == 0:
            continue
        size = max(0 if count is None else len(count), int(labels.max()) + 1)
        block_count = np.bincount(labels, minlength=size).astype(np.float64)
        seen = np.maximum(block_count, 1.0)
        block_mean, block_m2 = [], []
        for feature in features[:, valid].astype(np.float64):
            centre = np.bincount(labels, weights=feature, minlength=size) / seen
            deviation = feature - centre[labels]
            block_mean.append(centre)
            block_m2.append(np.bincount(labels, weights=deviation * deviation, minlength=size))
        if count is None:
            count, mean, m2 = block_count, np.array(block_mean), np.array(block_m2)
            continue
        count, mean, m2 = (np.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, size - a.shape[-1])])
                           for a in (count, mean, m2))
        total = np.maximum(count + block_count, 1.0)
        delta = np.array(block_mean) - mean
        m2 += np.array(block_m2) + delta**2 * count * block_count / total
        mean += delta * block_count / total
        count += block_count
    if count is None:
        raise RuntimeError(f"{labels_path} labels none of the input's valid pixels")
    return {"inertia": float(m2.sum()), "classes": int(np.count_nonzero(count)),
            "unlabelled": unlabelled}


def optimum_inertia(raster: Path, k: int) -> float:
    """The least inertia any k-partition of the band's valid pixels can have (core.kmeans_1d)."""
    def read_values():
        for _, features, valid in _valid_blocks([raster]):
            yield features[0][valid]

    return fit_kmeans_1d(read_values, k).inertia


# --------------------------------------------------------------------------------------------
# The run


def physical_memory_mib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20


def reason_not_to_run(previous: dict | None, size: int) -> str | None:
    """Why a run at `size` is not started, projected linearly in pixels from a smaller one."""
    if previous is None:
        return None
    if previous["status"] != "ok":
        return f"not run: at {previous['size']}² it {previous['reason']}"
    ratio = (size / previous["size"]) ** 2
    seconds, peak = previous["seconds"] * ratio, previous["peak_mib"] * ratio
    if seconds > TIMEOUT_S:
        return (f"not run: {previous['seconds']:.0f} s at {previous['size']}² projects "
                f"{seconds / 60:.0f} min, over the {TIMEOUT_S // 60} min limit")
    if peak > MEMORY_SHARE * physical_memory_mib():
        return (f"not run: {previous['peak_mib']:.0f} MiB at {previous['size']}² projects "
                f"{peak / 1024:.1f} GiB, over {MEMORY_SHARE:.0%} of the "
                f"{physical_memory_mib() / 1024:.0f} GiB of RAM")
    return None


def failure_reason(measured: dict) -> str:
    if measured["timed_out"]:
        return f"timed out after {measured['seconds'] / 60:.0f} min"
    lines = [line.strip() for line in (measured["stderr"] + measured["stdout"]).splitlines()
             if line.strip()]
    errors = [line for line in lines if "error" in line.lower()] or lines[-1:]
    return f"failed (exit {measured['returncode']}): {errors[-1] if errors else 'no message'}"


def run_case(kind: str, size: int, inputs: list[Path], k: int, tool: Tool,
             previous: dict | None, optimum: Callable[[], float] | None) -> dict:
    row = {"input": kind, "size": size, "k": k, "tool": tool.name, "key": tool.key}
    skip = reason_not_to_run(previous, size)
    if skip:
        print(f"  {tool.name}: {skip}", flush=True)
        return {**row, "status": "not run", "reason": skip}
    output = PEERS / "out" / f"{tool.key}_{'1' if kind == ONE_BAND else '4'}_{size}_k{k}.tif"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    command = tool.command(inputs, k, output)
    if isinstance(command, list) and shutil.which(command[0]) is None:
        return {**row, "status": "failed",
                "reason": f"{command[0]} is not installed (run bench/setup_peers.sh)"}
    measured = measure(tool.name, command, timeout_s=TIMEOUT_S, check=False)
    row |= {"seconds": measured["seconds"], "peak_mib": measured["peak_mib"]}
    if measured["timed_out"] or measured["returncode"] != 0 or not output.exists():
        reason = failure_reason(measured)
        print(f"    {reason}", flush=True)
        return {**row, "status": "timed out" if measured["timed_out"] else "failed",
                "reason": reason}
    row |= {"status": "ok", **partition_quality(inputs, output)}
    if optimum is not None:
        row["gap"] = row["inertia"] / optimum() - 1.0
    output.unlink()
    return row


def run(sizes: list[int]) -> list[dict]:
    PEERS.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    last: dict[tuple[str, int, str], dict] = {}
    for size in sorted(sizes):
        cases = [(ONE_BAND, [make_inputs(size)[0]]), (FOUR_BANDS, make_stack(size))]
        for kind, inputs in cases:
            for k in CLUSTERS:
                print(f"k-means, {kind}, {size}×{size}, k = {k}", flush=True)
                optimum = None
                if kind == ONE_BAND:
                    optimum = _cached(lambda raster=inputs[0], k=k: optimum_inertia(raster, k))
                for tool in TOOLS:
                    row = run_case(kind, size, inputs, k, tool, last.get((kind, k, tool.key)),
                                   optimum)
                    rows.append(row)
                    if row["status"] != "not run":
                        last[(kind, k, tool.key)] = row
                    save(rows)
    return rows


def _cached(function: Callable[[], float]) -> Callable[[], float]:
    value: list[float] = []

    def call() -> float:
        if not value:
            value.append(function())
        return value[0]

    return call


def save(rows: list[dict]) -> None:
    """Merge `rows` into results.json, replacing older rows of the same sizes."""
    kept = []
    if RESULTS.exists():
        sizes = {row["size"] for row in rows}
        kept = [row for row in json.loads(RESULTS.read_text()) if row["size"] not in sizes]
    RESULTS.write_text(json.dumps(kept + rows, indent=1))


# --------------------------------------------------------------------------------------------
# Report


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import sklearn

    versions = [f"GDAL {gdal.__version__}", f"scikit-learn {sklearn.__version__}",
                f"numpy {np.__version__}"]
    for command in (["saga_cmd", "--version"], ["grass", "--version"]):
        if shutil.which(command[0]):
            completed = subprocess.run(command, capture_output=True, text=True)
            text = completed.stdout + completed.stderr
            versions += [line.strip() for line in text.splitlines()
                         if "Version" in line or line.startswith("GRASS GIS")][:1]
    return (f"{cpu}, {os.cpu_count()} cores, {physical_memory_mib() / 1024:.0f} GiB RAM, "
            f"{platform.system()} {platform.release()}; {', '.join(versions)}; "
            f"{time.strftime('%Y-%m-%d')}")


def _number(value, pattern: str) -> str:
    return "" if value is None else format(value, pattern)


def markdown_tables(rows: list[dict]) -> str:
    """One table per input. Quality: for one band the gap to the exact optimum, for four bands
    the excess over the best result of the same size and k."""
    parts = []
    for kind in (ONE_BAND, FOUR_BANDS):
        selected = [row for row in rows if row["input"] == kind]
        if not selected:
            continue
        quality = ("gap to the exact optimum (%)" if kind == ONE_BAND
                   else "inertia above the best (%)")
        parts.append(f"\n**k-means, {kind}**\n")
        parts.append(f"| size | k | tool | wall time (s) | peak memory (MiB) | inertia | {quality} "
                     "| classes | note |")
        parts.append("|---|---|---|---|---|---|---|---|---|")
        for row in sorted(selected, key=lambda r: (r["size"], r["k"])):
            inertia = row.get("inertia")
            if inertia is None:
                excess = None
            elif kind == ONE_BAND:
                excess = 100.0 * row["gap"]
            else:
                best = min(other["inertia"] for other in selected if "inertia" in other
                           and (other["size"], other["k"]) == (row["size"], row["k"]))
                excess = 100.0 * (inertia / best - 1.0)
            if excess is not None and abs(excess) < 1e-7:
                excess = 0.0  # float64 rounding of two ways of summing the same partition
            note = row.get("reason", "")
            if row.get("unlabelled"):
                note = f"{row['unlabelled']} valid pixels left unlabelled"
            cells = [f"{row['size']}²", str(row["k"]), row["tool"],
                     _number(row.get("seconds"), ".1f"), _number(row.get("peak_mib"), ".0f"),
                     _number(inertia, ".6g"), _number(excess, ".4f"),
                     str(row.get("classes", "")), note.replace("|", "/")]
            parts.append("| " + " | ".join(cells) + " |")
    return "\n".join(parts)


_COLOURS = {"ours": "#440154", "saga": "#31688e", "grass": "#35b779", "naive": "#fde725"}
_OUTLINES = {"naive": "#b8a000"}


def _pixels_label(pixels: float) -> str:
    for factor, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if pixels >= factor:
            return f"{pixels / factor:g} {unit}"
    return f"{pixels:g}"


def scaling_svg(rows: list[dict]) -> str:
    """Log-log wall time against pixels: one panel per input, one line per tool and k."""
    width, height, margin, gap = 940, 470, 70, 60
    panel_w = (width - 2 * margin - gap) / 2
    top, panel_h = 46, 290
    timed = [row for row in rows if row.get("seconds") and row["status"] == "ok"]
    if not timed:
        return ""
    x_lo = 10 ** math.floor(math.log10(min(row["size"] ** 2 for row in timed)))
    x_hi = 10 ** math.ceil(math.log10(max(row["size"] ** 2 for row in timed)))
    y_lo = 10 ** math.floor(math.log10(min(row["seconds"] for row in timed)))
    y_hi = 10 ** math.ceil(math.log10(max(row["seconds"] for row in timed)))
    x_hi, y_hi = max(x_hi, 10 * x_lo), max(y_hi, 10 * y_lo)
    sizes = sorted({row["size"] for row in timed})
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    for panel, kind in enumerate((ONE_BAND, FOUR_BANDS)):
        left = margin + panel * (panel_w + gap)

        def x_of(pixels: float, left: float = left) -> float:
            return left + panel_w * math.log10(pixels / x_lo) / math.log10(x_hi / x_lo)

        def y_of(seconds: float) -> float:
            return top + panel_h * (1 - math.log10(seconds / y_lo) / math.log10(y_hi / y_lo))

        out.append(f'<text x="{left + panel_w / 2:.1f}" y="22" text-anchor="middle" '
                   f'font-size="14">k-means, {kind}</text>')
        for exponent in range(round(math.log10(x_lo)), round(math.log10(x_hi)) + 1):
            x = x_of(10**exponent)
            out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + panel_h}" '
                       'stroke="#ddd"/>')
            out.append(f'<text x="{x:.1f}" y="{top + panel_h + 16}" text-anchor="middle">'
                       f'{_pixels_label(10**exponent)}</text>')
        for size in sizes:  # the sizes run, above the panel
            out.append(f'<text x="{x_of(size**2):.1f}" y="{top - 5}" text-anchor="middle" '
                       f'font-size="10" fill="#555">{size}²</text>')
        for exponent in range(round(math.log10(y_lo)), round(math.log10(y_hi)) + 1):
            y = y_of(10**exponent)
            out.append(f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{left + panel_w:.1f}" '
                       f'y2="{y:.1f}" stroke="#ddd"/>')
            out.append(f'<text x="{left - 6:.1f}" y="{y + 4:.1f}" '
                       f'text-anchor="end">{10**exponent:g} s</text>')
        out.append(f'<rect x="{left:.1f}" y="{top}" width="{panel_w:.1f}" '
                   f'height="{panel_h}" fill="none" stroke="#333"/>')
        out.append(f'<text x="{left + panel_w / 2:.1f}" y="{top + panel_h + 34}" '
                   'text-anchor="middle">pixels (log scale)</text>')
        for tool in TOOLS:
            for k, dash in zip(CLUSTERS, ("", ' stroke-dasharray="6 4"')):
                points = sorted((row["size"] ** 2, row["seconds"]) for row in timed
                                if row["input"] == kind and row["key"] == tool.key
                                and row["k"] == k)
                if not points:
                    continue
                colour = _COLOURS[tool.key]
                outline = _OUTLINES.get(tool.key, colour)
                path = " ".join(f"{x_of(p):.1f},{y_of(s):.1f}" for p, s in points)
                out.append(f'<polyline points="{path}" fill="none" stroke="{outline}" '
                           f'stroke-width="2"{dash}/>')
                out += [f'<circle cx="{x_of(p):.1f}" cy="{y_of(s):.1f}" r="3.5" '
                        f'fill="{colour}" stroke="{outline}"/>' for p, s in points]
    legend_top = top + panel_h + 62
    for index, tool in enumerate(TOOLS):
        x, y = margin + (index % 2) * 420, legend_top + (index // 2) * 20
        out.append(f'<line x1="{x}" y1="{y}" x2="{x + 24}" y2="{y}" '
                   f'stroke="{_OUTLINES.get(tool.key, _COLOURS[tool.key])}" stroke-width="3"/>')
        out.append(f'<text x="{x + 30}" y="{y + 4}">{tool.name}</text>')
    out.append(f'<text x="{margin}" y="{legend_top + 46}">Wall time, log scale. Solid: '
               f'k = {CLUSTERS[0]}; dashed: k = {CLUSTERS[1]}. A missing point: the run failed, '
               'timed out or was not started (see the tables).</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def compare(sizes: list[int]) -> list[dict]:
    """Run every tool at `sizes`, print the tables, draw the plot; return this run's rows."""
    missing = [command for command in ("saga_cmd", "grass") if shutil.which(command) is None]
    if missing:
        print(f"Missing {', '.join(missing)}: run bench/setup_peers.sh first (as root); their "
              "rows are recorded as failed.", flush=True)
    rows = run(sizes)
    recorded = json.loads(RESULTS.read_text())
    PLOT.write_text(scaling_svg(recorded))
    print(f"\nMachine: {machine()}")
    print(markdown_tables(recorded))
    print(f"\nScaling plot: {PLOT.relative_to(ROOT)}")
    return rows


if __name__ == "__main__":
    compare([int(argument) for argument in sys.argv[1:]] or list(SIZES))
