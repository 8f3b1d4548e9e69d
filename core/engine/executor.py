"""Executors run block jobs and hand their results back in block order; the in-process one is the
default, another is chosen for a stretch of code with `use_executor`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol, TypeVar

from ..progress import Progress
from . import cache

Shared = TypeVar("Shared")
Block = TypeVar("Block")
Result = TypeVar("Result")


class Executor(Protocol):
    """Where block jobs run. Any executor gives the same results: it only decides where each
    `job(shared, block)` runs, never what it computes or the order results come back in."""

    name: str

    def describe(self) -> str:
        """Where the jobs run, for the run's log (engine, scheduler address, workers)."""

    def map_blocks(self, job: Callable[[Shared, Block], Result], shared: Shared,
                   blocks: Sequence[Block], *, steps: Progress | None = None) -> Iterator[Result]:
        """`job(shared, block)` for every block, the results yielded in the order of `blocks`.

        Args:
            job: a top-level (importable, picklable) function; it must not depend on which
                process runs it, nor on the other blocks.
            shared: the job's first argument, the same for every block (small, picklable).
            blocks: the job's second argument, one per job (windows, strips, (index, window)).
            steps: receives the fraction of blocks finished after each one, and its
                cancellation is checked before each block starts (CancelledError).
        """

    def release(self, scope: str) -> None:
        """Forget what the jobs of `scope` opened (datasets, cached blocks): a run is over."""


class InProcessExecutor:
    """Runs each job in this process, when the caller asks for its result: one block at a time,
    so memory holds one block's result beside what the caller keeps."""

    name = "in-process"

    def describe(self) -> str:
        return "in-process (block jobs run one after another in this process)"

    def map_blocks(self, job: Callable[[Shared, Block], Result], shared: Shared,
                   blocks: Sequence[Block], *, steps: Progress | None = None) -> Iterator[Result]:
        steps = steps or Progress()
        blocks = list(blocks)
        for index, block in enumerate(blocks):
            steps.check()
            yield job(shared, block)
            steps((index + 1) / len(blocks))

    def release(self, scope: str) -> None:
        cache.release(scope)


IN_PROCESS = InProcessExecutor()
_current: ContextVar[Executor | None] = ContextVar("raster_clustering_executor", default=None)


def current_executor() -> Executor:
    """The executor block jobs run on here: the in-process one unless `use_executor` says."""
    return _current.get() or IN_PROCESS


@contextmanager
def use_executor(executor: Executor) -> Iterator[Executor]:
    """Run the block jobs of the core's entry points called inside the block on `executor`."""
    token = _current.set(executor)
    try:
        yield executor
    finally:
        _current.reset(token)


@contextmanager
def run_scope() -> Iterator[str]:
    """A new scope for the descriptors of one run; when the run ends, what its jobs opened is
    released, in this process and wherever the executor ran them."""
    scope = cache.new_scope()
    try:
        yield scope
    finally:
        cache.release(scope)
        current_executor().release(scope)
