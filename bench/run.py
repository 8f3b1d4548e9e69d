"""`make bench`: speed and memory of the plugin's heavy paths, beside reference tools.

Each measured command runs in its own process so its peak memory (max RSS) is its own.
Results are printed as a Markdown table; copy them into bench/README.md with the date.
Run one case with `python bench/run.py kmeans` (names: kmeans, calibrate, band_math, sieve,
polygonize, peers, dask).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from measure import measure, python_path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
TILE = 10980  # a Sentinel-2 tile at 10 m
NAIVE_SIZES = (2000, 5000)  # the tutorials' approach needs minutes and GBs past these


def make_inputs(size: int) -> tuple[Path, Path]:
    raster = WORK / f"ndvi_{size}.tif"
    aoi = WORK / f"aoi_{size}.geojson"
    if not raster.exists():
        print(f"  generating {raster.name} ({size}×{size} Float32)", flush=True)
        subprocess.run([sys.executable, "-c",
                        "from synthetic_scene import make_large_band;"
                        f"make_large_band({str(raster)!r}, size={size}, seed=0)"],
                       env=dict(os.environ, PYTHONPATH=python_path()), check=True)
    if not aoi.exists():
        from osgeo import gdal

        x0, dx, _, y0, _, dy = gdal.Open(str(raster)).GetGeoTransform()
        # A polygon covering about half the tile: a trapezoid over its left part.
        width, height = size * dx, size * -dy
        ring = [(x0, y0), (x0 + 0.6 * width, y0), (x0 + 0.4 * width, y0 - height),
                (x0, y0 - height),
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
                f"source = ogr.Open({str(aoi)!r})\n"
                "feature = source.GetLayer(0).GetNextFeature()\n"
                "wkt = feature.GetGeometryRef().ExportToWkt()\n")
    return (
        "from raster_clustering.core.clustering.kmeans import KMeansSettings, cluster_rasters\n"
        "from raster_clustering.core.io.feature_stack import RasterInput\n" + area +
        f"cluster_rasters([RasterInput({str(raster)!r})], {str(output)!r}, "
        f"settings=KMeansSettings(n_clusters=5), geometry_wkt={'wkt' if aoi else 'None'})\n")


def naive_code(raster: Path) -> str:
    return (
        "import numpy as np\nfrom osgeo import gdal\nfrom sklearn.cluster import KMeans\n"
        f"dataset = gdal.Open({str(raster)!r})\n"
        "band = dataset.GetRasterBand(1)\n"
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
    ours = measure("rasterclustering k-means (AOI, clip)",
                   kmeans_code(raster, aoi, WORK / "classes.tif"))
    rows += [{**copy, "size": TILE}, {**ours, "size": TILE}]
    for size in NAIVE_SIZES:
        small, _ = make_inputs(size)
        print(f"k-means vs the tutorials' scikit-learn approach, {size}×{size}, whole raster",
              flush=True)
        naive = measure("naive KMeans(n_init=10).fit_predict", naive_code(small))
        ours_small = measure("rasterclustering k-means (whole raster)",
                             kmeans_code(small, None, WORK / f"classes_{size}.tif"))
        rows += [{**naive, "size": size}, {**ours_small, "size": size}]
    return rows


CALIBRATION_SCENE = "LC80200392015216LGN00"


def make_dn_band(size: int) -> Path:
    """A UInt16 Landsat-like DN band of size² with a fill border, beside a copy of the real MTL."""
    folder = WORK / "calibrate"
    band = folder / f"{CALIBRATION_SCENE}_B4_{size}.TIF"
    if not band.exists():
        mtl = ROOT.parent / "shared" / "data" / "landsat8-thermal" / f"{CALIBRATION_SCENE}_MTL.txt"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / mtl.name).write_bytes(mtl.read_bytes())
        print(f"  generating {band.name} ({size}×{size} UInt16 DN)", flush=True)
        subprocess.run([sys.executable, "-c", (
            "import numpy as np\n"
            "from raster_clustering.core.io import rasters as io\n"
            f"size = {size}\n"
            "grid = io.RasterGrid(size, size, (500000.0, 30.0, 0.0, 3500000.0, 0.0, -30.0), '')\n"
            f"dataset = io.create_geotiff({str(band)!r}, grid, data_type=2)\n"
            "rng = np.random.default_rng(0)\n"
            "x = np.arange(size)\n"
            "for window in io.iter_windows(grid.full_window, 512):\n"
            "    y = np.arange(window.row_off, window.row_off + window.height)[:, None]\n"
            "    dn = 9000 + 3000 * np.sin(x / 500.0) * np.cos(y / 700.0)\n"
            "    dn = (dn + rng.normal(0, 200, dn.shape)).clip(1, 65535).astype(np.uint16)\n"
            "    dn[:, : size // 30] = 0\n"
            "    io.write_block(dataset.GetRasterBand(1), dn, window, grid.full_window)\n"
            "dataset = None\n")], env=dict(os.environ, PYTHONPATH=python_path()), check=True)
    return band


def bench_calibrate() -> list[dict]:
    band = make_dn_band(TILE)
    output = WORK / "calibrate" / "out"
    output.mkdir(exist_ok=True)
    print(f"calibration, {TILE}×{TILE} UInt16 DN → Float32 TOA reflectance", flush=True)
    floor = measure("gdal_translate to Float32 (I/O floor)",
                    ["gdal_translate", "-q", "-ot", "Float32", "-co", "TILED=YES",
                     "-co", "COMPRESS=DEFLATE", str(band), str(output / "floor.tif")])
    ours = measure("rasterclustering calibrate", (
        "from pathlib import Path\n"
        "from raster_clustering.core.calibration.calibrators import calibrator_for\n"
        "from raster_clustering.core.calibration.raster import CalibrationJob, "
        "calibrate_band_files\n"
        f"calibrate_band_files([CalibrationJob({str(band)!r}, Path({str(output / 'ours.tif')!r}), "
        f"calibrator_for({str(band)!r}))])\n"))
    naive = measure("naive whole-array numpy", (
        "import math\nimport numpy as np\nfrom osgeo import gdal\n"
        f"source = gdal.Open({str(band)!r})\n"
        "dn = source.GetRasterBand(1).ReadAsArray()\n"
        "toa = (2e-05 * dn.astype('float64') - 0.1) / math.sin(math.radians(64.74360932))\n"
        "toa[dn == 0] = np.nan\n"
        f"target = gdal.GetDriverByName('GTiff').Create({str(output / 'naive.tif')!r}, "
        "source.RasterXSize, source.RasterYSize, 1, gdal.GDT_Float32, "
        "['TILED=YES', 'COMPRESS=DEFLATE'])\n"
        "target.GetRasterBand(1).WriteArray(toa.astype('float32'))\n"
        "target = None\n"))
    return [{**floor, "size": TILE}, {**ours, "size": TILE},
            {**naive, "size": TILE}]


def bench_band_math() -> list[dict]:
    """NDVI of a 10 m Sentinel-2-style UInt16 red/NIR pair, beside gdal_calc on the same files."""
    folder = WORK / "band_math"
    red, nir = (folder / f"T33UXX_20210527_{code}.tif" for code in ("B04", "B08"))
    if not (red.exists() and nir.exists()):
        print(f"  generating T33UXX_20210527_B04/B08 ({TILE}×{TILE} UInt16)", flush=True)
        subprocess.run([sys.executable, "-c",
                        "from synthetic_scene import make_s2_style_bands;"
                        f"make_s2_style_bands({str(folder)!r}, size_10m={TILE}, seed=0)"],
                       env=dict(os.environ, PYTHONPATH=python_path()), check=True)
    output = folder / "out"
    output.mkdir(exist_ok=True)
    options = ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=DEFLATE"]
    print(f"band math, NDVI of two {TILE}×{TILE} UInt16 bands → Float32 (tiled, DEFLATE)",
          flush=True)
    ours = measure("rasterclustering band math (NDVI)", (
        "from raster_clustering.core.bandmath.raster import band_math_to_raster\n"
        "from raster_clustering.core.io.feature_stack import RasterInput\n"
        f"band_math_to_raster([RasterInput({str(red)!r}), RasterInput({str(nir)!r})], 'NDVI', "
        f"{str(output / 'ndvi.tif')!r})\n"))
    floor = measure("gdal_translate copy of the NDVI (write floor)",
                    ["gdal_translate", "-q", *sum((["-co", option] for option in options), []),
                     str(output / "ndvi.tif"), str(output / "copy.tif")])
    calc_output = output / "gdal_calc.tif"
    calc_output.unlink(missing_ok=True)
    calc_arguments = ["gdal_calc.py", "--quiet", "-A", str(red), "-B", str(nir),
                      f"--outfile={calc_output}", "--type=Float32", "--NoDataValue=-9999",
                      "--calc=(B.astype(float32) - A) / (B.astype(float32) + A)",
                      *sum((["--co", option] for option in options), [])]
    # gdal_calc ships with GDAL's Python utilities, which the system Python has.
    calc = measure("gdal_calc.py (same creation options)", [
        "/usr/bin/python3", "-c", (
            "import warnings\nwarnings.simplefilter('ignore')\n"
            "from osgeo_utils import gdal_calc\n"
            f"gdal_calc.main({calc_arguments!r})\n")])
    return [{**ours, "size": TILE}, {**floor, "size": TILE},
            {**calc, "size": TILE}]


def gdal_utility(name: str, arguments: list[str]) -> list[str]:
    """The command running one of GDAL's Python utilities (`osgeo_utils.<name>`, which the
    system Python has) with `arguments`; it fails unless the utility returns 0."""
    return ["/usr/bin/python3", "-c", (
        "import warnings\nwarnings.simplefilter('ignore')\n"
        f"from osgeo_utils.{name} import main\n"
        f"status = main({[name + '.py', *arguments]!r})\n"
        "assert status == 0, status\n")]


def make_classes(size: int) -> Path:
    """A 5-class UInt8 map of the large NDVI (cut at its quintiles, as 1-D k-means cuts between
    centres), nodata 0, tiled and compressed: made once, block by block, and cached."""
    ndvi, _ = make_inputs(size)
    classes = WORK / "sieve" / f"classes_{size}.tif"
    return make_once(classes, f"generating {classes.name} ({size}×{size} UInt8, 5 classes)", (
            "import numpy as np\nfrom osgeo import gdal\n"
            "from raster_clustering.core.io import rasters as io\n"
            f"source = gdal.Open({str(ndvi)!r})\n"
            "band = source.GetRasterBand(1)\n"
            "nodata = band.GetNoDataValue()\n"
            "sample = band.ReadAsArray(buf_xsize=1000, buf_ysize=1000)\n"
            "edges = np.quantile(sample[(sample != nodata) & np.isfinite(sample)], "
            "[0.2, 0.4, 0.6, 0.8])\n"
            "grid = io.RasterGrid.of(source)\n"
            f"target = io.create_geotiff({str(classes)!r}, grid, data_type=gdal.GDT_Byte, "
            "nodata=0)\n"
            "for window in io.iter_windows(grid.full_window, 512):\n"
            "    values = band.ReadAsArray(window.col_off, window.row_off, window.width, "
            "window.height)\n"
            "    labels = (np.searchsorted(edges, values) + 1).astype(np.uint8)\n"
            "    labels[(values == nodata) | ~np.isfinite(values)] = 0\n"
            "    io.write_block(target.GetRasterBand(1), labels, window, grid.full_window)\n"
            "target = None\n"))


def make_once(path: Path, message: str, code: str) -> Path:
    """`path`, made by running `code` in a child process unless it exists (inputs are cached
    in bench/work)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"  {message}", flush=True)
        subprocess.run([sys.executable, "-c", code],
                       env=dict(os.environ, PYTHONPATH=python_path()), check=True)
    return path


def make_classes_in_degrees(size: int) -> Path:
    """The classes of `make_classes` in degrees (a VRT): 0.0001° pixels from 60.5°N, so a
    pixel's area changes by 4 % from top to bottom at 10980²."""
    geographic = WORK / "sieve" / f"classes_degrees_{size}.vrt"
    gdal_translate = ["gdal_translate", "-q", "-of", "VRT", "-a_srs", "EPSG:4326", "-a_ullr",
                      "10", "60.5", str(10 + size * 1e-4), str(60.5 - size * 1e-4)]
    subprocess.run([*gdal_translate, str(make_classes(size)), str(geographic)], check=True)
    return geographic


def bench_sieve() -> list[dict]:
    """Minimum-area sieve (2000 m² = 20 pixels of 10 m, 8-connected) beside gdal_sieve.py."""
    classes = make_classes(TILE)
    output = WORK / "sieve" / "out"
    output.mkdir(exist_ok=True)
    print(f"sieve, {TILE}×{TILE} UInt8 5 classes, 2000 m² at 10 m = 20 pixels, 8-connected",
          flush=True)
    ours = measure("rasterclustering sieve (until stable)", (
        "from raster_clustering.core.sieve.sieve import sieve_raster\n"
        f"report = sieve_raster({str(classes)!r}, {str(output / 'ours.tif')!r}, "
        "min_area_m2=2000, connectivity=8)\n"
        "print('changed pixels:', report.changed_pixels, 'threshold:', report.pixel_threshold)\n"))
    # gdal_sieve.py ships with GDAL's Python utilities, which the system Python has.
    reference = measure("gdal_sieve.py -st 20 -8 (one pass)", gdal_utility("gdal_sieve", [
        "-q", "-st", "20", "-8", "-of", "GTiff", str(classes), str(output / "gdal_sieve.tif")]))
    # The same classes in degrees: GDAL's one pass, then the exact step over the whole raster.
    geographic = make_classes_in_degrees(TILE)
    exact = measure("rasterclustering sieve in degrees (GDAL pass + exact step)", (
        "from raster_clustering.core.sieve.sieve import sieve_raster\n"
        f"report = sieve_raster({str(geographic)!r}, {str(output / 'degrees.tif')!r}, "
        "min_area_m2=2000, connectivity=8)\n"
        "print('changed pixels:', report.changed_pixels, 'threshold:', report.pixel_threshold)\n"))
    return [{**ours, "size": TILE},
            {**reference, "size": TILE},
            {**exact, "size": TILE}]


def make_sieved_classes(size: int, min_area_m2: int) -> Path:
    """The 5-class map of `make_classes`, sieved to `min_area_m2` (8-connected): the zones a
    k-means run with MIN_AREA gives, made once and cached."""
    classes = make_classes(size)
    sieved = WORK / "polygonize" / f"classes_{size}_sieved_{min_area_m2}.tif"
    return make_once(sieved, f"sieving {classes.name} to {min_area_m2} m² into {sieved.name}", (
        "from raster_clustering.core.sieve.sieve import sieve_raster\n"
        f"sieve_raster({str(classes)!r}, {str(sieved)!r}, min_area_m2={min_area_m2})\n"))


def polygonize_code(classes: Path, output: Path, *, smoothing: int = 0,
                    features: Path | None = None, cache_mib: int | None = None) -> str:
    inputs = f"[RasterInput({str(features)!r})]" if features else "[]"
    cache = f"from osgeo import gdal\ngdal.SetCacheMax({cache_mib} * 2**20)\n" if cache_mib else ""
    return cache + (
        "from raster_clustering.core.io.feature_stack import RasterInput\n"
        "from raster_clustering.core.zones.polygons import polygonize_zones\n"
        f"report = polygonize_zones({str(classes)!r}, {str(output)!r}, smoothing={smoothing}, "
        f"features={inputs})\n"
        "print('zones:', report.zones, 'largest area change %:', "
        "round(report.area_change_max_percent, 2), 'smoothed arcs:', report.smoothed_arcs, "
        "'of', report.shared_arcs)\n")


def bench_polygonize() -> list[dict]:
    """Zone polygons of sieved 10980² class maps (2000 m²: about 100,000 zones; 500 m²: about
    500,000), beside gdal_polygonize.py on the same maps; GeoPackage outputs."""
    ndvi, _ = make_inputs(TILE)
    output = WORK / "polygonize" / "out"
    output.mkdir(parents=True, exist_ok=True)
    rows = []
    # (SMOOTHING, FEATURES, GDAL block cache in MiB or None for GDAL's default, 5 % of RAM)
    for min_area_m2, runs in ((2000, ((0, None, None), (0, None, 256), (0, ndvi, None),
                                      (2, None, None), (3, None, None))),
                              (500, ((0, None, None), (2, None, None)))):
        classes = make_sieved_classes(TILE, min_area_m2)
        for old in output.iterdir():
            old.unlink()
        print(f"zone polygons, {TILE}×{TILE} UInt8, 5 classes sieved to {min_area_m2} m², "
              "8-connected, GeoPackage", flush=True)
        rows.append(measure(
            f"gdal_polygonize.py -8 (value field only), map sieved to {min_area_m2} m²",
            gdal_utility("gdal_polygonize", ["-q", "-8", str(classes), "-f", "GPKG",
                                             str(output / "gdal.gpkg"), "zones", "class"])))
        for smoothing, features, cache_mib in runs:
            what = f"SMOOTHING={smoothing}" if smoothing else "exact"
            if features:
                what += ", NDVI statistics per zone"
            if cache_mib:
                what += f", GDAL cache {cache_mib} MiB"
            measured = measure(
                f"rasterclustering polygonize, {what}, map sieved to {min_area_m2} m²",
                polygonize_code(classes, output / f"ours_{smoothing}.gpkg", smoothing=smoothing,
                                features=features, cache_mib=cache_mib))
            print("   ", measured["stdout"].strip(), flush=True)
            rows.append(measured)
    return [{**row, "size": TILE} for row in rows]


def bench_peers() -> list[dict]:
    """k-means beside SAGA, GRASS and scikit-learn (bench/peers.py prints its own tables)."""
    import peers

    rows = peers.compare(list(peers.SIZES))
    return [{"case": f"peers: {row['tool']}, {row['input']}, k={row['k']} ({row['status']})",
             "size": row["size"], "seconds": row["seconds"], "peak_mib": row["peak_mib"]}
            for row in rows if "seconds" in row]


def bench_dask() -> list[dict]:
    """The Dask executor against the in-process one (bench/on_dask.py prints its own table)."""
    import on_dask

    return on_dask.bench_dask()


CASES = {"kmeans": bench_kmeans, "calibrate": bench_calibrate, "band_math": bench_band_math,
         "sieve": bench_sieve, "polygonize": bench_polygonize, "peers": bench_peers,
         "dask": bench_dask}


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
