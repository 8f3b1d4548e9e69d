"""Minimum-area sieve of a classified raster: regions under an area in m² merge into a neighbour.

What is guaranteed (a "region" is a connected set of valid pixels of one value, with 4- or
8-connectivity; its area is the sum of the m² of its pixels, see `io.pixel_area.pixel_areas_m2`):

1. Nodata is kept exactly: pixels that the input's validity mask (nodata value, internal mask or
   alpha band) marks invalid keep their value, valid pixels stay valid, and invalid pixels are
   never a neighbour to merge into. (The mask is passed to GDAL's sieve, unlike QGIS's
   gdal:sieve, GDAL issue 4519; the output is then checked against the input pixel by pixel.)
2. A region whose area is at least MIN_AREA keeps all its pixels (it may grow, never shrink).
3. Every region smaller than MIN_AREA has no valid neighbour: it is alone in a patch of valid
   pixels enclosed by nodata or the raster edge. A small region merges, as in GDAL's sieve, into
   its largest neighbour; if that neighbour is small too, into the neighbour's largest
   neighbour, and so on until a region of at least MIN_AREA is reached. Where no chain reaches
   one (a patch whose regions are all small), the larger of the two small regions at the end
   of a chain absorbs it, until the patch holds regions of MIN_AREA or is one region.
4. A region of exactly MIN_AREA is kept (areas are compared with a relative tolerance of 1e-9).

How: GDAL's `SieveFilter` does most of the work, from file to file, streaming (memory grows with
the number of regions, not with the raster's size). With a constant pixel area (projected CRS),
MIN_AREA becomes a pixel count, `min_area_pixels`, and passes repeat until GDAL reports that no
small region with a neighbour was left unmerged (usually one or two passes; 10980 x 10980 Byte:
about 0.5 GB, 12 s per pass). In a geographic CRS, where the pixel area shrinks with the
latitude, one GDAL pass first removes the regions with too few pixels to reach MIN_AREA even at
the largest pixel area. The exact step, `region_merge`, then finishes what GDAL cannot: it
compares true areas (each row's pixel area, summed over the region) and merges the all-small
patches of point 3. It is skipped when GDAL reports nothing left to do; it also streams, reading
the raster twice in strips of rows.

The output is a tiled, DEFLATE-compressed GeoTIFF with the input's type, grid, CRS, nodata,
colour table, category names and band description, written under a temporary name beside the
output and renamed into place (with its .aux.xml) only on success. GDAL's sieve marks nodata
internally with the value -51502112: a valid Int32 pixel of that value in a raster with nodata
is never merged.
"""

from __future__ import annotations

import math
import os
import re
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from osgeo import gdal

from ..engine import current_executor, new_scope, opened, release, run_scope
from ..errors import CancelledError, InvalidInputError, RasterClusteringError
from ..io.pixel_area import pixel_areas_m2
from ..io.rasters import same_file
from ..parameters import CONNECTIVITY, MIN_REGION_AREA, Parameter
from ..progress import Progress
from .region_merge import AREA_RTOL, merge_small_regions, row_strips

_PIXEL_AREA = Parameter("the pixel area", MIN_REGION_AREA.allowed)

_INTEGER_TYPES = {
    gdal.GDT_Byte: "Byte",
    gdal.GDT_UInt16: "UInt16",
    gdal.GDT_Int16: "Int16",
    gdal.GDT_UInt32: "UInt32",
    gdal.GDT_Int32: "Int32",
}
_NATIVE_PALETTE_TYPES = (gdal.GDT_Byte, gdal.GDT_UInt16)  # GeoTIFF stores no other palette
_CREATION_OPTIONS = ["TILED=YES", "COMPRESS=DEFLATE", "ZLEVEL=1", "BIGTIFF=IF_SAFER"]
_SIDECAR_SUFFIXES = (".aux.xml", ".msk", ".ovr")
_STRIP_ROWS = 256
# The exact step's strips: about 60 bytes of working memory per pixel, so ~120 MB at most.
_EXACT_STRIP_PIXELS = 2**21
_MAX_GDAL_PASSES = 50
_GDAL_MAX_THRESHOLD = 2**31 - 1
# GDALSieveFilter's debug line (GDAL 1.x to 3.x): counts of small, isolated, unmergeable polygons.
_SIEVE_STATISTICS = re.compile(r"Small Polygons: (\d+), Isolated: (\d+), Unmergable: (\d+)")


@dataclass(frozen=True)
class SieveReport:
    """What a sieve run did, for logs and for the algorithm's outputs.

    Attributes:
        min_area_m2: the minimum region area asked for, m².
        connectivity: 4 or 8.
        pixel_threshold: (fewest, most) pixels a region needs to reach MIN_AREA; equal when the
            pixel area is constant (projected CRS), a range in a geographic CRS.
        pixel_area_m2: (smallest, largest) area of one pixel, m²; equal when constant.
        changed_pixels: number of valid pixels whose class changed.
        warnings: messages for the user, e.g. that MIN_AREA is smaller than one pixel.
    """

    min_area_m2: float
    connectivity: int
    pixel_threshold: tuple[int, int]
    pixel_area_m2: tuple[float, float]
    changed_pixels: int
    warnings: tuple[str, ...] = ()


def min_area_pixels(min_area_m2: float, pixel_area_m2: float) -> int:
    """Fewest pixels of `pixel_area_m2` whose total area reaches `min_area_m2`.

    GDAL's sieve keeps a region of at least this many pixels and merges smaller ones, so a region
    of exactly MIN_AREA is kept: 2000 m² of 10 m pixels gives 20, 2001 m² gives 21.

    Args:
        min_area_m2: minimum region area in m² (> 0).
        pixel_area_m2: area of one pixel in m² (> 0).

    Returns:
        ceil(min_area_m2 / pixel_area_m2) up to a relative rounding tolerance of 1e-9; at least 1.

    Raises:
        InvalidInputError: if either area is not a positive finite number.
    """
    MIN_REGION_AREA.validate(min_area_m2)
    _PIXEL_AREA.validate(pixel_area_m2)
    pixels = min_area_m2 * (1.0 - AREA_RTOL) / pixel_area_m2
    return max(1, math.ceil(min(pixels, 2.0**62)))


def sieve_raster(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    min_area_m2: float,
    connectivity: int = 8,
    band: int = 1,
    progress: Callable[[float], None] | None = None,
    is_cancelled: Callable[[], bool] | None = None,
) -> SieveReport:
    """Merge every region smaller than `min_area_m2` into a neighbour and write the result.

    See the module docstring for exactly what is guaranteed. The input is not modified.

    Args:
        input_path: GDAL-readable classified raster with an integer band (Byte, UInt16, Int16,
            UInt32 or Int32) and a CRS.
        output_path: GeoTIFF file to write (replaced if it exists), in an existing folder on
            disk (not a /vsi path); must differ from the input. Temporary files are written
            beside it.
        min_area_m2: smallest region area to keep, m² (> 0).
        connectivity: 4 (edges only) or 8 (edges and corners) for which pixels form a region.
        band: 1-based band index of the input to sieve; the output has this one band.
        progress: called with the fraction done, 0..1.
        is_cancelled: polled often; when it returns True the run stops and leaves no file.

    Returns:
        SieveReport of the thresholds used, the number of pixels changed and any warnings.

    Raises:
        InvalidInputError: bad parameter, unreadable input, non-integer band, missing CRS,
            output path equal to the input or in a missing folder.
        CancelledError: `is_cancelled` returned True; no output or temporary file is left.
        RasterClusteringError: GDAL failed to read or write (e.g. the disk is full).
    """
    MIN_REGION_AREA.validate(min_area_m2)
    CONNECTIVITY.validate(connectivity)
    input_path, output_path = _checked_paths(input_path, output_path)
    run = _Run(progress, is_cancelled)
    run.raise_if_cancelled()
    try:
        report = _sieve_file(
            input_path, output_path, min_area_m2=float(min_area_m2),
            connectivity=int(connectivity), band=band, run=run,
        )
    except BaseException as error:
        # The traceback's frames hold GDAL datasets: release them now, so that the input is
        # not kept open (locked on Windows) for as long as someone keeps the exception.
        traceback.clear_frames(error.__traceback__)
        raise
    run.report(1.0)
    return report


def _sieve_file(
    input_path: str, output_path: str, *, min_area_m2: float, connectivity: int, band: int,
    run: _Run,
) -> SieveReport:
    """`sieve_raster` after its parameters are checked."""
    with _GdalMessages() as messages:
        src_ds = _open_raster(input_path, messages)
        src_band = integer_band(src_ds, band, input_path)
        _check_classes_fit_old_gdal(src_band, input_path)
        row_areas_m2 = pixel_areas_m2(
            src_ds.GetGeoTransform(), src_ds.GetProjection(), n_rows=src_ds.RasterYSize
        )
        smallest_m2, largest_m2 = float(row_areas_m2.min()), float(row_areas_m2.max())
        fewest = min_area_pixels(min_area_m2, largest_m2)
        most = min_area_pixels(min_area_m2, smallest_m2)
        warnings = _threshold_warnings(
            min_area_m2, smallest_m2, most, float(row_areas_m2.sum()) * src_ds.RasterXSize
        )
        files = _StagedFiles(output_path, src_ds, src_band, messages)
        try:
            with run_scope() as scope:
                src = ClassStrips.of(input_path, band, src_band, scope)
                if most <= 1:
                    result_path = files.create()
                    _copy_band(src, files.band(result_path), run, 0.0, 0.9)
                else:
                    result_path = _sieve_stages(
                        src, src_band, files, row_areas_m2, min_area_m2=min_area_m2,
                        pixel_threshold=(fewest, most), connectivity=connectivity, run=run,
                        messages=messages,
                    )
            # Reads back the file being written and repairs it in place: on this side.
            changed_pixels = _finish_output(src_band, files, result_path, run, 0.9, 1.0)
            files.publish(result_path)
        except BaseException as error:
            # The traceback's frames hold datasets: release them so GDAL closes the files
            # (Windows cannot delete an open file) before they are deleted.
            traceback.clear_frames(error.__traceback__)
            files.remove_all()
            raise
    return SieveReport(
        min_area_m2=min_area_m2,
        connectivity=connectivity,
        pixel_threshold=(fewest, most),
        pixel_area_m2=(smallest_m2, largest_m2),
        changed_pixels=changed_pixels,
        warnings=tuple(warnings),
    )


def _sieve_stages(
    src: ClassStrips, src_band, files: _StagedFiles, row_areas_m2, *, min_area_m2,
    pixel_threshold, connectivity, run: _Run, messages: _GdalMessages,
) -> str:
    """GDAL's sieve, then the exact step where GDAL cannot finish; returns the result's path.

    Constant pixel area: GDAL passes until stable; the exact step runs only if GDAL left small
    regions it could not merge (or did not say). Varying pixel area: one GDAL pass removes the
    regions too small at any latitude, then the exact step compares true areas.
    """
    fewest, most = pixel_threshold
    stage_path, stage = None, src
    if fewest > 1:
        constant_area = fewest == most
        stage_path, finished = _sieve_with_gdal(
            src_band, files, threshold=fewest, connectivity=connectivity,
            until_stable=constant_area, run=run, start=0.0, end=0.5, messages=messages,
        )
        if finished and constant_area:
            return stage_path
        # The jobs open the stage by its path: it must be complete on disk, so closed.
        files.close(stage_path)
        stage = replace(src, classes=stage_path, classes_band=1, scope=new_scope())
    # The jobs read the input through datasets of their own: drop what this one holds in GDAL's
    # block cache, so that the input is not cached twice.
    src_band.FlushCache()
    try:
        result_path = _merge_by_region_graph(
            stage, files, row_areas_m2, width=src_band.XSize, min_area_m2=min_area_m2,
            connectivity=connectivity, run=run, start=0.5, end=0.9,
        )
    finally:
        # Closed by the jobs before the stage file is deleted (Windows cannot delete an open file).
        release(stage.scope)
        current_executor().release(stage.scope)
    if stage_path is not None:
        files.discard(stage_path)
    return result_path


def _checked_paths(input_path, output_path) -> tuple[str, str]:
    """Both paths as strings; refuses an output equal to the input or in a missing folder."""
    input_path, output_path = os.fspath(input_path), os.fspath(output_path)
    if same_file(input_path, output_path):
        raise InvalidInputError(f"The output '{output_path}' is one of the inputs; choose "
                                "another file name (the sieve never overwrites its input).")
    folder = os.path.dirname(os.path.abspath(output_path))
    if not os.path.isdir(folder):
        raise InvalidInputError(
            f"the output folder {folder} does not exist; create it or choose another output file"
        )
    return input_path, output_path


def _threshold_warnings(
    min_area_m2: float, smallest_pixel_m2: float, most_pixels: int, raster_area_m2: float
) -> list[str]:
    """Warnings about a MIN_AREA that makes the sieve do nothing."""
    if most_pixels <= 1:
        return [
            f"MIN_AREA ({min_area_m2:g} m²) is not larger than one pixel "
            f"({smallest_pixel_m2:.6g} m²): nothing to sieve, the input is passed through "
            "unchanged"
        ]
    if min_area_m2 > raster_area_m2 * (1.0 + AREA_RTOL):
        return [
            f"MIN_AREA ({min_area_m2:g} m²) exceeds the whole raster's area "
            f"({raster_area_m2:.6g} m²): every region is smaller than it, so each patch of "
            "touching valid pixels becomes a single class (that of the region that absorbs the "
            "others); choose a smaller MIN_AREA to keep several zones"
        ]
    return []


class _Run:
    """Progress and cancellation of one run, shared by the GDAL callbacks and the numpy loops."""

    def __init__(self, progress, is_cancelled):
        self._progress = progress
        self._is_cancelled = is_cancelled

    def report(self, fraction: float) -> None:
        if self._progress is not None:
            self._progress(min(max(fraction, 0.0), 1.0))

    def raise_if_cancelled(self) -> None:
        if self._is_cancelled is not None and self._is_cancelled():
            raise CancelledError("the sieve was cancelled; no output was written")

    def steps(self, start: float, end: float) -> Progress:
        """Progress and cancellation of the block jobs covering [start, end] of the run."""
        return Progress(lambda fraction: self.report(start + (end - start) * fraction),
                        self._is_cancelled)

    def gdal_callback(self, start: float, end: float):
        """A GDAL progress callback covering [start, end] that returns 0 (stop) when cancelled."""

        def callback(complete, _message, _data):
            self.report(start + (end - start) * complete)
            cancelled = self._is_cancelled is not None and self._is_cancelled()
            return 0 if cancelled else 1

        return callback


class _GdalMessages:
    """GDAL's errors and warnings during a run (for our messages) and its sieve's statistics.

    Works whether or not another component turned GDAL exceptions on: return values are checked.
    """

    def __init__(self):
        self.messages: list[str] = []
        self.sieve_statistics: tuple[int, int, int] | None = None

    def __enter__(self) -> _GdalMessages:
        gdal.PushErrorHandler(self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        gdal.PopErrorHandler()

    def _handle(self, error_class, _error_number, message) -> None:
        if error_class in (gdal.CE_Warning, gdal.CE_Failure, gdal.CE_Fatal):
            self.messages.append(str(message))
        elif error_class == gdal.CE_Debug:
            found = _SIEVE_STATISTICS.search(str(message))
            if found:
                self.sieve_statistics = tuple(int(number) for number in found.groups())

    def last(self, fallback: str) -> str:
        return self.messages[-1] if self.messages else fallback


def _open_raster(path: str, messages: _GdalMessages) -> gdal.Dataset:
    try:
        dataset = gdal.Open(path)
    except RuntimeError as error:  # when another component turned GDAL exceptions on
        dataset = None
        messages.messages.append(str(error))
    if dataset is None:
        raise InvalidInputError(
            f"cannot open {path} as a raster ({messages.last('unknown GDAL error')}); "
            "check that the file exists and that GDAL can read it"
        )
    return dataset


def integer_band_problem(dataset: gdal.Dataset, band, name: str, *,
                         needed_by: str = "a sieve needs") -> str | None:
    """Why band `band` (1-based) of `dataset` (called `name`) holds no classes, or None.

    Args:
        needed_by: what needs the classes, as the message's subject ("zone polygons need").
    """
    count = dataset.RasterCount
    if isinstance(band, bool) or not isinstance(band, (int, np.integer)) or not 1 <= band <= count:
        return (f"BAND {band!r} does not exist: '{name}' has {count} band(s); choose a band "
                f"number from 1 to {count}.")
    data_type = dataset.GetRasterBand(int(band)).DataType
    if data_type not in _INTEGER_TYPES:
        return (f"Band {band} of '{name}' holds {gdal.GetDataTypeName(data_type)} values, not "
                f"integer classes: {needed_by} a classified raster "
                f"({', '.join(_INTEGER_TYPES.values())}). Classify it first (e.g. Raster k-means "
                "clustering), or convert it with Raster ▸ Conversion ▸ Translate to an integer "
                "type.")
    return None


def integer_band(dataset: gdal.Dataset, band: int, path: str, *,
                 needed_by: str = "a sieve needs") -> gdal.Band:
    """Band `band` (1-based) of `dataset`; InvalidInputError if absent or not integer
    (`integer_band_problem`)."""
    problem = integer_band_problem(dataset, band, path, needed_by=needed_by)
    if problem:
        raise InvalidInputError(problem)
    return dataset.GetRasterBand(int(band))


def _check_classes_fit_old_gdal(band: gdal.Band, path: str) -> None:
    """Older GDAL sieves read pixels as Int32 (3.6 reads Int64): big UInt32 classes would clip."""
    if band.DataType != gdal.GDT_UInt32 or int(gdal.VersionInfo()) >= 3060000:
        return
    largest = band.ComputeRasterMinMax(False)[1]
    if largest > _GDAL_MAX_THRESHOLD:
        raise InvalidInputError(
            f"{path} holds class {largest:.0f}, above 2147483647, which GDAL "
            f"{gdal.__version__} cannot sieve; renumber the classes (e.g. with the Raster "
            "Calculator) or use QGIS with GDAL 3.6 or newer"
        )


def _validity_mask(band: gdal.Band) -> gdal.Band | None:
    """The band's validity mask, or None when every pixel is valid (GDAL then skips reading it)."""
    return None if band.GetMaskFlags() & gdal.GMF_ALL_VALID else band.GetMaskBand()


def _read_strip(band: gdal.Band, first_row: int, n_rows: int) -> np.ndarray:
    data = band.ReadAsArray(0, first_row, band.XSize, n_rows)
    if data is None:
        raise RasterClusteringError(
            f"GDAL could not read rows {first_row}-{first_row + n_rows - 1}; "
            "check that the raster file is complete and readable"
        )
    return data


def _write_strip(band: gdal.Band, data: np.ndarray, first_row: int) -> None:
    if band.WriteArray(data, 0, first_row) != gdal.CE_None:
        raise RasterClusteringError(
            f"GDAL could not write rows starting at {first_row}; "
            "check free disk space and write permission in the output folder"
        )


class _StagedFiles:
    """Temporary GeoTIFFs beside the output, shaped like the input band; one becomes the output.

    This object holds the only reference to each open dataset, so that closing one (which GDAL
    does when its last reference goes) happens exactly when it is discarded or published.
    """

    def __init__(self, output_path: str, src_ds, src_band, messages: _GdalMessages):
        self._output_path = output_path
        self._src_ds = src_ds
        self._src_band = src_band
        self._messages = messages
        # Every temporary file, with its dataset while it is open for writing (None once closed).
        self._open: dict[str, gdal.Dataset | None] = {}

    def create(self) -> str:
        """A new GeoTIFF with the input's type, grid, CRS and band metadata; returns its path."""
        path = f"{self._output_path}.{uuid.uuid4().hex[:8]}.partial.tif"
        src_ds, src_band = self._src_ds, self._src_band
        driver = gdal.GetDriverByName("GTiff")
        try:
            dataset = driver.Create(
                path, src_ds.RasterXSize, src_ds.RasterYSize, 1, src_band.DataType,
                _CREATION_OPTIONS,
            )
        except RuntimeError as error:
            dataset = None
            self._messages.messages.append(str(error))
        if dataset is None:
            self._remove(path)
            raise RasterClusteringError(
                f"cannot create {path} ({self._messages.last('unknown GDAL error')}); "
                "check write permission and free space in the output folder"
            )
        self._open[path] = dataset
        dataset.SetGeoTransform(src_ds.GetGeoTransform())
        dataset.SetProjection(src_ds.GetProjection())
        band = dataset.GetRasterBand(1)
        nodata = src_band.GetNoDataValue()
        if nodata is not None:
            band.SetNoDataValue(nodata)
        if src_band.GetDescription():
            band.SetDescription(src_band.GetDescription())
        if src_band.GetCategoryNames():
            band.SetCategoryNames(src_band.GetCategoryNames())
        if src_band.GetColorTable() is not None and src_band.DataType in _NATIVE_PALETTE_TYPES:
            band.SetColorTable(src_band.GetColorTable())
        return path

    def dataset(self, path: str) -> gdal.Dataset:
        return self._open[path]

    def band(self, path: str) -> gdal.Band:
        return self._open[path].GetRasterBand(1)

    def close(self, path: str) -> None:
        """Close a file that is written (others may now read it); it stays to be removed."""
        self._open[path] = None

    def discard(self, path: str) -> None:
        """Close and delete one temporary file."""
        self._open.pop(path, None)
        self._remove(path)

    def remove_all(self) -> None:
        """Close and delete every temporary file (after an error or a cancellation)."""
        for path in list(self._open):
            self.discard(path)

    def publish(self, path: str) -> None:
        """Close the file at `path`, add what GeoTIFF cannot hold inside, make it the output."""
        for other in [p for p in self._open if p != path]:
            self.discard(other)
        self._open[path].FlushCache()
        del self._open[path]  # the last reference: GDAL closes the file and writes its .aux.xml
        self._attach_palette(path)
        try:
            os.replace(path, self._output_path)
            for suffix in _SIDECAR_SUFFIXES:
                if os.path.exists(path + suffix):
                    os.replace(path + suffix, self._output_path + suffix)
                elif os.path.exists(self._output_path + suffix):
                    os.remove(self._output_path + suffix)  # stale, from an older output
        except OSError as error:
            self._remove(path)
            raise RasterClusteringError(
                f"cannot replace {self._output_path} ({error}); close it in other programs "
                "(e.g. remove the layer from QGIS) or choose another output file"
            ) from error

    def _attach_palette(self, path: str) -> None:
        """Colour table of a band type GeoTIFF has no palette for: stored in the .aux.xml."""
        colours = self._src_band.GetColorTable()
        if colours is None or self._src_band.DataType in _NATIVE_PALETTE_TYPES:
            return
        dataset = gdal.Open(path)  # read-only: GDAL keeps the colour table in the .aux.xml
        if dataset is not None:
            dataset.GetRasterBand(1).SetColorTable(colours)
            dataset = None

    @staticmethod
    def _remove(path: str) -> None:
        for name in (path, *(path + suffix for suffix in _SIDECAR_SUFFIXES)):
            if os.path.exists(name):
                os.remove(name)


def _run_gdal_sieve(
    src_band, mask_band, dst_band, *, threshold, connectivity, run, start, end, messages
) -> tuple[int, int, int] | None:
    """One `gdal.SieveFilter` pass from `src_band` into `dst_band`.

    Returns:
        GDAL's (small, isolated, unmergeable) polygon counts of the pass, None if not reported.
    """
    messages.sieve_statistics = None
    previous_debug = gdal.GetThreadLocalConfigOption("CPL_DEBUG", None)
    gdal.SetThreadLocalConfigOption("CPL_DEBUG", "ON")  # for the statistics line
    try:
        status = gdal.SieveFilter(
            src_band, mask_band, dst_band, min(threshold, _GDAL_MAX_THRESHOLD), connectivity,
            callback=run.gdal_callback(start, end),
        )
    except RuntimeError as error:  # when another component turned GDAL exceptions on
        status = str(error)
    finally:
        gdal.SetThreadLocalConfigOption("CPL_DEBUG", previous_debug)
    run.raise_if_cancelled()
    if status != 0:
        raise RasterClusteringError(
            f"GDAL's sieve failed ({messages.last(str(status))}); check that the input is "
            "readable and that the output folder has free space"
        )
    return messages.sieve_statistics


def _sieve_with_gdal(
    src_band, files: _StagedFiles, *, threshold, connectivity, until_stable, run, start, end,
    messages,
) -> tuple[str, bool]:
    """GDAL sieve passes, each into a new file: one, or (`until_stable`) until GDAL is done.

    GDAL gives up on a chain of small regions that leads back to itself; the next pass may merge
    it, once its neighbours have grown. Passes stop when GDAL's debug statistics say that every
    small region with a neighbour was merged (finished), or that none was (stuck), or when GDAL
    does not report them (then the exact step must finish the work).

    Returns:
        The path of the last pass's file, and whether every small region that has a neighbour
        was merged.
    """
    mask_band = _validity_mask(src_band)
    previous_path, previous_band = None, src_band
    max_passes = _MAX_GDAL_PASSES if until_stable else 1
    finished = False
    for pass_number in range(1, max_passes + 1):
        # Each pass gets half of the progress still left: the number of passes is not known.
        pass_start = start + (end - start) * (1.0 - 0.5 ** (pass_number - 1))
        pass_end = start + (end - start) * (1.0 - 0.5**pass_number)
        path = files.create()
        band = files.band(path)
        statistics = _run_gdal_sieve(
            previous_band, mask_band, band, threshold=threshold, connectivity=connectivity,
            run=run, start=pass_start, end=pass_end, messages=messages,
        )
        previous_band = band
        if previous_path is not None:
            files.discard(previous_path)
        previous_path = path
        run.report(pass_end)
        if statistics is None:
            break
        small, isolated, unmergeable = statistics
        finished = unmergeable == 0
        if finished or small - isolated - unmergeable == 0:
            break
    return previous_path, finished


def read_class_strip(classes: ClassStrips, strip: tuple[int, int]) -> np.ndarray:
    """Block job: the classes of strip (first row, row count)."""
    return opened(classes).read(*strip)[0]


def _copy_band(classes: ClassStrips, dst_band: gdal.Band, run: _Run, start, end) -> None:
    strips = list(row_strips(dst_band.YSize, _STRIP_ROWS))
    copied = current_executor().map_blocks(read_class_strip, classes, strips,
                                           steps=run.steps(start, end))
    for (first, _), strip in zip(strips, copied, strict=True):
        _write_strip(dst_band, strip, first)


def _finish_output(
    src_band: gdal.Band, files: _StagedFiles, result_path: str, run: _Run, start, end
) -> int:
    """Restore any input nodata pixel the sieve altered, copy an internal mask, count changes.

    Returns:
        The number of valid pixels whose value differs from the input.
    """
    result_band = files.band(result_path)
    mask_band = _validity_mask(src_band)
    result_mask = None
    if mask_band is not None and not src_band.GetMaskFlags() & gdal.GMF_NODATA:
        result_mask = _create_internal_mask(files.dataset(result_path))
    changed = 0
    for first, n_rows in row_strips(src_band.YSize, _STRIP_ROWS):
        run.raise_if_cancelled()
        original = _read_strip(src_band, first, n_rows)
        result = _read_strip(result_band, first, n_rows)
        differs = original != result
        if mask_band is not None:
            valid = _read_strip(mask_band, first, n_rows) != 0
            altered_nodata = differs & ~valid
            if altered_nodata.any():
                result[altered_nodata] = original[altered_nodata]
                _write_strip(result_band, result, first)
            differs &= valid
            if result_mask is not None:
                _write_strip(result_mask, np.where(valid, 255, 0).astype(np.uint8), first)
        changed += int(np.count_nonzero(differs))
        run.report(start + (end - start) * (first + n_rows) / src_band.YSize)
    return changed


def _create_internal_mask(dataset: gdal.Dataset) -> gdal.Band:
    """A per-dataset mask stored inside the GeoTIFF (GDAL < 3.9 would write a .msk beside it)."""
    previous = gdal.GetThreadLocalConfigOption("GDAL_TIFF_INTERNAL_MASK", None)
    gdal.SetThreadLocalConfigOption("GDAL_TIFF_INTERNAL_MASK", "YES")
    try:
        status = dataset.CreateMaskBand(gdal.GMF_PER_DATASET)
    finally:
        gdal.SetThreadLocalConfigOption("GDAL_TIFF_INTERNAL_MASK", previous)
    if status != gdal.CE_None:
        raise RasterClusteringError(
            "cannot add the input's validity mask to the output; check free disk space"
        )
    return dataset.GetRasterBand(1).GetMaskBand()


@dataclass(frozen=True)
class ClassStrips:
    """Strips of a classified raster's band, with the validity of another raster's band (the
    sieve's input), as the exact step's jobs open them (`region_merge.Strips`).

    Attributes:
        classes, classes_band: the raster (a GDAL source) and band holding the classes.
        validity, validity_band: the raster and band whose validity mask tells nodata, or None
            when every pixel is valid.
        scope: the run's scope (`engine.new_scope`).
    """

    classes: str
    classes_band: int
    validity: str | None
    validity_band: int
    scope: str

    @classmethod
    def of(cls, path: str, band: int, raster_band: gdal.Band, scope: str) -> ClassStrips:
        """Band `band` of `path` (opened here as `raster_band`) with its own validity."""
        has_mask = _validity_mask(raster_band) is not None
        return cls(path, band, path if has_mask else None, band, scope)

    def open(self) -> _ClassStripReader:
        return _ClassStripReader(self)


class _ClassStripReader:
    def __init__(self, spec: ClassStrips):
        self._datasets = [_opened_for_reading(spec.classes)]
        self._classes = self._datasets[0].GetRasterBand(spec.classes_band)
        self._mask = None
        if spec.validity is not None:
            self._datasets.append(_opened_for_reading(spec.validity))
            self._mask = _validity_mask(self._datasets[1].GetRasterBand(spec.validity_band))

    def read(self, first: int, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
        classes = _read_strip(self._classes, first, n_rows)
        if self._mask is None:
            return classes, np.ones(classes.shape, dtype=bool)
        return classes, _read_strip(self._mask, first, n_rows) != 0


def _opened_for_reading(path: str) -> gdal.Dataset:
    try:
        dataset = gdal.Open(path)
    except RuntimeError:  # when another component turned GDAL exceptions on
        dataset = None
    if dataset is None:
        raise RasterClusteringError(f"cannot open {path} ({gdal.GetLastErrorMsg()}); check that "
                                    "the file exists and that GDAL can read it")
    return dataset


def _merge_by_region_graph(
    classes: ClassStrips, files: _StagedFiles, row_areas_m2: np.ndarray, *, width: int,
    min_area_m2, connectivity, run: _Run, start, end,
) -> str:
    """The exact step (`region_merge`) from `classes` into a new file; returns its path."""
    result_path = files.create()
    result_band = files.band(result_path)
    merge_small_regions(
        classes, lambda strip, first: _write_strip(result_band, strip, first),
        row_areas_m2=row_areas_m2, min_area_m2=min_area_m2, connectivity=connectivity,
        strip_rows=max(1, min(_STRIP_ROWS, _EXACT_STRIP_PIXELS // width)),
        steps=run.steps(start, end),
    )
    return result_path
