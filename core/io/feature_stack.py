"""The per-pixel features of a clustering run: every band of every input raster, on one grid."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from osgeo import gdal

from ..engine import opened
from ..errors import InvalidInputError
from .area_of_interest import AreaOfInterest, AreaSource, BoundingBox
from .rasters import (
    BandValidity,
    RasterGrid,
    Window,
    check_north_up,
    iter_windows,
    needs_float64,
    open_raster,
    rows_per_block,
    warp_onto_grid,
)


@dataclass(frozen=True)
class RasterInput:
    """One input raster: a GDAL-readable source and the name the user knows it by (layer name)."""

    source: str
    name: str = ""


class FeatureStack:
    """All bands of all inputs as features of each pixel, aligned on the first input's grid.

    Inputs on another grid (resolution, origin, size or CRS) are resampled onto the first
    input's grid with nearest neighbour through a virtual warp; pixels they do not cover are
    invalid. A pixel is valid only when every feature is valid: not nodata, not masked, finite.
    """

    def __init__(self, inputs: Sequence[RasterInput], *, grid: RasterGrid | None = None):
        """Args: inputs; grid: the grid to align every input onto, instead of the first's."""
        if not inputs:
            raise InvalidInputError("No input raster given: select at least one raster layer.")
        self._datasets: list[gdal.Dataset] = []
        self._bands: list[BandValidity] = []
        described: list[tuple[str, str]] = []  # (band description, layer-based name)
        first = open_raster(inputs[0].source, what="input raster")
        self.grid = grid or RasterGrid.of(first)
        check_north_up(self.grid, inputs[0].source)
        self.dtype = np.float32
        for index, raster in enumerate(inputs):
            dataset = first if index == 0 else open_raster(raster.source, what="input raster")
            float64 = any(needs_float64(dataset.GetRasterBand(b + 1))
                          for b in range(dataset.RasterCount))
            if (index > 0 or grid) and not self.grid.same_as(RasterGrid.of(dataset)):
                dataset = warp_onto_grid(dataset, self.grid, float64=float64)
            if float64:
                self.dtype = np.float64
            self._datasets.append(dataset)
            layer_name = raster.name or os.path.splitext(os.path.basename(raster.source))[0]
            for band_number in range(1, dataset.RasterCount + 1):
                band = dataset.GetRasterBand(band_number)
                self._bands.append(BandValidity(band))
                layer_based = (layer_name if dataset.RasterCount == 1
                               else f"{layer_name}@{band_number}")
                described.append(((band.GetDescription() or "").strip(), layer_based))
        self.names = feature_names(described)

    @property
    def n_features(self) -> int:
        return len(self._bands)

    @property
    def block_height(self) -> int:
        return max(1, self._bands[0].band.GetBlockSize()[1])

    @property
    def decoded_bytes(self) -> int:
        """Bytes of every feature of the whole grid, decoded."""
        return self.grid.width * self.grid.height * self.n_features * np.dtype(self.dtype).itemsize

    @property
    def strip_bytes(self) -> int:
        """Bytes of the features of one full-width block of `area_windows`."""
        rows = rows_per_block(width=self.grid.width, n_bands=self.n_features,
                              block_height=self.block_height)
        return min(rows, self.grid.height) * self.grid.width * self.n_features * np.dtype(
            self.dtype).itemsize

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Read the features of `window`.

        Returns:
            features: array of shape (n_features, height, width), float32 (float64 when an input
                needs it), in the inputs' own units;
            valid: bool array of shape (height, width).
        """
        features = np.empty((self.n_features, window.height, window.width), dtype=self.dtype)
        valid = np.ones((window.height, window.width), dtype=bool)
        for index, item in enumerate(self._bands):
            values = item.band.ReadAsArray(window.col_off, window.row_off, window.width,
                                           window.height, buf_type=_gdal_type(self.dtype))
            if values is None:
                raise InvalidInputError(
                    f"Reading band {index + 1} failed: {gdal.GetLastErrorMsg()}")
            features[index] = values
            valid &= np.isfinite(values)
            invalid = item.invalid(values, window.col_off, window.row_off)
            if invalid is not None:
                valid &= ~invalid
        return features, valid

    def close(self) -> None:
        self._bands.clear()
        self._datasets.clear()


@dataclass(frozen=True)
class StackSource:
    """A FeatureStack as block jobs open it: its inputs, in order.

    Attributes:
        scope: the run's scope (`engine.new_scope`).
        grid: the grid every input is aligned onto (None: the first input's).
    """

    inputs: tuple[RasterInput, ...]
    scope: str
    grid: RasterGrid | None = None

    def open(self) -> FeatureStack:
        return FeatureStack(self.inputs, grid=self.grid)


@dataclass(frozen=True)
class AreaBlocks:
    """The features of a stack's blocks, valid only inside an area (None: everywhere)."""

    stack: StackSource
    area: AreaSource | None = None

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """(features, valid) of `window`, as `FeatureStack.read`, valid also meaning "in the
        area"; opened in this process once (`engine.opened`)."""
        features, valid = opened(self.stack).read(window)
        if self.area is not None:
            mask = opened(self.area).mask(window)
            if mask is not None:
                valid &= mask
        return features, valid


def open_area_blocks(inputs: Sequence[RasterInput], scope: str, *,
                     geometry_wkt: str | None = None,
                     bbox: BoundingBox | None = None) -> tuple[AreaBlocks, FeatureStack,
                                                                AreaOfInterest]:
    """The features of `inputs` inside an area (the whole raster without geometry or box),
    opened here first, so that a bad input or area is the caller's error before any job runs.

    Returns:
        (the AreaBlocks the jobs read, the opened stack, the opened area).
    """
    source = StackSource(tuple(inputs), scope)
    stack = opened(source)
    area_source = AreaSource.of(stack.grid, geometry_wkt=geometry_wkt, bbox=bbox, scope=scope)
    return AreaBlocks(source, area_source), stack, opened(area_source)


def area_windows(stack: FeatureStack, window: Window, *,
                 values_per_pixel: int | None = None) -> list[Window]:
    """The blocks in which `window` of the stack is read: full-width strips of whole file
    blocks, about BLOCK_TARGET_PIXELS values each (`values_per_pixel` of them a pixel, the
    stack's features by default), top to bottom."""
    rows = rows_per_block(width=window.width, n_bands=values_per_pixel or stack.n_features,
                          block_height=stack.block_height)
    return list(iter_windows(window, rows))


def feature_names(described: list[tuple[str, str]]) -> list[str]:
    """One distinct name per feature: its band description, else its layer name (@band).

    A description shared by several features (five dates of an index all described "NDVI")
    names none of them: those take their layer names, which tell the dates apart. Names still
    equal get a suffix: "x", "x (2)".
    """
    counts: dict[str, int] = {}
    for description, _ in described:
        counts[description] = counts.get(description, 0) + 1
    names = [description if description and counts[description] == 1 else layer_based
             for description, layer_based in described]
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return unique


def _gdal_type(dtype) -> int:
    return gdal.GDT_Float64 if dtype == np.float64 else gdal.GDT_Float32
