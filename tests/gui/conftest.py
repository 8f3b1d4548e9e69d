"""The real QGIS desktop, started under a virtual X server (Xvfb) with this checkout installed
and enabled as the plugin `raster_clustering` in a throwaway profile."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGIN_NAME = "raster_clustering"
SCREEN = "1600x1000x24"

# The profile's settings: the plugin enabled; no tips, news feed or version check at start; one
# locale so labels and numbers read the same on every machine.
PROFILE_SETTINGS = f"""\
[PythonPlugins]
{PLUGIN_NAME}=true

[qgis]
showTips{{version}}=false
checkVersion=false
allowVersionCheck=false

[core]
NewsFeed\\httpsfeedqgisorg\\disabled=true

[locale]
overrideFlag=true
userLocale=en_US
globalLocale=en_US
"""


class VirtualScreen:
    """An Xvfb server on a free display number that Xvfb picks itself (no race with others)."""

    def __init__(self, timeout_s: float = 20):
        read_end, write_end = os.pipe()
        self.process = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_end), "-screen", "0", SCREEN, "-nolisten", "tcp"],
            pass_fds=[write_end], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write_end)
        # Kept open while the server runs: Xvfb dies when it cannot write to it.
        self.display_pipe = read_end
        ready, _, _ = select.select([read_end], [], [], timeout_s)
        number = os.read(read_end, 32).decode().strip() if ready else ""
        if not number:
            self.close()
            raise RuntimeError(f"Xvfb did not start within {timeout_s} s")
        self.display = f":{number}"

    def close(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self.display_pipe)


class QgisDesktop:
    """`qgis --code <driver>` in a profile of its own, under a virtual screen."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.profile = folder / "profile"
        profile = self.profile / "profiles" / "default"
        plugins = profile / "python" / "plugins"
        plugins.mkdir(parents=True)
        (plugins / PLUGIN_NAME).symlink_to(REPO_ROOT, target_is_directory=True)
        (profile / "QGIS").mkdir()
        version = qgis_version_int() // 100  # QGIS names the tips setting after its version
        (profile / "QGIS" / "QGIS3.ini").write_text(PROFILE_SETTINGS.format(version=version))
        self.runtime = folder / "runtime"
        self.runtime.mkdir(mode=0o700)

    def run(self, driver: Path, plan: dict, timeout_s: float) -> dict:
        """Run the driver with `plan` (written as JSON for it); return its results and how QGIS
        ended. A QGIS that does not quit within timeout_s is killed, with its children."""
        plan_path = self.folder / "plan.json"
        plan_path.write_text(json.dumps(plan, indent=1))
        screen = VirtualScreen()
        environment = {name: value for name, value in os.environ.items()
                       if name not in ("PYTHONPATH", "QT_QPA_PLATFORM", "VIRTUAL_ENV")}
        environment.update(DISPLAY=screen.display, QT_QPA_PLATFORM="xcb",
                           QGIS_CUSTOM_CONFIG_PATH=str(self.profile),
                           XDG_RUNTIME_DIR=str(self.runtime),
                           RASTERCLUSTERING_DESKTOP_PLAN=str(plan_path))
        process = subprocess.Popen(
            ["qgis", "--nologo", "--noversioncheck", "--code", str(driver)], env=environment,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        timed_out = False
        try:
            output, _ = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
        finally:
            screen.close()
        results_path = Path(plan["results"])
        results = json.loads(results_path.read_text()) if results_path.exists() else {}
        results["qgis"] = {"returncode": process.returncode, "timed_out": timed_out,
                           "timeout_s": timeout_s, "output": output[-20000:]}
        return results


def qgis_version_int() -> int:
    from qgis.core import Qgis

    return Qgis.QGIS_VERSION_INT


@pytest.fixture(scope="session")
def qgis_desktop(tmp_path_factory) -> QgisDesktop:
    return QgisDesktop(tmp_path_factory.mktemp("qgis_desktop"))
