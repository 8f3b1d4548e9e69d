"""engine: the in-process executor's order, progress and cancellation; choosing the executor;
the per-process cache of what jobs open, kept apart by scope."""

import threading

import numpy as np
import pytest
from raster_clustering.core.engine import (
    InProcessExecutor,
    cache,
    current_executor,
    opened,
    run_scope,
    use_executor,
)
from raster_clustering.core.engine.executor import IN_PROCESS
from raster_clustering.core.errors import CancelledError
from raster_clustering.core.io.rasters import RasterFile, Window
from raster_clustering.core.progress import Progress


def square(shared, block):
    return shared * block * block


def test_results_come_in_block_order_with_progress_after_each_block():
    reports = []
    results = list(InProcessExecutor().map_blocks(square, 2, [3, 1, 2],
                                                  steps=Progress(reports.append)))
    assert results == [18, 2, 8]
    assert reports == pytest.approx([1 / 3, 2 / 3, 1.0])


def test_cancellation_is_checked_before_each_block_and_stops_at_once():
    ran = []

    def job(_, block):
        ran.append(block)
        return block

    cancelled = threading.Event()
    results = InProcessExecutor().map_blocks(job, None, [1, 2, 3],
                                             steps=Progress(is_cancelled=cancelled.is_set))
    assert next(results) == 1
    cancelled.set()
    with pytest.raises(CancelledError):
        next(results)
    assert ran == [1], "no block starts once cancelled"


def test_jobs_run_only_as_their_results_are_asked_for():
    ran = []
    results = InProcessExecutor().map_blocks(lambda _, block: ran.append(block), None, [1, 2])
    assert ran == []
    next(results)
    assert ran == [1]


class Recording(InProcessExecutor):
    name = "recording"

    def __init__(self):
        self.jobs, self.released = [], []

    def map_blocks(self, job, shared, blocks, *, steps=None):
        self.jobs.append(job.__name__)
        return super().map_blocks(job, shared, blocks, steps=steps)

    def release(self, scope):
        self.released.append(scope)
        super().release(scope)


def test_the_executor_is_chosen_in_one_place_and_released_with_the_run():
    recording = Recording()
    assert current_executor() is IN_PROCESS
    with use_executor(recording):
        assert current_executor() is recording
        with run_scope() as scope:
            list(current_executor().map_blocks(square, 1, [1]))
        assert recording.released == [scope]
    assert current_executor() is IN_PROCESS
    assert recording.jobs == ["square"]


def test_another_thread_keeps_the_default(tmp_path):
    seen = []
    with use_executor(Recording()):
        thread = threading.Thread(target=lambda: seen.append(current_executor()))
        thread.start()
        thread.join()
    assert seen == [IN_PROCESS]


def test_what_jobs_open_is_opened_once_per_scope_and_thread_and_released(make_raster):
    path = str(make_raster("a.tif", np.arange(12, dtype=np.uint8).reshape(3, 4)))
    with run_scope() as scope:
        first = opened(RasterFile(path, scope))
        assert opened(RasterFile(path, scope)) is first
        elsewhere = []
        thread = threading.Thread(
            target=lambda: elsewhere.append(opened(RasterFile(path, scope))))
        thread.start()
        thread.join()
        assert elsewhere[0] is not first, "GDAL datasets are not shared between threads"
        assert cache.opened_count(scope) == 2
    assert cache.opened_count(scope) == 0


def test_a_new_scope_opens_a_rewritten_file_again(make_raster):
    path = make_raster("a.tif", np.zeros((2, 2), dtype=np.uint8))
    window = Window(0, 0, 2, 2)
    with run_scope() as scope:
        assert opened(RasterFile(str(path), scope)).read(window).max() == 0
        make_raster("a.tif", np.full((2, 2), 7, dtype=np.uint8))
        with run_scope() as next_run:
            assert opened(RasterFile(str(path), next_run)).read(window).max() == 7
