"""The valid values of one feature inside an area, read by block jobs: the exact 1-D fit's
`ValueSource` (each of its passes is one job per block, reduced where the job runs)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine import current_executor, opened
from ..io.feature_stack import AreaBlocks
from ..io.rasters import Window
from ..progress import Progress

#: Values of the area kept in memory between passes, at most (16 MB of float32): passes over
#: a small area then read the raster once.
MEMO_VALUES = 1 << 22


@dataclass(frozen=True)
class AreaValues:
    """The first feature's valid values in the area, clipped to `clip` when given.

    Attributes:
        blocks: the stack and area.
        clip: (low, high) the values are clipped to, or None.
        memo_values: the values kept in memory between passes, at most (per process).
    """

    blocks: AreaBlocks
    clip: tuple[float, float] | None = None
    memo_values: int = MEMO_VALUES

    @property
    def scope(self) -> str:
        return self.blocks.stack.scope

    def open(self) -> _AreaValuesReader:
        return _AreaValuesReader(self)


class _AreaValuesReader:
    """Reads the values of a block; keeps them while all the blocks read fit `memo_values`."""

    def __init__(self, spec: AreaValues):
        self._spec = spec
        self._memo: dict[Window, np.ndarray] | None = {}
        self._held = 0

    def values(self, window: Window) -> np.ndarray:
        """1-D array (float32, or float64 when an input needs it) of the window's values; the
        caller must not modify it."""
        if self._memo is not None and window in self._memo:
            return self._memo[window]
        features, valid = self._spec.blocks.read(window)
        values = features[0][valid]
        if self._spec.clip is not None:
            np.clip(values, *self._spec.clip, out=values)
        if self._memo is not None:
            self._held += values.size
            if self._held <= self._spec.memo_values:
                self._memo[window] = values
            else:
                self._memo = None
        return values


def reduce_area_values(shared: tuple[AreaValues, Callable[[np.ndarray], Any]],
                       window: Window) -> Any:
    """Block job: the 1-D fit's reduction of the window's values, None when it has none."""
    spec, reduce_block = shared
    values = opened(spec).values(window)
    return reduce_block(values) if values.size else None


class AreaValueSource:
    """The fit's passes as block jobs on the current executor, each pass reporting its blocks
    in its share of `steps` (the number of passes is not known beforehand: the passes beyond
    `planned_passes` share the last one)."""

    def __init__(self, spec: AreaValues, windows: Sequence[Window], steps: Progress, *,
                 planned_passes: int):
        self._spec = spec
        self._windows = list(windows)
        self._steps = steps
        self._planned = planned_passes
        self._passes = 0

    def map(self, reduce_block: Callable[[np.ndarray], Any]) -> Iterator[Any]:
        done = min(self._passes, self._planned - 1)
        self._passes += 1
        steps = self._steps.span(done / self._planned, (done + 1) / self._planned)
        for result in current_executor().map_blocks(reduce_area_values, (self._spec, reduce_block),
                                                    self._windows, steps=steps):
            if result is not None:
                yield result

    def check_cancelled(self) -> None:
        self._steps.check()

    def finish(self) -> None:
        self._steps(1.0)
