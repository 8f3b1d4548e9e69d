"""Band math's plan: the input layers' bands as variables, the sensor preset that index aliases
read (chosen, or told by file names and band descriptions), and the compiled expression."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ExpressionError, InvalidInputError
from ..io.feature_stack import RasterInput
from ..io.rasters import open_raster
from .band_names import (
    BandVariables,
    LayerBands,
    band_variables,
    described_bands,
    detect_sensor,
)
from .expression import CompiledExpression, compile_expression
from .spectral_indices import (
    ROLES,
    SENSOR_BANDS,
    SENSOR_TITLES,
    SENSORS,
    SUBSTITUTE_BANDS,
    BandPreset,
    sensor_choices,
)

AUTO_SENSOR = "auto"
"""Sensor choice that detects the preset from the file names and band descriptions."""


@dataclass(frozen=True)
class BandMathPlan:
    """A compiled expression and where its variables come from.

    Attributes:
        expression: the compiled expression.
        sensor: the preset aliases were expanded for (a name in SENSORS), or None.
        sources: each variable the expression reads -> (layer index, 0-based; band, 1-based).
        messages: how the sensor was chosen and what the aliases expand to, for the log.
    """

    expression: CompiledExpression
    sensor: str | None
    sources: Mapping[str, tuple[int, int]]
    messages: tuple[str, ...]

    @property
    def layers_used(self) -> tuple[int, ...]:
        """Indices of the layers the expression reads, ascending."""
        return tuple(sorted({layer for layer, _ in self.sources.values()}))


def layer_bands(inputs: Sequence[RasterInput]) -> list[LayerBands]:
    """The inputs as band math names them: layer name (file stem when unnamed), file, bands.

    Raises:
        InvalidInputError: an input GDAL cannot open.
    """
    layers = []
    for raster in inputs:
        dataset = open_raster(raster.source, what="input raster")
        descriptions = tuple((dataset.GetRasterBand(band).GetDescription() or "").strip()
                             for band in range(1, dataset.RasterCount + 1))
        layers.append(LayerBands(layer_name(raster), raster.source, dataset.RasterCount,
                                 descriptions))
        dataset = None
    return layers


def layer_name(raster: RasterInput) -> str:
    """The name band math gives an input: its layer name, or its file stem when unnamed."""
    return raster.name or Path(raster.source).stem


def compile_band_math(layers: Sequence[LayerBands], expression: str, *,
                      sensor: str = AUTO_SENSOR) -> BandMathPlan:
    """Compile an expression over the bands of `layers`.

    Variables: see band_names.band_variables (B1…Bn of a single multiband layer, the band code
    of each single-band file, always "layer name@band"). Aliases (NDVI, …) read the bands of
    `band_preset`: the sensor's band codes, or with AUTO_SENSOR those of the sensor the file
    names and band descriptions reveal and the bands described by their role (red, nir, …).

    Args:
        layers: the input layers in order.
        expression: the expression as typed.
        sensor: AUTO_SENSOR or a name in spectral_indices.SENSORS.

    Returns:
        The plan: compiled expression, sensor used, the (layer, band) of each variable read.

    Raises:
        ExpressionError: the expression is invalid, names an unknown or ambiguous variable (the
            message lists those available), or uses an alias while no sensor is known.
        InvalidInputError: an unknown sensor, or no layers.
    """
    if sensor != AUTO_SENSOR and sensor not in SENSORS:
        raise InvalidInputError(f"Unknown sensor preset '{sensor}': use {AUTO_SENSOR} or one of "
                                f"{', '.join(SENSORS)}.")
    variables = band_variables(layers)
    preset, messages = band_preset(layers, variables, sensor)
    compiled = _compile(expression, variables, preset, layers)
    described = compiled.display_name
    if compiled.expanded_text != described:
        described += f" = {compiled.expanded_text}"
        if preset is not None:
            described += f" (bands of {preset.title})"
    messages.append(f"Expression: {described}")
    sources = {name: variables.bands[name] for name in compiled.variables_used}
    for name, (layer, band) in sources.items():
        messages.append(f"{name} = band {band} of '{layers[layer].name}' "
                        f"({os.path.basename(layers[layer].file_name)})")
    return BandMathPlan(compiled, preset.sensor if preset else None, sources, tuple(messages))


def band_preset(layers: Sequence[LayerBands], variables: BandVariables,
                sensor: str = AUTO_SENSOR) -> tuple[BandPreset | None, list[str]]:
    """Which band each role of an index (red, nir, …) reads, and how that was decided.

    With a chosen sensor, each role reads the sensor's band code (`sensor_preset`). With
    AUTO_SENSOR, the sensor is the one the file names or band descriptions reveal
    (`detect_sensor`), and a band described by its role ("red", "nir") reads that role. In
    both cases a code is looked up among the band descriptions first ("B8" is the band described
    "B8"), then among the band variables (file-name codes, B1…Bn of a multiband layer); a code
    missing from all of them takes the sensor's documented stand-in when that is present (B8A
    for Sentinel-2's B8, at 20 m and 60 m).

    Returns:
        (the preset, or None when nothing tells the bands; messages for the log).
    """
    messages: list[str] = []
    described = described_bands(layers)
    if sensor == AUTO_SENSOR:
        sensor = detect_sensor(_sensor_clues(layers))
        if sensor is not None:
            messages.append(f"Sensor detected from the file names and band descriptions: "
                            f"{SENSOR_TITLES[sensor]}.")
        roles = {role: place for role, place in described.items() if role in ROLES}
    else:
        roles = {}
    if sensor is None and not roles:
        return None, messages
    bands: dict[str, str] = {}
    for role in ROLES:
        if role in roles:
            bands[role] = _variable_of(layers, variables, roles[role])
            continue
        code = SENSOR_BANDS[sensor].get(role) if sensor else None
        if code is None:
            continue
        substitute = SUBSTITUTE_BANDS.get(sensor, {}).get(code)
        if code in described:
            bands[role] = _variable_of(layers, variables, described[code])
        elif code in variables.bands or substitute is None:
            bands[role] = code
        elif substitute in described or substitute in variables.bands:
            bands[role] = (_variable_of(layers, variables, described[substitute])
                           if substitute in described else substitute)
            messages.append(f"{code} ({role}) is not among the inputs: {substitute} is read in "
                            f"its place, as {SENSOR_TITLES[sensor]} products at 20 m and 60 m "
                            "require.")
        else:
            bands[role] = code
    if roles:
        named = ", ".join(f"{role} = band {band} of '{layers[layer].name}'"
                          for role, (layer, band) in roles.items())
        messages.append(f"Bands named by their descriptions: {named}.")
    title = SENSOR_TITLES[sensor] if sensor else "the band descriptions"
    if sensor and roles:
        title += " and the band descriptions"
    return BandPreset(title, bands, sensor), messages


def _sensor_clues(layers: Sequence[LayerBands]) -> list[str]:
    """What tells the sensor: the file names, and the band descriptions (B8A, B04, …)."""
    return [layer.file_name for layer in layers] + [
        description for layer in layers for description in layer.descriptions if description]


def _variable_of(layers: Sequence[LayerBands], variables: BandVariables,
                 place: tuple[int, int]) -> str:
    """A band-math variable naming band `place` = (layer index, band): its short name (B3) when
    it has one, else its layer reference ("scene@3")."""
    for name, target in variables.bands.items():
        if target == place and "@" not in name:
            return name
    layer, band = place
    return '"' + layers[layer].reference(band).replace('"', '\\"') + '"'


def _compile(text: str, variables: BandVariables, preset: BandPreset | None,
             layers: Sequence[LayerBands]) -> CompiledExpression:
    def attempt(bands: BandPreset | None) -> CompiledExpression:
        return compile_expression(text, variables=variables.bands, sensor=bands,
                                  ambiguous=variables.ambiguous)

    try:
        return attempt(preset)
    except ExpressionError as error:
        if preset is not None:
            raise
        try:  # would a sensor have helped? Then say so rather than "needs a preset".
            attempt("generic")
        except ExpressionError:
            raise error from None
        names = ", ".join(os.path.basename(layer.file_name) for layer in layers)
        raise ExpressionError(
            f"The expression uses an index whose bands depend on the sensor, but neither the "
            f"file names ({names}) nor the band descriptions tell the sensor or which band is "
            f"red, nir, …. Choose the sensor: {sensor_choices()}. Or describe the bands (red, "
            "nir, …), or write the formula with bands, e.g. (B4 - B3) / (B4 + B3).") from None
