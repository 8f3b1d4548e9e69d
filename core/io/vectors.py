"""Vector outputs: the formats the plugin writes, and writing them safely (all or nothing)."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InvalidInputError
from .rasters import check_output_folder, temporary_path_for

#: Extension (lower case) → OGR driver of the vector files the plugin writes.
VECTOR_DRIVERS = {".gpkg": "GPKG", ".shp": "ESRI Shapefile", ".geojson": "GeoJSON",
                  ".json": "GeoJSON"}
# Files a format keeps beside the main one, replaced or removed with it.
_SIDECARS = {"ESRI Shapefile": (".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".qpj"),
             "GPKG": ("-wal", "-shm"), "GeoJSON": ()}


def vector_driver(path: str | os.PathLike) -> str:
    """The OGR driver for an output path, by its extension.

    Raises:
        InvalidInputError: an extension the plugin does not write.
    """
    extension = Path(path).suffix.lower()
    if extension not in VECTOR_DRIVERS:
        raise InvalidInputError(
            f"The output '{Path(path).name}' must be a GeoPackage (.gpkg), a Shapefile (.shp) "
            "or a GeoJSON file (.geojson); choose one of these extensions.")
    return VECTOR_DRIVERS[extension]


def _files_of(path: Path, driver: str) -> list[Path]:
    """The main file and the sidecars of a vector file at `path` that exist."""
    if driver == "ESRI Shapefile":
        stem = os.path.splitext(str(path))[0]
        names = [stem + suffix for suffix in (path.suffix, *_SIDECARS[driver])]
    else:
        names = [str(path)] + [str(path) + suffix for suffix in _SIDECARS[driver]]
    return [Path(name) for name in names if os.path.exists(name)]


@contextmanager
def atomic_vector_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; move it (with its sidecars, e.g. a
    Shapefile's .dbf) to `path` only on success, replacing what was there.

    On any exception, cancellation included, the temporary files are removed and `path` is left
    as it was.

    Raises:
        InvalidInputError: an unsupported extension, or the folder is missing or read-only.
    """
    final = Path(path)
    driver = vector_driver(final)
    check_output_folder(final)
    temporary = temporary_path_for(final)
    try:
        yield temporary
    except BaseException:
        for name in glob.glob(glob.escape(os.path.splitext(str(temporary))[0]) + ".*"):
            os.remove(name)
        raise
    for stale in _files_of(final, driver):
        os.remove(stale)
    for written in _files_of(temporary, driver):
        suffix = str(written)[len(os.path.splitext(str(temporary))[0]):]
        os.replace(written, os.path.splitext(str(final))[0] + suffix)
