"""Opening rasters, aligning them onto one grid, walking them in blocks, writing outputs safely."""

from __future__ import annotations

import math
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal

from ..errors import InvalidInputError

#: Target number of pixels per block read: large enough for numpy to be efficient,
#: small enough to keep memory bounded whatever the raster size.
BLOCK_TARGET_PIXELS = 1 << 22

# DEFLATE level 1: about 4x faster to write than the default level 6, for files ~25% larger.
GEOTIFF_CREATION_OPTIONS = ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=DEFLATE",
                            "ZLEVEL=1", "BIGTIFF=IF_SAFER"]


@dataclass(frozen=True)
class Window:
    """A rectangle of pixels: column/row offset and size."""

    col_off: int
    row_off: int
    width: int
    height: int

    @property
    def n_pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class RasterGrid:
    """The georeferencing of a raster: size, affine geotransform (GDAL order) and CRS as WKT."""

    width: int
    height: int
    geotransform: tuple[float, ...]
    crs_wkt: str

    @classmethod
    def of(cls, dataset: gdal.Dataset) -> RasterGrid:
        return cls(dataset.RasterXSize, dataset.RasterYSize, tuple(dataset.GetGeoTransform()),
                   dataset.GetProjection())

    def sub_grid(self, window: Window) -> RasterGrid:
        """The grid of `window`, a rectangle of this grid's pixels."""
        x0, dx, rx, y0, ry, dy = self.geotransform
        origin_x = x0 + window.col_off * dx + window.row_off * rx
        origin_y = y0 + window.col_off * ry + window.row_off * dy
        return RasterGrid(window.width, window.height, (origin_x, dx, rx, origin_y, ry, dy),
                          self.crs_wkt)

    @property
    def full_window(self) -> Window:
        return Window(0, 0, self.width, self.height)

    def same_as(self, other: RasterGrid, *, tolerance: float = 1e-6) -> bool:
        """True when both grids put the same pixels in the same places."""
        if (self.width, self.height) != (other.width, other.height):
            return False
        pixel = max(abs(self.geotransform[1]), abs(self.geotransform[5]))
        pairs = zip(self.geotransform, other.geotransform)
        if any(abs(a - b) > tolerance * pixel for a, b in pairs):
            return False
        return same_crs(self.crs_wkt, other.crs_wkt)


def same_crs(wkt_a: str, wkt_b: str) -> bool:
    from osgeo import osr

    if wkt_a == wkt_b:
        return True
    if not wkt_a or not wkt_b:
        return False
    a, b = osr.SpatialReference(), osr.SpatialReference()
    a.ImportFromWkt(wkt_a)
    b.ImportFromWkt(wkt_b)
    return bool(a.IsSame(b))


def open_raster(path: str | os.PathLike, *, what: str = "raster") -> gdal.Dataset:
    """Open a raster read-only.

    Raises:
        InvalidInputError: GDAL cannot open it.
    """
    dataset = gdal.OpenEx(str(path), gdal.OF_RASTER | gdal.OF_READONLY)
    if dataset is None:
        raise InvalidInputError(
            f"GDAL cannot read the {what} '{path}': {gdal.GetLastErrorMsg() or 'unknown format'}. "
            "Use a file-based raster (GeoTIFF, JPEG2000, VRT, …).")
    if dataset.RasterCount == 0:
        raise InvalidInputError(f"The {what} '{path}' has no raster bands.")
    return dataset


@dataclass(frozen=True)
class RasterFile:
    """A raster a block job opens (read-only) by its GDAL source: a path or a GDAL URI.

    Attributes:
        source: what GDAL opens.
        scope: the run's scope (`engine.new_scope`).
        what: what the raster is, for the message when it cannot be opened.
    """

    source: str
    scope: str
    what: str = "raster"

    def open(self) -> OpenedRaster:
        return OpenedRaster(open_raster(self.source, what=self.what), self.source)


class OpenedRaster:
    """An open raster read by windows of its first band."""

    def __init__(self, dataset: gdal.Dataset, source: str):
        self._dataset = dataset  # keeps the band's dataset alive
        self._band = dataset.GetRasterBand(1)
        self._source = source

    def read(self, window: Window) -> np.ndarray:
        """The values of `window` of the first band.

        Raises:
            InvalidInputError: GDAL cannot read them.
        """
        values = self._band.ReadAsArray(window.col_off, window.row_off, window.width,
                                        window.height)
        if values is None:
            raise InvalidInputError(f"Reading '{self._source}' failed: {gdal.GetLastErrorMsg()}")
        return values


def same_file(path_a: str | os.PathLike, path_b: str | os.PathLike) -> bool:
    """Whether two paths name one file (links and case-insensitive file systems included)."""
    a, b = os.fspath(path_a), os.fspath(path_b)
    if os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b)):
        return True
    return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)


def output_over_input_problem(output_path: str | os.PathLike, sources) -> str | None:
    """The message refusing an output that is one of the inputs (GDAL sources), or None.

    Writing onto an input would destroy it while it is being read.
    """
    for source in sources:
        if os.path.exists(source) and same_file(source, output_path):
            return f"The output '{output_path}' is one of the inputs; choose another file name."
    return None


def refuse_output_over_inputs(output_path: str | os.PathLike, sources) -> None:
    """InvalidInputError when the output is one of the inputs (`output_over_input_problem`)."""
    problem = output_over_input_problem(output_path, sources)
    if problem:
        raise InvalidInputError(problem)


def check_north_up(grid: RasterGrid, path: str) -> None:
    """Refuse rotated grids, which the window arithmetic here does not handle."""
    if grid.geotransform[2] != 0 or grid.geotransform[4] != 0:
        raise InvalidInputError(
            f"'{path}' has a rotated geotransform; warp it to a north-up grid first "
            "(Raster ▸ Projections ▸ Warp).")


WARP_RESAMPLINGS = ("near", "bilinear", "cubic", "average")
"""Resampling methods warp_onto_grid accepts (GDAL names)."""


def warp_onto_grid(dataset: gdal.Dataset, grid: RasterGrid, *, float64: bool,
                   resampling: str = "near") -> gdal.Dataset:
    """A virtual (VRT) copy of `dataset` resampled onto `grid`, by default with nearest neighbour.

    Nearest neighbour keeps every value a real measurement (no mixing across field edges or
    with nodata). Pixels outside the source or nodata in it become NaN.

    Args:
        dataset: the source; its own nodata and CRS are honoured.
        grid: the target grid (CRS included: the source is reprojected when they differ).
        float64: Float64 output instead of Float32.
        resampling: one of WARP_RESAMPLINGS. "bilinear"/"cubic" interpolate (GDAL leaves nodata
            source pixels out of the kernel); "average" is the mean of the source pixels in each
            target pixel (for coarser targets).

    Raises:
        InvalidInputError: an unknown resampling, or GDAL cannot warp the source.
    """
    if resampling not in WARP_RESAMPLINGS:
        raise InvalidInputError(f"Unknown resampling '{resampling}': use one of "
                                f"{', '.join(WARP_RESAMPLINGS)}.")
    x0, dx, _, y0, _, dy = grid.geotransform
    bounds = (x0, y0 + grid.height * dy, x0 + grid.width * dx, y0)
    options = gdal.WarpOptions(
        format="VRT", outputBounds=(min(bounds[0], bounds[2]), min(bounds[1], bounds[3]),
                                    max(bounds[0], bounds[2]), max(bounds[1], bounds[3])),
        width=grid.width, height=grid.height, dstSRS=grid.crs_wkt or None,
        resampleAlg=resampling, outputType=gdal.GDT_Float64 if float64 else gdal.GDT_Float32,
        dstNodata=float("nan"), multithread=False)
    warped = gdal.Warp("", dataset, options=options)
    if warped is None:
        raise InvalidInputError(
            f"Cannot align '{dataset.GetDescription()}' onto the first layer's grid: "
            f"{gdal.GetLastErrorMsg()}")
    return warped


class BandValidity:
    """Which pixels of a band hold data: not its nodata value, not masked by an alpha band or a
    per-dataset mask. (Non-finite values are for the reader to judge.)"""

    def __init__(self, band: gdal.Band):
        self.band = band
        nodata = band.GetNoDataValue()
        self.nodata = None if nodata is None or math.isnan(nodata) else nodata
        # A nodata-only mask is the value test above; any other mask has to be read.
        self.reads_mask = band.GetMaskFlags() not in (gdal.GMF_ALL_VALID, gdal.GMF_NODATA)

    def invalid(self, values: np.ndarray, col_off: int, row_off: int) -> np.ndarray | None:
        """Bool array, True where `values` (read at col_off, row_off) hold no data; None when
        every pixel holds data."""
        invalid = None
        if self.nodata is not None:
            # A Python float compares in the array's own precision (float32 stays float32).
            invalid = values == self.nodata
        if self.reads_mask:
            height, width = values.shape
            masked = self.band.GetMaskBand().ReadAsArray(col_off, row_off, width, height) == 0
            invalid = masked if invalid is None else invalid | masked
        return invalid


def needs_float64(band: gdal.Band) -> bool:
    """Whether a band's values do not all fit exactly in float32."""
    return band.DataType in (gdal.GDT_Int32, gdal.GDT_UInt32, gdal.GDT_Float64, gdal.GDT_CFloat64)


def rows_per_block(*, width: int, n_bands: int, block_height: int) -> int:
    """Rows per full-width block: a multiple of the file's block height near the pixel target."""
    rows = max(1, BLOCK_TARGET_PIXELS // max(1, width * n_bands))
    return max(block_height, rows // block_height * block_height)


def iter_windows(window: Window, rows: int) -> Iterator[Window]:
    """Horizontal strips of `rows` rows across `window`, top to bottom."""
    for row in range(window.row_off, window.row_off + window.height, rows):
        height = min(rows, window.row_off + window.height - row)
        yield Window(window.col_off, row, window.width, height)


#: The least block cache a streamed run is given: GDAL's own sieve and writers read and write
#: rows of tiles through it.
MIN_BLOCK_CACHE_BYTES = 64 << 20
_cache_lock = threading.Lock()
_cache_wishes: list[int] = []
_cache_original: list[int] = []


@contextmanager
def gdal_cache_for(data_bytes: int, strip_bytes: int) -> Iterator[None]:
    """GDAL's block cache sized to a streamed run over `data_bytes` of decoded rasters handled
    in strips of `strip_bytes`, and restored afterwards.

    When the data fits in the cache, the cache is cut to the data and a few strips: later
    passes over the raster find its blocks decoded. When it does not, passes that read it in
    order never find a block still cached, so the cache would only hold memory (5 % of RAM by
    default): it is cut to a few strips. Never below MIN_BLOCK_CACHE_BYTES, never above what it
    was. Runs nested or in other threads at the same time get the largest size any needs.
    """
    with _cache_lock:
        if not _cache_wishes:
            _cache_original[:] = [gdal.GetCacheMax()]
        original = _cache_original[0]
        strips = 4 * strip_bytes
        need = data_bytes + strips if data_bytes + strips <= original else strips
        wish = min(original, max(MIN_BLOCK_CACHE_BYTES, need))
        _cache_wishes.append(wish)
        gdal.SetCacheMax(max(_cache_wishes))
    try:
        yield
    finally:
        with _cache_lock:
            _cache_wishes.remove(wish)
            gdal.SetCacheMax(max(_cache_wishes) if _cache_wishes else original)


def temporary_path_for(path: str | os.PathLike) -> Path:
    """A hidden temporary name beside `path`, so the final rename stays on one file system."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.partial{path.suffix or '.tif'}")


SIDECAR_SUFFIXES = (".aux.xml", ".ovr", ".msk")


def remove_raster_files(path: str | os.PathLike) -> None:
    """Delete a raster file and its GDAL sidecars, ignoring those that do not exist."""
    for suffix in ("",) + SIDECAR_SUFFIXES:
        try:
            os.remove(f"{path}{suffix}")
        except FileNotFoundError:
            pass


def check_output_folder(path: Path) -> None:
    """Refuse an output whose folder is missing or read-only (InvalidInputError)."""
    if not path.parent.is_dir():
        raise InvalidInputError(f"The output folder '{path.parent}' does not exist.")
    if not os.access(path.parent, os.W_OK):
        raise InvalidInputError(
            f"The output folder '{path.parent}' is not writable; choose another output path.")


@contextmanager
def atomic_raster_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; rename it (and its sidecars) to `path` only on success.

    On any exception, cancellation included, the temporary files are removed and `path`
    is left as it was.
    """
    final = Path(path)
    check_output_folder(final)
    temporary = temporary_path_for(final)
    try:
        yield temporary
    except BaseException:
        remove_raster_files(temporary)
        raise
    remove_raster_files(final)
    for suffix in ("",) + SIDECAR_SUFFIXES:
        if os.path.exists(f"{temporary}{suffix}"):
            os.replace(f"{temporary}{suffix}", f"{final}{suffix}")


def create_geotiff(path: str | os.PathLike, grid: RasterGrid, *, data_type: int,
                   band_count: int = 1, nodata: float | None = None,
                   interleave_bands: bool = False) -> gdal.Dataset:
    """Create a tiled, compressed GeoTIFF on `grid`; `interleave_bands` stores each band's
    tiles apart (INTERLEAVE=BAND), so bands written one after the other need not share tiles.

    Raises:
        InvalidInputError: the file cannot be created.
    """
    driver = gdal.GetDriverByName("GTiff")
    options = GEOTIFF_CREATION_OPTIONS + (["INTERLEAVE=BAND"] if interleave_bands else [])
    dataset = driver.Create(str(path), grid.width, grid.height, band_count, data_type,
                            options=options)
    if dataset is None:
        raise InvalidInputError(f"Cannot create '{path}': {gdal.GetLastErrorMsg()}")
    dataset.SetGeoTransform(grid.geotransform)
    if grid.crs_wkt:
        dataset.SetProjection(grid.crs_wkt)
    if nodata is not None:
        for index in range(1, band_count + 1):
            dataset.GetRasterBand(index).SetNoDataValue(nodata)
    return dataset


def write_block(band: gdal.Band, array: np.ndarray, window: Window, origin: Window) -> None:
    """Write `array` at `window`, expressed in the same pixel space as `origin` (the output's)."""
    error = band.WriteArray(array, window.col_off - origin.col_off, window.row_off - origin.row_off)
    if error != 0:
        raise InvalidInputError(f"Writing to the output failed: {gdal.GetLastErrorMsg()}")


class BandStatistics:
    """Minimum, maximum, mean and standard deviation of the valid values, block by block: float64
    sums within a block (`summary`, which a block job can return), blocks merged in order by Chan
    et al.'s pairwise update (no second pass)."""

    def __init__(self):
        self.count = 0
        self.minimum = math.inf
        self.maximum = -math.inf
        self.mean = 0.0
        self._m2 = 0.0

    @staticmethod
    def summary(valid: np.ndarray) -> tuple[int, float, float, float, float] | None:
        """A block's (count, mean, sum of squared deviations, min, max) of its valid (finite)
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

    def write_to(self, band: gdal.Band) -> None:
        """Record them in the band (GDAL keeps them in the GeoTIFF), so that QGIS need not
        compute a histogram beside the file when it opens it; nothing without a value."""
        if self.count:
            band.SetStatistics(self.minimum, self.maximum, self.mean, self.std)
