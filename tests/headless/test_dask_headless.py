"""qgis_process with RASTERCLUSTERING_DASK_SCHEDULER set: to a scheduler and workers started as
an operator starts them (`dask scheduler`, `dask worker` on 127.0.0.1, without the plugin on
their path), and to `local:2` (a LocalCluster qgis_process starts); the same files as a run in
the process, and the log names the engine."""

from xml.etree.ElementTree import canonicalize

import pytest
from dask_processes import dask_processes
from raster_clustering.core.engine.dask_executor import SCHEDULER_VARIABLE

pytest.importorskip("distributed")


def _run_zones(qgis_process, scene, folder, scheduler):
    """The zones of the scene with the scheduler given; (log, files written)."""
    folder.mkdir()
    environment = qgis_process.env
    qgis_process.env = {**environment, SCHEDULER_VARIABLE: scheduler}
    try:
        completed = qgis_process.run([
            "run", "rasterclustering:zones", "--", f"INPUT={scene.scene}", "SENSOR=4",
            "CLUSTERS=4", f"AOI={scene.aoi}", "MIN_AREA=800", f"OUTPUT={folder / 'zones.tif'}",
            f"CENTROIDS={folder / 'zones.json'}", f"STATISTICS={folder / 'zones.csv'}"],
            check=True)
    finally:
        qgis_process.env = environment
    # A style's XML attributes come in another order in each QGIS process: compared canonical.
    return completed.stdout, {
        path.name: canonicalize(path.read_text()) if path.suffix == ".qml" else path.read_bytes()
        for path in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def in_process(qgis_process, scene, tmp_path_factory):
    log, written = _run_zones(qgis_process, scene, tmp_path_factory.mktemp("zones") / "here", "")
    assert "Engine: in-process" in log
    return written


def test_qgis_process_on_an_external_dask_cluster_writes_what_it_writes_alone(
        qgis_process, scene, in_process, tmp_path):
    with dask_processes(2) as address:
        log, written = _run_zones(qgis_process, scene, tmp_path / "there", address)
    assert written == in_process
    assert f"Engine: Dask distributed, scheduler {address}, 2 worker(s)" in log, log


def test_qgis_process_on_a_local_cluster_writes_what_it_writes_alone(qgis_process, scene,
                                                                     in_process, tmp_path):
    log, written = _run_zones(qgis_process, scene, tmp_path / "local", "local:2")
    assert written == in_process
    assert "Engine: Dask distributed, a LocalCluster on this machine tcp://127.0.0.1:" in log
    assert "2 worker(s)" in log
