"""The plugin code block jobs need on other machines: its files, their fingerprint, and the zip a
distributed executor uploads to workers that do not have it.

What travels is the package's `__init__.py`, `metadata.txt` (the version) and `core/` (the only
code jobs import; it never imports QGIS). The fingerprint of the code this process runs is taken
when this module is first imported, so a process that imported one version and was later offered
another (a worker that stays up between two clients) still reports the one it runs.
"""

from __future__ import annotations

import configparser
import hashlib
import importlib.resources
import io
import zipfile
from importlib.abc import Traversable

#: The plugin's package, as this process imported it (QGIS installs it as `raster_clustering`).
PACKAGE = __name__.split(".")[0]


def code_files(root: Traversable) -> list[tuple[str, bytes]]:
    """(path relative to the package, content) of each file jobs need, sorted by path.

    Args:
        root: the package's folder, on disk or inside a zip.
    """
    files = [(name, (root / name).read_bytes()) for name in ("__init__.py", "metadata.txt")
             if (root / name).is_file()]

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir() and entry.name != "__pycache__":
                walk(entry, f"{prefix}{entry.name}/")
            elif entry.name.endswith(".py"):
                files.append((f"{prefix}{entry.name}", entry.read_bytes()))

    walk(root / "core", "core/")
    return sorted(files)


def fingerprint(files: list[tuple[str, bytes]]) -> str:
    """A SHA-256 of the files' paths and contents: equal only for the same code."""
    digest = hashlib.sha256()
    for name, content in files:
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    return digest.hexdigest()


def version_of(files: list[tuple[str, bytes]]) -> str:
    """The plugin version metadata.txt states, or "unknown"."""
    metadata = configparser.ConfigParser(interpolation=None)
    metadata.read_string(dict(files).get("metadata.txt", b"").decode("utf-8", "replace"))
    return metadata.get("general", "version", fallback="unknown")


def package_archive(files: list[tuple[str, bytes]]) -> bytes:
    """A zip of `files` under the package's folder name, importable from `sys.path`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files:
            # A fixed date: the same code gives the same zip.
            archive.writestr(zipfile.ZipInfo(f"{PACKAGE}/{name}", (1980, 1, 1, 0, 0, 0)), content)
    return buffer.getvalue()


def installed_files() -> list[tuple[str, bytes]]:
    """The package's files as they are now where this module was imported from (not where the
    package would be found now: a worker may have been offered another copy since)."""
    return code_files(importlib.resources.files(__package__).parent.parent)


_LOADED = installed_files()
#: The fingerprint and version of the code this process imported.
LOADED_FINGERPRINT = fingerprint(_LOADED)
LOADED_VERSION = version_of(_LOADED)
del _LOADED


def loaded_code() -> tuple[str, str]:
    """(version, fingerprint) of the plugin code this process runs: what a worker reports."""
    return LOADED_VERSION, LOADED_FINGERPRINT
