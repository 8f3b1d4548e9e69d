"""Session set-up shared by every test.

The checkout may have any folder name, but the plugin's package is `raster_clustering`:
a temporary folder holds a link with that name, so `import raster_clustering` works.

QGIS starts (pytest-qgis, which pyproject.toml keeps from loading itself) only when the run
collects tests outside QGIS_FREE_FOLDERS: a run of tests/core alone imports no QGIS and writes
nothing into the checkout (no .qgis-settings profile; Hypothesis keeps its data in the temporary
folder).
"""

import gc
import os
import sys
import tempfile
import warnings
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = (REPO_ROOT.parent / "shared" / "data").resolve()
#: Tests that never touch QGIS (the core, the synthetic scene generator).
QGIS_FREE_FOLDERS = (REPO_ROOT / "tests" / "core", REPO_ROOT / "tests" / "scripts")

_plugin_parent = Path(tempfile.mkdtemp(prefix="raster_clustering_path_"))
(_plugin_parent / "raster_clustering").symlink_to(REPO_ROOT, target_is_directory=True)
sys.path.insert(0, str(_plugin_parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/helpers.py
sys.path.insert(0, str(REPO_ROOT / "scripts"))  # the synthetic scene generator, headless.py
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      str(Path(tempfile.gettempdir()) / "raster_clustering_hypothesis"))

from helpers import write_raster  # noqa: E402


def needs_qgis(config) -> bool:
    """Whether the run collects any test outside QGIS_FREE_FOLDERS."""
    for argument in config.args:
        path = (config.invocation_params.dir / argument.split("::")[0]).resolve()
        if not any(path == folder or folder in path.parents for folder in QGIS_FREE_FOLDERS):
            return True
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Start QGIS through pytest-qgis (its `qgis_app`, `qgis_processing` fixtures) when needed."""
    if needs_qgis(config):
        # Importing qgis.utils sets a process-wide "default" warnings filter: keep it out.
        with warnings.catch_warnings():
            config.pluginmanager.import_plugin("pytest_qgis.plugin")


@pytest.fixture(scope="session")
def shared_data(tmp_path_factory) -> Path:
    """A session copy of the real satellite data beside the checkout (CI has it).

    A copy, because QGIS and GDAL write statistics (.aux.xml) beside rasters they open, and the
    shared folder must stay as it is. Skips, saying why, where the folder is absent.
    """
    import shutil

    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (CI provides ../shared/data)")
    copy = tmp_path_factory.mktemp("shared") / "data"
    shutil.copytree(SHARED_DATA, copy, copy_function=shutil.copyfile)
    for folder in [copy, *(p for p in copy.rglob("*") if p.is_dir())]:
        folder.chmod(0o755)
    return copy


@pytest.fixture
def make_raster(tmp_path):
    """Factory: make_raster(name, array, **options) writes tmp_path/name and returns its path."""

    def factory(name, array, **options):
        return write_raster(tmp_path / name, array, **options)

    return factory


@pytest.fixture(scope="session")
def qgis_process(tmp_path_factory):
    """The real qgis_process.bin with this checkout enabled as a plugin in a throwaway profile."""
    from headless import QgisProcess

    return QgisProcess(REPO_ROOT, tmp_path_factory.mktemp("qgis_profile"))


@pytest.fixture(scope="session")
def dask_cluster():
    """A dask.distributed LocalCluster of two single-threaded worker processes on the loopback,
    for the whole session; skips where Dask is not installed. Runs use it by its address
    (`executor_for`, RASTERCLUSTERING_DASK_SCHEDULER), as they would a remote scheduler."""
    distributed = pytest.importorskip("distributed")
    from raster_clustering.core.engine.dask_executor import close_clients

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    try:
        yield cluster
    finally:
        close_clients()
        cluster.close()


@pytest.fixture
def dask_executor(dask_cluster):
    """The executor runs get for the session cluster's address, with both workers up (a test
    may have killed one: its nanny starts another)."""
    from raster_clustering.core.engine.dask_executor import executor_for

    executor = executor_for(dask_cluster.scheduler_address)
    executor.client.wait_for_workers(2, timeout=60)
    return executor


@pytest.fixture(scope="session")
def provider(qgis_app, qgis_processing):
    """The plugin's processing provider, registered once for the whole session."""
    from qgis.core import QgsApplication
    from raster_clustering.provider import RasterClusteringProvider

    registry = QgsApplication.processingRegistry()
    if registry.providerById("rasterclustering") is None:
        registry.addProvider(RasterClusteringProvider())
    return registry.providerById("rasterclustering")


@pytest.fixture
def recorder():
    """A QgsProcessingFeedback that keeps the infos, warnings and errors an algorithm reports."""
    from qgis.core import QgsProcessingFeedback

    class Recorder(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.infos, self.warnings, self.errors = [], [], []

        def pushInfo(self, info):  # noqa: N802 - QGIS's name
            self.infos.append(info)

        def pushWarning(self, warning):  # noqa: N802 - QGIS's name
            self.warnings.append(warning)

        def reportError(self, error, fatalError=False):  # noqa: N802, N803 - QGIS's names
            self.errors.append(error)

    return Recorder()


@pytest.fixture(scope="session")
def scene(tmp_path_factory):
    """The project's synthetic scene (bands, truth, AOI in EPSG:4326), made once per session."""
    from synthetic_scene import make_scene

    return make_scene(tmp_path_factory.mktemp("scene"), size=300, seed=0)


@pytest.fixture(scope="session", autouse=True)
def freeze_objects_made_before_the_tests():
    """Move what exists before the first test (modules, QGIS, collected tests) out of the
    garbage collector's view, so that the collection after each test only scans what tests
    made: 0.1 s less per test."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def collect_garbage_after_each_test():
    """Free each test's garbage while the QGIS objects it refers to still exist.

    Python subclasses of QGIS classes (feedbacks, post-processors) and GDAL objects left in
    reference cycles otherwise wait for a later collection, which may run after QGIS freed
    what they point to and crash the interpreter (seen in pytest's terminal summary).
    """
    yield
    gc.collect()


def pytest_sessionfinish(session, exitstatus):
    """Keep the run's exit status for `pytest_unconfigure` below."""
    session.config._raster_clustering_exit_status = int(exitstatus)


@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config):
    """End the process once the results are reported, before QGIS is torn down.

    Tearing QGIS down (exitQgis) with GDAL datasets and QGIS objects still referenced by test
    tracebacks sometimes aborts the interpreter ("double free or corruption") after every test
    has passed, which would turn a green run red. Everything worth keeping is written by now.
    A run without QGIS ends normally.
    """
    status = getattr(config, "_raster_clustering_exit_status", None)
    if status is None or not config.pluginmanager.has_plugin("pytest_qgis.plugin"):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
