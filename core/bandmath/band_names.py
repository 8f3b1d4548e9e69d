"""Band codes in satellite file names (`…_B4.TIF`, `…_B8A_20m.jp2`), the sensor those names
reveal, and the band-math variable names (`B4`, `"layer@1"`) of a set of input layers."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import InvalidInputError

# A band code is a token of its own: the letters and digits around it belong to other words
# (`S2B_`, `BQA`, `10band`), so only separators (`_`, `.`, `-`, space, start, end) may touch it.
_BAND_CODE_IN_NAME = re.compile(r"(?<![A-Za-z0-9])B(\d{1,3})(A?)(?![A-Za-z0-9])", re.IGNORECASE)
_BAND_CODE = re.compile(r"B(\d+)(A?)", re.IGNORECASE)

# Landsat product ids: Collection 1/2 `LC08_L2SP_…` and pre-collection scene ids
# `LC80200392015216LGN00` (sensor letter, mission, path+row+year+day, station, version).
_LANDSAT_COLLECTION_ID = re.compile(r"(?<![A-Za-z0-9])L([COTEM])0(\d)_", re.IGNORECASE)
_LANDSAT_SCENE_ID = re.compile(r"(?<![A-Za-z0-9])L([COTEM])(\d)\d{13}[A-Z]{3}\d{2}", re.IGNORECASE)
_SENTINEL2_PRODUCT = re.compile(r"(?<![A-Za-z0-9])S2[A-D]_", re.IGNORECASE)
_SENTINEL2_TILE = re.compile(r"(?<![A-Za-z0-9])T\d{2}[A-Z]{3}_", re.IGNORECASE)

# (sensor letter, mission) -> preset; MSS (`LM0x`) bands match no preset.
_LANDSAT_PRESETS = {
    ("C", "8"): "landsat89",
    ("O", "8"): "landsat89",
    ("T", "8"): "landsat89",
    ("C", "9"): "landsat89",
    ("O", "9"): "landsat89",
    ("T", "9"): "landsat89",
    ("T", "4"): "landsat457",
    ("T", "5"): "landsat457",
    ("E", "7"): "landsat457",
}


# Band descriptions that name a role of the index formulas (`spectral_indices.ROLES`), compared
# in lower case without spaces, dashes or underscores.
_ROLE_DESCRIPTIONS = {
    "blue": "blue", "green": "green", "red": "red", "rededge": "red_edge", "rededge1": "red_edge",
    "nir": "nir", "nearinfrared": "nir", "swir1": "swir1", "swir2": "swir2",
}


@dataclass(frozen=True)
class LayerBands:
    """One input layer as band math sees it.

    Attributes:
        name: the layer name shown in QGIS (used in `"name@band"` references).
        file_name: the file path or name the layer reads (its band code is parsed from it).
        band_count: number of bands, >= 1.
        descriptions: the band descriptions stored in the file, one per band ("" when none).
    """

    name: str
    file_name: str
    band_count: int
    descriptions: tuple[str, ...] = ()

    def reference(self, band: int) -> str:
        """The band-math variable that always names band `band` of this layer."""
        return f"{self.name}@{band}"


@dataclass(frozen=True)
class BandVariables:
    """The variables an expression may use for a set of layers.

    Attributes:
        bands: variable name -> (layer index, 0-based; band number, 1-based). Band-code variables
            are normalised (`"B4"`, `"B8A"`); layer references are `"<layer name>@<band>"`.
        ambiguous: variable name -> the unambiguous variables to use instead (may be empty, e.g.
            for two layers with the same name). These names are deliberately absent from `bands`.
    """

    bands: Mapping[str, tuple[int, int]]
    ambiguous: Mapping[str, tuple[str, ...]]


def normalize_band_code(text: str) -> str | None:
    """Normalise a band code as typed or found in a name: `b04` -> `B4`, `B8a` -> `B8A`.

    Args:
        text: the whole candidate code (no surrounding characters).

    Returns:
        The code in upper case without leading zeros, or None when `text` is not a band code
        (band 0, or an `A` suffix on any band but 8).
    """
    match = _BAND_CODE.fullmatch(text)
    return _normalized(match) if match else None


def _normalized(match: re.Match) -> str | None:
    number = int(match.group(1))
    suffix = match.group(2).upper()
    if number == 0 or (suffix and number != 8):
        return None
    return f"B{number}{suffix}"


def _base_name(file_name: str) -> str:
    # Windows paths use backslashes.
    return re.split(r"[\\/]", file_name)[-1]


def parse_band_code(file_name: str) -> str | None:
    """The band code in a satellite file name.

    Recognises `…_B4.TIF`, `…_B4_crop.TIF`, `…_SR_B4.TIF`, `B04.jp2`, `…_B8A_20m.jp2`,
    `T33UXX_20210527_B8A.tif` (any case; the code must be separated by `_ . -` or a space).

    Args:
        file_name: a file name or path (only the last path component is read).

    Returns:
        The normalised code (`"B4"`, `"B8A"`, `"B10"`), or None when the name holds no band code
        (`…_BQA.TIF`) or several different ones (`B4_B5_ratio.tif`).
    """
    codes = {_normalized(match) for match in _BAND_CODE_IN_NAME.finditer(_base_name(file_name))}
    codes.discard(None)
    return codes.pop() if len(codes) == 1 else None


def _sensor_of_file(file_name: str) -> str | None:
    base = _base_name(file_name)
    landsat = _LANDSAT_COLLECTION_ID.search(base) or _LANDSAT_SCENE_ID.search(base)
    if landsat:
        return _LANDSAT_PRESETS.get((landsat.group(1).upper(), landsat.group(2)))
    if _SENTINEL2_PRODUCT.search(base) or _SENTINEL2_TILE.search(base):
        return "sentinel2"
    for match in _BAND_CODE_IN_NAME.finditer(base):
        # Two-digit codes with a leading zero (B04) and B8A are Sentinel-2's own spelling.
        if match.group(2) or (len(match.group(1)) == 2 and match.group(1).startswith("0")):
            return "sentinel2"
    return None


def described_bands(layers: Sequence[LayerBands]) -> dict[str, tuple[int, int]]:
    """The bands whose description names what they hold: a role ("red", "NIR", "SWIR 1") or a
    band code ("B4", "B04", "B8A", "SR_B5").

    Returns:
        role or normalised band code -> (layer index, band number); a role or code that several
        bands are described with names none of them.
    """
    found: dict[str, list[tuple[int, int]]] = {}
    for index, layer in enumerate(layers):
        for band, description in enumerate(layer.descriptions, start=1):
            role = _ROLE_DESCRIPTIONS.get(re.sub(r"[\s_-]", "", description.lower()))
            key = role or parse_band_code(description.strip())
            if key:
                found.setdefault(key, []).append((index, band))
    return {key: places[0] for key, places in found.items() if len(places) == 1}


def detect_sensor(file_names: Sequence[str]) -> str | None:
    """The sensor preset (a name in `spectral_indices.SENSORS`) that file names reveal.

    Landsat product ids `LC08_…`, `LC09_…`, `LC8…` (scene id) -> "landsat89"; `LT04`, `LT05`,
    `LE07`, `LT5…`, `LE7…` -> "landsat457"; Sentinel-2 `S2A_`/`S2B_` products, `T33UXX_` tile
    ids, `B8A` or zero-padded codes `B04` -> "sentinel2". Files that reveal nothing are ignored.

    Args:
        file_names: file names or paths of the input layers.

    Returns:
        The preset all recognised files agree on; None when none is recognised or they disagree.
        Never "generic": that preset is a user's choice.
    """
    sensors = {_sensor_of_file(name) for name in file_names}
    sensors.discard(None)
    return sensors.pop() if len(sensors) == 1 else None


def band_variables(layers: Sequence[LayerBands]) -> BandVariables:
    """Name the bands of the input layers for band math.

    Rules: every band is always `"<layer name>@<k>"`. A single layer: `B1`…`Bn` are its bands,
    unless it is single-band with a band code in its file name, which then names it. Several
    layers: each single-band layer whose file name holds a band code gets that code
    (`…_B04.jp2` -> `B4`); a code that two layers share is ambiguous, so neither gets it.
    Multiband layers among several are reached by `"name@k"` only.

    Args:
        layers: the input layers in order; the layer index in the result is the position here.

    Returns:
        The variables and the ambiguous names (see BandVariables).

    Raises:
        InvalidInputError: no layers, or a layer with fewer than one band.
    """
    if not layers:
        raise InvalidInputError("Band math needs at least one input raster layer: add one.")
    for layer in layers:
        if layer.band_count < 1:
            raise InvalidInputError(
                f"Layer '{layer.name}' ({layer.file_name}) has no bands: remove it from the inputs."
            )
    targets: dict[str, list[tuple[int, int]]] = {}
    single = layers[0] if len(layers) == 1 else None
    if single and (single.band_count > 1 or parse_band_code(single.file_name) is None):
        for band in range(1, layers[0].band_count + 1):
            targets[f"B{band}"] = [(0, band)]
    else:
        for index, layer in enumerate(layers):
            code = parse_band_code(layer.file_name) if layer.band_count == 1 else None
            if code:
                targets.setdefault(code, []).append((index, 1))
    for index, layer in enumerate(layers):
        for band in range(1, layer.band_count + 1):
            targets.setdefault(f"{layer.name}@{band}", []).append((index, band))

    bands = {name: found[0] for name, found in targets.items() if len(found) == 1}
    by_target = {target: name for name, target in bands.items() if "@" in name}
    ambiguous = {
        name: tuple(by_target[target] for target in found if target in by_target)
        for name, found in targets.items()
        if len(found) > 1
    }
    return BandVariables(bands=bands, ambiguous=ambiguous)
