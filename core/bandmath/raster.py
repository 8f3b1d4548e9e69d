"""Band math on rasters: align the inputs onto one output grid and stream an expression through
it block by block into a Float32 GeoTIFF (NaN nodata), calibrating digital numbers on the fly."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from osgeo import gdal

from ..calibration.calibrators import BandCalibrator, calibrator_for
from ..engine import current_executor, opened, run_scope
from ..errors import InvalidInputError
from ..io.feature_stack import RasterInput
from ..io.rasters import (
    WARP_RESAMPLINGS,
    BandValidity,
    RasterGrid,
    Window,
    atomic_raster_output,
    check_north_up,
    create_geotiff,
    iter_windows,
    needs_float64,
    open_raster,
    refuse_output_over_inputs,
    rows_per_block,
    same_crs,
    warp_onto_grid,
    write_block,
)
from ..progress import Progress
from .band_names import LayerBands
from .expression import CompiledExpression
from .plan import AUTO_SENSOR, BandMathPlan, compile_band_math, layer_bands, layer_name
from .spectral_indices import ALIASES

RESOLUTIONS = ("finest", "coarsest", "first")
"""Output resolution choices: the finest or coarsest input pixels, or those of the first input
the expression reads."""

RESAMPLINGS = WARP_RESAMPLINGS
"""Resampling of inputs that are not on the output grid (GDAL names; "near" is the default)."""

OUTPUT_NODATA = float("nan")
"""Nodata of the output: NaN, which no valid result can equal."""

# Normalised differences lie in -1..1 whatever the scale of the bands: a fixed display range.
_NORMALISED_DIFFERENCES = ("NDVI", "NDWI", "MNDWI", "NDMI", "NBR", "GNDVI", "NDRE", "BSI")
# Ramp per index, (QGIS default-style ramp name, inverted): high vegetation/water/moisture is
# green/blue; high bare-soil index is red.
_INDEX_RAMPS = {"NDVI": ("RdYlGn", False), "GNDVI": ("RdYlGn", False),
                "NDRE": ("RdYlGn", False), "EVI": ("RdYlGn", False),
                "SAVI": ("RdYlGn", False), "NBR": ("RdYlGn", False),
                "NDWI": ("RdYlBu", False), "MNDWI": ("RdYlBu", False),
                "NDMI": ("RdYlBu", False), "BSI": ("RdYlGn", True)}
_DEFAULT_RAMP = "Viridis"

# Offsets below this fraction of a pixel count as whole pixels (float noise in geotransforms).
_PIXEL_TOLERANCE = 1e-6
# Output tile height of create_geotiff: whole tile rows per block, so no tile is written twice.
_OUTPUT_TILE_ROWS = 256
# Arrays alive per band read while a block is evaluated: the band, its mask, temporaries.
_ARRAYS_PER_BLOCK = 3


@dataclass
class BandMathResult:
    """What a band-math run wrote.

    Attributes:
        grid: the output grid.
        plan: the compiled expression and its sources.
        valid_pixels: pixels with a valid (finite) result.
        minimum, maximum, mean, std: statistics of the valid results (NaN when there are none).
        messages: what was done (sensor, alignment, calibration), for the log.
        warnings: what the user should check (no valid pixel, reflectance-scaled constants).
    """

    grid: RasterGrid
    plan: BandMathPlan
    valid_pixels: int = 0
    minimum: float = math.nan
    maximum: float = math.nan
    mean: float = math.nan
    std: float = math.nan
    messages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DisplayStyle:
    """A pseudocolour style for a band-math output.

    Attributes:
        ramp: a colour ramp name of QGIS's default style ("RdYlGn", "Viridis", …).
        minimum, maximum: the values at the ends of the ramp.
        invert: run the ramp from its last colour to its first.
    """

    ramp: str
    minimum: float
    maximum: float
    invert: bool = False


def _mentions_alias(text: str) -> list[str]:
    return [name for name in ALIASES if re.search(rf"(?<![\w@]){name}(?![\w@])", text, re.I)]


# --------------------------------------------------------------------------------------------
# The output grid


def choose_output_grid(grids: Sequence[RasterGrid], *, resolution: str = "finest") -> RasterGrid:
    """The output grid of several inputs: one input's pixel lattice over their intersection.

    The lattice (pixel size and pixel edges) is that of the input with the smallest pixel area
    ("finest"), the largest ("coarsest"), or the first ("first"); ties go to the earliest input.
    The output covers the intersection of the inputs' extents, shrunk to whole lattice pixels,
    so every output pixel lies inside every input.

    Args:
        grids: the inputs' grids, all in the output CRS (the first grid's), not rotated.
        resolution: one of RESOLUTIONS.

    Returns:
        A grid oriented like the chosen input's (north-up for georeferenced rasters), in
        grids[0]'s CRS.

    Raises:
        InvalidInputError: unknown resolution, no grids, or an intersection thinner than one
            output pixel.
    """
    if resolution not in RESOLUTIONS:
        raise InvalidInputError(f"Unknown output resolution '{resolution}': use one of "
                                f"{', '.join(RESOLUTIONS)}.")
    if not grids:
        raise InvalidInputError("No input raster given: select at least one raster layer.")
    areas = [abs(grid.geotransform[1] * grid.geotransform[5]) for grid in grids]
    reference = grids[0 if resolution == "first" else
                      _extreme_index(areas, largest=resolution == "coarsest")]
    x0, dx, _, y0, _, dy = reference.geotransform
    bounds = [_bounds(grid) for grid in grids]
    xmin, ymin = max(b[0] for b in bounds), max(b[1] for b in bounds)
    xmax, ymax = min(b[2] for b in bounds), min(b[3] for b in bounds)
    first_column, width = _lattice_span(x0, dx, xmin, xmax)
    first_row, height = _lattice_span(y0, dy, ymin, ymax)
    if width < 1 or height < 1:
        raise InvalidInputError(
            "The input rasters do not overlap (or overlap by less than one output pixel): band "
            "math needs a common area. Check that the layers cover the same place and that "
            "their CRSs are set correctly.")
    return RasterGrid(width, height, (x0 + first_column * dx, dx, 0.0, y0 + first_row * dy, 0.0,
                                      dy), grids[0].crs_wkt)


def _lattice_span(origin: float, step: float, low: float, high: float) -> tuple[int, int]:
    """(index of the first line, number of whole pixels) of the lattice origin + k·step lying
    within [low, high], walking in the direction of `step`."""
    start, end = (low, high) if step > 0 else (high, low)
    first = math.ceil((start - origin) / step - _PIXEL_TOLERANCE)
    last = math.floor((end - origin) / step + _PIXEL_TOLERANCE)
    return first, last - first


def _extreme_index(values: Sequence[float], *, largest: bool) -> int:
    """Index of the smallest (or largest) value; the earliest of equal values."""
    best = 0
    for index, value in enumerate(values):
        if (value > values[best]) if largest else (value < values[best]):
            best = index
    return best


def _bounds(grid: RasterGrid) -> tuple[float, float, float, float]:
    x0, dx, _, y0, _, dy = grid.geotransform
    xs, ys = (x0, x0 + grid.width * dx), (y0, y0 + grid.height * dy)
    return min(xs), min(ys), max(xs), max(ys)


def _grid_in_crs(dataset: gdal.Dataset, grid: RasterGrid, crs_wkt: str, path: str) -> RasterGrid:
    """The grid GDAL would give `dataset` reprojected to `crs_wkt` (same grid if same CRS)."""
    if same_crs(grid.crs_wkt, crs_wkt):
        return grid
    if not grid.crs_wkt or not crs_wkt:
        missing = path if not grid.crs_wkt else "the first input"
        raise InvalidInputError(
            f"{missing} has no CRS, so it cannot be placed beside the other inputs. Assign its "
            "CRS (Raster ▸ Projections ▸ Assign Projection) and run again.")
    warped = gdal.AutoCreateWarpedVRT(dataset, grid.crs_wkt, crs_wkt, gdal.GRA_NearestNeighbour,
                                      0.125)
    if warped is None:
        raise InvalidInputError(f"Cannot reproject '{path}' onto the first input's CRS: "
                                f"{gdal.GetLastErrorMsg()}. Check the CRS of both layers.")
    return RasterGrid(warped.RasterXSize, warped.RasterYSize, tuple(warped.GetGeoTransform()),
                      crs_wkt)


def _offset_on(grid: RasterGrid, output: RasterGrid) -> tuple[int, int] | None:
    """(column, row) of the output's first pixel in `grid` when `grid` shares the output's
    pixel lattice (same CRS, pixel size and orientation), else None."""
    x0, dx, _, y0, _, dy = grid.geotransform
    out_x0, out_dx, _, out_y0, _, out_dy = output.geotransform
    if not (math.isclose(dx, out_dx, rel_tol=1e-9) and math.isclose(dy, out_dy, rel_tol=1e-9)
            and same_crs(grid.crs_wkt, output.crs_wkt)):
        return None
    column, row = (out_x0 - x0) / dx, (out_y0 - y0) / dy
    if abs(column - round(column)) > _PIXEL_TOLERANCE or abs(row - round(row)) > _PIXEL_TOLERANCE:
        return None
    return round(column), round(row)


# --------------------------------------------------------------------------------------------
# Reading the inputs block by block


class _BandReader:
    """One input band read on the output grid: NaN where nodata, masked, non-finite or fill;
    calibrated when a calibrator is given."""

    def __init__(self, dataset: gdal.Dataset, band_number: int, offset: tuple[int, int] | None,
                 dtype: np.dtype, calibrator: BandCalibrator | None):
        self._dataset = dataset  # keeps the band's dataset alive
        self._band = dataset.GetRasterBand(band_number)
        self._offset = offset or (0, 0)
        self._dtype = dtype
        self._calibrator = calibrator
        self._validity = BandValidity(self._band)

    def read(self, window: Window) -> np.ndarray:
        """The band over `window` (output pixel space) as a float array of self._dtype."""
        col, row = window.col_off + self._offset[0], window.row_off + self._offset[1]
        values = self._band.ReadAsArray(col, row, window.width, window.height)
        if values is None:
            raise InvalidInputError(f"Reading '{self._dataset.GetDescription()}' failed: "
                                    f"{gdal.GetLastErrorMsg()}. Check that the file is intact.")
        invalid = self._validity.invalid(values, col, row)
        if self._calibrator is not None:
            result = self._calibrator.apply(values).astype(self._dtype, copy=False)
        else:
            result = values.astype(self._dtype, copy=False)
        if invalid is not None:  # `values` is a fresh array, so writing into it is safe
            result[invalid] = np.nan
        return result


@dataclass
class _Inputs:
    """The used inputs opened, their readers on the output grid, and what was done to align."""

    grid: RasterGrid
    dtype: np.dtype
    readers: dict[tuple[int, int], _BandReader]
    messages: list[str]
    datasets: list[gdal.Dataset]

    def flush(self) -> None:
        """Drop the blocks GDAL cached while reading (they are not read again)."""
        for dataset in self.datasets:
            dataset.FlushCache()


@dataclass(frozen=True)
class BandMathInputs:
    """The inputs of a band-math run as block jobs open them: aligned onto the output grid,
    calibrated when asked (see `_open_inputs`).

    Attributes:
        inputs: every input raster, in order (the first sets the CRS).
        bands: the (layer index, band) pairs the expression reads.
        resolution, resampling: as `band_math_to_raster`.
        calibrators: (layer index, calibrator) of each calibrated layer.
        scope: the run's scope (`engine.new_scope`).
    """

    inputs: tuple[RasterInput, ...]
    bands: tuple[tuple[int, int], ...]
    resolution: str
    resampling: str
    calibrators: tuple[tuple[int, BandCalibrator], ...]
    scope: str

    @classmethod
    def of(cls, inputs: Sequence[RasterInput], plan: BandMathPlan, *, resolution: str,
           resampling: str, calibrators: Mapping[int, BandCalibrator],
           scope: str) -> BandMathInputs:
        return cls(tuple(inputs), tuple(sorted(set(plan.sources.values()))), resolution,
                   resampling, tuple(sorted(calibrators.items(), key=lambda item: item[0])),
                   scope)

    def open(self) -> _Inputs:
        return _open_inputs(self.inputs, self.bands, resolution=self.resolution,
                            resampling=self.resampling, calibrators=dict(self.calibrators))


def _open_inputs(inputs: Sequence[RasterInput], bands: Sequence[tuple[int, int]], *,
                 resolution: str, resampling: str,
                 calibrators: Mapping[int, BandCalibrator]) -> _Inputs:
    if resampling not in RESAMPLINGS:
        raise InvalidInputError(f"Unknown resampling '{resampling}': use one of "
                                f"{', '.join(RESAMPLINGS)}.")
    used = tuple(sorted({layer for layer, _ in bands}))
    datasets = {index: open_raster(inputs[index].source, what="input raster") for index in used}
    native = {index: RasterGrid.of(dataset) for index, dataset in datasets.items()}
    for index, grid in native.items():
        check_north_up(grid, inputs[index].source)
    target_crs = _crs_of(inputs[0], datasets.get(0))
    in_target_crs = [_grid_in_crs(datasets[index], native[index], target_crs,
                                  inputs[index].source) for index in used]
    grid = choose_output_grid(in_target_crs, resolution=resolution)
    float64 = any(needs_float64(datasets[layer].GetRasterBand(band)) for layer, band in bands)
    dtype = np.dtype(np.float64 if float64 else np.float32)
    messages = [f"Output grid: {grid.width} × {grid.height} pixels of "
                f"{abs(grid.geotransform[1]):g} × {abs(grid.geotransform[5]):g} (CRS units; "
                f"{resolution} "
                f"resolution of the inputs, over their common extent, in the CRS of "
                f"'{layer_name(inputs[0])}')."]
    aligned: dict[int, tuple[gdal.Dataset, tuple[int, int] | None]] = {}
    for index in used:
        offset = _offset_on(native[index], grid)
        name = layer_name(inputs[index])
        if offset is not None:
            aligned[index] = (datasets[index], offset)
            continue
        source = _with_fill_as_nodata(datasets[index], calibrators.get(index))
        aligned[index] = (warp_onto_grid(source, grid, float64=float64, resampling=resampling),
                          None)
        how = ("reprojected and resampled" if not same_crs(native[index].crs_wkt, target_crs)
               else "resampled")
        messages.append(f"'{name}' is {how} onto the output grid ({resampling}).")
    readers = {(layer, band): _BandReader(aligned[layer][0], band, aligned[layer][1], dtype,
                                          calibrators.get(layer))
               for layer, band in bands}
    return _Inputs(grid, dtype, readers, messages, [dataset for dataset, _ in aligned.values()])


def _crs_of(raster: RasterInput, dataset: gdal.Dataset | None) -> str:
    """The CRS (WKT) of an input, opening it when the expression does not read it."""
    if dataset is None:
        dataset = open_raster(raster.source, what="input raster")
    return dataset.GetProjection()


def _with_fill_as_nodata(dataset: gdal.Dataset,
                         calibrator: BandCalibrator | None) -> gdal.Dataset:
    """The dataset with the calibrator's fill DN declared nodata, so resampling leaves it out."""
    band = dataset.GetRasterBand(1)
    if calibrator is None or not calibrator.invalid_dn or band.GetNoDataValue() is not None:
        return dataset
    virtual = gdal.Translate("", dataset, format="VRT", noData=calibrator.invalid_dn[0])
    if virtual is None:
        raise InvalidInputError(f"Cannot prepare '{dataset.GetDescription()}' for resampling: "
                                f"{gdal.GetLastErrorMsg()}")
    return virtual


def _calibrators(inputs: Sequence[RasterInput], layers: Sequence[LayerBands], plan: BandMathPlan,
                 metadata_path: str | os.PathLike | None) -> dict[int, BandCalibrator]:
    """One calibrator per layer the expression reads, from its file name and the metadata."""
    calibrators = {}
    for index in plan.layers_used:
        layer = layers[index]
        if layer.band_count != 1:
            raise InvalidInputError(
                f"Calibration takes the band from each file's name (…_B4.TIF, …_B04.jp2), so it "
                f"needs one single-band file per band, but '{layer.name}' has {layer.band_count} "
                "bands. Use the product's single-band files, or turn calibration off (and scale "
                "the bands in the expression if needed).")
        calibrators[index] = calibrator_for(inputs[index].source,
                                            metadata_path=metadata_path or None)
    return calibrators


# --------------------------------------------------------------------------------------------
# The run


def band_math_to_raster(inputs: Sequence[RasterInput], expression: str,
                        output_path: str | os.PathLike, *, sensor: str = AUTO_SENSOR,
                        resolution: str = "finest", resampling: str = "near",
                        calibrate: bool = False,
                        metadata_path: str | os.PathLike | None = None,
                        progress=None, is_cancelled=None) -> BandMathResult:
    """Evaluate a band-math expression over input rasters into a Float32 GeoTIFF.

    Grid: the layers the expression reads are aligned onto one grid: the `resolution` input's
    pixel lattice over the intersection of their extents, in the CRS of the first input (others
    are reprojected). Inputs already on that lattice are read directly; others are resampled on
    the fly with `resampling` (default nearest neighbour: values stay measurements, a 20 m pixel
    becomes 2 × 2 identical 10 m pixels, nodata does not spread).

    Nodata: a pixel is nodata (NaN) in the output when any band the expression reads is nodata
    there (its nodata value, mask, NaN/±inf, or calibration fill), and when the result is not a
    finite Float32 number (division by zero, log(0), overflow).

    Calibration: with `calibrate`, each layer read is converted from digital numbers to
    reflectance or temperature (core.calibration) block by block before the expression sees it.

    Args:
        inputs: the input rasters in order (their names are the layer names of "name@band").
        expression: the band-math expression (`expression` syntax; aliases such as NDVI).
        output_path: the GeoTIFF to write (tiled, DEFLATE; written to a temporary name and
            renamed on success). Band description: the alias or the normalised expression.
        sensor: AUTO_SENSOR (from the file names) or a preset of spectral_indices.SENSORS.
        resolution: one of RESOLUTIONS.
        resampling: one of RESAMPLINGS.
        calibrate: calibrate digital numbers first (single-band Landsat/Sentinel-2 files).
        metadata_path: the MTL/MTD file for calibration; found beside each band when None.
        progress, is_cancelled: see core.progress.

    Returns:
        The grid, plan, statistics and log messages of the run.

    Raises:
        ExpressionError: the expression is invalid for these inputs.
        InvalidInputError: unreadable inputs, no overlap, output over an input, bad options.
        MetadataError: calibration metadata missing or incomplete.
        CancelledError: cancelled; nothing is left behind.
    """
    steps = Progress(progress, is_cancelled)
    refuse_output_over_inputs(output_path, [raster.source for raster in inputs])
    layers = layer_bands(inputs)
    plan = compile_band_math(layers, expression, sensor=sensor)
    calibrators = _calibrators(inputs, layers, plan, metadata_path) if calibrate else {}
    with run_scope() as scope:
        source = BandMathInputs.of(inputs, plan, resolution=resolution, resampling=resampling,
                                   calibrators=calibrators, scope=scope)
        grid = opened(source).grid
        result = BandMathResult(grid, plan, messages=[*plan.messages, *opened(source).messages])
        result.messages += [calibrator.log_message for calibrator in calibrators.values()]
        result.warnings += _scale_warnings(plan, calibrate)
        statistics = _Statistics()
        rows = rows_per_block(width=grid.width,
                              n_bands=_ARRAYS_PER_BLOCK * (len(source.bands) + 1),
                              block_height=_OUTPUT_TILE_ROWS)
        whole = grid.full_window
        blocks = list(iter_windows(whole, rows))
        job = _Evaluation(source, plan.expression, tuple(plan.sources.items()))
        with atomic_raster_output(output_path) as temporary:
            dataset = create_geotiff(temporary, grid, data_type=gdal.GDT_Float32,
                                     nodata=OUTPUT_NODATA)
            band = dataset.GetRasterBand(1)
            evaluated = current_executor().map_blocks(evaluate_block, job, blocks, steps=steps)
            for block, (values, summary) in zip(blocks, evaluated, strict=True):
                statistics.merge(summary)
                write_block(band, values, block, whole)
                # Written tiles leave GDAL's block cache: memory stays bounded.
                dataset.FlushCache()
            steps.check()
            _describe(band, plan, statistics)
            dataset.FlushCache()
            dataset = band = None
    statistics.fill(result)
    if result.valid_pixels == 0:
        result.warnings.append(
            "Every output pixel is nodata: the bands read are nodata wherever they overlap, or "
            "the expression is invalid everywhere (e.g. 0 / 0). Check the inputs and formula.")
    return result


@dataclass(frozen=True, eq=False)
class _Evaluation:
    """What an evaluation job needs: the inputs, the expression and the band each of its
    variables reads."""

    inputs: BandMathInputs
    expression: CompiledExpression
    sources: tuple[tuple[str, tuple[int, int]], ...]


def evaluate_block(job: _Evaluation, block: Window) -> tuple[np.ndarray, tuple | None]:
    """Block job: the Float32 result of `block` (NaN where any band read is invalid or the
    result is) and the summary of its valid values (`_Statistics.summary`)."""
    opened_inputs = opened(job.inputs)
    bands = {source: reader.read(block) for source, reader in opened_inputs.readers.items()}
    # The blocks read leave GDAL's block cache (they are not read again): memory stays bounded.
    opened_inputs.flush()
    values = job.expression.evaluate({name: bands[source] for name, source in job.sources},
                                     dtype=opened_inputs.dtype)
    with np.errstate(over="ignore"):  # beyond Float32 becomes inf, then nodata below
        result = values.astype(np.float32, copy=False)
    # where() and comparisons may pick a valid branch beside a nodata band: nodata wins.
    invalid = ~np.isfinite(result)
    for array in bands.values():
        invalid |= np.isnan(array)
    result[invalid] = np.nan
    return result, _Statistics.summary(result[~invalid])


def _describe(band: gdal.Band, plan: BandMathPlan, statistics: _Statistics) -> None:
    band.SetDescription(plan.expression.display_name)
    band.SetMetadataItem("BAND_MATH_EXPRESSION", plan.expression.expanded_text)
    if plan.sensor:
        band.SetMetadataItem("BAND_MATH_SENSOR", plan.sensor)
    if statistics.count:
        band.SetStatistics(statistics.minimum, statistics.maximum, statistics.mean,
                           statistics.std)


class _Statistics:
    """Minimum, maximum, mean and standard deviation of the valid values, block by block: float64
    sums within a block, blocks merged by Chan et al.'s pairwise update (no second pass)."""

    def __init__(self):
        self.count = 0
        self.minimum = math.inf
        self.maximum = -math.inf
        self.mean = 0.0
        self._m2 = 0.0

    @staticmethod
    def summary(valid: np.ndarray) -> tuple[int, float, float, float, float] | None:
        """A block's (count, sum, sum of squared deviations, min, max) of its valid (finite)
        values, a 1-D array; None when there are none."""
        if valid.size == 0:
            return None
        count = valid.size
        # einsum accumulates float32 data in float64 without a float64 copy of the block.
        total_value = float(np.einsum("i->", valid, dtype=np.float64))
        squares = float(np.einsum("i,i->", valid, valid, dtype=np.float64))
        mean = total_value / count
        m2 = max(squares - total_value * mean, 0.0)
        return count, mean, m2, float(valid.min()), float(valid.max())

    def merge(self, summary: tuple[int, float, float, float, float] | None) -> None:
        """Add a block's summary."""
        if summary is None:
            return
        count, mean, m2, minimum, maximum = summary
        total = self.count + count
        delta = mean - self.mean
        self._m2 += m2 + delta * delta * self.count * count / total
        self.mean += delta * count / total
        self.count = total
        self.minimum = min(self.minimum, minimum)
        self.maximum = max(self.maximum, maximum)

    @property
    def std(self) -> float:
        return math.sqrt(self._m2 / self.count) if self.count else math.nan

    def fill(self, result: BandMathResult) -> None:
        result.valid_pixels = self.count
        if self.count:
            result.minimum, result.maximum = self.minimum, self.maximum
            result.mean, result.std = self.mean, self.std


def _scale_warnings(plan: BandMathPlan, calibrate: bool) -> list[str]:
    if calibrate:
        return []
    return [f"{name}: {ALIASES[name].note} Or turn calibration on."
            for name in _mentions_alias(plan.expression.text) if ALIASES[name].note]


def display_style(result: BandMathResult) -> DisplayStyle:
    """The default pseudocolour style of a band-math output.

    Whole-expression normalised-difference indices (NDVI, NDWI, …) span the fixed range -1..1;
    anything else spans the data's minimum..maximum (0..1 when there is no valid pixel). Ramps:
    RdYlGn for vegetation and burn indices, RdYlBu for water and moisture, inverted RdYlGn for
    the bare-soil index, Viridis for any other expression.

    Args:
        result: the run's result.

    Returns:
        The style to apply.
    """
    name = result.plan.expression.display_name
    ramp, invert = _INDEX_RAMPS.get(name, (_DEFAULT_RAMP, False))
    if name in _NORMALISED_DIFFERENCES:
        return DisplayStyle(ramp, -1.0, 1.0, invert)
    if result.valid_pixels == 0:
        return DisplayStyle(ramp, 0.0, 1.0, invert)
    minimum, maximum = result.minimum, result.maximum
    if minimum == maximum:  # a constant image still needs a ramp of some width
        minimum, maximum = minimum - 0.5, maximum + 0.5
    return DisplayStyle(ramp, minimum, maximum, invert)
