"""Build dist/raster_clustering-<version>.zip for QGIS's "Install from ZIP".

Only the plugin itself goes in (code, icons, models, metadata, licence, readme); tests,
benchmarks, scripts and development files stay out.
"""

import configparser
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_NAME = "raster_clustering"
INCLUDED = ["__init__.py", "plugin.py", "provider.py", "metadata.txt", "LICENSE", "README.md",
            "algorithms", "core", "icons", "models"]


def plugin_files():
    for entry in INCLUDED:
        path = ROOT / entry
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in candidates:
            if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc":
                yield file


def main(output_dir: str) -> int:
    metadata = configparser.ConfigParser()
    metadata.read(ROOT / "metadata.txt", encoding="utf-8")
    version = metadata["general"]["version"]
    target = Path(output_dir) / f"{PLUGIN_NAME}-{version}.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in plugin_files():
            archive.write(file, f"{PLUGIN_NAME}/{file.relative_to(ROOT).as_posix()}")
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "dist")))
