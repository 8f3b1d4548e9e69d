"""Read MTL metadata files (ODL text, XML, JSON) into a tree that keeps every key in its group,
the same from all three formats; also the small-text-file reading other metadata readers share."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

from ..errors import MetadataError

# A metadata file is a few tens of kilobytes; anything this large is a raster or garbage.
MAX_METADATA_BYTES = 16 * 1024 * 1024
# Real files nest three groups deep; a limit keeps hostile input from exhausting the stack.
MAX_GROUP_DEPTH = 32
ROOT_GROUP_NAMES = ("LANDSAT_METADATA_FILE", "L1_METADATA_FILE")

_TEXT_LINE = re.compile(r"^([A-Za-z0-9_]+)\s*=\s*(.*)$")


class MetadataTree:
    """One group of a parsed metadata file: its values (raw strings, quotes removed) and its
    sub-groups, both in file order. The same structure comes from text, XML and JSON files."""

    def __init__(self, name: str, *, source: str, parent_path: tuple[str, ...] = ()):
        self.name = name
        self.source = source
        self.path = parent_path + (name,) if name else parent_path
        self._values: dict[str, str] = {}
        self._groups: dict[str, MetadataTree] = {}

    def _add_value(self, key: str, value: str) -> None:
        # The first occurrence wins, as a reader scanning the file top-down would see it.
        self._values.setdefault(key, value)

    def _add_group(self, name: str) -> MetadataTree:
        if len(self.path) >= MAX_GROUP_DEPTH:
            raise MetadataError(
                f"{self.source}: groups are nested more than {MAX_GROUP_DEPTH} deep, which no "
                "Landsat metadata file does. Check that the right file was given."
            )
        if name not in self._groups:
            self._groups[name] = MetadataTree(name, source=self.source, parent_path=self.path)
        return self._groups[name]

    @property
    def values(self) -> Mapping[str, str]:
        """The key/value pairs directly inside this group (read-only)."""
        return MappingProxyType(self._values)

    @property
    def groups(self) -> Mapping[str, MetadataTree]:
        """The sub-groups directly inside this group, by name (read-only)."""
        return MappingProxyType(self._groups)

    @property
    def location(self) -> str:
        """Where this group is, for messages: 'file, group A/B'."""
        return f"{self.source}, group {'/'.join(self.path) or '(top level)'}"

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __getitem__(self, key: str) -> str:
        """The raw value of `key` in this group.

        Raises:
            MetadataError: the key is absent (not KeyError: the message names file and group).
        """
        if key not in self._values:
            raise MetadataError(
                f"{self.location} has no key {key}. Use the complete metadata file that came "
                "with the scene."
            )
        return self._values[key]

    def get(self, key: str, default: str | None = None) -> str | None:
        """The raw value of `key` in this group, or `default`."""
        return self._values.get(key, default)

    def number(self, key: str) -> float:
        """The value of `key` in this group as a finite float.

        Raises:
            MetadataError: the key is absent or its value is not a finite number.
        """
        return parse_number(self[key], where=f"{key} in {self.location}")

    def find_group(self, name: str) -> MetadataTree | None:
        """This group if it has `name`, else the nearest sub-group of that name (breadth-first),
        else None."""
        queue: deque[MetadataTree] = deque([self])
        while queue:
            group = queue.popleft()
            if group.name == name:
                return group
            queue.extend(group._groups.values())
        return None

    def group(self, name: str) -> MetadataTree:
        """Like `find_group`, but a missing group is an error.

        Raises:
            MetadataError: no group of that name.
        """
        found = self.find_group(name)
        if found is None:
            raise MetadataError(
                f"{self.source} has no group {name}. Use the complete metadata file that came "
                "with the scene."
            )
        return found

    def walk(self) -> Iterator[tuple[tuple[str, ...], str, str]]:
        """Every value of this group and its sub-groups as (group path, key, raw value), in file
        order, depth-first."""
        stack = [self]
        while stack:
            group = stack.pop()
            for key, value in group._values.items():
                yield group.path, key, value
            stack.extend(reversed(list(group._groups.values())))


def parse_number(text: str, *, where: str) -> float:
    """`text` as a finite float; `where` names the key and file for the error message.

    Raises:
        MetadataError: not a finite number.
    """
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise MetadataError(
            f"{where} is {text!r}, not a number. The metadata file is damaged: download it again."
        )
    return value


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def parse_mtl_text(text: str, *, source: str = "<text>") -> MetadataTree:
    """Parse ODL-style MTL text (`GROUP = …`, `KEY = value`, `END_GROUP = …`, `END`).

    NUL padding and a byte-order mark are ignored; anything after the outermost group closes is
    ignored. Keys and group names are upper-cased.

    Args:
        text: the decoded file content.
        source: the file name used in error messages.

    Returns:
        The outermost group (normally L1_METADATA_FILE or LANDSAT_METADATA_FILE).

    Raises:
        MetadataError: the text is not MTL, or is truncated (a group is never closed).
    """
    document = MetadataTree("", source=source)
    stack = [document]
    open_lines: list[int] = []
    pending: tuple[str, list[str]] | None = None  # an ODL array "( …" spread over several lines
    lines = text.replace("\x00", "").lstrip("\ufeff").splitlines()
    for line_number, raw_line in enumerate(lines, start=1):
        line = raw_line.strip()
        if pending is not None:
            pending[1].append(line)
            if ")" in line:
                stack[-1]._add_value(pending[0], " ".join(pending[1]))
                pending = None
            continue
        if not line:
            continue
        if line.upper() == "END":
            break
        match = _TEXT_LINE.match(line)
        if match is None:
            raise MetadataError(
                f"{source}, line {line_number}: expected 'KEY = value' but found "
                f"{line[:60]!r}. This is not a Landsat MTL text file, or it is damaged: use the "
                "_MTL.txt/.xml/.json file that came with the scene."
            )
        key, value = match.group(1).upper(), match.group(2).strip()
        if key == "GROUP":
            stack.append(stack[-1]._add_group(_unquote(value).upper()))
            open_lines.append(line_number)
        elif key == "END_GROUP":
            name = _unquote(value).upper()
            if len(stack) == 1 or (name and name != stack[-1].name):
                raise MetadataError(
                    f"{source}, line {line_number}: END_GROUP = {name} does not close the open "
                    f"group ({stack[-1].name or 'none'}). The file is damaged: download it again."
                )
            stack.pop()
            open_lines.pop()
            if len(stack) == 1:
                break
        elif len(stack) == 1:
            raise MetadataError(
                f"{source}, line {line_number}: {key} stands outside any GROUP. This is not a "
                "Landsat MTL text file: use the _MTL.txt/.xml/.json file that came with the scene."
            )
        elif value.startswith("(") and ")" not in value:
            pending = (key, [value])
        else:
            stack[-1]._add_value(key, _unquote(value))
    if len(stack) > 1:
        raise MetadataError(
            f"{source} ends inside GROUP = {stack[-1].name} (opened on line {open_lines[-1]}): "
            "the file is truncated. Download the metadata file again."
        )
    if not document.groups:
        raise MetadataError(
            f"{source} contains no GROUP: it is not a Landsat MTL file. Use the "
            "_MTL.txt/.xml/.json file that came with the scene."
        )
    return next(iter(document.groups.values()))


def parse_xml(text: str, *, source: str,
              fix: str = "Download the metadata file again.") -> ElementTree.Element:
    """The root element of a metadata file's XML text.

    Raises:
        MetadataError: not well-formed XML (a truncated or damaged file); names `source` and
            says `fix`.
    """
    try:
        return ElementTree.fromstring(text)
    except (ElementTree.ParseError, ValueError) as exc:
        raise MetadataError(
            f"{source} is not well-formed XML ({exc}): the file is truncated or damaged. {fix}"
        ) from None


def _tree_from_xml(text: str, *, source: str) -> MetadataTree:
    root = parse_xml(text, source=source)
    tree = MetadataTree(_local_name(root.tag).upper(), source=source)
    stack = [(root, tree)]
    while stack:
        element, group = stack.pop()
        for child in element:
            if not isinstance(child.tag, str):
                continue  # comments and processing instructions
            name = _local_name(child.tag).upper()
            if len(child):
                stack.append((child, group._add_group(name)))
            else:
                group._add_value(name, (child.text or "").strip())
    return tree


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _json_scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (int, float, str)):
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(value)


def _tree_from_json(text: str, *, source: str) -> MetadataTree:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MetadataError(
            f"{source} is not valid JSON ({str(exc)[:80]}): the file is truncated or damaged. "
            "Download the metadata file again."
        ) from None
    if not isinstance(document, dict):
        document = {}
    roots = [key for key, value in document.items() if isinstance(value, dict)]
    preferred = [key for key in roots if key.upper() in ROOT_GROUP_NAMES]
    if not roots or (len(roots) > 1 and len(preferred) != 1):
        raise MetadataError(
            f"{source} is JSON but not a Landsat metadata file (expected one object such as "
            '{"LANDSAT_METADATA_FILE": {…}}). Use the _MTL file that came with the scene.'
        )
    root_key = preferred[0] if preferred else roots[0]
    tree = MetadataTree(root_key.upper(), source=source)
    stack = [(document[root_key], tree)]
    while stack:
        mapping, group = stack.pop()
        for key, value in mapping.items():
            if isinstance(value, dict):
                stack.append((value, group._add_group(str(key).upper())))
            else:
                group._add_value(str(key).upper(), _json_scalar(value))
    return tree


def read_text_file(path: Path) -> str:
    """The content of a small metadata file as text: UTF-8, else latin-1; NULs removed.

    Raises:
        MetadataError: unreadable, empty or too large to be metadata.
    """
    try:
        size = path.stat().st_size
        if size > MAX_METADATA_BYTES:
            raise MetadataError(
                f"{path} is {size} bytes, far too large for a metadata file. Give the scene's "
                "_MTL.txt/.xml/.json (Landsat) or MTD_MSIL1C/MTD_MSIL2A.xml (Sentinel-2)."
            )
        data = path.read_bytes()
    except OSError as exc:
        raise MetadataError(
            f"Cannot read metadata file {path}: {exc.strerror or exc}. Check the path and "
            "permissions."
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # Old USGS files carry latin-1 bytes in free-text fields; latin-1 decodes any byte.
        text = data.decode("latin-1")
    text = text.replace("\x00", "").lstrip("\ufeff")
    if not text.strip():
        raise MetadataError(f"{path} is empty. Download the metadata file again.")
    return text


def read_metadata_tree(path: str | Path) -> MetadataTree:
    """Parse a Landsat metadata file of any format into its outermost group.

    The format is decided from the content, not the extension: '<' starts XML, '{' JSON,
    anything else MTL text.

    Args:
        path: the _MTL.txt, _MTL.xml or _MTL.json file.

    Returns:
        The outermost group, with values as raw strings.

    Raises:
        MetadataError: unreadable, truncated or not metadata.
    """
    path = Path(path)
    text = read_text_file(path)
    start = text.lstrip()[:1]
    if start == "<":
        return _tree_from_xml(text, source=str(path))
    if start in ("{", "["):
        return _tree_from_json(text, source=str(path))
    return parse_mtl_text(text, source=str(path))
