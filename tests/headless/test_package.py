"""`make package` builds a zip that installs as QGIS's "Install from ZIP" installs it."""

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_zip_installs_into_a_profile_and_registers_the_provider(tmp_path):
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "package.py"), str(tmp_path)],
                   check=True, capture_output=True)
    (archive,) = tmp_path.glob("raster_clustering-*.zip")
    names = zipfile.ZipFile(archive).namelist()
    assert all(name.startswith("raster_clustering/") for name in names)
    assert "raster_clustering/metadata.txt" in names and "raster_clustering/LICENSE" in names
    assert not any(part in name for name in names
                   for part in ("/tests/", "/bench/", "/scripts/", "/.ci/", "__pycache__",
                                "synthetic_scene"))
    metadata = configparser.ConfigParser()
    metadata.read_string(zipfile.ZipFile(archive).read("raster_clustering/metadata.txt").decode())
    assert metadata["general"]["hasProcessingProvider"] == "yes"
    assert f"raster_clustering/{metadata['general']['icon']}" in names

    # What "Install from ZIP" does: extract into the profile's plugin folder, then enable.
    profile = tmp_path / "profile"
    plugins = profile / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    zipfile.ZipFile(archive).extractall(plugins)
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    from headless import QgisProcess

    qgis = QgisProcess(plugins / "raster_clustering", profile)
    listing = qgis.run(["list"], check=True).stdout
    assert "rasterclustering:kmeans" in listing
