"""Synthetic satellite scenes with known true classes, for the demo, tests and benchmarks.

One landscape model (parcels, lake, river, forest, smooth within-field zones) feeds every generator.
Development tooling, not part of the plugin (the packager leaves scripts/ out); it imports the
plugin's core as `raster_clustering`.
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal, ogr, osr
from raster_clustering.core.errors import InvalidInputError
from raster_clustering.core.io.rasters import RasterGrid, atomic_raster_output
from raster_clustering.core.progress import Progress

WATER, BARE_SOIL, CROP, GRASSLAND, FOREST = 1, 2, 3, 4, 5

#: Value of `truth.tif` per class; 0 marks nodata.
TRUE_CLASSES = {WATER: "water", BARE_SOIL: "bare soil", CROP: "crop field",
                GRASSLAND: "grassland", FOREST: "forest"}

#: Band order of `scene.tif` (Sentinel-2 B2, B3, B4, B8, B11, B12).
SCENE_BANDS = ("blue", "green", "red", "nir", "swir1", "swir2")

#: Nodata of every Float32 output.
NODATA = -9999.0

#: Day of year the multi-band scene shows (19 June): every vegetated class is at its green peak.
SCENE_DAY_OF_YEAR = 170

# Every band the model knows; "nir08" is the narrow NIR of Sentinel-2 B8A.
_MODEL_BANDS = ("blue", "green", "red", "nir", "nir08", "swir1", "swir2")

# Top-of-atmosphere-like reflectance per class (rows 1..5; row 0 is never rendered), columns in
# _MODEL_BANDS order. Water: NIR below red and green. Bare soil: NDVI ~0.11, bright SWIR.
# Crop: NDVI ~0.78. Grassland: NDVI ~0.47. Forest: NDVI ~0.8 but darker than crops.
_BASE_REFLECTANCE = np.array([
    (0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000),
    (0.075, 0.060, 0.040, 0.025, 0.022, 0.012, 0.008),
    (0.115, 0.145, 0.210, 0.270, 0.282, 0.360, 0.300),
    (0.045, 0.080, 0.045, 0.360, 0.370, 0.210, 0.100),
    (0.065, 0.095, 0.100, 0.280, 0.288, 0.270, 0.170),
    (0.035, 0.055, 0.030, 0.290, 0.300, 0.130, 0.060),
], dtype=np.float32)

# Change of reflectance per unit of "vigor", the smooth within-field variable: turbidity for water,
# moisture (darker) for soil, biomass (more NIR, less red and SWIR) for vegetation. Kept small
# against the distances between classes so the classes stay separable.
_VIGOR_SENSITIVITY = np.array([
    (0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000),
    (0.004, 0.008, 0.010, 0.006, 0.005, 0.002, 0.001),
    (-0.010, -0.013, -0.017, -0.018, -0.019, -0.028, -0.025),
    (-0.003, 0.004, -0.008, 0.025, 0.026, -0.014, -0.010),
    (-0.003, 0.003, -0.008, 0.020, 0.021, -0.014, -0.011),
    (-0.002, 0.002, -0.003, 0.018, 0.019, -0.008, -0.005),
], dtype=np.float32)

_VIGOR_LIMIT = 2.0
# Per-pixel sensor noise: standard deviation = floor + relative * reflectance.
_NOISE_FLOOR = 0.004
_NOISE_RELATIVE = 0.012
_MIN_REFLECTANCE = 0.001

# Phenology: the fraction of a class's green spectrum in the pixel (the rest is bare soil), as
# (day of year, fraction) knots. Crops green up in May, peak in June and are harvested in July.
_GREENNESS_KNOTS = {
    WATER: ((1, 1.0), (366, 1.0)),
    BARE_SOIL: ((1, 1.0), (366, 1.0)),
    CROP: ((1, 0.0), (100, 0.05), (135, 0.55), (166, 1.0), (192, 1.0), (206, 0.1), (366, 0.0)),
    GRASSLAND: ((1, 0.5), (100, 0.7), (140, 1.0), (200, 1.0), (240, 0.75), (366, 0.5)),
    FOREST: ((1, 0.6), (110, 0.75), (140, 1.0), (270, 1.0), (300, 0.7), (366, 0.6)),
}

_TILE = 256
_GTIFF_FLOAT_OPTIONS = ("TILED=YES", f"BLOCKXSIZE={_TILE}", f"BLOCKYSIZE={_TILE}",
                        "COMPRESS=DEFLATE", "PREDICTOR=3", "BIGTIFF=IF_SAFER")
_GTIFF_INTEGER_OPTIONS = ("TILED=YES", f"BLOCKXSIZE={_TILE}", f"BLOCKYSIZE={_TILE}",
                          "COMPRESS=DEFLATE", "PREDICTOR=2", "BIGTIFF=IF_SAFER")
# Rendering works on chunks of about this many pixels, so memory stays bounded for any width.
_CHUNK_PIXELS = 1 << 18
_PARCEL_PAD = 2
_NEIGHBOURS = tuple((di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1))
_UTM_ORIGIN = (500000.0, 5800000.0)

# Separate random streams so that each product gets its own, reproducible sensor noise.
_NOISE_STREAM_SCENE = 0
_NOISE_STREAM_LARGE = 1000
_NOISE_STREAM_S2 = 2000
_NOISE_STREAM_TIME_SERIES = 3000

_TRUTH_COLOURS = {WATER: (40, 110, 220), BARE_SOIL: (170, 120, 70), CROP: (240, 210, 60),
                  GRASSLAND: (140, 200, 90), FOREST: (20, 100, 40)}

_S2_TILE = "T33UXX"
_S2_DATE = "2021-05-27"
_S2_BANDS_10M = {"B04": "red", "B08": "nir"}
_S2_BANDS_20M = {"B11": "swir1", "B8A": "nir08"}


@dataclass(frozen=True)
class SceneFiles:
    """The files written by `make_scene` and what they hold."""

    scene: Path
    truth: Path
    aoi: Path
    aoi_native: Path
    nir: Path
    ndvi: Path
    bands: tuple[str, ...] = SCENE_BANDS
    nodata: float = NODATA


# --------------------------------------------------------------------------------------------
# Landscape model
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Landscape:
    """A landscape in local metres: u eastwards and v southwards from the top-left corner (x0, y0).

    Parcels are the Voronoi cells of a jittered lattice of seeds (arrays indexed by lattice
    row + pad, column + pad); water and the nodata swath edge are shapes relative to extent_m.
    """

    seed: int
    x0: float
    y0: float
    extent_m: float
    parcel_size_m: float
    seed_u: np.ndarray
    seed_v: np.ndarray
    parcel_class: np.ndarray
    parcel_vigor: np.ndarray
    gradient_u: np.ndarray
    gradient_v: np.ndarray
    noise_octaves: tuple[tuple[float, float, np.ndarray], ...]
    lake_phases: np.ndarray
    river_phases: np.ndarray

    @property
    def parcels_across(self) -> int:
        return self.parcel_class.shape[0] - 2 * _PARCEL_PAD


def _build_landscape(*, seed: int, x0: float, y0: float, extent_m: float,
                     parcels_across: int) -> _Landscape:
    """Draw a landscape: parcel lattice, parcel classes and zones, smooth noise, water shapes."""
    rng = np.random.default_rng((seed, 1))
    parcel_size_m = extent_m / parcels_across
    n_lattice = parcels_across + 2 * _PARCEL_PAD
    cells = np.arange(n_lattice) - _PARCEL_PAD
    # A jitter below 0.3 cell keeps every pixel's nearest seed among its 3x3 neighbour cells.
    jitter = rng.uniform(-0.3, 0.3, (2, n_lattice, n_lattice))
    seed_u = ((cells[None, :] + 0.5 + jitter[0]) * parcel_size_m).astype(np.float32)
    seed_v = ((cells[:, None] + 0.5 + jitter[1]) * parcel_size_m).astype(np.float32)

    parcel_class = rng.choice(np.array([CROP, BARE_SOIL, GRASSLAND], np.uint8),
                              size=(n_lattice, n_lattice), p=(0.4, 0.25, 0.35))
    # Inside the extent, fixed quotas instead of independent draws, so that a small scene
    # still holds every class in plausible proportions.
    inside = slice(_PARCEL_PAD, _PARCEL_PAD + parcels_across)
    n_inside = parcels_across * parcels_across
    n_crop, n_bare = round(0.4 * n_inside), round(0.25 * n_inside)
    quota = np.full(n_inside, GRASSLAND, np.uint8)
    quota[:n_crop] = CROP
    quota[n_crop:n_crop + n_bare] = BARE_SOIL
    parcel_class[inside, inside] = rng.permutation(quota).reshape(parcels_across, parcels_across)
    # One forest block: the parcels whose seeds lie in a disk in the south-west.
    forest_u, forest_v, forest_radius = 0.2 * extent_m, 0.8 * extent_m, 0.17 * extent_m
    in_forest = np.hypot(seed_u - forest_u, seed_v - forest_v) < forest_radius
    parcel_class[in_forest] = FOREST

    parcel_vigor = rng.uniform(-0.8, 0.8, (n_lattice, n_lattice)).astype(np.float32)
    # Management zones: a linear trend across each parcel, +-0.3..0.9 vigor at half a parcel.
    angle = rng.uniform(0.0, 2 * np.pi, (n_lattice, n_lattice))
    slope = rng.uniform(0.3, 0.9, (n_lattice, n_lattice)) / (parcel_size_m / 2)
    gradient_u = (slope * np.cos(angle)).astype(np.float32)
    gradient_v = (slope * np.sin(angle)).astype(np.float32)

    octaves = []
    for spacing_m, weight in ((parcel_size_m / 2, 0.6), (parcel_size_m / 6, 0.3)):
        n_knots = int(math.ceil(extent_m / spacing_m)) + 3
        octaves.append((spacing_m, weight,
                        rng.standard_normal((n_knots, n_knots)).astype(np.float32)))
    return _Landscape(
        seed=seed, x0=x0, y0=y0, extent_m=extent_m, parcel_size_m=parcel_size_m,
        seed_u=seed_u, seed_v=seed_v, parcel_class=parcel_class, parcel_vigor=parcel_vigor,
        gradient_u=gradient_u, gradient_v=gradient_v, noise_octaves=tuple(octaves),
        lake_phases=rng.uniform(0, 2 * np.pi, 3), river_phases=rng.uniform(0, 2 * np.pi, 2))


def _parcel_fields(land: _Landscape, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class (uint8) and vigor (float32), both (len(v), len(u)), of each pixel's nearest seed."""
    size = land.parcel_size_m
    n = land.parcels_across
    lattice_col = np.clip(np.floor(u / size).astype(np.intp), -1, n) + _PARCEL_PAD
    lattice_row = np.clip(np.floor(v / size).astype(np.intp), -1, n) + _PARCEL_PAD
    classes = np.empty((v.size, u.size), np.uint8)
    vigor = np.empty((v.size, u.size), np.float32)
    columns = np.arange(u.size)
    run_starts = np.concatenate(([0], np.flatnonzero(np.diff(lattice_row)) + 1, [v.size]))
    # Pixel rows in one lattice row share their 9 candidate seeds per column, so candidate
    # attributes are 1-D and only the distances are per pixel.
    for start, stop in zip(run_starts[:-1], run_starts[1:]):
        row = lattice_row[start]
        v_run = v[start:stop, None]
        best = np.full((stop - start, u.size), np.inf, np.float32)
        which = np.zeros((stop - start, u.size), np.intp)
        candidate_class = np.empty((len(_NEIGHBOURS), u.size), np.uint8)
        candidate_offset = np.empty((len(_NEIGHBOURS), u.size), np.float32)
        candidate_slope_v = np.empty((len(_NEIGHBOURS), u.size), np.float32)
        for k, (di, dj) in enumerate(_NEIGHBOURS):
            r, c = row + di, lattice_col + dj
            seed_u, seed_v = land.seed_u[r, c], land.seed_v[r, c]
            distance2 = np.square(v_run - seed_v)
            distance2 += np.square(u - seed_u)
            which[distance2 < best] = k
            np.minimum(best, distance2, out=best)
            candidate_class[k] = land.parcel_class[r, c]
            gradient_v = land.gradient_v[r, c]
            candidate_offset[k] = (land.parcel_vigor[r, c] + land.gradient_u[r, c] * (u - seed_u)
                                   - gradient_v * seed_v)
            candidate_slope_v[k] = gradient_v
        flat = which * u.size + columns
        classes[start:stop] = candidate_class.ravel()[flat]
        vigor[start:stop] = candidate_offset.ravel()[flat] + candidate_slope_v.ravel()[flat] * v_run
    return classes, vigor


def _smooth_noise(land: _Landscape, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Low-frequency value noise (float32, (len(v), len(u))), continuous across any grid."""
    total = np.zeros((v.size, u.size), np.float32)
    for spacing_m, weight, knots in land.noise_octaves:
        knot_col, frac_u = _knot_coordinates(u, spacing_m, knots.shape[1])
        knot_row, frac_v = _knot_coordinates(v, spacing_m, knots.shape[0])
        first, last = knot_row.min(), knot_row.max() + 2
        rows = knots[first:last]
        along_u = rows[:, knot_col] * (1 - frac_u) + rows[:, knot_col + 1] * frac_u
        local = knot_row - first
        total += weight * (along_u[local] * (1 - frac_v)[:, None]
                           + along_u[local + 1] * frac_v[:, None])
    return total


def _knot_coordinates(coordinate_m: np.ndarray, spacing_m: float,
                      n_knots: int) -> tuple[np.ndarray, np.ndarray]:
    """Index of the knot before each coordinate and the smoothstep weight of the next knot."""
    position = coordinate_m / spacing_m + 1.0  # knot 0 lies one spacing before the extent
    index = np.clip(np.floor(position).astype(np.intp), 0, n_knots - 2)
    t = np.clip(position - index, 0.0, 1.0).astype(np.float32)
    return index, t * t * (3 - 2 * t)


def _water_mask(land: _Landscape, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean (len(v), len(u)): a lobed lake in the north-west and a river meandering east."""
    extent = land.extent_m
    water = np.zeros((v.size, u.size), bool)
    lake_u, lake_v, lake_radius = 0.25 * extent, 0.32 * extent, 0.15 * extent
    p = land.lake_phases

    def lake_radius_at(theta: np.ndarray) -> np.ndarray:
        return lake_radius * (1 + 0.12 * np.sin(2 * theta + p[0]) + 0.07 * np.sin(3 * theta + p[1])
                              + 0.04 * np.sin(5 * theta + p[2]))

    reach = lake_radius * 1.25
    rows = _index_range(v, lake_v - reach, lake_v + reach)
    cols = _index_range(u, lake_u - reach, lake_u + reach)
    if rows.stop > rows.start and cols.stop > cols.start:
        du = u[cols][None, :] - lake_u
        dv = v[rows][:, None] - lake_v
        water[rows, cols] |= np.hypot(du, dv) < lake_radius_at(np.arctan2(dv, du))

    # The river leaves the lake and drifts south-east with two meander frequencies.
    t = u / extent
    q = land.river_phases
    centre_v = extent * (0.32 + 0.6 * (t - 0.25) + 0.05 * np.sin(2 * np.pi * 1.7 * t + q[0])
                         + 0.02 * np.sin(2 * np.pi * 4.3 * t + q[1]))
    dcentre_du = (0.6 + 0.05 * 2 * np.pi * 1.7 * np.cos(2 * np.pi * 1.7 * t + q[0])
                  + 0.02 * 2 * np.pi * 4.3 * np.cos(2 * np.pi * 4.3 * t + q[1]))
    # Vertical half-width that gives a constant 45 m width across the channel's direction.
    half_width = 22.5 * np.sqrt(1 + dcentre_du ** 2)
    cols = _index_range(u, lake_u, np.inf)
    if cols.stop > cols.start:
        top = float((centre_v[cols] - half_width[cols]).min())
        bottom = float((centre_v[cols] + half_width[cols]).max())
        rows = _index_range(v, top, bottom)
        if rows.stop > rows.start:
            water[rows, cols] |= (np.abs(v[rows][:, None] - centre_v[cols][None, :])
                                  < half_width[cols][None, :])
    return water


def _index_range(coordinate: np.ndarray, low: float, high: float) -> slice:
    """The slice of a monotonic increasing coordinate array that lies within [low, high]."""
    return slice(int(np.searchsorted(coordinate, low)),
                 int(np.searchsorted(coordinate, high, "right")))


def _nodata_mask(land: _Landscape, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean (len(v), len(u)): a slanted swath edge clipping the north-east corner."""
    threshold = (0.86 + 0.25 * v / land.extent_m) * land.extent_m
    return u[None, :] > threshold[:, None]


def _spectral_tables(day_of_year: int) -> tuple[np.ndarray, np.ndarray]:
    """Per band and class, reflectance = offset + slope * vigor, phenology mixed with bare soil.

    Returns two float32 arrays of shape (len(_MODEL_BANDS), len(_BASE_REFLECTANCE)).
    """
    greenness = np.zeros(len(_BASE_REFLECTANCE), np.float32)
    for class_value, knots in _GREENNESS_KNOTS.items():
        days, fractions = zip(*knots)
        greenness[class_value] = np.interp(day_of_year, days, fractions)
    soil = _BASE_REFLECTANCE[BARE_SOIL]
    offset = greenness[:, None] * _BASE_REFLECTANCE + (1 - greenness[:, None]) * soil[None, :]
    slope = greenness[:, None] * _VIGOR_SENSITIVITY
    return offset.T.astype(np.float32), slope.T.astype(np.float32)


def _render_chunk(land: _Landscape, u: np.ndarray, v: np.ndarray, row_ids: np.ndarray, *,
                  band_indices: Sequence[int], day_of_year: int, noise_stream: int,
                  with_nodata: bool) -> tuple[np.ndarray, np.ndarray]:
    """Truth (uint8 (rows, cols), 0 = nodata) and reflectance (float32 (bands, rows, cols))."""
    classes, vigor = _parcel_fields(land, u, v)
    smooth = _smooth_noise(land, u, v)
    water = _water_mask(land, u, v)
    classes[water] = WATER
    # Water carries no parcel zones: only the smooth field, read as turbidity.
    vigor = np.where(water, smooth, vigor + smooth)
    np.clip(vigor, -_VIGOR_LIMIT, _VIGOR_LIMIT, out=vigor)
    offset, slope = _spectral_tables(day_of_year)
    reflectance = np.empty((len(band_indices), v.size, u.size), np.float32)
    for out, band in enumerate(band_indices):
        values = offset[band][classes]
        values += slope[band][classes] * vigor
        # Noise is seeded per (band, grid row): the same pixel gets the same noise whatever
        # the block size or the band subset rendered.
        noise = np.stack([
            np.random.default_rng((land.seed, noise_stream, band, int(row)))
            .standard_normal(u.size, dtype=np.float32) for row in row_ids])
        values += (_NOISE_FLOOR + _NOISE_RELATIVE * values) * noise
        np.maximum(values, _MIN_REFLECTANCE, out=values)
        reflectance[out] = values
    if with_nodata:
        outside = _nodata_mask(land, u, v)
        classes[outside] = 0
        reflectance[:, outside] = NODATA
    return classes, reflectance


def _render_rows(land: _Landscape, grid: RasterGrid, row_off: int, n_rows: int, *,
                 bands: Sequence[str], day_of_year: int, noise_stream: int,
                 with_nodata: bool) -> tuple[np.ndarray, np.ndarray]:
    """`_render_chunk` for rows [row_off, row_off + n_rows) of a north-up grid, in chunks."""
    x0, pixel_w, _, y0, _, pixel_h = grid.geotransform
    # float32 local metres: centimetre precision over 100 km, half the memory traffic of float64.
    u = ((x0 - land.x0) + (np.arange(grid.width) + 0.5) * pixel_w).astype(np.float32)
    band_indices = [_MODEL_BANDS.index(name) for name in bands]
    classes = np.empty((n_rows, grid.width), np.uint8)
    reflectance = np.empty((len(bands), n_rows, grid.width), np.float32)
    chunk_rows = max(1, _CHUNK_PIXELS // grid.width)
    for start in range(0, n_rows, chunk_rows):
        stop = min(n_rows, start + chunk_rows)
        row_ids = np.arange(row_off + start, row_off + stop)
        v = ((land.y0 - y0) - (row_ids + 0.5) * pixel_h).astype(np.float32)
        classes[start:stop], reflectance[:, start:stop] = _render_chunk(
            land, u, v, row_ids, band_indices=band_indices, day_of_year=day_of_year,
            noise_stream=noise_stream, with_nodata=with_nodata)
    return classes, reflectance


def _ndvi(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """(nir - red) / (nir + red) as float32, NODATA where either input is NODATA."""
    ndvi = (nir - red) / (nir + red)  # reflectance is clipped positive, so no zero division
    ndvi[(red == NODATA) | (nir == NODATA)] = NODATA
    return ndvi.astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Output:
    """One GeoTIFF to write: its bands, type and tags."""

    path: Path
    data_type: int
    descriptions: tuple[str, ...]
    nodata: float
    options: tuple[str, ...] = _GTIFF_FLOAT_OPTIONS
    metadata: tuple[tuple[str, str], ...] = ()
    colours: dict[int, tuple[int, int, int]] | None = None


def _create(path: Path, grid: RasterGrid, output: _Output) -> gdal.Dataset:
    dataset = gdal.GetDriverByName("GTiff").Create(
        str(path), grid.width, grid.height, len(output.descriptions), output.data_type,
        options=list(output.options))
    if dataset is None:
        raise InvalidInputError(
            f"Cannot create '{output.path}': {gdal.GetLastErrorMsg()}. "
            "Choose a writable folder with enough free space.")
    dataset.SetGeoTransform(grid.geotransform)
    dataset.SetProjection(grid.crs_wkt)
    for key, value in output.metadata:
        dataset.SetMetadataItem(key, value)
    for index, description in enumerate(output.descriptions, start=1):
        band = dataset.GetRasterBand(index)
        band.SetDescription(description)
        band.SetNoDataValue(output.nodata)
        if output.colours:
            table = gdal.ColorTable()
            table.SetColorEntry(0, (0, 0, 0, 0))
            for value, rgb in output.colours.items():
                table.SetColorEntry(value, (*rgb, 255))
            band.SetRasterColorTable(table)
    return dataset


def _write_streamed(grid: RasterGrid, outputs: Sequence[_Output],
                    render: Callable[[int, int], Sequence[np.ndarray]], *, block_rows: int,
                    progress: Progress | None = None) -> None:
    """Write `outputs` on `grid` block by block, all or nothing.

    render(row_off, n_rows) returns one (bands, n_rows, width) array per output. The files
    appear only once all are complete; on failure or cancellation none is left behind.
    """
    with ExitStack() as stack:
        temporaries = [stack.enter_context(atomic_raster_output(o.path)) for o in outputs]
        datasets: list[gdal.Dataset] = []
        try:
            for temporary, output in zip(temporaries, outputs):
                datasets.append(_create(temporary, grid, output))
            for row_off in range(0, grid.height, block_rows):
                if progress is not None:
                    progress.check()
                n_rows = min(block_rows, grid.height - row_off)
                for index, array in enumerate(render(row_off, n_rows)):
                    _write_block(datasets[index], array, row_off)
                if progress is not None:
                    progress((row_off + n_rows) / grid.height)
        finally:
            datasets.clear()  # closes the files before they are renamed or removed


def _write_block(dataset: gdal.Dataset, array: np.ndarray, row_off: int) -> None:
    """Write a (bands, rows, width) array at row `row_off` and flush it to disk."""
    for index in range(array.shape[0]):
        if dataset.GetRasterBand(index + 1).WriteArray(array[index], 0, row_off) != 0:
            raise InvalidInputError(f"Writing '{dataset.GetDescription()}' failed: "
                                    f"{gdal.GetLastErrorMsg()}. Check the free disk space.")
    # Written tiles leave GDAL's block cache, which bounds memory on huge rasters.
    dataset.FlushCache()


def _write_geojson(path: Path, geometry: ogr.Geometry, srs: osr.SpatialReference,
                   name: str) -> None:
    """Write one polygon feature with a `name` attribute; replaces an existing file."""
    temporary = path.with_name(f".{path.name}.partial")
    if temporary.exists():
        temporary.unlink()
    source = ogr.GetDriverByName("GeoJSON").CreateDataSource(str(temporary))
    if source is None:
        raise InvalidInputError(f"Cannot create '{path}': {gdal.GetLastErrorMsg()}. "
                                "Choose a writable folder.")
    try:
        layer = source.CreateLayer("aoi", srs, ogr.wkbPolygon)
        layer.CreateField(ogr.FieldDefn("name", ogr.OFTString))
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("name", name)
        feature.SetGeometry(geometry)
        if layer.CreateFeature(feature) != 0:
            raise InvalidInputError(f"Cannot write the AOI to '{path}': {gdal.GetLastErrorMsg()}")
    except BaseException:
        source = None
        temporary.unlink(missing_ok=True)
        raise
    source = None  # closing flushes the file
    os.replace(temporary, path)


# --------------------------------------------------------------------------------------------
# Grids and validation
# --------------------------------------------------------------------------------------------

def _projected_srs(epsg: int) -> osr.SpatialReference:
    srs = osr.SpatialReference()
    if srs.ImportFromEPSG(int(epsg)) != 0:
        raise InvalidInputError(
            f"EPSG:{epsg} is not a known CRS; use a projected CRS such as 32633.")
    if not srs.IsProjected() or abs(srs.GetLinearUnits() - 1.0) > 1e-9:
        raise InvalidInputError(
            f"EPSG:{epsg} is not a projected CRS in metres; pixel sizes are in metres, so use "
            "one such as a UTM zone (e.g. 32633).")
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def _plausible_origin(srs: osr.SpatialReference, extent_m: float) -> tuple[float, float]:
    """Top-left corner: (500000, 5800000) in UTM, else near the centre of the CRS's area of use."""
    if srs.GetUTMZone() != 0:
        return _UTM_ORIGIN
    area = srs.GetAreaOfUse()
    if area is None:
        return _UTM_ORIGIN
    wgs84 = osr.SpatialReference()
    wgs84.ImportFromEPSG(4326)
    wgs84.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    transform = osr.CoordinateTransformation(wgs84, srs)
    x, y, _ = transform.TransformPoint((area.west_lon_degree + area.east_lon_degree) / 2,
                                       (area.south_lat_degree + area.north_lat_degree) / 2)
    if not (math.isfinite(x) and math.isfinite(y)):
        return _UTM_ORIGIN
    return round((x - extent_m / 2) / 1000) * 1000.0, round((y + extent_m / 2) / 1000) * 1000.0


def _grid(srs: osr.SpatialReference, x0: float, y0: float, pixel_size_m: float, width: int,
          height: int) -> RasterGrid:
    return RasterGrid(width, height, (x0, pixel_size_m, 0.0, y0, 0.0, -pixel_size_m),
                      srs.ExportToWkt())


def _check_common(*, size: int, pixel_size_m: float, seed: int, min_size: int) -> None:
    if not _is_integer(size) or size < min_size:
        raise InvalidInputError(
            f"size must be an integer of at least {min_size} pixels, got {size}.")
    if not (math.isfinite(pixel_size_m) and pixel_size_m > 0):
        raise InvalidInputError(
            f"pixel_size_m must be a positive number of metres, got {pixel_size_m}.")
    if not _is_integer(seed) or seed < 0:
        raise InvalidInputError(f"seed must be a non-negative integer, got {seed}.")


def _is_integer(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _output_folder(folder: str | os.PathLike) -> Path:
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidInputError(f"Cannot create the output folder '{path}': {error}. "
                                "Choose a writable location.") from error
    return path


def _day_of_year(date: str) -> int:
    try:
        return datetime.date.fromisoformat(date).timetuple().tm_yday
    except (TypeError, ValueError) as error:
        raise InvalidInputError(
            f"Date '{date}' is not an ISO date; write it as YYYY-MM-DD.") from error


def _scene_landscape(seed: int, x0: float, y0: float, extent_m: float) -> _Landscape:
    """The demo landscape: about eight parcels across whatever the extent."""
    return _build_landscape(seed=seed, x0=x0, y0=y0, extent_m=extent_m, parcels_across=8)


# --------------------------------------------------------------------------------------------
# Area of interest
# --------------------------------------------------------------------------------------------

def _farm_polygon(land: _Landscape) -> ogr.Geometry:
    """An irregular farm of ~40% of the extent with one hole (the farmyard), in native coordinates.

    Rings follow the GeoJSON convention: exterior counter-clockwise, hole clockwise.
    """
    rng = np.random.default_rng((land.seed, 2))
    extent = land.extent_m
    centre_u, centre_v, radius = 0.55 * extent, 0.5 * extent, 0.35 * extent
    n_vertices = 28
    angle = np.linspace(0, 2 * np.pi, n_vertices, endpoint=False)
    angle += rng.uniform(-0.3, 0.3, n_vertices) * (2 * np.pi / n_vertices)
    phase = rng.uniform(0, 2 * np.pi, 2)
    r = radius * (1 + 0.12 * np.sin(2 * angle + phase[0]) + 0.08 * np.sin(3 * angle + phase[1])
                  + rng.uniform(-0.04, 0.04, n_vertices))
    outer = ogr.Geometry(ogr.wkbLinearRing)
    for a, ri in zip(angle, r):  # map y grows northwards, so +sin turns counter-clockwise
        outer.AddPoint_2D(land.x0 + centre_u + ri * math.cos(a),
                          land.y0 - centre_v + ri * math.sin(a))
    outer.CloseRings()

    yard_angle = rng.uniform(0, np.pi / 2)
    yard_x = land.x0 + centre_u - 0.03 * extent
    yard_y = land.y0 - centre_v + 0.02 * extent
    half_long, half_short = 0.03 * extent, 0.02 * extent
    hole = ogr.Geometry(ogr.wkbLinearRing)
    for sl, ss in ((1, 1), (1, -1), (-1, -1), (-1, 1)):  # clockwise
        along, across = sl * half_long, ss * half_short
        hole.AddPoint_2D(yard_x + along * math.cos(yard_angle) - across * math.sin(yard_angle),
                         yard_y + along * math.sin(yard_angle) + across * math.cos(yard_angle))
    hole.CloseRings()

    polygon = ogr.Geometry(ogr.wkbPolygon)
    polygon.AddGeometry(outer)
    polygon.AddGeometry(hole)
    return polygon


def _write_aoi(land: _Landscape, srs: osr.SpatialReference, path: Path, native_path: Path) -> None:
    polygon = _farm_polygon(land)
    _write_geojson(native_path, polygon, srs, "Demo farm")
    wgs84 = osr.SpatialReference()
    wgs84.ImportFromEPSG(4326)
    wgs84.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)  # GeoJSON is lon, lat
    geographic = polygon.Clone()
    if geographic.Transform(osr.CoordinateTransformation(srs, wgs84)) != 0:
        raise InvalidInputError(f"Cannot reproject the AOI to EPSG:4326: {gdal.GetLastErrorMsg()}")
    _write_geojson(path, geographic, wgs84, "Demo farm")


# --------------------------------------------------------------------------------------------
# Public generators
# --------------------------------------------------------------------------------------------

def make_scene(folder: str | os.PathLike, *, size: int = 600, pixel_size_m: float = 10.0,
               seed: int = 0, epsg: int = 32633, with_nodata: bool = True) -> SceneFiles:
    """Write a 6-band mid-June scene with known true classes, its NIR, NDVI and a farm AOI.

    Files in `folder` (created if missing), all on one north-up grid of size x size pixels of
    pixel_size_m metres, top-left at (500000, 5800000) in UTM zones:
    scene.tif (Float32, bands SCENE_BANDS, reflectance 0..~0.6), truth.tif (UInt8, TRUE_CLASSES,
    0 = nodata), nir.tif and ndvi.tif (Float32, one band), aoi.geojson (EPSG:4326, lon/lat) and
    aoi_native.geojson (the raster CRS): one polygon with one hole and a `name` attribute.
    Float outputs use NODATA; with_nodata cuts a swath edge off the north-east corner (~4%).

    Args:
        folder: output folder.
        size: width and height in pixels (>= 32).
        pixel_size_m: pixel size in metres.
        seed: any non-negative integer; the same seed gives identical files.
        epsg: a projected CRS in metres.
        with_nodata: whether to add the nodata corner.

    Returns:
        The paths written, the band names and the nodata value.

    Raises:
        InvalidInputError: a parameter is out of range or a file cannot be written.
    """
    _check_common(size=size, pixel_size_m=pixel_size_m, seed=seed, min_size=32)
    srs = _projected_srs(epsg)
    out = _output_folder(folder)
    extent_m = size * pixel_size_m
    x0, y0 = _plausible_origin(srs, extent_m)
    land = _scene_landscape(seed, x0, y0, extent_m)
    grid = _grid(srs, x0, y0, pixel_size_m, size, size)
    files = SceneFiles(scene=out / "scene.tif", truth=out / "truth.tif", aoi=out / "aoi.geojson",
                       aoi_native=out / "aoi_native.geojson", nir=out / "nir.tif",
                       ndvi=out / "ndvi.tif")
    date = datetime.date(2021, 1, 1) + datetime.timedelta(days=SCENE_DAY_OF_YEAR - 1)
    class_names = tuple((f"CLASS_{value}", name) for value, name in TRUE_CLASSES.items())
    outputs = [
        _Output(files.scene, gdal.GDT_Float32, SCENE_BANDS, NODATA,
                metadata=(("ACQUISITION_DATE", date.isoformat()),
                          ("SOURCE", "synthetic (scripts/synthetic_scene.py)"))),
        _Output(files.truth, gdal.GDT_Byte, ("true class",), 0, options=_GTIFF_INTEGER_OPTIONS,
                metadata=class_names, colours=_TRUTH_COLOURS),
        _Output(files.nir, gdal.GDT_Float32, ("nir",), NODATA),
        _Output(files.ndvi, gdal.GDT_Float32, ("NDVI",), NODATA),
    ]
    red, nir = SCENE_BANDS.index("red"), SCENE_BANDS.index("nir")

    def render(row_off: int, n_rows: int) -> list[np.ndarray]:
        classes, reflectance = _render_rows(
            land, grid, row_off, n_rows, bands=SCENE_BANDS, day_of_year=SCENE_DAY_OF_YEAR,
            noise_stream=_NOISE_STREAM_SCENE, with_nodata=with_nodata)
        return [reflectance, classes[None], reflectance[nir:nir + 1],
                _ndvi(reflectance[red], reflectance[nir])[None]]

    _write_streamed(grid, outputs, render, block_rows=_TILE)
    _write_aoi(land, srs, files.aoi, files.aoi_native)
    return files


def make_time_series(folder: str | os.PathLike, *,
                     dates: Sequence[str] = ("2021-05-01", "2021-06-15", "2021-08-01"),
                     size: int = 300, seed: int = 0, shift_m: float = 3.0,
                     pixel_size_m: float = 10.0) -> list[Path]:
    """Write one NDVI GeoTIFF per date of the same landscape, on grids that are NOT aligned.

    Phenology per class: crops green up in May, peak in June and are harvested in July; bare
    soil stays low, forest high, water negative, grassland moderate. Date i has its origin
    shifted from the first date's by 0.3..1 x shift_m metres in x and y, and odd dates have one
    extra row and column (like real NAIP dates), so a stack must be resampled onto one grid.
    Files: `ndvi_<YYYYMMDD>.tif`, Float32, band description "NDVI <date>", nodata NODATA (set,
    but no nodata pixels), EPSG:32633. The landscape is that of make_scene(size=size, seed=seed,
    pixel_size_m=pixel_size_m), so that scene's truth.tif is the truth of every date.

    Args:
        folder: output folder (created if missing).
        dates: ISO dates (YYYY-MM-DD), distinct.
        size: width and height of the first date in pixels (>= 32).
        seed: any non-negative integer; the same seed gives identical files.
        shift_m: the largest origin shift in metres (0 gives aligned grids).
        pixel_size_m: pixel size in metres.

    Returns:
        The paths written, in the order of `dates`.

    Raises:
        InvalidInputError: a parameter is out of range or a file cannot be written.
    """
    _check_common(size=size, pixel_size_m=pixel_size_m, seed=seed, min_size=32)
    days = [_day_of_year(date) for date in dates]
    if not dates or len(set(dates)) != len(dates):
        raise InvalidInputError("dates must hold at least one date and no date twice.")
    if not (math.isfinite(shift_m) and shift_m >= 0):
        raise InvalidInputError(
            f"shift_m must be zero or a positive number of metres, got {shift_m}.")
    srs = _projected_srs(32633)
    out = _output_folder(folder)
    x0, y0 = _UTM_ORIGIN
    land = _scene_landscape(seed, x0, y0, size * pixel_size_m)
    rng = np.random.default_rng((seed, 3))
    paths = []
    for index, (date, day) in enumerate(zip(dates, days)):
        shift = np.zeros(2)
        if index > 0:
            shift = rng.uniform(0.3, 1.0, 2) * rng.choice((-1.0, 1.0), 2) * shift_m
        n = size + index % 2
        grid = _grid(srs, x0 + shift[0], y0 + shift[1], pixel_size_m, n, n)
        path = out / f"ndvi_{date.replace('-', '')}.tif"

        def render(row_off: int, n_rows: int, grid: RasterGrid = grid, day: int = day,
                   stream: int = _NOISE_STREAM_TIME_SERIES + index) -> list[np.ndarray]:
            _, red_nir = _render_rows(land, grid, row_off, n_rows, bands=("red", "nir"),
                                      day_of_year=day, noise_stream=stream, with_nodata=False)
            return [_ndvi(red_nir[0], red_nir[1])[None]]

        _write_streamed(grid, [_Output(path, gdal.GDT_Float32, (f"NDVI {date}",), NODATA,
                                       metadata=(("ACQUISITION_DATE", date),))],
                        render, block_rows=_TILE)
        paths.append(path)
    return paths


def make_large_band(path: str | os.PathLike, *, size: int = 10980, pixel_size_m: float = 10.0,
                    seed: int = 0, block_rows: int = 512,
                    progress: Callable[[float], None] | None = None,
                    is_cancelled: Callable[[], bool] | None = None) -> Path:
    """Stream a large single-band Float32 NDVI GeoTIFF block by block, never holding it whole.

    Parcels of ~600 m with zones, a lake, a river and a forest; nodata (NODATA) in the swath
    edge of the north-east corner. Tiled 256, DEFLATE level 1, predictor 3, EPSG:32633.
    Memory is bounded by block_rows x size pixels (a few tens of MB at 10980 columns).

    Args:
        path: output GeoTIFF path; its folder must exist.
        size: width and height in pixels (>= 16).
        pixel_size_m: pixel size in metres.
        seed: any non-negative integer; the same seed gives identical values.
        block_rows: rows rendered and written per step, rounded down to a multiple of the
            256-row tile height (at least 256) so no tile is compressed twice.
        progress: receives the fraction done, 0..1.
        is_cancelled: returning True stops the run and removes the partial file.

    Returns:
        `path` as a Path.

    Raises:
        InvalidInputError: a parameter is out of range or the file cannot be written.
        CancelledError: is_cancelled() returned True.
    """
    _check_common(size=size, pixel_size_m=pixel_size_m, seed=seed, min_size=16)
    if not _is_integer(block_rows) or block_rows < 1:
        raise InvalidInputError(f"block_rows must be a positive integer, got {block_rows}.")
    srs = _projected_srs(32633)
    x0, y0 = _UTM_ORIGIN
    extent_m = size * pixel_size_m
    land = _build_landscape(seed=seed, x0=x0, y0=y0, extent_m=extent_m,
                            parcels_across=max(8, round(extent_m / 600.0)))
    grid = _grid(srs, x0, y0, pixel_size_m, size, size)
    output = _Output(Path(path), gdal.GDT_Float32, ("NDVI",), NODATA,
                     options=_GTIFF_FLOAT_OPTIONS + ("ZLEVEL=1", "NUM_THREADS=ALL_CPUS"))

    def render(row_off: int, n_rows: int) -> list[np.ndarray]:
        _, red_nir = _render_rows(land, grid, row_off, n_rows, bands=("red", "nir"),
                                  day_of_year=SCENE_DAY_OF_YEAR, noise_stream=_NOISE_STREAM_LARGE,
                                  with_nodata=True)
        return [_ndvi(red_nir[0], red_nir[1])[None]]

    _write_streamed(grid, [output], render, block_rows=max(_TILE, block_rows // _TILE * _TILE),
                    progress=Progress(progress, is_cancelled))
    return Path(path)


def make_s2_style_bands(folder: str | os.PathLike, *, size_10m: int = 300,
                        seed: int = 0) -> dict[str, Path]:
    """Write Sentinel-2-style single-band files of one landscape at 10 m and 20 m.

    `T33UXX_20210527_B04.tif` and `_B08.tif`: size_10m pixels of 10 m; `_B11.tif` and
    `_B8A.tif`: size_10m / 2 pixels of 20 m (each the mean of its 2x2 10 m pixels), the same
    extent. UInt16 DN = reflectance x 10000, nodata 0 (a swath edge in the north-east corner),
    EPSG:32633, top-left (500000, 5800000).

    Args:
        folder: output folder (created if missing).
        size_10m: width and height of the 10 m bands; even, >= 32.
        seed: any non-negative integer; the same seed gives identical files.

    Returns:
        Band code ("B04", "B08", "B11", "B8A") -> path.

    Raises:
        InvalidInputError: a parameter is out of range or a file cannot be written.
    """
    _check_common(size=size_10m, pixel_size_m=10.0, seed=seed, min_size=32)
    if size_10m % 2:
        raise InvalidInputError(f"size_10m must be even so the 20 m bands cover the same extent, "
                                f"got {size_10m}.")
    srs = _projected_srs(32633)
    out = _output_folder(folder)
    x0, y0 = _UTM_ORIGIN
    land = _scene_landscape(seed, x0, y0, size_10m * 10.0)
    day = _day_of_year(_S2_DATE)
    grid_10m = _grid(srs, x0, y0, 10.0, size_10m, size_10m)
    grid_20m = _grid(srs, x0, y0, 20.0, size_10m // 2, size_10m // 2)
    stem = f"{_S2_TILE}_{_S2_DATE.replace('-', '')}"
    paths = {code: out / f"{stem}_{code}.tif" for code in (*_S2_BANDS_10M, *_S2_BANDS_20M)}

    def outputs(codes: Sequence[str]) -> list[_Output]:
        return [_Output(paths[code], gdal.GDT_UInt16, (code,), 0, options=_GTIFF_INTEGER_OPTIONS,
                        metadata=(("ACQUISITION_DATE", _S2_DATE),)) for code in codes]

    def render_10m(row_off: int, n_rows: int, bands: Sequence[str]) -> np.ndarray:
        _, reflectance = _render_rows(land, grid_10m, row_off, n_rows, bands=bands,
                                      day_of_year=day, noise_stream=_NOISE_STREAM_S2,
                                      with_nodata=True)
        return reflectance

    def render_20m(row_off: int, n_rows: int) -> list[np.ndarray]:
        fine = render_10m(2 * row_off, 2 * n_rows, tuple(_S2_BANDS_20M.values()))
        blocks = fine.reshape(fine.shape[0], n_rows, 2, fine.shape[2] // 2, 2)
        coarse = blocks.mean(axis=(2, 4))
        # A 20 m pixel is nodata as soon as one of its 10 m pixels is.
        coarse[(blocks == NODATA).any(axis=(2, 4))] = NODATA
        return [_digital_numbers(band)[None] for band in coarse]

    def render_10m_bands(row_off: int, n_rows: int) -> list[np.ndarray]:
        fine = render_10m(row_off, n_rows, tuple(_S2_BANDS_10M.values()))
        return [_digital_numbers(band)[None] for band in fine]

    _write_streamed(grid_10m, outputs(tuple(_S2_BANDS_10M)), render_10m_bands, block_rows=_TILE)
    _write_streamed(grid_20m, outputs(tuple(_S2_BANDS_20M)), render_20m, block_rows=_TILE)
    return paths


def _digital_numbers(reflectance: np.ndarray) -> np.ndarray:
    """Sentinel-2 DN (uint16) = reflectance x 10000, 0 where NODATA."""
    dn = np.clip(np.rint(reflectance * 10000.0), 1, 65535).astype(np.uint16)
    dn[reflectance == NODATA] = 0
    return dn
