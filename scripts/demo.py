"""`make demo`: the main job, headless through qgis_process, on a scene the project makes itself.

1. Generate a synthetic 10 m scene (fields, water, forest, bare soil, grassland) with its true
   classes and a farm polygon (EPSG:4326, with a hole) as the area of interest.
2. NDVI management zones: k-means, 5 classes, fitted and clipped to the farm.
3. The classic 2-class water/land split of the NIR band.
4. Render both styled results to PNG with QGIS and print centres and class areas.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from osgeo import gdal

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from headless import QgisProcess  # noqa: E402


def import_core():
    """Import the synthetic scene generator, which imports the plugin's core as
    `raster_clustering` whatever the checkout folder is called."""
    import tempfile

    parent = Path(tempfile.mkdtemp(prefix="raster_clustering_path_"))
    (parent / "raster_clustering").symlink_to(ROOT, target_is_directory=True)
    sys.path.insert(0, str(parent))
    import synthetic_scene

    return synthetic_scene


def print_result(title: str, centroids: Path, statistics: Path) -> None:
    document = json.loads(centroids.read_text())
    key = next(iter(document))
    rows = list(csv.DictReader(statistics.open()))
    print(f"\n{title}\n  centroid JSON: {json.dumps({key: document[key]})}")
    print(f"  {'class':>5}  {'centre':>8}  {'pixels':>8}  {'area (ha)':>9}")
    for row in rows:
        centre = float(row[f"centre_{key}"])
        print(f"  {row['class']:>5}  {centre:8.3f}  {int(row['pixel_count']):8d}"
              f"  {float(row['area_m2']) / 1e4:9.2f}")


def agreement_with_truth(classes: Path, truth: Path, true_class: int, label: int) -> float:
    """Share of valid pixels where "class == label" matches "truth == true_class"."""
    output = gdal.Open(str(classes))
    labels = output.GetRasterBand(1).ReadAsArray()
    x0, dx, _, y0, _, dy = output.GetGeoTransform()
    bounds = (x0, y0 + dy * output.RasterYSize, x0 + dx * output.RasterXSize, y0)
    truth_values = gdal.Warp("", str(truth), format="MEM", outputBounds=bounds, xRes=dx,
                             yRes=-dy).ReadAsArray()
    valid = (labels > 0) & (truth_values > 0)
    return float(np.mean((labels[valid] == label) == (truth_values[valid] == true_class)))


def main(output_dir: str) -> int:
    out = Path(output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    synthetic_scene = import_core()
    scene = synthetic_scene.make_scene(out / "scene", size=600, seed=0)
    print(f"Synthetic scene: {scene.scene} (bands {', '.join(scene.bands)}), "
          f"true classes {synthetic_scene.TRUE_CLASSES}, AOI {scene.aoi} (EPSG:4326)")
    qgis = QgisProcess(ROOT)

    zones = qgis.run_algorithm("rasterclustering:kmeans", {
        "INPUT": scene.ndvi, "CLUSTERS": 5, "AOI": scene.aoi, "SEED": 0,
        "OUTPUT": out / "ndvi_zones.tif", "CENTROIDS": out / "ndvi_zones.json",
        "STATISTICS": out / "ndvi_zones_statistics.csv"})
    print_result("NDVI management zones in the farm (k = 5)", Path(zones["results"]["CENTROIDS"]),
                 Path(zones["results"]["STATISTICS"]))

    water = qgis.run_algorithm("rasterclustering:kmeans", {
        "INPUT": scene.nir, "CLUSTERS": 2, "OUTPUT": out / "water_land.tif",
        "CENTROIDS": out / "water_land.json", "STATISTICS": out / "water_land_statistics.csv"})
    print_result("Water / land from NIR (k = 2; class 1 = water)",
                 Path(water["results"]["CENTROIDS"]), Path(water["results"]["STATISTICS"]))
    share = agreement_with_truth(out / "water_land.tif", scene.truth, true_class=1, label=1)
    print(f"  agreement of class 1 with the true water: {share:.2%}")

    renderer = [sys.executable, str(ROOT / "scripts" / "render_preview.py")]
    subprocess.run([*renderer, str(out / "ndvi_zones.png"), "NDVI zones (k = 5) in the farm",
                    str(out / "ndvi_zones.tif")], check=True)
    subprocess.run([*renderer, str(out / "water_land.png"), "Water / land from NIR (k = 2)",
                    str(out / "water_land.tif")], check=True)
    print(f"\nWritten to {out}: ndvi_zones.tif (+ .qml, .json, _statistics.csv, .png), "
          "water_land.tif (+ .qml, .json, _statistics.csv, .png)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "demo-output"))
