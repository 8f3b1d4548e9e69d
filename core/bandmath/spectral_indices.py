"""Spectral index aliases for band math (NDVI, NBR, …) and the sensor presets that decide which
band codes an index reads."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..errors import ExpressionError, InvalidInputError

ROLES: tuple[str, ...] = ("blue", "green", "red", "red_edge", "nir", "swir1", "swir2")

SENSORS: tuple[str, ...] = ("sentinel2", "landsat89", "landsat457", "generic")

SENSOR_TITLES: Mapping[str, str] = MappingProxyType(
    {
        "sentinel2": "Sentinel-2 MSI",
        "landsat89": "Landsat 8-9 OLI",
        "landsat457": "Landsat 4-5 TM / Landsat 7 ETM+",
        "generic": "Generic (bands in the order blue, green, red, NIR, SWIR1, SWIR2)",
    }
)

# Role -> band code. Sentinel-2's red edge is B5 (705 nm, red edge 1) and its NIR the 10 m B8,
# the band the other indices use too. Landsat has no red-edge band, nor has "generic".
SENSOR_BANDS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "sentinel2": MappingProxyType(
            {"blue": "B2", "green": "B3", "red": "B4", "red_edge": "B5", "nir": "B8",
             "swir1": "B11", "swir2": "B12"}
        ),
        "landsat89": MappingProxyType(
            {"blue": "B2", "green": "B3", "red": "B4", "nir": "B5", "swir1": "B6", "swir2": "B7"}
        ),
        "landsat457": MappingProxyType(
            {"blue": "B1", "green": "B2", "red": "B3", "nir": "B4", "swir1": "B5", "swir2": "B7"}
        ),
        "generic": MappingProxyType(
            {"blue": "B1", "green": "B2", "red": "B3", "nir": "B4", "swir1": "B5", "swir2": "B6"}
        ),
    }
)

#: A sensor's documented stand-in for a band its other products have: Sentinel-2's 20 m and
#: 60 m products hold the narrow NIR band B8A (865 nm) but not the 10 m B8 (842 nm).
SUBSTITUTE_BANDS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {"sentinel2": MappingProxyType({"B8": "B8A"})})

_ROLE_WORD = re.compile(r"\b(" + "|".join(ROLES) + r")\b")


@dataclass(frozen=True)
class BandPreset:
    """Which band each role (red, nir, …) of an index formula reads.

    Attributes:
        title: how the user knows it: a sensor's title as the Sensor drop-down shows it
            ("Sentinel-2 MSI"), or "the band descriptions".
        bands: role -> the band-math variable read for it: a band code ("B8") or a layer
            reference ('"scene@4"').
        sensor: the sensor of SENSORS whose codes it reads, or None.
    """

    title: str
    bands: Mapping[str, str]
    sensor: str | None = None


def sensor_preset(sensor: str) -> BandPreset:
    """The preset of a sensor of SENSORS: its band codes.

    Raises:
        InvalidInputError: unknown sensor.
    """
    if sensor not in SENSOR_BANDS:
        raise InvalidInputError(
            f"Unknown sensor preset '{sensor}': use one of {', '.join(SENSORS)}."
        )
    return BandPreset(SENSOR_TITLES[sensor], SENSOR_BANDS[sensor], sensor)


def sensor_choices() -> str:
    """The sensors as the Sensor drop-down lists them, for messages."""
    return "; ".join(SENSOR_TITLES[name] for name in SENSORS)


@dataclass(frozen=True)
class SpectralIndex:
    """A named index.

    Attributes:
        name: the alias typed in expressions (upper case; matched case-insensitively).
        description: what the index measures, with its reference.
        formula: the formula in role names (`ROLES`), valid band-math syntax once roles are
            replaced by band codes.
        note: a caveat for the user, e.g. the reflectance scale the constants assume.
    """

    name: str
    description: str
    formula: str
    note: str = ""

    @property
    def roles(self) -> tuple[str, ...]:
        """The roles the formula reads, in order of first use."""
        return tuple(dict.fromkeys(_ROLE_WORD.findall(self.formula)))


_REFLECTANCE_NOTE = (
    "Its constants assume surface reflectance scaled 0-1: rescale digital numbers first "
    "(e.g. Sentinel-2 L2A from baseline 04.00: (B - 1000) / 10000)."
)

ALIASES: Mapping[str, SpectralIndex] = MappingProxyType(
    {
        index.name: index
        for index in (
            SpectralIndex("NDVI", "Normalized difference vegetation index (Rouse 1974)",
                          "(nir - red) / (nir + red)"),
            SpectralIndex("NDWI", "Normalized difference water index, green/NIR (McFeeters 1996)",
                          "(green - nir) / (green + nir)"),
            SpectralIndex("MNDWI", "Modified NDWI, green/SWIR1 (Xu 2006)",
                          "(green - swir1) / (green + swir1)"),
            SpectralIndex("NDMI", "Normalized difference moisture index, NIR/SWIR1 (Gao 1996)",
                          "(nir - swir1) / (nir + swir1)"),
            SpectralIndex("NBR", "Normalized burn ratio, NIR/SWIR2 (Key & Benson 2006)",
                          "(nir - swir2) / (nir + swir2)"),
            SpectralIndex("EVI", "Enhanced vegetation index (Huete 2002)",
                          "2.5 * (nir - red) / (nir + 6 * red - 7.5 * blue + 1)",
                          _REFLECTANCE_NOTE),
            SpectralIndex("SAVI", "Soil-adjusted vegetation index, L = 0.5 (Huete 1988)",
                          "1.5 * (nir - red) / (nir + red + 0.5)", _REFLECTANCE_NOTE),
            SpectralIndex("GNDVI", "Green NDVI (Gitelson 1996)",
                          "(nir - green) / (nir + green)"),
            SpectralIndex("NDRE", "Normalized difference red-edge index, NIR/red edge 1 "
                          "(Sentinel-2 B8 and B5)", "(nir - red_edge) / (nir + red_edge)",
                          "Only sensors with a red-edge band (Sentinel-2) have it."),
            SpectralIndex("BSI", "Bare soil index (Rikimaru 2002)",
                          "((swir1 + red) - (nir + blue)) / ((swir1 + red) + (nir + blue))"),
        )
    }
)


def find_alias(name: str) -> SpectralIndex | None:
    """The index called `name` (case-insensitive), or None."""
    return ALIASES.get(name.upper())


def alias_expression(alias: str, preset: str | BandPreset) -> str:
    """The band-math expression of an index for a sensor or another band preset.

    Args:
        alias: an index name from ALIASES (case-insensitive), e.g. "ndvi".
        preset: a sensor of SENSORS, or a BandPreset.

    Returns:
        The formula with the preset's bands, e.g. "(B8 - B4) / (B8 + B4)" for NDVI on
        "sentinel2".

    Raises:
        ExpressionError: unknown alias, or the preset lacks a band the index needs (NDRE has no
            red edge on Landsat or "generic").
        InvalidInputError: unknown sensor.
    """
    index = find_alias(alias)
    if index is None:
        raise ExpressionError(
            f"'{alias}' is not a known index: use one of {', '.join(ALIASES)}."
        )
    if not isinstance(preset, BandPreset):
        preset = sensor_preset(preset)
    missing = [role for role in index.roles if role not in preset.bands]
    if missing:
        having = [SENSOR_TITLES[name] for name in SENSORS
                  if all(role in SENSOR_BANDS[name] for role in missing)]
        raise ExpressionError(
            f"{index.name} needs a {', '.join(missing)} band; there is none in {preset.title}: "
            f"choose the sensor {' or '.join(having) or '(none has one)'} or write the formula "
            "with your own bands."
        )
    return _ROLE_WORD.sub(lambda match: preset.bands[match.group(1)], index.formula)


def _help_rows() -> list[list[str]]:
    """Header and one row per index: name, description, role formula, then one cell per sensor."""
    rows = [["Index", "Description", "Formula"] + list(SENSORS)]
    for index in ALIASES.values():
        cells = [index.name, index.description, index.formula]
        for sensor in SENSORS:
            try:
                cells.append(alias_expression(index.name, sensor))
            except ExpressionError:
                cells.append("not available")
        rows.append(cells)
    return rows


def _preset_rows() -> list[list[str]]:
    rows = [["Role"] + list(SENSORS)]
    for role in ROLES:
        rows.append([role] + [SENSOR_BANDS[sensor].get(role, "-") for sensor in SENSORS])
    return rows


_USAGE = (
    "Type an index name as the whole expression (NDVI) or inside one (NDVI * 100, "
    "where(NDVI > 0.3, 1, 0)). The sensor preset decides which bands it reads."
)


def alias_help(*, html_format: bool = False) -> str:
    """The help on index aliases: usage, each index with its formula per sensor, the presets.

    Args:
        html_format: True for an HTML fragment (tables; fits a Processing help string), False
            for plain text.

    Returns:
        The help text. The HTML is well-formed XML inside one `<div>`.
    """
    notes = {index.name: index.note for index in ALIASES.values() if index.note}
    if html_format:
        return (
            f"<div><p>{html.escape(_USAGE)}</p>{_html_table(_help_rows())}"
            + "".join(f"<p><b>{name}</b>: {html.escape(note)}</p>" for name, note in notes.items())
            + "<p>Sensor presets (band code of each role):</p>"
            + _html_table(_preset_rows())
            + "</div>"
        )
    blocks = [_USAGE, ""]
    for row in _help_rows()[1:]:
        name, description, formula, *per_sensor = row
        blocks.append(f"{name}: {description}")
        label_width = max(len(label) for label in ("formula", *SENSORS))
        blocks.append(f"  {'formula'.ljust(label_width)}  {formula}")
        blocks.extend(
            f"  {sensor.ljust(label_width)}  {text}" for sensor, text in zip(SENSORS, per_sensor)
        )
        if name in notes:
            blocks.append(f"  {notes[name]}")
        blocks.append("")
    blocks += ["Sensor presets (band code of each role):", _text_table(_preset_rows())]
    return "\n".join(blocks)


def _html_table(rows: list[list[str]]) -> str:
    header, *body = rows
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    lines = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in body
    )
    return f"<table><tr>{head}</tr>{lines}</table>"


def _text_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
        for row in rows
    )
