"""Read Sentinel-2 product metadata (MTD_MSIL1C.xml, MTD_MSIL2A.xml): quantification value,
per-band radiometric offsets and special DN values, and find it above a band file in a SAFE tree."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import MappingProxyType

from ..errors import InvalidInputError, MetadataError
from .mtl import parse_number, parse_xml, read_text_file

# band_id in the metadata is the index in this tuple (0–12).
SENTINEL2_BANDS = (
    "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12",
)
METADATA_FILE_NAMES = ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml")
# Band file in GRANULE/<granule>/IMG_DATA/R10m/ → product root is four folders up.
MAX_LEVELS_UP = 5

_BAND_IN_FILE_NAME = re.compile(r"_B(?P<band>8A|0?[1-9]|1[0-2])(?:_\d{2}m)?$", re.IGNORECASE)
_BAND_ARGUMENT = re.compile(r"^B?(?P<band>8A|0?[1-9]|1[0-2])$", re.IGNORECASE)
# Compact naming (2016 on): T33XWJ_20220413T150759_B8A_20m
_TILE_AND_SENSING_TIME = re.compile(r"^(T\d{2}[A-Z]{3})_(\d{8}T\d{6})_", re.IGNORECASE)
_AUXILIARY_LAYERS = (
    (re.compile(r"(^|_)SCL(_\d{2}m)?$", re.I), "the scene classification (SCL)"),
    (re.compile(r"(^|_)AOT(_\d{2}m)?$", re.I), "aerosol optical thickness (AOT)"),
    (re.compile(r"(^|_)WVP(_\d{2}m)?$", re.I), "water vapour (WVP)"),
    (re.compile(r"(^|_)TCI(_\d{2}m)?$", re.I), "the true-colour image (TCI)"),
    (re.compile(r"(^|_)(CLD|SNW|CLDPRB|SNWPRB)(_\d{2}m)?$", re.I), "a cloud/snow probability"),
    (re.compile(r"(^|_)PVI$", re.I), "the preview image (PVI)"),
    (re.compile(r"^MSK_", re.I), "a quality mask (MSK_)"),
)


def auxiliary_layer_kind(file_name: str) -> str | None:
    """What a Sentinel-2 non-reflectance file is ('the scene classification (SCL)'), judged from
    its name, or None for anything else."""
    stem = Path(file_name).stem
    for pattern, kind in _AUXILIARY_LAYERS:
        if pattern.search(stem):
            return kind
    return None


def _canonical_band(code: str) -> str:
    code = code.upper()
    return "B8A" if code == "8A" else f"B{int(code)}"


def sentinel2_band_from_file_name(file_name: str) -> str | None:
    """The band of a Sentinel-2 image file ('T33XWJ_20220413T150759_B8A_20m.jp2' → 'B8A',
    '…_B04.jp2' → 'B4'), or None when the name has no band code."""
    match = _BAND_IN_FILE_NAME.search(Path(file_name).stem)
    return _canonical_band(match["band"]) if match else None


def parse_sentinel2_band(band: int | str) -> str:
    """A band given by a user (4, '4', 'B04', 'B8A', '8a') as 'B4' / 'B8A'.

    Raises:
        InvalidInputError: not a Sentinel-2 band.
    """
    match = _BAND_ARGUMENT.match(str(band).strip())
    if match is None:
        raise InvalidInputError(
            f"{band!r} is not a Sentinel-2 band: use one of {', '.join(SENTINEL2_BANDS)}."
        )
    return _canonical_band(match["band"])


@dataclass(frozen=True)
class Sentinel2Metadata:
    """A parsed Sentinel-2 product metadata file.

    reflectance = (DN + offsets[band]) / quantification. offsets holds every band of the file's
    offset list (RADIO_ADD_OFFSET / BOA_ADD_OFFSET, processing baseline 04.00 on), or 0 for every
    band when the file has no list. image_bands are the bands with an IMAGE_FILE entry.
    """

    path: Path
    level: str
    spacecraft: str
    product_uri: str
    processing_baseline: str
    sensing_date: date | None
    quantification: float
    offsets: Mapping[str, float]
    offsets_in_metadata: bool
    image_files: tuple[str, ...]
    image_bands: frozenset[str]
    nodata_dn: int
    saturated_dn: int

    def offset_for(self, band: str) -> float:
        """The additive DN offset of `band` ('B4').

        Raises:
            MetadataError: the file has an offset list without this band.
        """
        if band not in self.offsets:
            raise MetadataError(
                f"{self.path} lists radiometric offsets but none for {band} (band_id "
                f"{SENTINEL2_BANDS.index(band)}). Use the complete metadata file of the product."
            )
        return self.offsets[band]

    def check_band_file(self, band_path: str | Path) -> None:
        """Refuse a band file named for another tile or sensing time than this product. Names
        without the compact T<tile>_<time>_ prefix pass.

        Raises:
            MetadataError: the band belongs to another product.
        """
        name = Path(band_path).name
        match = _TILE_AND_SENSING_TIME.match(name)
        if match is None:
            return
        tile, sensing_time = match.group(1).upper(), match.group(2).upper()
        prefix = f"{tile}_{sensing_time}_"
        if any(Path(file).name.upper().startswith(prefix) for file in self.image_files):
            return
        if not self.image_files and tile in self.product_uri.upper() and (
            sensing_time in self.product_uri.upper()
        ):
            return
        raise MetadataError(
            f"{name} is tile {tile} sensed {sensing_time}, but {self.path.name} describes "
            f"{self.product_uri or 'another product'}. Use the MTD_MSIL1C/MTD_MSIL2A.xml of the "
            "band's own product."
        )


def _local_name(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _first_text(root: ElementTree.Element, *names: str) -> str | None:
    for name in names:
        for element in root.iter():
            if _local_name(element.tag) == name and element.text and element.text.strip():
                return element.text.strip()
    return None


def _offsets(root: ElementTree.Element, path: Path) -> dict[str, float]:
    offsets: dict[str, float] = {}
    for element in root.iter():
        if _local_name(element.tag) not in ("RADIO_ADD_OFFSET", "BOA_ADD_OFFSET"):
            continue
        band_id = element.get("band_id", element.get("bandId", ""))
        where = f"{_local_name(element.tag)} band_id={band_id!r} in {path}"
        # ASCII digits only: str.isdigit() accepts '²', which int() refuses.
        if not re.fullmatch(r"[0-9]{1,2}", band_id) or int(band_id) >= len(SENTINEL2_BANDS):
            raise MetadataError(
                f"{where}: band_id must be 0–12. The metadata file is damaged: download it again."
            )
        offsets[SENTINEL2_BANDS[int(band_id)]] = parse_number(element.text or "", where=where)
    return offsets


def _special_values(root: ElementTree.Element) -> dict[str, int]:
    values = {}
    for element in root.iter():
        if _local_name(element.tag) != "Special_Values":
            continue
        text = _first_text(element, "SPECIAL_VALUE_TEXT")
        index = _first_text(element, "SPECIAL_VALUE_INDEX")
        if text and index and re.fullmatch(r"-?[0-9]{1,9}", index):
            values[text.upper()] = int(index)
    return values


def _level(root_name: str, product_type: str, path: Path) -> str:
    if "LEVEL-1C" in root_name.upper() or product_type.upper().endswith("1C"):
        return "L1C"
    if "LEVEL-2A" in root_name.upper() or "2A" in product_type.upper():
        return "L2A"
    raise MetadataError(
        f"{path} is neither a Level-1C nor a Level-2A product (root element {root_name!r}, "
        f"PRODUCT_TYPE {product_type!r}). Give the product's MTD_MSIL1C.xml or MTD_MSIL2A.xml."
    )


def read_sentinel2_metadata(path: str | Path) -> Sentinel2Metadata:
    """Read MTD_MSIL1C.xml or MTD_MSIL2A.xml.

    The quantification value comes from QUANTIFICATION_VALUE (L1C), BOA_QUANTIFICATION_VALUE
    (L2A) or L2A_BOA_QUANTIFICATION_VALUE (older L2A); offsets from RADIO_ADD_OFFSET (L1C) or
    BOA_ADD_OFFSET (L2A) by band_id, 0 when the file has none (before baseline 04.00). What the
    file says decides, never the date.

    Args:
        path: the product metadata file.

    Returns:
        The parsed metadata.

    Raises:
        MetadataError: unreadable, not well-formed, not a Sentinel-2 product file, or the
            quantification value is missing or not positive.
    """
    path = Path(path)
    text = read_text_file(path)
    root = parse_xml(text, source=str(path), fix="Download the product metadata again.")
    root_name = _local_name(root.tag)
    if not root_name.endswith("User_Product"):
        raise MetadataError(
            f"{path} has root element {root_name!r}, not a Sentinel-2 Level-1C/2A User_Product: "
            "give the MTD_MSIL1C.xml or MTD_MSIL2A.xml at the top of the .SAFE folder."
        )
    product_type = _first_text(root, "PRODUCT_TYPE") or ""
    level = _level(root_name, product_type, path)
    quantification_keys = (
        ("QUANTIFICATION_VALUE",)
        if level == "L1C"
        else ("BOA_QUANTIFICATION_VALUE", "L2A_BOA_QUANTIFICATION_VALUE")
    )
    raw_quantification = _first_text(root, *quantification_keys)
    if raw_quantification is None:
        raise MetadataError(
            f"{path} has no {' or '.join(quantification_keys)}. Use the complete product "
            "metadata file."
        )
    quantification = parse_number(
        raw_quantification, where=f"{quantification_keys[0]} in {path}"
    )
    if quantification <= 0:
        raise MetadataError(
            f"{quantification_keys[0]} is {raw_quantification} in {path}; it must be positive. "
            "The metadata file is damaged: download it again."
        )
    offsets = _offsets(root, path)
    offsets_in_metadata = bool(offsets)
    if not offsets_in_metadata:
        offsets = {band: 0.0 for band in SENTINEL2_BANDS}
    image_files = tuple(
        element.text.strip()
        for element in root.iter()
        if _local_name(element.tag) == "IMAGE_FILE" and element.text and element.text.strip()
    )
    image_bands = frozenset(
        band for band in map(sentinel2_band_from_file_name, image_files) if band is not None
    )
    start_time = _first_text(root, "PRODUCT_START_TIME", "DATATAKE_SENSING_START") or ""
    try:
        sensing_date: date | None = date.fromisoformat(start_time[:10])
    except ValueError:
        sensing_date = None
    special = _special_values(root)
    return Sentinel2Metadata(
        path=path,
        level=level,
        spacecraft=_first_text(root, "SPACECRAFT_NAME") or "",
        product_uri=_first_text(root, "PRODUCT_URI") or "",
        processing_baseline=_first_text(root, "PROCESSING_BASELINE") or "",
        sensing_date=sensing_date,
        quantification=quantification,
        offsets=MappingProxyType(offsets),
        offsets_in_metadata=offsets_in_metadata,
        image_files=image_files,
        image_bands=image_bands,
        nodata_dn=special.get("NODATA", 0),
        saturated_dn=special.get("SATURATED", 65535),
    )


def looks_like_sentinel2(band_path: str | Path) -> bool:
    """Whether a file's name or folders look like a Sentinel-2 product (compact tile/time name,
    S2x_ prefix, or inside GRANULE/IMG_DATA or a .SAFE folder)."""
    band_path = Path(band_path)
    if _TILE_AND_SENSING_TIME.match(band_path.name) or re.match(r"^S2[A-D]_", band_path.name, re.I):
        return True
    return any(
        part.upper() in ("GRANULE", "IMG_DATA") or part.upper().endswith(".SAFE")
        for part in band_path.parent.parts
    )


def _candidates(folder: Path, band_path: Path) -> list[Path]:
    exact = [folder / name for name in METADATA_FILE_NAMES if (folder / name).is_file()]
    if exact:
        return exact
    try:
        entries = sorted(entry for entry in folder.iterdir() if entry.is_file())
    except OSError:
        return []
    # Renamed copies (…_MTD_MSIL2A.xml) and the pre-2016 S2A_OPER_MTD_SAFL1C_….xml naming.
    renamed = [
        entry for entry in entries
        if re.search(r"MTD_(MSIL1C|MSIL2A|SAFL1C|SAFL2A).*\.xml$", entry.name, re.IGNORECASE)
    ]
    match = _TILE_AND_SENSING_TIME.match(band_path.name)
    if len(renamed) > 1 and match:
        tile, day = match.group(1).upper(), match.group(2)[:8]
        renamed = [entry for entry in renamed if tile in entry.name.upper() and day in entry.name]
    return renamed


def find_sentinel2_metadata(band_path: str | Path) -> Path:
    """The product metadata above a Sentinel-2 band file: walks up from the band's folder
    (GRANULE/<granule>/IMG_DATA[/R10m]/ → product root) looking for MTD_MSIL1C.xml or
    MTD_MSIL2A.xml (or a renamed copy naming the band's tile and date).

    Args:
        band_path: the band file (it need not exist).

    Returns:
        The metadata file.

    Raises:
        MetadataError: none found beside the band or, inside a SAFE tree, within five folders
            up; or several; the message lists where.
    """
    band_path = Path(band_path)
    folders = [band_path.parent, *band_path.parent.parents][:MAX_LEVELS_UP]
    if not any(part in ("GRANULE", "IMG_DATA") or part.endswith(".SAFE")
               for part in band_path.parent.parts):
        folders = folders[:1]  # outside a SAFE tree, an unrelated product's file may lie above
    for folder in folders:
        found = _candidates(folder, band_path)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise MetadataError(
                f"Several Sentinel-2 metadata files in {folder} could describe {band_path.name}: "
                f"{', '.join(entry.name for entry in found)}. Give the metadata file explicitly."
            )
    raise MetadataError(
        f"No Sentinel-2 metadata found for {band_path.name}: looked for "
        f"{' / '.join(METADATA_FILE_NAMES)} in {', '.join(str(f) for f in folders)}. Keep the "
        ".SAFE folder structure (band in GRANULE/*/IMG_DATA/) or give the metadata file explicitly."
    )
