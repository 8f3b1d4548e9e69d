"""`make bench`: speed and memory of the plugin's heavy paths, beside reference tools.

Each measured command runs in its own process so its peak memory (max RSS) is its own.
Results are printed as a Markdown table; copy them into bench/README.md with the date.
Run one case with `python bench/run.py kmeans` (names: kmeans).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
TILE = 10980  # a Sentinel-2 tile at 10 m
NAIVE_SIZE = 2000  # the tutorials' approach takes minutes past this


def plugin_path() -> str:
    parent = Path(tempfile.mkdtemp(prefix="raster_clustering_path_"))
    (parent / "raster_clustering").symlink_to(ROOT, target_is_directory=True)
    return str(parent)


def measure(label: str, code: str | list[str]) -> dict:
    """Run Python code (str) or a command (list) in a child process; wall time and peak RSS."""
    command = [sys.executable, "-c", code] if isinstance(code, str) else code
    env = dict(os.environ, PYTHONPATH=plugin_path())
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if completed.returncode != 0:
        raise SystemExit(f"{label} failed:\n{completed.stdout}\n{completed.stderr}")
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far; each case runs the largest last.
    peak = max(peak_kib, before) / 1024
    print(f"  {label}: {seconds:.1f} s, peak {peak:.0f} MiB", flush=True)
    return {"case": label, "seconds": seconds, "peak_mib": peak, "stdout": completed.stdout}


def peak_of(code: str) -> str:
    """Wrap code so the child reports its own peak RSS (independent of earlier children)."""
    return (code + "\nimport resource, json\n"
            "print(json.dumps({'peak_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024}))")


def own_peak(result: dict) -> float:
    return json.loads(result["stdout"].strip().splitlines()[-1])["peak_mib"]


def make_inputs(size: int) -> tuple[Path, Path]:
    raster = WORK / f"ndvi_{size}.tif"
    aoi = WORK / f"aoi_{size}.geojson"
    if not raster.exists():
        print(f"  generating {raster.name} ({size}×{size} Float32)", flush=True)
        subprocess.run([sys.executable, "-c",
                        "from raster_clustering.core.synthetic_scene import make_large_band;"
                        f"make_large_band({str(raster)!r}, size={size}, seed=0)"],
                       env=dict(os.environ, PYTHONPATH=plugin_path()), check=True)
    if not aoi.exists():
        from osgeo import gdal

        x0, dx, _, y0, _, dy = gdal.Open(str(raster)).GetGeoTransform()
        # A polygon covering about half the tile: a trapezoid over its left part.
        width, height = size * dx, size * -dy
        ring = [(x0, y0), (x0 + 0.6 * width, y0), (x0 + 0.4 * width, y0 - height), (x0, y0 - height),
                (x0, y0)]
        coordinates = [[list(p) for p in ring]]
        aoi.write_text(json.dumps({
            "type": "FeatureCollection",
            "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}},
            "features": [{"type": "Feature", "properties": {},
                          "geometry": {"type": "Polygon", "coordinates": coordinates}}]}))
    return raster, aoi


def kmeans_code(raster: Path, aoi: Path | None, output: Path) -> str:
    area = ""
    if aoi is not None:
        area = ("from osgeo import ogr\n"
                f"layer = ogr.Open({str(aoi)!r}).GetLayer(0)\n"
                "wkt = layer.GetNextFeature().GetGeometryRef().ExportToWkt()\n")
    return peak_of(
        "from raster_clustering.core.kmeans import KMeansSettings, cluster_rasters\n"
        "from raster_clustering.core.feature_stack import RasterInput\n" + area +
        f"cluster_rasters([RasterInput({str(raster)!r})], {str(output)!r}, "
        f"settings=KMeansSettings(n_clusters=5), geometry_wkt={'wkt' if aoi else 'None'})\n")


def naive_code(raster: Path) -> str:
    return peak_of(
        "import numpy as np\nfrom osgeo import gdal\nfrom sklearn.cluster import KMeans\n"
        f"band = gdal.Open({str(raster)!r}).GetRasterBand(1)\n"
        "values = band.ReadAsArray().astype('float64')\n"
        "valid = values != band.GetNoDataValue()\n"
        "labels = KMeans(n_clusters=5, n_init=10).fit_predict(values[valid].reshape(-1, 1))\n")


def bench_kmeans() -> list[dict]:
    rows = []
    raster, aoi = make_inputs(TILE)
    print(f"k-means, {TILE}×{TILE} Float32, one band, k=5, AOI ≈ half the tile", flush=True)
    copy = measure("gdal_translate copy (I/O floor)",
                   ["gdal_translate", "-q", "-co", "TILED=YES", str(raster),
                    str(WORK / "copy.tif")])
    ours = measure("rasterclustering k-means (AOI, clip)", kmeans_code(raster, aoi, WORK / "classes.tif"))
    rows += [{**copy, "size": TILE}, {**ours, "size": TILE, "peak_mib": own_peak(ours)}]
    small, _ = make_inputs(NAIVE_SIZE)
    print(f"k-means vs the tutorials' scikit-learn approach, {NAIVE_SIZE}×{NAIVE_SIZE}, whole raster",
          flush=True)
    naive = measure("naive KMeans(n_init=10).fit_predict", naive_code(small))
    ours_small = measure("rasterclustering k-means (whole raster)",
                         kmeans_code(small, None, WORK / "classes_small.tif"))
    rows += [{**naive, "size": NAIVE_SIZE, "peak_mib": own_peak(naive)},
             {**ours_small, "size": NAIVE_SIZE, "peak_mib": own_peak(ours_small)}]
    return rows


CASES = {"kmeans": bench_kmeans}


def main(names: list[str]) -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names or list(CASES):
        rows += CASES[name]()
    print(f"\nMachine: {platform.node()} · {os.cpu_count()} cores · "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB · "
          f"{time.strftime('%Y-%m-%d')}")
    print("| case | size | wall time (s) | peak memory (MiB) |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['case']} | {row['size']}² | {row['seconds']:.1f} | {row['peak_mib']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
