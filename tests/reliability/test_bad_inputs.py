"""Issue 7: every algorithm against inputs that are wrong, odd or extreme, table-driven.

A case either fails with a QgsProcessingException whose message names the problem, leaving
no output or temporary file (in the output folder, hidden .partial files included, and in
QGIS's processing temp folder), or is decided to work and is checked against an oracle
written out here (GDAL/OGR rasterizing, numpy thresholds).

Decisions recorded by these cases:
- an AOI with invalid (self-intersecting) geometries is repaired with makeValid and the repair
  is logged; null geometries are skipped; an AOI with no polygon area left is an error;
- an AOI or extent in another CRS is reprojected, never refused;
- NaN and ±inf pixels are nodata everywhere: they never crash, the rest is processed;
- an all-nodata raster is an error where centres must be fitted (kmeans, choosek, zones) and
  an all-nodata output with a warning where nothing is fitted (sieve, bandmath, calibrate,
  applycentroids);
- fewer distinct values than clusters is an error ("fewer distinct"), also for a 1×1 raster
  with k = 2; choosek stops its range at the last k the data can give (with a warning) when
  K_MIN is still possible;
- MIN_AREA: sieve needs > 0; kmeans/applycentroids/zones take 0 as "no sieve" and refuse < 0;
- an output that cannot be written: the robust way to test it as root is a path under a regular
  file (/…/a_file.txt/out.tif): chmod does not stop root, a file cannot hold a folder.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from helpers import read_raster, run_algorithm
from osgeo import gdal, ogr, osr
from reliability_tools import (
    EPSG,
    LANDSAT,
    ORIGIN,
    OTHER_LANDSAT,
    PIXEL_M,
    box_wkt,
    left_behind,
    memory_polygons,
    processing_temp_folder,
    raster,
    recording_feedback,
    snapshot,
    three_levels,
    virtual_raster_layer,
)

pytestmark = pytest.mark.usefixtures("provider")

KMEANS, SIEVE, BANDMATH = "kmeans", "sieve", "bandmath"
CALIBRATE, APPLY, CHOOSEK, ZONES = "calibrate", "applycentroids", "choosek", "zones"
SIZE = 30  # pixels of the standard test raster's side


@dataclass
class Work:
    """The run's folder (inputs and outputs together) and the inputs built in it."""

    folder: Path
    request: pytest.FixtureRequest
    protected: dict[Path, bytes] = field(default_factory=dict)

    def raster(self, name, array, **options) -> str:
        return str(raster(self.folder, name, array, **options))

    def levels(self, name="levels.tif", array=None, **options) -> str:
        """The standard input: three clear classes (see three_levels)."""
        return self.raster(name, three_levels(SIZE, SIZE) if array is None else array, **options)

    def classes(self, name="classes.tif") -> str:
        """A classified UInt8 raster: 5 × 5 patches of classes 1..3, one single-pixel speck."""
        values = np.digitize(three_levels(SIZE, SIZE), [0.3, 0.7]).astype(np.uint8) + 1
        values[2, 2] = values[2, 2] % 3 + 1
        return self.raster(name, values, nodata=0)

    def file(self, name, content: str | bytes) -> str:
        path = self.folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return str(path)

    def protect(self, path) -> str:
        """Remember a file's bytes: the run must not change them."""
        self.protected[Path(path)] = Path(path).read_bytes()
        return str(path)

    @property
    def mtl_text(self) -> str:
        shared = self.request.getfixturevalue("shared_data")
        return (shared / "landsat8-thermal" / f"{LANDSAT}_MTL.txt").read_text()

    def landsat_band(self, band=4, *, scene=LANDSAT, array=None, with_mtl=True) -> str:
        """A small uint16 DN file named as a band of a real Landsat scene, its real MTL beside."""
        if array is None:
            array = np.random.default_rng(band).integers(6000, 20000, (SIZE, SIZE))
        name = f"{scene}_B{band}_crop.TIF" if scene == LANDSAT else f"{scene}_B{band}.TIF"
        path = self.raster(name, np.asarray(array, dtype=np.uint16))
        if with_mtl and scene == LANDSAT and not (self.folder / f"{LANDSAT}_MTL.txt").exists():
            self.file(f"{LANDSAT}_MTL.txt", self.mtl_text)
        return path

    def centroids(self, document, name="centres.json") -> str:
        return self.file(name, document if isinstance(document, str) else json.dumps(document))

    @property
    def under_a_file(self) -> Path:
        """A folder path that cannot exist: its parent is a regular file."""
        blocker = self.folder / "a_file.txt"
        if not blocker.exists():
            blocker.write_text("a file, not a folder")
        return blocker / "sub"


def default_outputs(algorithm: str, folder: Path) -> dict:
    """Every output of the algorithm as a file in the run's folder, so leftovers show there."""
    return {
        KMEANS: {"OUTPUT": folder / "out.tif", "CENTROIDS": folder / "out.json",
                 "STATISTICS": folder / "statistics.csv"},
        SIEVE: {"OUTPUT": folder / "out.tif"},
        BANDMATH: {"OUTPUT": folder / "out.tif"},
        CALIBRATE: {"OUTPUT_FOLDER": folder / "calibrated"},
        APPLY: {"OUTPUT": folder / "out.tif", "STATISTICS": folder / "statistics.csv"},
        CHOOSEK: {"TABLE": folder / "scores.csv", "REPORT": folder / "report.html"},
        ZONES: {"OUTPUT": folder / "out.tif", "CENTROIDS": folder / "out.json",
                "STATISTICS": folder / "statistics.csv"},
    }[algorithm]


CASES = []


def case(algorithm: str, name: str, error: str | None = None):
    """Register a case: `error` is the regex the message must match, None a decided success.

    The decorated function takes a Work and returns the parameters, or (parameters, check);
    check(result, feedback, work) asserts the outcome of a success, or anything else after a
    failure.
    """

    def register(build):
        CASES.append(pytest.param(algorithm, build, error, id=f"{algorithm}-{name}"))
        return build

    return register


# --------------------------------------------------------------------------------------------
# Oracles


def output_grid_mask(output_path, geometry: ogr.Geometry) -> np.ndarray:
    """Pixels of the output whose centre is in `geometry` (in the output's CRS), by GDAL."""
    dataset = gdal.Open(str(output_path))
    target = gdal.GetDriverByName("MEM").Create("", dataset.RasterXSize, dataset.RasterYSize, 1,
                                                gdal.GDT_Byte)
    target.SetGeoTransform(dataset.GetGeoTransform())
    target.SetProjection(dataset.GetProjection())
    source = ogr.GetDriverByName("Memory").CreateDataSource("oracle")
    layer = source.CreateLayer("area", srs=osr.SpatialReference(dataset.GetProjection()))
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(geometry)
    layer.CreateFeature(feature)
    assert gdal.RasterizeLayer(target, [1], layer, burn_values=[1]) == 0
    return target.GetRasterBand(1).ReadAsArray().astype(bool)


def in_raster_crs(wkt: str, epsg: int) -> ogr.Geometry:
    """A geometry given in `epsg` transformed to the test grid's CRS by OGR (not QGIS)."""
    geometry = ogr.CreateGeometryFromWkt(wkt)
    source, target = osr.SpatialReference(), osr.SpatialReference()
    source.ImportFromEPSG(epsg)
    target.ImportFromEPSG(EPSG)
    for srs in (source, target):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    assert geometry.Transform(osr.CoordinateTransformation(source, target)) == 0
    return geometry


def level_classes(values: np.ndarray) -> np.ndarray:
    """The class each three_levels value belongs to (1, 2, 3 ascending), 0 where not finite."""
    classes = np.digitize(np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0),
                          [0.3, 0.7]) + 1
    classes[~np.isfinite(values)] = 0
    return classes


def with_non_finite(values: np.ndarray) -> np.ndarray:
    values = values.copy()
    values[0, :3] = np.nan
    values[5, 5] = np.inf
    values[7, 9] = -np.inf
    values[SIZE - 1, SIZE - 1] = np.nan
    return values


def lon_lat_of(x: float, y: float) -> tuple[float, float]:
    source, target = osr.SpatialReference(), osr.SpatialReference()
    source.ImportFromEPSG(EPSG)
    target.ImportFromEPSG(4326)
    target.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    lon, lat, _ = osr.CoordinateTransformation(source, target).TransformPoint(x, y)
    return lon, lat


def lon_lat_box_inside_raster() -> str:
    """A WKT polygon in EPSG:4326 covering the middle of the test raster."""
    (lon0, lat0), (lon1, lat1) = (lon_lat_of(ORIGIN[0] + 62, ORIGIN[1] - 238),
                                  lon_lat_of(ORIGIN[0] + 233, ORIGIN[1] - 57))
    return box_wkt(lon0, lat0, lon1, lat1)


FAR_AWAY = box_wkt(ORIGIN[0] + 1e5, ORIGIN[1] + 1e5, ORIGIN[0] + 1e5 + 500, ORIGIN[1] + 1e5 + 500)
INSIDE = box_wkt(ORIGIN[0] + 50, ORIGIN[1] - 250, ORIGIN[0] + 250, ORIGIN[1] - 50)
# A bow tie: its two triangles touch at (150, -150) from the origin, crossing there.
BOW_TIE = (f"POLYGON(({ORIGIN[0] + 20} {ORIGIN[1] - 20},{ORIGIN[0] + 280} {ORIGIN[1] - 280},"
           f"{ORIGIN[0] + 280} {ORIGIN[1] - 20},{ORIGIN[0] + 20} {ORIGIN[1] - 280},"
           f"{ORIGIN[0] + 20} {ORIGIN[1] - 20}))")
EXTENT_FAR_AWAY = f"0,100,0,100 [EPSG:{EPSG}]"
REPAIRED = r"Repaired 1 invalid area-of-interest geometry"


def check_repaired_area(result, feedback, work):
    """The bow tie is repaired (OGR's MakeValid as the oracle), the repair logged."""
    assert re.search(REPAIRED, feedback.log), feedback.log
    labels = read_raster(result["OUTPUT"])
    repaired = ogr.CreateGeometryFromWkt(BOW_TIE).MakeValid()
    inside = output_grid_mask(result["OUTPUT"], repaired)
    assert inside.sum() > 100
    np.testing.assert_array_equal(labels > 0, inside)


def check_area_in_lon_lat(result, feedback, work):
    """The AOI given in EPSG:4326 selects the pixels OGR's reprojection of it covers."""
    labels = read_raster(result["OUTPUT"])
    inside = output_grid_mask(result["OUTPUT"], in_raster_crs(lon_lat_box_inside_raster(), 4326))
    assert inside.sum() > 100
    np.testing.assert_array_equal(labels > 0, inside)


def check_levels_classified(result, feedback, work, source="levels.tif"):
    """Every finite pixel is in its level's class, non-finite ones are nodata 0."""
    values = read_raster(work.folder / source)
    np.testing.assert_array_equal(read_raster(result["OUTPUT"]), level_classes(values))


def check_unchanged_copy(source):
    def check(result, feedback, work):
        np.testing.assert_array_equal(read_raster(result["OUTPUT"]), read_raster(source))
        assert result["CHANGED_PIXELS"] == 0

    return check


# --------------------------------------------------------------------------------------------
# Cases shared by the algorithms that take an area of interest


AREA_ALGORITHMS = {
    KMEANS: lambda work: {"INPUT": [work.levels()], "CLUSTERS": 3},
    APPLY: lambda work: {"INPUT": [work.levels()],
                         "CENTROIDS": work.centroids({"levels": [[1, [0.1]], [2, [0.5]],
                                                                 [3, [0.9]]]})},
    CHOOSEK: lambda work: {"INPUT": [work.levels()], "K_MIN": 2, "K_MAX": 4,
                           "SAMPLE_SIZE": 500},
    ZONES: lambda work: {"INPUT": [work.levels()], "EXPRESSION": "B1", "CLUSTERS": 3},
}

for _algorithm, _base in AREA_ALGORITHMS.items():
    case(_algorithm, "empty-aoi-layer", r"area of interest has no polygon area.*empty")(
        lambda work, base=_base: {**base(work), "AOI": memory_polygons([])})
    case(_algorithm, "aoi-of-null-geometries-only", r"no polygon area.*null geometries")(
        lambda work, base=_base: {**base(work), "AOI": memory_polygons([None, None])})
    case(_algorithm, "aoi-outside-the-raster", r"does not overlap the raster")(
        lambda work, base=_base: {**base(work), "AOI": memory_polygons([FAR_AWAY])})
    case(_algorithm, "extent-outside-the-raster", r"does not overlap the raster")(
        lambda work, base=_base: {**base(work), "EXTENT": EXTENT_FAR_AWAY})
    case(_algorithm, "aoi-and-extent-disjoint", r"do not overlap")(
        lambda work, base=_base: {**base(work), "AOI": memory_polygons([INSIDE]),
                                  "EXTENT": f"{ORIGIN[0] + 260},{ORIGIN[0] + 290},"
                                            f"{ORIGIN[1] - 40},{ORIGIN[1] - 10} [EPSG:{EPSG}]"})
    if _algorithm != CHOOSEK:  # choosek writes no raster to compare with the area
        case(_algorithm, "self-intersecting-aoi-is-repaired")(
            lambda work, base=_base: ({**base(work), "AOI": memory_polygons([BOW_TIE, None])},
                                      check_repaired_area))
        case(_algorithm, "aoi-in-another-crs")(
            lambda work, base=_base: ({**base(work),
                                       "AOI": memory_polygons([lon_lat_box_inside_raster()],
                                                              epsg=4326)},
                                      check_area_in_lon_lat))


@case(CHOOSEK, "self-intersecting-aoi-is-repaired")
def _(work):
    def check(result, feedback, work):
        assert re.search(REPAIRED, feedback.log)
        assert result["RECOMMENDED_K"] == 3

    return ({"INPUT": [work.levels()], "K_MIN": 2, "K_MAX": 4, "SAMPLE_SIZE": 500,
             "AOI": memory_polygons([BOW_TIE])}, check)


@case(CHOOSEK, "aoi-in-another-crs")
def _(work):
    def check(result, feedback, work):
        assert result["RECOMMENDED_K"] == 3
        html = Path(result["REPORT"]).read_text()
        # The AOI covers 17 × 18 pixel centres (OGR's reprojection as oracle).
        mask = output_grid_mask(work.folder / "levels.tif",
                                in_raster_crs(lon_lat_box_inside_raster(), 4326))
        assert f"{int(mask.sum()):,}" in html

    return ({"INPUT": [work.levels()], "K_MIN": 2, "K_MAX": 4, "SAMPLE_SIZE": 500,
             "AOI": memory_polygons([lon_lat_box_inside_raster()], epsg=4326)}, check)


@case(KMEANS, "extent-in-another-crs")
def _(work):
    lon0, lat0 = lon_lat_of(ORIGIN[0] + 52, ORIGIN[1] - 248)
    lon1, lat1 = lon_lat_of(ORIGIN[0] + 248, ORIGIN[1] - 52)

    def check(result, feedback, work):
        # QGIS takes the bounding box of the reprojected extent; OGR gives the same box.
        corners = in_raster_crs(box_wkt(lon0, lat0, lon1, lat1), 4326)
        corners.Segmentize(1.0)
        xmin, xmax, ymin, ymax = corners.GetEnvelope()
        dataset = gdal.Open(result["OUTPUT"])
        x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
        expected = (math.ceil((xmin - ORIGIN[0]) / PIXEL_M - 0.5),
                    math.ceil((ORIGIN[1] - ymax) / PIXEL_M - 0.5))
        assert ((x0 - ORIGIN[0]) / PIXEL_M, (ORIGIN[1] - y0) / PIXEL_M) == expected
        assert x0 + dx * dataset.RasterXSize <= xmax + PIXEL_M / 2
        assert y0 + dy * dataset.RasterYSize >= ymin - PIXEL_M / 2
        assert (read_raster(result["OUTPUT"]) > 0).all()

    return ({"INPUT": [work.levels()], "CLUSTERS": 3,
             "EXTENT": f"{lon0},{lon1},{lat0},{lat1} [EPSG:4326]"}, check)


# --------------------------------------------------------------------------------------------
# Values: nodata everywhere, constant, too few distinct, NaN/inf, a single pixel


NO_VALID_PIXEL = r"no valid pixel"
FEWER_DISTINCT = r"(fewer|only \d+) distinct valid (pixel )?values"

for _algorithm in (KMEANS, CHOOSEK, ZONES):
    _base = AREA_ALGORITHMS[_algorithm]
    case(_algorithm, "all-pixels-nodata", NO_VALID_PIXEL)(
        lambda work, base=_base: {**base(work), "INPUT": [
            work.raster("nodata.tif", np.full((SIZE, SIZE), -9999, np.float32), nodata=-9999)]})
    case(_algorithm, "all-pixels-nan", NO_VALID_PIXEL)(
        lambda work, base=_base: {**base(work), "INPUT": [
            work.raster("nan.tif", np.full((SIZE, SIZE), np.nan, np.float32))]})
    case(_algorithm, "constant-raster", FEWER_DISTINCT)(
        lambda work, base=_base: {**base(work), "INPUT": [
            work.raster("constant.tif", np.full((SIZE, SIZE), 7, np.float32))]})
    case(_algorithm, "one-by-one-raster", FEWER_DISTINCT)(
        lambda work, base=_base: {**base(work), "CLUSTERS": 2, "K_MIN": 2, "K_MAX": 2,
                                  "INPUT": [work.raster("pixel.tif", np.array([[0.4]],
                                                                              np.float32))]})

case(KMEANS, "fewer-distinct-values-than-clusters", FEWER_DISTINCT)(
    lambda work: {"INPUT": [work.raster("three.tif", np.tile(np.float32([1, 2, 3]), (SIZE, 10)))],
                  "CLUSTERS": 5})
case(ZONES, "fewer-distinct-values-than-clusters", FEWER_DISTINCT)(
    lambda work: {"INPUT": [work.raster("three.tif", np.tile(np.float32([1, 2, 3]), (SIZE, 10)))],
                  "EXPRESSION": "B1", "CLUSTERS": 5})
case(KMEANS, "fewer-distinct-pixels-than-clusters-in-two-bands", FEWER_DISTINCT)(
    lambda work: {"INPUT": [work.raster("two.tif", np.stack([
        np.tile(np.float32([1, 2]), (SIZE, SIZE // 2)), np.tile(np.float32([5, 3]),
                                                                (SIZE, SIZE // 2))]))],
        "CLUSTERS": 3})
case(CHOOSEK, "fewer-distinct-values-than-k-min", FEWER_DISTINCT)(
    lambda work: {"INPUT": [work.raster("two.tif", np.tile(np.float32([1, 2]), (SIZE, 15)))],
                  "K_MIN": 3, "K_MAX": 4, "SAMPLE_SIZE": 500})


@case(CHOOSEK, "fewer-distinct-values-than-k-max-stops-the-range")
def _(work):
    def check(result, feedback, work):
        stopped = rf"Stopped at k = 4: .*{FEWER_DISTINCT}"
        assert any(re.search(stopped, warning) for warning in feedback.warnings)
        rows = list(csv.DictReader(Path(result["TABLE"]).open()))
        assert [row["k"] for row in rows] == ["2", "3"]
        assert result["RECOMMENDED_K"] == 3

    levels = np.tile(np.float32([0.1, 0.5, 0.9]), (SIZE, 10))
    return ({"INPUT": [work.raster("three.tif", levels)], "K_MIN": 2, "K_MAX": 5,
             "SAMPLE_SIZE": 500}, check)


# NaN and ±inf are nodata, whatever the nodata tag says.
case(KMEANS, "nan-and-inf-are-nodata")(
    lambda work: ({"INPUT": [work.levels(array=with_non_finite(three_levels()))],
                   "CLUSTERS": 3}, check_levels_classified))
case(APPLY, "nan-and-inf-are-nodata")(
    lambda work: ({**AREA_ALGORITHMS[APPLY](work),
                   "INPUT": [work.levels(array=with_non_finite(three_levels()))]},
                  check_levels_classified))
case(ZONES, "nan-and-inf-are-nodata")(
    lambda work: ({"INPUT": [work.levels(array=with_non_finite(three_levels()))],
                   "EXPRESSION": "B1", "CLUSTERS": 3}, check_levels_classified))


@case(KMEANS, "nan-and-inf-in-one-of-two-bands")
def _(work):
    first = with_non_finite(three_levels())
    second = three_levels(seed=1)
    second[3, 3] = np.inf
    valid = np.isfinite(first) & np.isfinite(second)
    pairs = level_classes(first) * 10 + level_classes(np.where(valid, second, np.nan))

    def check(result, feedback, work):
        labels = read_raster(result["OUTPUT"])
        np.testing.assert_array_equal(labels == 0, ~valid)
        # Each pair of levels is one class of its own: the labels are a relabelling of pairs.
        assert len(set(zip(labels[valid], pairs[valid]))) == len(np.unique(pairs[valid]))
        assert len(np.unique(labels[valid])) == len(np.unique(pairs[valid]))

    return ({"INPUT": [work.raster("two.tif", np.stack([first, second]))],
             "CLUSTERS": len(np.unique(pairs[valid]))}, check)


@case(CHOOSEK, "nan-and-inf-are-nodata")
def _(work):
    def check(result, feedback, work):
        assert result["RECOMMENDED_K"] == 3
        assert f"{SIZE * SIZE - 6:,} valid pixels" in Path(result["REPORT"]).read_text()

    return ({**AREA_ALGORITHMS[CHOOSEK](work),
             "INPUT": [work.levels(array=with_non_finite(three_levels()))]}, check)


@case(BANDMATH, "nan-and-inf-are-nodata")
def _(work):
    values = with_non_finite(three_levels())

    def check(result, feedback, work):
        output = read_raster(result["OUTPUT"])
        finite = np.isfinite(values)
        assert np.isnan(output[~finite]).all()
        np.testing.assert_array_equal(output[finite], values[finite] * np.float32(2))

    return {"INPUT": [work.levels(array=values)], "EXPRESSION": "B1 * 2"}, check


@case(BANDMATH, "all-pixels-nodata-gives-a-nodata-output")
def _(work):
    def check(result, feedback, work):
        assert np.isnan(read_raster(result["OUTPUT"])).all()
        assert any("Every output pixel is nodata" in w for w in feedback.warnings)

    nodata = work.raster("nodata.tif", np.zeros((SIZE, SIZE), np.uint16), nodata=0)
    return {"INPUT": [nodata], "EXPRESSION": "B1 * 2"}, check


@case(BANDMATH, "one-by-one-raster")
def _(work):
    def check(result, feedback, work):
        np.testing.assert_array_equal(read_raster(result["OUTPUT"]), [[np.float32(0.5)]])

    return {"INPUT": [work.raster("pixel.tif", np.array([[0.25]], np.float32))],
            "EXPRESSION": "B1 * 2"}, check


@case(APPLY, "all-pixels-nodata-gives-a-nodata-output")
def _(work):
    def check(result, feedback, work):
        assert (read_raster(result["OUTPUT"]) == 0).all()
        assert any(re.search(r"Class\(es\) 1, 2, 3 received no pixel", w)
                   for w in feedback.warnings)

    return ({**AREA_ALGORITHMS[APPLY](work), "INPUT": [
        work.raster("nodata.tif", np.full((SIZE, SIZE), -9999, np.float32), nodata=-9999)]},
        check)


@case(APPLY, "one-by-one-raster")
def _(work):
    def check(result, feedback, work):
        np.testing.assert_array_equal(read_raster(result["OUTPUT"]), [[2]])

    return ({**AREA_ALGORITHMS[APPLY](work),
             "INPUT": [work.raster("pixel.tif", np.array([[0.45]], np.float32))]}, check)


@case(SIEVE, "all-pixels-nodata")
def _(work):
    source = work.raster("nodata.tif", np.zeros((SIZE, SIZE), np.uint8), nodata=0)
    return {"INPUT": source, "MIN_AREA": 1000}, check_unchanged_copy(source)


@case(SIEVE, "constant-raster")
def _(work):
    source = work.raster("constant.tif", np.full((SIZE, SIZE), 2, np.uint8), nodata=0)
    return {"INPUT": source, "MIN_AREA": 1000}, check_unchanged_copy(source)


@case(SIEVE, "one-by-one-raster")
def _(work):
    source = work.raster("pixel.tif", np.array([[3]], np.uint8), nodata=0)
    return {"INPUT": source, "MIN_AREA": 1000}, check_unchanged_copy(source)


@case(CALIBRATE, "every-dn-is-fill")
def _(work):
    def check(result, feedback, work):
        [output] = result["OUTPUT_LAYERS"]
        assert np.isnan(read_raster(output)).all()
        assert any("no valid pixel" in w for w in feedback.warnings)

    return {"INPUT": [work.landsat_band(array=np.zeros((SIZE, SIZE)))],
            "OUTPUT_FOLDER": str(work.folder / "calibrated")}, check


# --------------------------------------------------------------------------------------------
# Parameters out of range


case(KMEANS, "one-cluster", r"CLUSTERS must be a whole number from 2 to \d+, not 1\.")(
    lambda work: {**AREA_ALGORITHMS[KMEANS](work), "CLUSTERS": 1})
case(KMEANS, "256-clusters", r"CLUSTERS must be a whole number from 2 to \d+, not 256\.")(
    lambda work: {**AREA_ALGORITHMS[KMEANS](work), "CLUSTERS": 256})
case(ZONES, "zero-zones", r"CLUSTERS must be a whole number from 2 to \d+, not 0\.")(
    lambda work: {**AREA_ALGORITHMS[ZONES](work), "CLUSTERS": 0})
case(CHOOSEK, "k-max-256", r"K_MAX must be a whole number from 2 to \d+, not 256\.")(
    lambda work: {**AREA_ALGORITHMS[CHOOSEK](work), "K_MAX": 256})
case(CHOOSEK, "k-min-above-k-max", r"K_MIN \(5\) must not exceed K_MAX \(3\)")(
    lambda work: {**AREA_ALGORITHMS[CHOOSEK](work), "K_MIN": 5, "K_MAX": 3})
case(SIEVE, "min-area-zero", r"MIN_AREA must be an area in m² greater than 0, not 0")(
    lambda work: {"INPUT": work.classes(), "MIN_AREA": 0})
case(SIEVE, "min-area-negative", r"MIN_AREA")(
    lambda work: {"INPUT": work.classes(), "MIN_AREA": -100})
case(SIEVE, "connectivity-5", r"CONNECTIVITY must be 4 or 8, not 5")(
    lambda work: {"INPUT": work.classes(), "MIN_AREA": 1000, "CONNECTIVITY": 5})
case(SIEVE, "float-classes", r"not integer classes")(
    lambda work: {"INPUT": work.levels(), "MIN_AREA": 1000})
for _algorithm in (KMEANS, APPLY, ZONES):
    case(_algorithm, "min-area-negative",
         r"MIN_AREA must be a number of at least 0, not -100\.")(
        lambda work, base=AREA_ALGORITHMS[_algorithm]: {**base(work), "MIN_AREA": -100})
    case(_algorithm, "connectivity-5", r"CONNECTIVITY must be 4 or 8, not 5")(
        lambda work, base=AREA_ALGORITHMS[_algorithm]: {**base(work), "CONNECTIVITY": 5})


@case(KMEANS, "min-area-zero-means-no-sieve")
def _(work):
    values = three_levels()
    values[2, 2] = 0.9 if values[2, 2] < 0.3 else 0.1  # a one-pixel speck a sieve would remove

    def check(result, feedback, work):
        assert not any(info.startswith("Sieve:") for info in feedback.infos)
        check_levels_classified(result, feedback, work)

    return {"INPUT": [work.levels(array=values)], "CLUSTERS": 3, "MIN_AREA": 0}, check


# --------------------------------------------------------------------------------------------
# Layers GDAL cannot read


NOT_GDAL = r"'virtualraster' provider, which GDAL cannot read"

for _algorithm, _base in AREA_ALGORITHMS.items():
    case(_algorithm, "non-gdal-layer", NOT_GDAL)(
        lambda work, base=_base: {**base(work),
                                  "INPUT": [virtual_raster_layer(work.levels())]})
case(SIEVE, "non-gdal-layer", NOT_GDAL)(
    lambda work: {"INPUT": virtual_raster_layer(work.classes()), "MIN_AREA": 1000})
case(BANDMATH, "non-gdal-layer", NOT_GDAL)(
    lambda work: {"INPUT": [virtual_raster_layer(work.levels())], "EXPRESSION": "B1"})
case(CALIBRATE, "non-gdal-layer", NOT_GDAL)(
    lambda work: {"INPUT": [virtual_raster_layer(work.landsat_band())],
                  "OUTPUT_FOLDER": str(work.folder / "calibrated")})


# --------------------------------------------------------------------------------------------
# Metadata for calibration


def truncated_mtl(work, *, mid_line=False) -> str:
    """The real MTL cut in half: at a line end (a group is left open) or inside a line."""
    text = work.mtl_text
    cut = len(text) // 2 if mid_line else text.rindex("\n", 0, len(text) // 2) + 1
    return work.file(f"{LANDSAT}_MTL.txt", text[:cut])


CALIBRATING = {
    CALIBRATE: lambda work, band: {"INPUT": [band],
                                   "OUTPUT_FOLDER": str(work.folder / "calibrated")},
    BANDMATH: lambda work, band: {"INPUT": [band], "EXPRESSION": "B4 * 1", "CALIBRATE": True},
    ZONES: lambda work, band: {"INPUT": [band], "EXPRESSION": "B4 * 1", "CALIBRATE": True,
                               "CLUSTERS": 3},
}

for _algorithm, _base in CALIBRATING.items():
    case(_algorithm, "no-metadata-beside-the-band",
         rf"No Landsat metadata found for {LANDSAT}_B4_crop\.TIF.*looked for {LANDSAT}_MTL\.txt")(
        lambda work, base=_base: base(work, work.landsat_band(with_mtl=False)))
    case(_algorithm, "truncated-metadata", r"truncated")(
        lambda work, base=_base: {**base(work, work.landsat_band(with_mtl=False)),
                                  "METADATA": truncated_mtl(work)})
    case(_algorithm, "metadata-cut-inside-a-line-found-beside-the-band", r"damaged")(
        lambda work, base=_base: (truncated_mtl(work, mid_line=True),
                                  base(work, work.landsat_band(with_mtl=False)))[1])
    case(_algorithm, "metadata-of-another-scene", rf"belongs to {OTHER_LANDSAT}.*{LANDSAT}")(
        lambda work, base=_base: {**base(work, work.landsat_band(4, scene=OTHER_LANDSAT)),
                                  "METADATA": work.file(f"{LANDSAT}_MTL.txt", work.mtl_text)})

case(CALIBRATE, "missing-metadata-file",
     r"Cannot read metadata file .*missing_MTL\.txt: No such file")(
    lambda work: {**CALIBRATING[CALIBRATE](work, work.landsat_band()),
                  "METADATA": str(work.folder / "missing_MTL.txt")})
case(CALIBRATE, "corrupt-metadata", r"not a Landsat MTL|damaged")(
    lambda work: {**CALIBRATING[CALIBRATE](work, work.landsat_band(with_mtl=False)),
                  "METADATA": work.file(f"{LANDSAT}_MTL.txt",
                                        np.random.default_rng(1).bytes(3000))})
case(CALIBRATE, "empty-metadata", r"is empty")(
    lambda work: {**CALIBRATING[CALIBRATE](work, work.landsat_band(with_mtl=False)),
                  "METADATA": work.file(f"{LANDSAT}_MTL.txt", "")})
case(BANDMATH, "corrupt-metadata", r"not a Landsat MTL|damaged")(
    lambda work: {**CALIBRATING[BANDMATH](work, work.landsat_band(with_mtl=False)),
                  "METADATA": work.file(f"{LANDSAT}_MTL.txt", '{"L1_METADATA_FILE": [1, 2')})
case(CALIBRATE, "float-band", r"not integer digital numbers")(
    lambda work: CALIBRATING[CALIBRATE](work, (work.file(f"{LANDSAT}_MTL.txt", work.mtl_text),
                                               work.raster(f"{LANDSAT}_B4_crop.TIF",
                                                           three_levels()))[1]))


# --------------------------------------------------------------------------------------------
# Band-math expressions


EXPRESSION_ALGORITHMS = {
    BANDMATH: lambda work, expression: {"INPUT": [work.levels()], "EXPRESSION": expression},
    ZONES: lambda work, expression: {"INPUT": [work.levels()], "EXPRESSION": expression,
                                     "CLUSTERS": 3},
}


def check_no_pwned_file(result, feedback, work):
    assert not (work.folder / "pwned").exists()


for _algorithm, _base in EXPRESSION_ALGORITHMS.items():
    for _name, _expression, _message in (
            ("unparsable", "(B1 + ", r"[Ss]yntax error"),
            ("unknown-band", "B9 - B1", r"B9 is not an input band"),
            ("python-import", "__import__('os').system('touch pwned')",
             r"Names starting with '_' are not allowed \(column 1: '__import__'\)"),
            ("attribute-access", "B1.__class__.__bases__",
             r"Names starting with '_' are not allowed \(column 4: '__class__'\)"),
            ("attribute-of-a-band", "B1.real", r"Attribute access .* is not allowed"),
            ("lambda", "(lambda x: x)(B1)", r"The character ':' is not allowed"),
            ("huge-power", "B1 ** 9 ** 9 ** 9", r"The exponent .* is too large"),
            ("too-long", "B1 + " * 3000 + "B1", r"characters: at most"),
    ):
        case(_algorithm, f"expression-{_name}", _message)(
            lambda work, base=_base, text=_expression: (base(work, text), check_no_pwned_file))


# --------------------------------------------------------------------------------------------
# Centroid JSON


ONE_FEATURE_CENTRES = {"levels": [[1, [0.1]], [2, [0.5]], [3, [0.9]]]}

case(APPLY, "json-with-two-features-on-one-band", r"centres are for 2 feature")(
    lambda work: {"INPUT": [work.levels()], "CENTROIDS": work.centroids(
        {"a, b": [[1, [0.1, 1]], [2, [0.9, 2]]], "features": ["a", "b"]})})
case(APPLY, "json-with-one-feature-on-two-bands", r"centres are for 1 feature.*2 band")(
    lambda work: {"INPUT": [work.raster("two.tif", np.stack([three_levels()] * 2))],
                  "CENTROIDS": work.centroids(ONE_FEATURE_CENTRES)})
case(APPLY, "corrupt-json", r"Cannot read the centroid JSON")(
    lambda work: {"INPUT": [work.levels()], "CENTROIDS": work.centroids('{"levels": [[1, [0.')})
case(APPLY, "json-of-something-else", r"not a centroid JSON")(
    lambda work: {"INPUT": [work.levels()], "CENTROIDS": work.centroids({"type": "Feature"})})
case(APPLY, "missing-json", r"Cannot read the centroid JSON .*missing\.json.*No such file")(
    lambda work: {"INPUT": [work.levels()], "CENTROIDS": str(work.folder / "missing.json")})
case(APPLY, "json-with-twin-centres", r"Classes 1, 2 of the centroid JSON have the same")(
    lambda work: {"INPUT": [work.levels()],
                  "CENTROIDS": work.centroids({"levels": [[1, [0.5]], [2, [0.5]]]})})


# --------------------------------------------------------------------------------------------
# Outputs: over an input, in a folder that cannot exist


OUTPUT_OVER_INPUT = r"one of the inputs"
NO_SUCH_FOLDER = r"(folder .* does not exist|Cannot create the output folder)"
NOT_A_GEOTIFF_NAME = r"'out\.img' must be a GeoTIFF .*extensions \.tif, \.tiff"

RASTER_OUTPUTS = {
    KMEANS: ("OUTPUT", AREA_ALGORITHMS[KMEANS]),
    APPLY: ("OUTPUT", AREA_ALGORITHMS[APPLY]),
    ZONES: ("OUTPUT", AREA_ALGORITHMS[ZONES]),
    BANDMATH: ("OUTPUT", lambda work: {"INPUT": [work.levels()], "EXPRESSION": "B1"}),
    SIEVE: ("OUTPUT", lambda work: {"INPUT": work.classes(), "MIN_AREA": 1000}),
    CALIBRATE: ("OUTPUT", lambda work: {"INPUT": [work.landsat_band()]}),
}

for _algorithm, (_name, _base) in RASTER_OUTPUTS.items():
    case(_algorithm, "output-is-an-input", OUTPUT_OVER_INPUT)(
        lambda work, base=_base, name=_name: (
            lambda parameters: {**parameters, name: work.protect(
                parameters["INPUT"][0] if isinstance(parameters["INPUT"], list)
                else parameters["INPUT"])})(base(work)))
    case(_algorithm, "output-under-a-file", NO_SUCH_FOLDER)(
        lambda work, base=_base, name=_name: {**base(work),
                                              name: str(work.under_a_file / "out.tif")})
    # GeoTIFF is written whatever the name says: another extension would lie about the file.
    case(_algorithm, "output-not-a-geotiff", NOT_A_GEOTIFF_NAME)(
        lambda work, base=_base, name=_name: {**base(work),
                                              name: str(work.folder / "out.img")})


case(KMEANS, "centroids-over-an-input", OUTPUT_OVER_INPUT)(
    lambda work: (lambda parameters: {**parameters, "CENTROIDS": work.protect(
        parameters["INPUT"][0])})(AREA_ALGORITHMS[KMEANS](work)))
case(ZONES, "centroids-over-an-input", OUTPUT_OVER_INPUT)(
    lambda work: (lambda parameters: {**parameters, "CENTROIDS": work.protect(
        parameters["INPUT"][0])})(AREA_ALGORITHMS[ZONES](work)))
case(CHOOSEK, "report-over-an-input", OUTPUT_OVER_INPUT)(
    lambda work: (lambda parameters: {**parameters, "REPORT": work.protect(
        parameters["INPUT"][0])})(AREA_ALGORITHMS[CHOOSEK](work)))
case(KMEANS, "centroids-under-a-file", NO_SUCH_FOLDER)(
    lambda work: {**AREA_ALGORITHMS[KMEANS](work),
                  "CENTROIDS": str(work.under_a_file / "out.json")})
case(ZONES, "centroids-under-a-file", NO_SUCH_FOLDER)(
    lambda work: {**AREA_ALGORITHMS[ZONES](work),
                  "CENTROIDS": str(work.under_a_file / "out.json")})
for _algorithm, _name in ((KMEANS, "STATISTICS"), (APPLY, "STATISTICS"), (ZONES, "STATISTICS"),
                          (CHOOSEK, "TABLE")):
    case(_algorithm, f"{_name.lower()}-under-a-file", NO_SUCH_FOLDER)(
        lambda work, base=AREA_ALGORITHMS[_algorithm], name=_name: {
            **base(work), name: str(work.under_a_file / "table.csv")})
case(APPLY, "output-over-the-centroid-json", OUTPUT_OVER_INPUT)(
    lambda work: (lambda parameters: {**parameters, "OUTPUT": work.protect(
        parameters["CENTROIDS"])})(AREA_ALGORITHMS[APPLY](work)))
case(CALIBRATE, "output-over-the-metadata", OUTPUT_OVER_INPUT)(
    lambda work: {"INPUT": [work.landsat_band()],
                  "OUTPUT": work.protect(work.file(f"{LANDSAT}_MTL.tif", work.mtl_text)),
                  "METADATA": str(work.folder / f"{LANDSAT}_MTL.tif")})
case(KMEANS, "centroids-over-the-output", r"outputs OUTPUT and CENTROIDS are the same file")(
    lambda work: {**AREA_ALGORITHMS[KMEANS](work), "CENTROIDS": str(work.folder / "out.tif")})
case(ZONES, "index-over-the-output", r"outputs OUTPUT and INDEX are the same file")(
    lambda work: {**AREA_ALGORITHMS[ZONES](work), "INDEX": str(work.folder / "out.tif")})
case(CHOOSEK, "report-under-a-file", NO_SUCH_FOLDER)(
    lambda work: {**AREA_ALGORITHMS[CHOOSEK](work),
                  "REPORT": str(work.under_a_file / "report.html")})
case(CALIBRATE, "output-folder-under-a-file", NO_SUCH_FOLDER)(
    lambda work: {"INPUT": [work.landsat_band()], "OUTPUT_FOLDER": str(work.under_a_file)})


# --------------------------------------------------------------------------------------------
# The test


def test_the_matrix_is_large_enough():
    assert len(CASES) >= 40
    assert len({p.id for p in CASES}) == len(CASES)
    assert {p.values[0] for p in CASES} == {KMEANS, SIEVE, BANDMATH, CALIBRATE, APPLY, CHOOSEK,
                                            ZONES}


@pytest.mark.parametrize("algorithm, build, error", CASES)
def test_bad_input(algorithm, build, error, tmp_path, request):
    from qgis.core import QgsProcessingException

    work = Work(tmp_path / "work", request)
    work.folder.mkdir()
    built = build(work)
    parameters, check = built if isinstance(built, tuple) else (built, None)
    outputs = {name: str(path) for name, path in default_outputs(algorithm, work.folder).items()}
    parameters = {**outputs, **parameters}
    feedback = recording_feedback()
    inputs = snapshot(work.folder)
    temporary = processing_temp_folder()
    temporary_before = snapshot(temporary)
    if error is None:
        result = run_algorithm(f"rasterclustering:{algorithm}", parameters, feedback)
        check(result, feedback, work)
        return
    with pytest.raises(QgsProcessingException) as raised:
        run_algorithm(f"rasterclustering:{algorithm}", parameters, feedback)
    message = str(raised.value)
    assert re.search(error, message, re.DOTALL), message
    assert left_behind(work.folder, inputs) == set(), message
    assert left_behind(temporary, temporary_before) == set(), message
    for path, content in work.protected.items():
        assert path.read_bytes() == content, f"{path} was changed"
    if check is not None:
        check(None, feedback, work)
