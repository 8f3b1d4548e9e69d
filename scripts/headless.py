"""Run the plugin through the real `qgis_process.bin` in a throwaway QGIS profile.

Used by `make demo` and the headless tests. Debian's `qgis_process` wrapper passes an option
3.22 does not know, so the binary is called directly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"
PLUGIN_NAME = "raster_clustering"


class QgisProcess:
    """A QGIS profile in a temporary folder with this checkout installed and enabled as a plugin.

    Args:
        plugin_dir: the checkout (linked into the profile as `raster_clustering`, whatever the
            checkout folder is called).
        profile_root: folder for the profile; a new temporary one when None.
    """

    def __init__(self, plugin_dir: str | os.PathLike,
                 profile_root: str | os.PathLike | None = None):
        self.profile_root = Path(profile_root or tempfile.mkdtemp(prefix="qgis_profile_"))
        plugins = self.profile_root / "profiles" / "default" / "python" / "plugins"
        plugins.mkdir(parents=True, exist_ok=True)
        link = plugins / PLUGIN_NAME
        if not link.exists():
            link.symlink_to(Path(plugin_dir).resolve(), target_is_directory=True)
        self.env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
                        QGIS_CUSTOM_CONFIG_PATH=str(self.profile_root))
        self.env.pop("PYTHONPATH", None)
        self.run(["plugins", "enable", PLUGIN_NAME], check=True)

    def run(self, arguments: list[str], *, check: bool = False,
            timeout: float = 600) -> subprocess.CompletedProcess:
        """Run `qgis_process.bin <arguments>`; the result holds stdout and stderr as text."""
        completed = subprocess.run([QGIS_PROCESS, *arguments], env=self.env, capture_output=True,
                                   text=True, timeout=timeout)
        if check and completed.returncode != 0:
            raise RuntimeError(f"qgis_process {' '.join(arguments)} failed "
                               f"({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
        return completed

    def run_algorithm(self, algorithm: str, parameters: dict[str, object]) -> dict:
        """Run an algorithm with `--json` and return the parsed JSON document."""
        arguments = ["--json", "run", algorithm, "--"]
        arguments += [f"{name}={value}" for name, value in parameters.items()]
        completed = self.run(arguments, check=True)
        return json.loads(completed.stdout[completed.stdout.index("{"):])
