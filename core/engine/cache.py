"""What block jobs open (datasets, areas, readers), kept per process and thread by descriptor, so
that the jobs of one run open each raster once wherever they run.

A descriptor is a frozen, hashable, picklable dataclass with a `scope` (one per run, from
`new_scope`) and an `open()` method. The scope keeps runs apart: a file rewritten between two
runs is opened again. GDAL datasets are not shared between threads, so each thread has its own.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Hashable
from typing import Protocol, TypeVar

#: Objects kept at most; the least recently used beyond that are closed (dropped).
MAX_OPENED = 64

Opened = TypeVar("Opened", covariant=True)


class Descriptor(Protocol[Opened]):
    """What a job opens: hashable, picklable, and the same in every process."""

    scope: str

    def open(self) -> Opened:
        """Open it (raises the core's errors when it cannot)."""


_lock = threading.Lock()
_opened: OrderedDict[tuple[Hashable, int], object] = OrderedDict()


def new_scope() -> str:
    """A scope for the descriptors of one run."""
    return uuid.uuid4().hex


def opened(descriptor: Descriptor[Opened]) -> Opened:
    """The object `descriptor.open()` gives, opened once per process and thread."""
    key = (descriptor, threading.get_ident())
    with _lock:
        if key in _opened:
            _opened.move_to_end(key)
            return _opened[key]
    value = descriptor.open()
    with _lock:
        _opened[key] = value
        while len(_opened) > MAX_OPENED:
            _opened.popitem(last=False)
    return value


def release(scope: str) -> None:
    """Drop (and so close) everything opened for descriptors of `scope`, in every thread."""
    with _lock:
        for key in [key for key in _opened if key[0].scope == scope]:
            del _opened[key]


def opened_count(scope: str) -> int:
    """How many objects are kept for descriptors of `scope`, in every thread."""
    with _lock:
        return sum(1 for descriptor, _ in _opened if descriptor.scope == scope)
