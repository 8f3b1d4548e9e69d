"""Landsat metadata (pre-collection, Collection 1 and 2): a scene's MTL file read as a tree
(`mtl`), its bands, and each band's calibration coefficients looked up in their own group."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import NamedTuple

from ..errors import InvalidInputError, MetadataError
from .mtl import ROOT_GROUP_NAMES, MetadataTree, parse_number, read_metadata_tree

METADATA_SUFFIXES = (".txt", ".xml", ".json")

# Groups holding each kind of coefficient, newest naming first. Keys are read only inside these:
# Collection 2 Level-2 files repeat REFLECTANCE_MULT_BAND_n with different meanings per group.
LEVEL1_RESCALING_GROUPS = ("LEVEL1_RADIOMETRIC_RESCALING", "RADIOMETRIC_RESCALING")
LEVEL1_RADIANCE_LIMIT_GROUPS = ("LEVEL1_MIN_MAX_RADIANCE", "MIN_MAX_RADIANCE")
LEVEL1_PIXEL_LIMIT_GROUPS = ("LEVEL1_MIN_MAX_PIXEL_VALUE", "MIN_MAX_PIXEL_VALUE")
THERMAL_CONSTANT_GROUPS = (
    "LEVEL1_THERMAL_CONSTANTS", "TIRS_THERMAL_CONSTANTS", "THERMAL_CONSTANTS",
)
SURFACE_REFLECTANCE_GROUPS = ("LEVEL2_SURFACE_REFLECTANCE_PARAMETERS",)
SURFACE_TEMPERATURE_GROUPS = ("LEVEL2_SURFACE_TEMPERATURE_PARAMETERS",)
SCENE_GROUPS = ("IMAGE_ATTRIBUTES", "PRODUCT_METADATA", "PRODUCT_PARAMETERS")

# Collection ids (LC08_L1TP_047027_20201204_20210313_02_T1) and pre-collection scene ids
# (LC80200392015216LGN00); the pre-2012 ids (L71092085_08520100315) are too loose to compare.
LANDSAT_ID_PATTERN = re.compile(
    r"L[COTEM]0[1-9]_L[12][A-Z0-9]{2}_\d{6}_\d{8}_\d{8}_\d{2}_[A-Z0-9]{2}"
    r"|L[COTEM][1-9]\d{13}[A-Z0-9]{3}\d{2}",
    re.IGNORECASE,
)
_BAND_IN_FILE_NAME = re.compile(
    r"_(?:(?P<product>SR|ST)_)?B(?P<number>\d{1,2})(?:_VCID_(?P<vcid>[12]))?(?=$|[_.\-\s])",
    re.IGNORECASE,
)
_BAND_ARGUMENT = re.compile(
    r"^(?:(?P<product>SR|ST)_)?B?(?P<number>\d{1,2})(?:_VCID_(?P<vcid>[12]))?$", re.IGNORECASE
)
_AUXILIARY_LAYERS = (
    (re.compile(r"(^|_)(BQA|QA_PIXEL|QA_RADSAT)(_|$)", re.I), "a Level-1 quality (QA) layer"),
    (re.compile(r"(^|_)(SR_QA_AEROSOL|SR_CLOUD_QA|ST_QA|QA_AEROSOL)(_|$)", re.I),
     "a Level-2 quality (QA) layer"),
    (re.compile(r"(^|_)ST_(TRAD|URAD|DRAD|ATRAN|EMIS|EMSD|CDIST)(_|$)", re.I),
     "an intermediate surface-temperature layer"),
    (re.compile(r"(^|_)SR_ATMOS_OPACITY(_|$)", re.I), "an atmospheric-opacity layer"),
    (re.compile(r"(^|_)(VAA|VZA|SAA|SZA|ANG)(_|$)", re.I), "an angle layer"),
)


class Rescaling(NamedTuple):
    """value = multiplier · DN + offset, and where the two numbers came from."""

    multiplier: float
    offset: float
    source: str


class RadianceLimits(NamedTuple):
    """Pre-2012 style calibration: radiance LMIN…LMAX spans DN QCALMIN…QCALMAX."""

    lmax: float
    lmin: float
    qcalmax: float
    qcalmin: float
    source: str


class ThermalConstants(NamedTuple):
    """Planck constants of a thermal band: T = K2 / ln(K1 / L + 1)."""

    k1: float
    k2: float
    source: str


@dataclass(frozen=True)
class LandsatBand:
    """A Landsat band as metadata keys name it.

    product is "DN" for Level-1 digital numbers, "SR"/"ST" for Level-2 surface reflectance or
    surface temperature files; vcid is 1 (low gain) or 2 (high gain) for ETM+ band 6.
    """

    number: int
    vcid: int | None = None
    product: str = "DN"

    @property
    def name(self) -> str:
        """'B4', 'B10', 'B6_VCID_1'."""
        return f"B{self.key}"

    @property
    def key(self) -> str:
        """Suffix of the Collection and pre-collection keys: '4' in RADIANCE_MULT_BAND_4,
        '6_VCID_1' in RADIANCE_MULT_BAND_6_VCID_1."""
        return f"{self.number}_VCID_{self.vcid}" if self.vcid else str(self.number)

    @property
    def legacy_key(self) -> str:
        """Suffix of pre-2012 keys: '4' in LMAX_BAND4, '61' in LMAX_BAND61."""
        return f"{self.number}{self.vcid}" if self.vcid else str(self.number)


def parse_landsat_band(band: int | str, *, product: str = "DN") -> LandsatBand:
    """A band given by a user: 4, '4', 'B4', 'B6_VCID_1', 'SR_B4', 'ST_B10'.

    Args:
        band: the band.
        product: "DN", "SR" or "ST", used when `band` has no SR_/ST_ prefix.

    Returns:
        The band as written (legacy TM/ETM+ codes ≥ 10 are mapped by
        `LandsatMetadata.resolve_band`).

    Raises:
        InvalidInputError: not a band name.
    """
    match = _BAND_ARGUMENT.match(str(band).strip())
    if match is None:
        raise InvalidInputError(
            f"{band!r} is not a Landsat band: write it like 4, 'B4', 'B6_VCID_1', 'SR_B4' or "
            "'ST_B10'."
        )
    return LandsatBand(
        number=int(match["number"]),
        vcid=int(match["vcid"]) if match["vcid"] else None,
        product=(match["product"] or product).upper(),
    )


def landsat_band_from_file_name(file_name: str) -> LandsatBand | None:
    """The band coded in a Landsat file name ('…_B4.TIF', '…_B6_VCID_1.TIF', '…_SR_B4.TIF',
    '…_ST_B10.TIF', 'tiny_…_B2.TIF', '…_B10_crop.TIF'), or None when the name has no band code.
    Two-digit legacy codes (B10 = TM band 1, B61) are returned as written."""
    matches = list(_BAND_IN_FILE_NAME.finditer(Path(file_name).stem))
    if not matches:
        return None
    match = matches[-1]
    return LandsatBand(
        number=int(match["number"]),
        vcid=int(match["vcid"]) if match["vcid"] else None,
        product=(match["product"] or "DN").upper(),
    )


def landsat_product_id_from_file_name(file_name: str) -> str | None:
    """The part of a band file name before its band code ('LC08_…_T1' of 'LC08_…_T1_SR_B4.TIF'),
    or None when the name has no band code."""
    stem = Path(file_name).stem
    matches = list(_BAND_IN_FILE_NAME.finditer(stem))
    return stem[: matches[-1].start()] if matches else None


def auxiliary_layer_kind(file_name: str) -> str | None:
    """What a Landsat quality/auxiliary file is ('a Level-1 quality (QA) layer'), judged from its
    name, or None for anything else."""
    stem = Path(file_name).stem
    for pattern, kind in _AUXILIARY_LAYERS:
        if pattern.search(stem):
            return kind
    return None


@dataclass(frozen=True)
class LandsatMetadata:
    """A parsed Landsat metadata file.

    product_id is the product the file describes; known_ids every product or scene id it names
    (for a Level-2 file also its Level-1 source). sensor is 'OLI_TIRS', 'OLI', 'TIRS', 'ETM', 'TM'
    or 'MSS'; level is 'L1' or 'L2'. Angles in degrees, distance in astronomical units.
    """

    path: Path
    tree: MetadataTree
    product_id: str
    known_ids: tuple[str, ...]
    spacecraft: str
    sensor: str
    level: str
    acquisition_date: date | None
    sun_elevation_deg: float | None
    earth_sun_distance_au: float | None
    legacy_keys: bool

    @property
    def has_tirs(self) -> bool:
        """True when bands 10 and 11 are TIRS thermal bands (Landsat 8/9)."""
        return self.sensor in ("OLI_TIRS", "TIRS")

    def resolve_band(self, band: LandsatBand) -> LandsatBand:
        """Map legacy two-digit TM/ETM+ codes (B10 = band 1, B61 = band 6 low gain, B80 = band 8)
        to real bands; other bands are returned unchanged."""
        if self.sensor in ("TM", "ETM", "MSS") and band.number >= 10 and band.vcid is None:
            if self.sensor == "ETM" and band.number in (61, 62):
                return LandsatBand(6, band.number - 60, band.product)
            if band.number % 10 == 0 and band.number <= 80:
                return LandsatBand(band.number // 10, None, band.product)
        return band

    def is_thermal(self, band: LandsatBand) -> bool:
        """Whether `band` is a thermal band of this sensor (TIRS 10/11, TM/ETM+ 6)."""
        if self.has_tirs:
            return band.number in (10, 11)
        if self.sensor in ("TM", "ETM"):
            return band.number == 6
        return self.thermal_constants(band) is not None

    def check_band_file(self, band_path: str | Path) -> None:
        """Refuse a band file whose name carries a Landsat id this metadata does not describe.
        Names without a recognisable id (renamed files) pass.

        Raises:
            MetadataError: the band belongs to another scene or product.
        """
        name = Path(band_path).name
        ids_in_name = {found.upper() for found in LANDSAT_ID_PATTERN.findall(name)}
        if ids_in_name and not ids_in_name & set(self.known_ids):
            raise MetadataError(
                f"{name} belongs to {', '.join(sorted(ids_in_name))}, but metadata "
                f"{self.path.name} describes {', '.join(self.known_ids)}. Use the _MTL file of "
                "the band's own scene."
            )

    def _value(self, groups: Sequence[str], key: str) -> tuple[float, MetadataTree] | None:
        for group_name in groups:
            group = self.tree.find_group(group_name)
            if group is not None and key in group:
                return group.number(key), group
        return None

    def _rescaling(self, groups: Sequence[str], mult_key: str, add_key: str) -> Rescaling | None:
        multiplier = self._value(groups, mult_key)
        offset = self._value(groups, add_key)
        if multiplier is None and offset is None:
            return None
        if multiplier is None or offset is None:
            found_key, missing_key = (
                (add_key, mult_key) if multiplier is None else (mult_key, add_key)
            )
            found_group = (offset or multiplier)[1]
            raise MetadataError(
                f"{found_group.location} has {found_key} but no {missing_key}. Use the complete "
                "metadata file that came with the scene."
            )
        if multiplier[0] == 0:
            raise MetadataError(
                f"{mult_key} is 0 in {multiplier[1].location}: the product has no calibration for "
                "this band (USGS ships some scenes without thermal data). Use another band or "
                "scene."
            )
        return Rescaling(
            multiplier[0], offset[0], f"{mult_key} and {add_key} in group {multiplier[1].name}"
        )

    def reflectance_rescaling(self, band: LandsatBand) -> Rescaling | None:
        """Level-1 TOA reflectance coefficients (before the sun-elevation division), read only
        from the Level-1 rescaling group; None if the file has none for this band.

        Raises:
            MetadataError: only one of the pair is present, a value is not a number, or the
                multiplier is 0.
        """
        return self._rescaling(
            LEVEL1_RESCALING_GROUPS,
            f"REFLECTANCE_MULT_BAND_{band.key}",
            f"REFLECTANCE_ADD_BAND_{band.key}",
        )

    def radiance_rescaling(self, band: LandsatBand) -> Rescaling | None:
        """Level-1 radiance coefficients (W m⁻² sr⁻¹ µm⁻¹ per DN), None if absent.

        Raises:
            MetadataError: as for `reflectance_rescaling`.
        """
        return self._rescaling(
            LEVEL1_RESCALING_GROUPS,
            f"RADIANCE_MULT_BAND_{band.key}",
            f"RADIANCE_ADD_BAND_{band.key}",
        )

    def radiance_limits(self, band: LandsatBand) -> RadianceLimits | None:
        """LMAX/LMIN/QCALMAX/QCALMIN of a band (Collection or pre-2012 key names), None if the
        file has no radiance limits for it.

        Raises:
            MetadataError: the set is incomplete or a value is not a number.
        """
        candidates = (
            (f"RADIANCE_MAXIMUM_BAND_{band.key}", f"RADIANCE_MINIMUM_BAND_{band.key}",
             f"QUANTIZE_CAL_MAX_BAND_{band.key}", f"QUANTIZE_CAL_MIN_BAND_{band.key}"),
            (f"LMAX_BAND{band.legacy_key}", f"LMIN_BAND{band.legacy_key}",
             f"QCALMAX_BAND{band.legacy_key}", f"QCALMIN_BAND{band.legacy_key}"),
        )
        for lmax_key, lmin_key, qmax_key, qmin_key in candidates:
            found = [
                self._value(LEVEL1_RADIANCE_LIMIT_GROUPS, lmax_key),
                self._value(LEVEL1_RADIANCE_LIMIT_GROUPS, lmin_key),
                self._value(LEVEL1_PIXEL_LIMIT_GROUPS, qmax_key),
                self._value(LEVEL1_PIXEL_LIMIT_GROUPS, qmin_key),
            ]
            if all(item is None for item in found):
                continue
            keys = (lmax_key, lmin_key, qmax_key, qmin_key)
            missing = [key for key, item in zip(keys, found) if item is None]
            if missing:
                raise MetadataError(
                    f"{self.path} has {', '.join(k for k in keys if k not in missing)} but not "
                    f"{', '.join(missing)}. Use the complete metadata file that came with the "
                    "scene."
                )
            values = [item[0] for item in found if item is not None]
            return RadianceLimits(
                *values,
                source=f"{lmax_key}, {lmin_key} in group {found[0][1].name} and {qmax_key}, "
                f"{qmin_key} in group {found[2][1].name}",
            )
        return None

    def thermal_constants(self, band: LandsatBand) -> ThermalConstants | None:
        """K1/K2 of a thermal band from the file's thermal-constants group, None if absent.

        Raises:
            MetadataError: only one constant present, or a constant is not positive.
        """
        k1_key, k2_key = f"K1_CONSTANT_BAND_{band.key}", f"K2_CONSTANT_BAND_{band.key}"
        k1, k2 = self._value(THERMAL_CONSTANT_GROUPS, k1_key), self._value(
            THERMAL_CONSTANT_GROUPS, k2_key
        )
        if k1 is None and k2 is None:
            return None
        if k1 is None or k2 is None or k1[0] <= 0 or k2[0] <= 0:
            raise MetadataError(
                f"{self.path}: {k1_key} and {k2_key} must both be present and positive (found "
                f"{k1 and k1[0]}, {k2 and k2[0]}). Use the complete metadata file of the scene."
            )
        return ThermalConstants(k1[0], k2[0], f"{k1_key} and {k2_key} in group {k1[1].name}")

    def _level2_rescaling(
        self, groups: Sequence[str], mult_key: str, add_key: str, what: str
    ) -> Rescaling:
        rescaling = self._rescaling(groups, mult_key, add_key)
        if rescaling is None:
            raise MetadataError(
                f"{self.path} has no {mult_key}/{add_key} in group {groups[0]}, so it cannot "
                f"convert this {what} file. Use the _MTL file of the Level-2 product the band "
                "came with."
            )
        return rescaling

    def surface_reflectance_rescaling(self, band: LandsatBand) -> Rescaling:
        """Level-2 scale and offset of an SR_B<n> file.

        Raises:
            MetadataError: the file has no Level-2 surface-reflectance parameters for the band.
        """
        return self._level2_rescaling(
            SURFACE_REFLECTANCE_GROUPS,
            f"REFLECTANCE_MULT_BAND_{band.key}",
            f"REFLECTANCE_ADD_BAND_{band.key}",
            "surface reflectance",
        )

    def surface_temperature_rescaling(self, band: LandsatBand) -> Rescaling:
        """Level-2 scale and offset (kelvin per DN, kelvin) of an ST_B<n> file.

        Raises:
            MetadataError: the file has no Level-2 surface-temperature parameters for the band.
        """
        return self._level2_rescaling(
            SURFACE_TEMPERATURE_GROUPS,
            f"TEMPERATURE_MULT_BAND_ST_B{band.number}",
            f"TEMPERATURE_ADD_BAND_ST_B{band.number}",
            "surface temperature",
        )


def _first_raw(tree: MetadataTree, keys: Sequence[str], groups: Sequence[str]) -> str | None:
    """The first of `keys` in the preferred `groups`, else anywhere in the file."""
    for group_name in groups:
        group = tree.find_group(group_name)
        if group is None:
            continue
        for key in keys:
            if key in group:
                return group[key]
    for _path, key, value in tree.walk():
        if key in keys:
            return value
    return None


def _known_ids(tree: MetadataTree, path: Path) -> tuple[str, ...]:
    """Every product or scene id the file names, the product id it describes first."""
    product_ids, scene_ids, file_ids = [], [], []
    for _path, key, value in tree.walk():
        if key == "LANDSAT_PRODUCT_ID" and value.strip():
            product_ids.append(value.strip().upper())
        elif key == "LANDSAT_SCENE_ID" and value.strip():
            scene_ids.append(value.strip().upper())
        elif key in ("METADATA_FILE_NAME", "FILE_NAME_METADATA_ODL", "METADATA_L1_FILE_NAME"):
            file_ids.append(re.sub(r"_MTL$", "", Path(value.strip()).stem, flags=re.I).upper())
    file_ids.append(re.sub(r"_MTL$", "", path.stem, flags=re.I).upper())
    return tuple(dict.fromkeys(item for item in product_ids + scene_ids + file_ids if item))


def _spacecraft(tree: MetadataTree, product_id: str, path: Path) -> str:
    raw = _first_raw(tree, ("SPACECRAFT_ID",), SCENE_GROUPS)
    digits = re.search(r"(\d)", raw or "") or re.match(r"L[A-Z]0?(\d)", product_id)
    if digits is None:
        raise MetadataError(
            f"{path} has no SPACECRAFT_ID and its product id {product_id!r} does not tell the "
            "satellite. Use the complete metadata file that came with the scene."
        )
    return f"LANDSAT_{digits.group(1)}"


_SENSOR_OF_SPACECRAFT = {"1": "MSS", "2": "MSS", "3": "MSS", "4": "TM", "5": "TM", "7": "ETM",
                         "8": "OLI_TIRS", "9": "OLI_TIRS"}


def _sensor(tree: MetadataTree, spacecraft: str) -> str:
    raw = _first_raw(tree, ("SENSOR_ID",), SCENE_GROUPS)
    if raw:
        return raw.strip().upper().replace("+", "")
    return _SENSOR_OF_SPACECRAFT.get(spacecraft[-1], "UNKNOWN")


def _acquisition_date(tree: MetadataTree, path: Path) -> date | None:
    raw = _first_raw(tree, ("DATE_ACQUIRED", "ACQUISITION_DATE"), SCENE_GROUPS)
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw.strip()[:10])
    except ValueError:
        raise MetadataError(
            f"{path}: DATE_ACQUIRED is {raw!r}, not a date (YYYY-MM-DD). The metadata file is "
            "damaged: download it again."
        ) from None


def _optional_number(tree: MetadataTree, key: str, path: Path) -> float | None:
    raw = _first_raw(tree, (key,), SCENE_GROUPS)
    return None if raw is None else parse_number(raw, where=f"{key} in {path}")


def read_landsat_metadata(path: str | Path) -> LandsatMetadata:
    """Read a Landsat MTL file of any generation and format.

    Args:
        path: _MTL.txt, _MTL.xml or _MTL.json (pre-collection, Collection 1 or 2, Level-1 or 2).

    Returns:
        The parsed metadata; coefficients are looked up per band with its methods.

    Raises:
        MetadataError: unreadable, truncated, not Landsat metadata, or a scene-level value
            (SPACECRAFT_ID, DATE_ACQUIRED, SUN_ELEVATION, EARTH_SUN_DISTANCE) is malformed.
    """
    path = Path(path)
    tree = read_metadata_tree(path)
    if tree.name not in ROOT_GROUP_NAMES:
        raise MetadataError(
            f"{path} starts with group {tree.name!r}, not {' or '.join(ROOT_GROUP_NAMES)}: it is "
            "not a Landsat MTL file. Use the _MTL.txt/.xml/.json file that came with the scene."
        )
    known_ids = _known_ids(tree, path)
    product_id = known_ids[0]
    spacecraft = _spacecraft(tree, product_id, path)
    processing_level = _first_raw(tree, ("PROCESSING_LEVEL",), ("PRODUCT_CONTENTS",)) or ""
    is_level2 = processing_level.upper().startswith("L2") or any(
        tree.find_group(name) is not None
        for name in SURFACE_REFLECTANCE_GROUPS + SURFACE_TEMPERATURE_GROUPS
    )
    return LandsatMetadata(
        path=path,
        tree=tree,
        product_id=product_id,
        known_ids=known_ids,
        spacecraft=spacecraft,
        sensor=_sensor(tree, spacecraft),
        level="L2" if is_level2 else "L1",
        acquisition_date=_acquisition_date(tree, path),
        sun_elevation_deg=_optional_number(tree, "SUN_ELEVATION", path),
        earth_sun_distance_au=_optional_number(tree, "EARTH_SUN_DISTANCE", path),
        legacy_keys=any(key.startswith("LMAX_BAND") for _p, key, _v in tree.walk()),
    )


def find_landsat_mtl(band_path: str | Path) -> Path:
    """The MTL file beside a Landsat band file.

    Looks for <product id>_MTL.txt, .xml, .json (product id = file stem before the band code), then
    for the single product whose *_MTL.* file has an id contained in the band's file name
    (tolerates 'tiny_' prefixes and '_crop' suffixes). Text is preferred over XML over JSON.

    Args:
        band_path: the band file (it need not exist; its folder must).

    Returns:
        The metadata file.

    Raises:
        MetadataError: none found or several scenes match; the message lists what was tried.
    """
    band_path = Path(band_path)
    folder = band_path.parent
    try:
        entries = [entry for entry in folder.iterdir() if entry.is_file()]
    except OSError as exc:
        raise MetadataError(
            f"Cannot list {folder} to find the metadata of {band_path.name}: "
            f"{exc.strerror or exc}. Give the metadata file explicitly."
        ) from None
    by_product: dict[str, list[Path]] = {}
    for entry in entries:
        match = re.match(r"^(.+)_MTL(\.txt|\.xml|\.json)$", entry.name, re.IGNORECASE)
        if match:
            by_product.setdefault(match.group(1).upper(), []).append(entry)

    def preferred(files: list[Path]) -> Path:
        return min(files, key=lambda file: METADATA_SUFFIXES.index(file.suffix.lower()))

    product_id = landsat_product_id_from_file_name(band_path.name)
    if product_id and product_id.upper() in by_product:
        return preferred(by_product[product_id.upper()])
    name = band_path.name.upper()
    contained = [pid for pid in by_product if pid in name]
    longest = max((len(pid) for pid in contained), default=0)
    best = [pid for pid in contained if len(pid) == longest]
    if len(best) == 1:
        return preferred(by_product[best[0]])
    tried = (
        ", ".join(f"{product_id}_MTL{suffix}" for suffix in METADATA_SUFFIXES)
        if product_id
        else "no <product id>_MTL name (the file name has no band code such as _B4)"
    )
    if len(best) > 1:
        raise MetadataError(
            f"Several metadata files in {folder} match {band_path.name}: "
            f"{', '.join(sorted(best))}. Give the metadata file explicitly."
        )
    raise MetadataError(
        f"No Landsat metadata found for {band_path.name} in {folder}: looked for {tried}, and for "
        "any *_MTL.txt/.xml/.json whose product id is part of the band's file name. Put the "
        "scene's MTL file beside the band or give it explicitly."
    )
