"""Apply band calibrators to whole band files: stream them block by block into Float32 GeoTIFFs
(nodata NaN), all outputs of a run written atomically together."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal

from ..bandmath.band_names import parse_band_code
from ..engine import current_executor, opened, run_scope
from ..errors import InvalidInputError
from ..io.rasters import (
    RasterGrid,
    Window,
    atomic_raster_output,
    create_geotiff,
    iter_windows,
    open_raster,
    refuse_output_over_inputs,
    remove_raster_files,
    rows_per_block,
    write_block,
)
from ..progress import CancelCheck, Progress, ProgressCallback
from .calibrators import BandCalibrator

#: The output's nodata: the value `BandCalibrator.apply` gives fill pixels; it can never collide
#: with a real reflectance or temperature (k-means and band math treat it as invalid).
OUTPUT_NODATA = float("nan")

#: File-name suffix of each calibrated quantity (`…_B4_crop_toa.tif`).
QUANTITY_SUFFIXES = {
    "TOA reflectance": "toa",
    "surface reflectance": "sr",
    "brightness temperature": "bt",
    "surface temperature": "st",
}
CELSIUS_SUFFIX = "celsius"

# Digital numbers are integers; a floating-point band has been calibrated (or resampled) already,
# and calibrating it again would silently produce nonsense.
_INTEGER_TYPES = (gdal.GDT_Byte, gdal.GDT_UInt16, gdal.GDT_Int16, gdal.GDT_UInt32, gdal.GDT_Int32)


@dataclass(frozen=True)
class CalibrationJob:
    """One band file to calibrate.

    Attributes:
        band_path: the GDAL source of the band file (single band of integer DN).
        output_path: the GeoTIFF to write (its folder must exist).
        calibrator: the band's calibrator (`calibration.calibrator_for`).
    """

    band_path: str
    output_path: Path
    calibrator: BandCalibrator


@dataclass(frozen=True)
class CalibratedBand:
    """What was written for one job.

    Attributes:
        output_path: the GeoTIFF written (Float32, nodata NaN, band description set).
        calibrator: the calibrator applied.
        valid_pixels: pixels with a value (not fill, not the input's nodata/mask, not NaN).
        minimum, maximum, mean, std: statistics of the valid values (None when there are none),
            also stored in the file as GDAL statistics.
    """

    output_path: Path
    calibrator: BandCalibrator
    valid_pixels: int
    minimum: float | None
    maximum: float | None
    mean: float | None
    std: float | None


def output_file_name(band_path: str | os.PathLike, calibrator: BandCalibrator) -> str:
    """The output file name of a calibrated band: `<input stem>_<quantity suffix>.tif`.

    The band code stays readable by `band_names.parse_band_code` (band math's variable names):
    `LC80200392015216LGN00_B4_crop.TIF` → `LC80200392015216LGN00_B4_crop_toa.tif`; a stem without
    the calibrator's band code gets it inserted (`red.tif` with band B4 → `red_B4_toa.tif`).
    Temperatures in °C end in `_celsius` (`…_B10_bt_celsius.tif`).

    Args:
        band_path: the input band file (only its name is used).
        calibrator: the band's calibrator.

    Returns:
        The file name (no folder).
    """
    stem = Path(band_path).stem
    band_code = parse_band_code(f"{calibrator.band}.tif")
    if band_code is not None and parse_band_code(stem) != band_code:
        stem = f"{stem}_{band_code}"
    suffix = QUANTITY_SUFFIXES[calibrator.quantity]
    if calibrator.celsius:
        suffix += f"_{CELSIUS_SUFFIX}"
    return f"{stem}_{suffix}.tif"


class _RunningStatistics:
    """Count, min, max, mean and standard deviation of finite values seen block by block."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.total_of_squares = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf

    @staticmethod
    def of_block(values: np.ndarray) -> tuple[int, float, float, float, float] | None:
        """A block's (count, sum, sum of squares, min, max) of its finite values, or None."""
        finite = values[np.isfinite(values)].astype(np.float64)
        if finite.size == 0:
            return None
        return (finite.size, float(finite.sum()), float(np.square(finite).sum()),
                float(finite.min()), float(finite.max()))

    def merge(self, block: tuple[int, float, float, float, float] | None) -> None:
        """Add a block's `of_block`."""
        if block is None:
            return
        count, total, total_of_squares, minimum, maximum = block
        self.count += count
        self.total += total
        self.total_of_squares += total_of_squares
        self.minimum = min(self.minimum, minimum)
        self.maximum = max(self.maximum, maximum)

    def summary(self) -> tuple[float, float, float, float] | None:
        """(min, max, mean, std), or None without values."""
        if self.count == 0:
            return None
        mean = self.total / self.count
        variance = max(0.0, self.total_of_squares / self.count - mean * mean)
        return self.minimum, self.maximum, mean, math.sqrt(variance)


@dataclass(frozen=True)
class BandFile:
    """A band file as calibration jobs open it (validated: `_OpenedBand`).

    Attributes:
        source: its GDAL source; scope: the run's scope (`engine.new_scope`).
    """

    source: str
    scope: str

    def open(self) -> _OpenedBand:
        return _OpenedBand(self.source)


class _OpenedBand:
    """A validated input band: its dataset (kept open), grid and how to find invalid pixels."""

    def __init__(self, source: str):
        self.source = source
        self.dataset = open_raster(source, what="band file")
        name = os.path.basename(source)
        if self.dataset.RasterCount != 1:
            raise InvalidInputError(
                f"{name} has {self.dataset.RasterCount} bands; calibration reads one band per "
                "file, as Landsat and Sentinel-2 deliver them. Use the single-band files of the "
                "product (…_B4.TIF, …_B04.jp2).")
        self.band = self.dataset.GetRasterBand(1)
        if self.band.DataType not in _INTEGER_TYPES:
            raise InvalidInputError(
                f"{name} holds {gdal.GetDataTypeName(self.band.DataType)} values, not integer "
                "digital numbers: it looks calibrated (or resampled) already. Calibrate the "
                "original band file of the product.")
        self.grid = RasterGrid.of(self.dataset)
        self.nodata = self.band.GetNoDataValue()
        # Alpha bands and .msk masks mark invalid pixels that carry no nodata value.
        self.uses_mask_band = self.band.GetMaskFlags() not in (gdal.GMF_ALL_VALID,
                                                                gdal.GMF_NODATA)

    @property
    def n_pixels(self) -> int:
        return self.grid.width * self.grid.height

    def read(self, window) -> tuple[np.ndarray, np.ndarray]:
        """The DN of a window (native integer dtype) and a bool array of pixels the input itself
        marks invalid (its nodata value or mask)."""
        dn = self.band.ReadAsArray(window.col_off, window.row_off, window.width, window.height)
        if dn is None:
            raise InvalidInputError(
                f"Reading {self.source} failed: {gdal.GetLastErrorMsg() or 'unknown error'}. "
                "Check that the file is complete.")
        invalid = np.zeros(dn.shape, dtype=bool)
        if self.nodata is not None:
            invalid |= dn == self.nodata
        if self.uses_mask_band:
            mask = self.band.GetMaskBand().ReadAsArray(
                window.col_off, window.row_off, window.width, window.height)
            if mask is None:
                raise InvalidInputError(f"Reading the mask of {self.source} failed: "
                                        f"{gdal.GetLastErrorMsg() or 'unknown error'}.")
            invalid |= mask == 0
        return dn, invalid


def _check_outputs(jobs: Sequence[CalibrationJob]) -> None:
    """Refuse two jobs writing one file, and an output that is an input."""
    outputs: dict[str, CalibrationJob] = {}
    for job in jobs:
        refuse_output_over_inputs(job.output_path, [other.band_path for other in jobs])
        target = os.path.realpath(job.output_path)
        if target in outputs:
            raise InvalidInputError(
                f"{outputs[target].band_path} and {job.band_path} would both be written to "
                f"{job.output_path}; calibrate them in separate runs or rename one.")
        outputs[target] = job


def calibrate_block(job: tuple[BandFile, BandCalibrator],
                    window: Window) -> tuple[np.ndarray, tuple | None]:
    """Block job: the calibrated values of `window` (Float32, NaN where invalid) and their
    statistics (`_RunningStatistics.of_block`)."""
    band, calibrator = job
    dn, invalid = opened(band).read(window)
    values = calibrator.apply(dn)
    values[invalid] = OUTPUT_NODATA
    return values, _RunningStatistics.of_block(values)


def _write_calibrated(band_file: BandFile, job: CalibrationJob, temporary: Path,
                      progress: Progress) -> CalibratedBand:
    """Stream one band through its calibrator into `temporary`."""
    opened_band = opened(band_file)
    calibrator = job.calibrator
    output = create_geotiff(temporary, opened_band.grid, data_type=gdal.GDT_Float32,
                            nodata=OUTPUT_NODATA)
    band = output.GetRasterBand(1)
    band.SetDescription(calibrator.description)
    if calibrator.unit:
        band.SetUnitType(calibrator.unit)
    band.SetMetadata({"BAND": calibrator.band, "QUANTITY": calibrator.quantity,
                      "CALIBRATION": calibrator.log_message,
                      "METADATA_FILE": calibrator.metadata_path.name})
    statistics = _RunningStatistics()
    full = opened_band.grid.full_window
    rows = rows_per_block(width=opened_band.grid.width, n_bands=1,
                          block_height=max(1, opened_band.band.GetBlockSize()[1]))
    windows = list(iter_windows(full, rows))
    calibrated = current_executor().map_blocks(calibrate_block, (band_file, calibrator),
                                               windows, steps=progress)
    for window, (values, block_statistics) in zip(windows, calibrated, strict=True):
        statistics.merge(block_statistics)
        write_block(band, values, window, full)
    summary = statistics.summary()
    if summary is not None:
        band.SetStatistics(*summary)
    gdal.ErrorReset()
    output.FlushCache()
    if gdal.GetLastErrorType() >= gdal.CE_Failure:
        raise InvalidInputError(f"Writing {job.output_path} failed: {gdal.GetLastErrorMsg()}. "
                                "Check the free space of the output folder.")
    band = output = None  # closes the file before atomic_raster_output renames it
    minimum, maximum, mean, std = summary if summary is not None else (None,) * 4
    return CalibratedBand(job.output_path, calibrator, statistics.count, minimum, maximum, mean,
                          std)


def calibrate_band_files(jobs: Sequence[CalibrationJob], *,
                         progress: ProgressCallback | None = None,
                         is_cancelled: CancelCheck | None = None) -> list[CalibratedBand]:
    """Calibrate band files into Float32 GeoTIFFs, all or nothing.

    Every input is opened and checked before anything is written. Each band is read in blocks
    (full-width strips aligned to the file's own blocks), calibrated, and written to a
    temporary file beside its output; the temporaries are renamed into place together only when
    every band succeeded, so an error or a cancellation leaves no output of the run (and any
    older file at an output path untouched). The output keeps the input's grid and CRS; fill
    and saturated DN, the input's nodata value and masked pixels are NaN (the nodata value).
    The band description is the calibrator's (`B4 TOA reflectance`), the unit type its unit.

    Args:
        jobs: the bands to calibrate; outputs must be distinct and differ from every input.
        progress: receives the fraction done, 0..1 (weighted by pixel count).
        is_cancelled: polled before every block and once more before committing.

    Returns:
        One CalibratedBand per job, in order.

    Raises:
        InvalidInputError: an input is unreadable, has several bands or non-integer values; two
            outputs coincide or an output is an input; an output folder is missing or not
            writable; a write fails.
        CancelledError: is_cancelled() returned True (nothing was written).
    """
    if not jobs:
        raise InvalidInputError("No band file given: select at least one band to calibrate.")
    _check_outputs(jobs)
    run_progress = Progress(progress, is_cancelled)
    results = []
    committing = False
    with run_scope() as scope:
        band_files = [BandFile(job.band_path, scope) for job in jobs]
        # Every input is opened and checked here before anything is written.
        total_pixels = sum(opened(band_file).n_pixels for band_file in band_files) or 1
        try:
            with ExitStack() as outputs:
                start = 0.0
                for job, band_file in zip(jobs, band_files):
                    temporary = outputs.enter_context(atomic_raster_output(job.output_path))
                    end = start + opened(band_file).n_pixels / total_pixels
                    results.append(_write_calibrated(band_file, job, temporary,
                                                     run_progress.span(start, end)))
                    start = end
                # A cancel during the last block must still leave nothing behind.
                run_progress.check()
                committing = True
        except BaseException:
            if committing:  # a rename failed after others succeeded: take the run back entirely
                for job in jobs:
                    remove_raster_files(job.output_path)
            raise
    return results
