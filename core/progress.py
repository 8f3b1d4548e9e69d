"""Progress reporting and cancellation, passed across the core boundary as two plain callables."""

from __future__ import annotations

from collections.abc import Callable

from .errors import CancelledError

ProgressCallback = Callable[[float], None]
CancelCheck = Callable[[], bool]


class Progress:
    """Maps the fraction of one step onto its span of the whole run, and checks cancellation.

    Args:
        progress: receives the overall fraction 0..1, or None.
        is_cancelled: returns True once the user cancelled, or None.
        start, end: the span of the whole run this object reports into.
    """

    def __init__(self, progress: ProgressCallback | None = None,
                 is_cancelled: CancelCheck | None = None, *, start: float = 0.0, end: float = 1.0):
        self._progress = progress
        self._is_cancelled = is_cancelled
        self.start, self.end = start, end

    def __call__(self, fraction: float) -> None:
        self.check()
        if self._progress is not None:
            self._progress(self.start + (self.end - self.start) * min(max(fraction, 0.0), 1.0))

    def cancelled(self) -> bool:
        return bool(self._is_cancelled and self._is_cancelled())

    def check(self) -> None:
        """Raise CancelledError when the user cancelled."""
        if self.cancelled():
            raise CancelledError("Cancelled by the user; no output was written.")

    def span(self, start: float, end: float) -> Progress:
        """A Progress for a sub-step covering [start, end] of this one."""
        width = self.end - self.start
        return Progress(self._progress, self._is_cancelled, start=self.start + width * start,
                        end=self.start + width * end)
