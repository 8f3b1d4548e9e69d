"""The attribute fields of zone polygons: names valid in Shapefile (at most 10 characters) and
GeoPackage, with the full feature name in each field's alias."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

MAX_FIELD_NAME = 10  # dBase, hence Shapefile
_STATISTICS = (("mean", "mean"), ("min", "minimum"), ("max", "maximum"), ("std", "standard "
                                                                          "deviation"))
_CENTRE_SUFFIX = "ctr"
_PREFIX_LENGTH = MAX_FIELD_NAME - 1 - max(len(suffix) for suffix, _ in _STATISTICS)  # 5
_FIXED = ("zone", "class", "area_m2", "perim_m")


@dataclass(frozen=True)
class ZoneField:
    """One attribute: its name (≤ 10 characters), its alias, whether it holds whole numbers."""

    name: str
    alias: str
    integer: bool = False


def zone_fields(feature_names: Sequence[str]) -> list[ZoneField]:
    """The fields of a zone layer: zone, class, the class centre of each feature, area_m2,
    perim_m, then each feature's mean, min, max and std within the zone.

    A feature named with at most five letters, digits or underscores, starting with a letter
    (NDVI, B4, red), names its fields (NDVI_ctr, NDVI_mean, …); otherwise the features are
    numbered f1, f2, …; either way the alias holds the full name ("NDVI 2021-05-27 mean").
    """
    prefixes = _feature_prefixes(feature_names)
    fields = [ZoneField("zone", "zone", True), ZoneField("class", "class", True)]
    fields += [ZoneField(f"{prefix}_{_CENTRE_SUFFIX}", f"{name} class centre")
               for prefix, name in zip(prefixes, feature_names)]
    fields += [ZoneField("area_m2", "area (m²)"), ZoneField("perim_m", "perimeter (m)")]
    for prefix, name in zip(prefixes, feature_names):
        fields += [ZoneField(f"{prefix}_{suffix}", f"{name} {word}")
                   for suffix, word in _STATISTICS]
    return fields


def _feature_prefixes(names: Sequence[str]) -> list[str]:
    short = [name if re.fullmatch(rf"[A-Za-z][A-Za-z0-9_]{{0,{_PREFIX_LENGTH - 1}}}", name)
             else "" for name in names]
    folded = [prefix.lower() for prefix in short]
    if all(short) and len(set(folded)) == len(folded) and not set(folded) & set(_FIXED):
        return short
    return [f"f{index}" for index in range(1, len(names) + 1)]
