"""Minimum-area sieve: thresholds, GDAL-style merging, nodata, metadata, errors, cancellation.

The oracle is scipy.ndimage.label with the chosen connectivity; areas of geographic rows come from
OGR (a cylindrical equal-area projection, EPSG:6933, in which a lat/lon cell is a rectangle).
"""

import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import label_regions, small_regions_with_neighbours
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from osgeo import gdal, ogr, osr
from raster_clustering.core.errors import CancelledError, InvalidInputError
from raster_clustering.core.sieve import sieve

UTM_GT = (500000.0, 10.0, 0.0, 5_000_000.0, 0.0, -10.0)  # 10 m pixels: 100 m²
US_SURVEY_FOOT_M = 1200 / 3937
HYPOTHESIS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# ----------------------------------------------------------------------------- helpers


def epsg_wkt(code):
    srs = osr.SpatialReference()
    assert srs.ImportFromEPSG(code) == 0
    return srs.ExportToWkt()


def write_raster(path, values, *, epsg=32633, geotransform=UTM_GT, nodata=None, data_type=None,
                 colours=None, categories=None, description=None, mask=None):
    data_type = data_type or gdal_array_type(values.dtype)
    dataset = gdal.GetDriverByName("GTiff").Create(
        str(path), values.shape[1], values.shape[0], 1, data_type
    )
    dataset.SetGeoTransform(geotransform)
    if epsg is not None:
        dataset.SetProjection(epsg_wkt(epsg))
    band = dataset.GetRasterBand(1)
    band.WriteArray(values)
    if nodata is not None:
        band.SetNoDataValue(nodata)
    if colours and data_type in (gdal.GDT_Byte, gdal.GDT_UInt16):
        assert band.SetColorTable(colour_table(colours)) == 0
    if categories:
        band.SetCategoryNames(categories)
    if description:
        band.SetDescription(description)
    if mask is not None:
        dataset.CreateMaskBand(gdal.GMF_PER_DATASET)
        band.GetMaskBand().WriteArray(np.where(mask, 255, 0).astype(np.uint8))
    band = None
    dataset = None
    if colours and data_type not in (gdal.GDT_Byte, gdal.GDT_UInt16):
        dataset = gdal.Open(str(path))  # read-only: GDAL keeps the palette in the .aux.xml
        assert dataset.GetRasterBand(1).SetColorTable(colour_table(colours)) == 0
        dataset = None
    return str(path)


def colour_table(colours):
    table = gdal.ColorTable()
    for value, rgba in colours.items():
        table.SetColorEntry(value, rgba)
    return table


def gdal_array_type(dtype):
    return {np.dtype(np.uint8): gdal.GDT_Byte, np.dtype(np.uint16): gdal.GDT_UInt16,
            np.dtype(np.int16): gdal.GDT_Int16, np.dtype(np.uint32): gdal.GDT_UInt32,
            np.dtype(np.int32): gdal.GDT_Int32, np.dtype(np.float32): gdal.GDT_Float32}[dtype]


def read_values(path):
    dataset = gdal.Open(str(path))
    assert dataset is not None
    return dataset.GetRasterBand(1).ReadAsArray()


def region_area_map(values, valid, connectivity, row_areas_m2):
    """Area in m² of the region each valid pixel belongs to (0 on nodata)."""
    labels = label_regions(values, valid, connectivity)
    weights = np.broadcast_to(np.asarray(row_areas_m2, float)[:, None], values.shape)
    areas = np.bincount(labels.ravel(), weights=weights.ravel())
    return np.where(labels > 0, areas[labels], 0.0)


def assert_sieve_guarantees(before, after, valid, *, min_area_m2, connectivity, row_areas_m2):
    """The module's promises, checked with scipy's labelling."""
    keep = min_area_m2 * (1 - 1e-9)
    np.testing.assert_array_equal(after[~valid], before[~valid])  # nodata untouched
    assert (after[valid] != 0).all()  # no valid pixel takes the nodata value 0
    big_before = valid & (region_area_map(before, valid, connectivity, row_areas_m2) >= keep)
    np.testing.assert_array_equal(after[big_before], before[big_before])  # large regions kept
    offending = small_regions_with_neighbours(after, valid, connectivity=connectivity,
                                              min_size=min_area_m2, row_sizes=row_areas_m2)
    assert len(offending) == 0, "a region smaller than MIN_AREA still has a valid neighbour"
    assert set(np.unique(after[valid])) <= set(np.unique(before[valid]))


def place_blob(values, top, left, n_pixels, value, width=5):
    """Write a compact blob of exactly n_pixels (rows of `width`) at (top, left)."""
    for index in range(n_pixels):
        values[top + index // width, left + index % width] = value


def ogr_row_areas_m2(geotransform, n_rows):
    """Pixel area of each row of a north-up WGS 84 grid, measured by OGR in EPSG:6933."""
    geographic = osr.SpatialReference()
    geographic.ImportFromEPSG(4326)
    geographic.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    equal_area = osr.SpatialReference()
    equal_area.ImportFromEPSG(6933)
    transform = osr.CoordinateTransformation(geographic, equal_area)
    x0, width, _, y0, _, height = geotransform
    areas = []
    for row in range(n_rows):
        top, bottom = y0 + row * height, y0 + (row + 1) * height
        cell = ogr.CreateGeometryFromWkt(
            f"POLYGON(({x0} {bottom},{x0 + width} {bottom},{x0 + width} {top},{x0} {top},"
            f"{x0} {bottom}))"
        )
        cell.Transform(transform)
        areas.append(cell.GetArea())
    return np.array(areas)


def sieve_arrays(tmp_path, values, *, min_area_m2, connectivity=8, name="case", **raster_kwargs):
    source = write_raster(tmp_path / f"{name}.tif", values, **raster_kwargs)
    output = tmp_path / f"{name}_sieved.tif"
    report = sieve.sieve_raster(source, output, min_area_m2=min_area_m2, connectivity=connectivity)
    return read_values(output), report


# ----------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize(
    ("min_area_m2", "pixel_area_m2", "expected"),
    [
        (2000, 100, 20),  # exactly 20 pixels: a 20-pixel region is kept
        (1999.5, 100, 20),
        (2000.5, 100, 21),
        (2.7, 0.3 * 0.3, 30),  # 2.7 / 0.09 = 30.000000000000004 in floating point
        (61 * (10 * US_SURVEY_FOOT_M) ** 2, (10 * US_SURVEY_FOOT_M) ** 2, 61),  # 61.00000000000001
        (50, 100, 1),
        (100, 100, 1),
        (1e30, 1e-30, 2**62),
    ],
)
def test_min_area_pixels_rounds_to_gdal_threshold(min_area_m2, pixel_area_m2, expected):
    assert sieve.min_area_pixels(min_area_m2, pixel_area_m2) == expected


@pytest.mark.parametrize("bad", [0, -5, float("nan"), float("inf"), None, "10", True])
def test_min_area_pixels_refuses_non_positive_areas(bad):
    with pytest.raises(InvalidInputError, match="must be an area in m² greater than 0"):
        sieve.min_area_pixels(bad, 100)
    with pytest.raises(InvalidInputError, match="must be an area in m² greater than 0"):
        sieve.min_area_pixels(100, bad)


@pytest.mark.parametrize("connectivity", [4, 8])
def test_utm_19_pixel_region_merges_20_pixel_region_stays(tmp_path, connectivity, pass_control):
    values = np.ones((30, 30), np.uint8)
    place_blob(values, 2, 2, 19, 2)
    place_blob(values, 15, 15, 20, 3)
    after, report = sieve_arrays(tmp_path, values, min_area_m2=2000, connectivity=connectivity)
    assert report.pixel_threshold == (20, 20)
    assert report.pixel_area_m2 == (100.0, 100.0)
    assert report.changed_pixels == 19 and report.warnings == ()
    assert not (after == 2).any()
    np.testing.assert_array_equal(after == 3, values == 3)


def test_us_survey_feet_threshold(tmp_path):
    pixel_m2 = (10 * US_SURVEY_FOOT_M) ** 2  # 10 ft pixels, handbook foot
    values = np.ones((30, 30), np.uint8)
    place_blob(values, 2, 2, 19, 2)
    place_blob(values, 15, 15, 20, 3)
    kwargs = dict(epsg=2227, geotransform=(6e6, 10.0, 0.0, 2e6, 0.0, -10.0))
    after, report = sieve_arrays(tmp_path, values, min_area_m2=20 * pixel_m2, **kwargs)
    assert report.pixel_threshold == (20, 20)
    assert report.pixel_area_m2[0] == pytest.approx(pixel_m2, rel=1e-12)
    assert not (after == 2).any() and (after == 3).sum() == 20
    # A hair more than 20 pixels: the 20-pixel region goes too.
    after, report = sieve_arrays(tmp_path, values, min_area_m2=20.01 * pixel_m2, name="more",
                                 **kwargs)
    assert report.pixel_threshold == (21, 21)
    assert not (after == 3).any()


@pytest.mark.parametrize("top_lat", [0.002, 60.002])
def test_geographic_threshold_follows_latitude(tmp_path, top_lat):
    cell = 0.0001
    gt = (15.0, cell, 0.0, top_lat, 0.0, -cell)
    row_areas = ogr_row_areas_m2(gt, 40)
    expected = math.ceil(2000 / row_areas.mean())  # 17 at the equator, 33 at 60°
    assert math.ceil(2000 / row_areas.max()) == math.ceil(2000 / row_areas.min()) == expected
    values = np.ones((40, 40), np.int16)
    place_blob(values, 1, 1, expected - 1, 2, width=6)
    place_blob(values, 12, 1, expected, 3, width=6)
    place_blob(values, 28, 20, 20, 4, width=6)  # 20 pixels: enough at 0°, not at 60°
    after, report = sieve_arrays(tmp_path, values, min_area_m2=2000, epsg=4326, geotransform=gt)
    assert report.pixel_threshold == (expected, expected)
    assert report.pixel_area_m2[0] == pytest.approx(row_areas.min(), rel=1e-6)
    assert report.pixel_area_m2[1] == pytest.approx(row_areas.max(), rel=1e-6)
    assert not (after == 2).any() and (after == 3).sum() == expected
    assert (after == 4).sum() == (20 if top_lat < 1 else 0)


def test_threshold_at_60_degrees_is_about_twice_the_equators(tmp_path):
    thresholds = []
    for top_lat in (0.0005, 60.0005):
        values = np.ones((10, 10), np.uint8)
        _, report = sieve_arrays(tmp_path, values, min_area_m2=50_000, epsg=4326,
                                 geotransform=(0.0, 0.0001, 0.0, top_lat, 0.0, -0.0001),
                                 name=f"lat{top_lat}")
        thresholds.append(report.pixel_threshold[0])
    # Handbook: pixel area ∝ M·N·cosφ = a²(1 − e²)cosφ / (1 − e²sin²φ)², so not quite cos 60° = 1/2.
    e2 = 0.00669437999014  # WGS 84
    expected_ratio = (1 - e2 * math.sin(math.radians(60)) ** 2) ** 2 / math.cos(math.radians(60))
    assert expected_ratio == pytest.approx(1.98, abs=0.01)
    assert thresholds[1] / thresholds[0] == pytest.approx(expected_ratio, rel=0.005)


def test_geographic_true_area_decides_across_latitudes(tmp_path):
    # 0.1° pixels from 60°N to the equator: 123 km² per pixel at the bottom, 62 km² at the top.
    gt = (20.0, 0.1, 0.0, 60.0, 0.0, -0.1)
    row_areas = ogr_row_areas_m2(gt, 600)
    values = np.ones((600, 12), np.uint8)
    place_blob(values, 590, 1, 5, 2)  # about 615 km² near the equator
    place_blob(values, 50, 1, 5, 3)  # about 355 km² near 55°N
    place_blob(values, 40, 6, 6, 4)  # about 430 km² near 56°N
    min_area = 400e6
    assert 5 * row_areas[590] > min_area > 5 * row_areas[50]
    assert 6 * row_areas[41] > min_area
    after, report = sieve_arrays(tmp_path, values, min_area_m2=min_area, epsg=4326,
                                 geotransform=gt)
    assert report.pixel_threshold == (
        math.ceil(min_area / row_areas.max()), math.ceil(min_area / row_areas.min())
    )
    assert (after == 2).sum() == 5 and not (after == 3).any() and (after == 4).sum() == 6
    assert_sieve_guarantees(values, after, np.ones(values.shape, bool), min_area_m2=min_area,
                            connectivity=8, row_areas_m2=row_areas)


def test_region_of_exactly_min_area_is_kept_by_true_area(tmp_path):
    gt = (0.0, 1.0, 0.0, 80.0, 0.0, -5.0)  # strongly varying rows: the in-memory path
    row_areas = ogr_row_areas_m2(gt, 12)
    values = np.ones((12, 6), np.uint8)
    values[6, 0:2] = 2
    exact = 2 * row_areas[6]
    after, report = sieve_arrays(tmp_path, values, min_area_m2=exact, epsg=4326, geotransform=gt)
    assert report.pixel_threshold[0] < report.pixel_threshold[1]
    assert (after == 2).sum() == 2
    after, _ = sieve_arrays(tmp_path, values, min_area_m2=exact * 1.0001, epsg=4326,
                            geotransform=gt, name="above")
    assert not (after == 2).any()


# ----------------------------------------------------------------------------- merging rules


def test_connectivity_4_and_8_differ_on_a_diagonal(tmp_path):
    values = np.ones((12, 12), np.uint8)
    for index in range(6):
        values[3 + index, 3 + index] = 2  # 6 pixels touching only by corners
    eight, _ = sieve_arrays(tmp_path, values, min_area_m2=500, connectivity=8, name="eight")
    four, _ = sieve_arrays(tmp_path, values, min_area_m2=500, connectivity=4, name="four")
    np.testing.assert_array_equal(eight, values)  # one region of 6 pixels >= 5
    assert not (four == 2).any()  # six regions of 1 pixel < 5


@pytest.fixture(params=["statistics", "comparison"])
def pass_control(request, monkeypatch):
    """Run with GDAL's debug statistics deciding when to stop, and without them (the fallback
    that compares each pass with the previous one)."""
    if request.param == "comparison":
        monkeypatch.setattr(sieve, "_SIEVE_STATISTICS", re.compile("never matches"))
    return request.param


def test_repeated_passes_merge_what_one_gdal_pass_leaves(tmp_path, pass_control):
    # A (3 px) and B (5 px) are each other's largest neighbour: GDAL's first pass gives up on
    # both; X (2 px) merges into D. The second pass then merges B, and A with it, into D.
    row = np.array([1, 1, 1, 2, 2, 2, 2, 2, 3, 3] + [4] * 10, np.uint8)
    values = row[None, :].copy()
    source = gdal.GetDriverByName("MEM").Create("", values.shape[1], 1, 1, gdal.GDT_Byte)
    source.GetRasterBand(1).WriteArray(values)
    target = gdal.GetDriverByName("MEM").Create("", values.shape[1], 1, 1, gdal.GDT_Byte)
    gdal.SieveFilter(source.GetRasterBand(1), None, target.GetRasterBand(1), 6, 4)
    single = target.GetRasterBand(1).ReadAsArray()
    assert (single == 1).sum() == 3 and (single == 2).sum() == 5  # one pass is not enough
    after, report = sieve_arrays(tmp_path, values, min_area_m2=600, connectivity=4)
    np.testing.assert_array_equal(after, np.full_like(values, 4))
    assert report.changed_pixels == 10


def test_true_area_merging_follows_gdal_chains(tmp_path):
    # One valid row near the pole, the next row nodata (but three times larger pixels, which
    # makes the in-memory path run). A (6 px) has neighbours B (10) and E (8): its largest, B, is
    # small too, and B's largest, C, is large, so A follows the chain to C, as GDAL does; it
    # would join F if it waited for B and E to merge first.
    row = np.array([6] * 40 + [5] * 8 + [1] * 6 + [2] * 10 + [3] * 24, np.uint8)
    gt = (0.0, 0.1, 0.0, 90.0, 0.0, -10.0)
    row_areas = ogr_row_areas_m2(gt, 2)
    assert row_areas[1] / row_areas[0] == pytest.approx(2.96, abs=0.01)
    source = gdal.GetDriverByName("MEM").Create("", len(row), 1, 1, gdal.GDT_Byte)
    source.GetRasterBand(1).WriteArray(row[None, :])
    target = gdal.GetDriverByName("MEM").Create("", len(row), 1, 1, gdal.GDT_Byte)
    gdal.SieveFilter(source.GetRasterBand(1), None, target.GetRasterBand(1), 11, 4)
    gdal_row = target.GetRasterBand(1).ReadAsArray()[0]
    np.testing.assert_array_equal(gdal_row, [6] * 48 + [3] * 40)
    values = np.stack([row, np.zeros_like(row)])
    after, report = sieve_arrays(tmp_path, values, min_area_m2=11 * row_areas[0] * 0.9999,
                                 connectivity=4, epsg=4326, geotransform=gt, nodata=0)
    assert report.pixel_threshold == (4, 11)  # A, B and E all wait for the in-memory step
    np.testing.assert_array_equal(after[0], gdal_row)


@pytest.mark.parametrize("connectivity", [4, 8])
def test_true_area_diagonal_contact_counts_with_8_connectivity(tmp_path, connectivity):
    gt = (0.0, 0.1, 0.0, 90.0, 0.0, -10.0)  # rows 90-80°, 80-70°, 70-60°: areas 1 : 3 : 4.9
    row_areas = ogr_row_areas_m2(gt, 3)
    values = np.zeros((3, 8), np.uint8)
    values[0, 0:6] = 1  # 6 pixels of the top row: large
    values[1, 6:8] = 2  # 2 pixels of the next row, touching class 1 only by a corner: small
    min_area = 5.99 * row_areas[0]
    assert 6 * row_areas[0] > min_area > 2 * row_areas[1]
    after, report = sieve_arrays(tmp_path, values, min_area_m2=min_area,
                                 connectivity=connectivity, epsg=4326, geotransform=gt, nodata=0)
    assert report.pixel_threshold == (2, 6)  # class 2 waits for the in-memory step
    assert (after[1, 6:8] == (1 if connectivity == 8 else 2)).all()


def test_true_area_regions_touch_across_strips(tmp_path):
    # South-up rows from the equator to 90°N: the in-memory step works in strips of 256 rows,
    # and class 2 in row 256 touches class 1 only across that seam.
    gt = (0.0, 0.3, 0.0, 0.0, 0.0, 0.3)
    values = np.zeros((300, 4), np.uint8)
    values[:256, :] = 1
    values[256, 0:2] = 2
    row_areas = ogr_row_areas_m2(gt, 300)
    min_area = 3 * row_areas[256]
    after, report = sieve_arrays(tmp_path, values, min_area_m2=min_area, connectivity=4,
                                 epsg=4326, geotransform=gt, nodata=0)
    assert report.pixel_threshold[0] == 1  # no GDAL pre-pass: the in-memory step does it all
    assert (after[256, 0:2] == 1).all()
    assert_sieve_guarantees(values, after, values != 0, min_area_m2=min_area, connectivity=4,
                            row_areas_m2=row_areas)


def test_nodata_is_never_merged_into_nor_filled(tmp_path):
    values = np.ones((20, 20), np.uint8)
    values[:, 10:] = 2
    values[5, 5] = 0  # a one-pixel nodata hole inside class 1: must stay nodata
    values[0:12, 14:20] = 0  # a nodata block
    values[12, 19] = 3  # one pixel touching the nodata block and class 2: merges into class 2
    values[0:2, 16:18] = 3  # a 4-pixel island inside nodata: no valid neighbour, stays
    after, report = sieve_arrays(tmp_path, values, min_area_m2=500, nodata=0)
    valid = values != 0
    np.testing.assert_array_equal(after[~valid], 0)
    assert (after[valid] != 0).all()
    assert after[12, 19] == 2
    np.testing.assert_array_equal(after[0:2, 16:18], 3)
    assert report.changed_pixels == 1


def test_island_of_small_regions_becomes_its_larger_region(tmp_path):
    # A patch of valid pixels enclosed by nodata, with no region of MIN_AREA in it: GDAL's sieve
    # gives up (each region's largest neighbour is the other), the exact step merges them.
    values = np.zeros((10, 10), np.uint8)
    values[2:4, 2:5] = 1  # 6 pixels
    values[4:5, 2:6] = 2  # 4 pixels
    values[8:10, 0:10] = 3  # a large region elsewhere, not touching the island
    after, report = sieve_arrays(tmp_path, values, min_area_m2=1000, nodata=0)
    expected = values.copy()
    expected[values == 2] = 1
    np.testing.assert_array_equal(after, expected)
    assert report.changed_pixels == 4


@pytest.mark.parametrize("geographic", [False, True])
def test_all_small_island_ends_as_regions_of_min_area(tmp_path, geographic):
    # One valid row between nodata: A 4 px, B 3, C 1, D 3, E 4 (classes 1-5), 5 px needed.
    # A and B are each other's largest neighbour, so are D and E; C follows B (a tie: B starts
    # first). A absorbs B and C (8 px), E absorbs D (7 px): two zones, both large enough.
    row = np.array([1] * 4 + [2] * 3 + [3] + [4] * 3 + [5] * 4, np.uint8)
    values = np.zeros((3, len(row)), np.uint8)
    values[1] = row
    kwargs = dict(epsg=4326, geotransform=(0.0, 0.001, 0.0, 0.0015, 0.0, -0.001)) if geographic \
        else {}
    # In degrees, the rows' pixel areas differ slightly: 5 px of the middle row are enough.
    pixel_m2 = ogr_row_areas_m2(kwargs["geotransform"], 3)[1] if geographic else 100.0
    after, _ = sieve_arrays(tmp_path, values, min_area_m2=4.999 * pixel_m2, connectivity=4,
                            nodata=0, **kwargs)
    np.testing.assert_array_equal(after[1], [1] * 8 + [5] * 7)
    np.testing.assert_array_equal(after[[0, 2]], 0)


@st.composite
def classified_rasters(draw):
    """Seeded random rasters: blocky classes, salt-and-pepper noise, nodata blobs (0)."""
    rows, cols = draw(st.integers(3, 28)), draw(st.integers(3, 28))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_classes = draw(st.integers(2, 5))
    scale = draw(st.sampled_from([1, 2, 4]))
    coarse = rng.integers(1, n_classes + 1, size=(-(-rows // scale), -(-cols // scale)))
    values = np.kron(coarse, np.ones((scale, scale), int))[:rows, :cols]
    noisy = rng.random((rows, cols)) < draw(st.sampled_from([0.0, 0.1, 0.4]))
    values[noisy] = rng.integers(1, n_classes + 1, size=int(noisy.sum()))
    nodata_scale = draw(st.sampled_from([1, 3]))
    nodata_coarse = rng.random((-(-rows // nodata_scale), -(-cols // nodata_scale)))
    nodata = np.kron(nodata_coarse, np.ones((nodata_scale, nodata_scale)))[:rows, :cols]
    values[nodata < draw(st.sampled_from([0.0, 0.1, 0.3]))] = 0
    return values.astype(np.uint8)


def invalid_pixels_as(values, how):
    """Raster arguments marking the 0 pixels invalid: by a nodata value, or by an internal mask
    over pixels that keep a class value (so that a class value alone says nothing)."""
    valid = values != 0
    if how == "nodata":
        return values, valid, dict(nodata=0)
    hidden = values.copy()
    hidden[~valid] = (np.arange(values.size).reshape(values.shape) % 3 + 1)[~valid]
    return hidden, valid, dict(mask=valid)


@HYPOTHESIS
@given(raw=classified_rasters(), min_pixels=st.integers(1, 16),
       connectivity=st.sampled_from([4, 8]), how=st.sampled_from(["nodata", "mask"]))
def test_property_projected(tmp_path, pass_control, raw, min_pixels, connectivity, how):
    min_area = min_pixels * 100.0
    values, valid, kwargs = invalid_pixels_as(raw, how)
    after, report = sieve_arrays(tmp_path, values, min_area_m2=min_area, connectivity=connectivity,
                                 **kwargs)
    assert_sieve_guarantees(values, after, valid, min_area_m2=min_area, connectivity=connectivity,
                            row_areas_m2=np.full(values.shape[0], 100.0))
    assert report.changed_pixels == int(np.count_nonzero(after != values))


@HYPOTHESIS
@given(raw=classified_rasters(), min_area_km2=st.integers(1, 60).map(lambda k: k * 25_000),
       connectivity=st.sampled_from([4, 8]), how=st.sampled_from(["nodata", "mask"]))
def test_property_geographic(tmp_path, raw, min_area_km2, connectivity, how):
    gt = (0.0, 1.0, 0.0, 80.0, 0.0, -2.5)  # 80°N to 10°N: pixel areas vary by a factor of 5
    min_area = min_area_km2 * 1e6
    values, valid, kwargs = invalid_pixels_as(raw, how)
    after, _ = sieve_arrays(tmp_path, values, min_area_m2=min_area, connectivity=connectivity,
                            epsg=4326, geotransform=gt, **kwargs)
    assert_sieve_guarantees(values, after, valid, min_area_m2=min_area,
                            connectivity=connectivity,
                            row_areas_m2=ogr_row_areas_m2(gt, values.shape[0]))


def test_real_landsat_classes(tmp_path, shared_data):
    source = gdal.Open(str(shared_data / "misc" / "RGB.byte.tif"))
    red = source.GetRasterBand(1).ReadAsArray()
    valid = red != 0
    classes = np.zeros(red.shape, np.uint8)
    classes[valid] = np.digitize(red[valid], np.quantile(red[valid], [0.25, 0.5, 0.75])) + 1
    path = tmp_path / "classes.tif"
    write_raster(path, classes, epsg=None, geotransform=source.GetGeoTransform(), nodata=0)
    dataset = gdal.Open(str(path), gdal.GA_Update)
    dataset.SetProjection(source.GetProjection())
    dataset = None
    pixel_m2 = abs(source.GetGeoTransform()[1] * source.GetGeoTransform()[5])
    report = sieve.sieve_raster(path, tmp_path / "out.tif", min_area_m2=12 * pixel_m2)
    after = read_values(tmp_path / "out.tif")
    assert report.pixel_threshold == (12, 12)
    assert_sieve_guarantees(classes, after, valid, min_area_m2=12 * pixel_m2, connectivity=8,
                            row_areas_m2=np.full(red.shape[0], pixel_m2))
    assert report.changed_pixels == int(np.count_nonzero(after != classes)) > 1000


# ----------------------------------------------------------------------------- output file


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.uint32, np.int32])
def test_type_grid_crs_nodata_colours_names_description_carried(tmp_path, dtype):
    values = np.ones((20, 30), dtype)
    values[:, 15:] = 2
    values[3, 3] = 2
    values[0, :] = 7
    colours = {1: (255, 0, 0, 255), 2: (0, 128, 0, 255), 7: (0, 0, 0, 0)}
    names = ["", "water", "forest"]
    source = write_raster(tmp_path / "in.tif", values, nodata=7, colours=colours,
                          categories=names, description="land cover",
                          geotransform=(1000.0, 10.0, 0.0, 9000.0, 0.0, -10.0))
    output = tmp_path / "out.tif"
    report = sieve.sieve_raster(source, output, min_area_m2=300)
    assert report.changed_pixels == 1
    dataset = gdal.Open(str(output))
    band = dataset.GetRasterBand(1)
    assert band.DataType == gdal_array_type(np.dtype(dtype))
    assert dataset.GetGeoTransform() == (1000.0, 10.0, 0.0, 9000.0, 0.0, -10.0)
    output_crs = osr.SpatialReference(wkt=dataset.GetProjection())
    assert output_crs.IsSame(osr.SpatialReference(wkt=epsg_wkt(32633)))
    assert band.GetNoDataValue() == 7
    assert band.GetCategoryNames() == names
    assert band.GetDescription() == "land cover"
    table = band.GetColorTable()
    assert table is not None
    for value, rgba in colours.items():
        assert table.GetColorEntry(value) == rgba
    assert band.GetBlockSize() == [256, 256]
    assert dataset.GetMetadataItem("COMPRESSION", "IMAGE_STRUCTURE") == "DEFLATE"
    after = band.ReadAsArray()
    expected = values.copy()
    expected[3, 3] = 1
    np.testing.assert_array_equal(after, expected)
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["in.tif", "in.tif.aux.xml", "out.tif", "out.tif.aux.xml"]
    )


def test_second_band_of_a_multiband_raster(tmp_path):
    first = np.ones((12, 12), np.uint8)
    second = np.full((12, 12), 5, np.uint8)
    second[4, 4] = 6
    path = tmp_path / "two.tif"
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), 12, 12, 2, gdal.GDT_Byte)
    dataset.SetGeoTransform(UTM_GT)
    dataset.SetProjection(epsg_wkt(32633))
    dataset.GetRasterBand(1).WriteArray(first)
    dataset.GetRasterBand(2).WriteArray(second)
    dataset = None
    report = sieve.sieve_raster(path, tmp_path / "out.tif", min_area_m2=200, band=2)
    output = gdal.Open(str(tmp_path / "out.tif"))
    assert output.RasterCount == 1 and report.changed_pixels == 1
    np.testing.assert_array_equal(output.GetRasterBand(1).ReadAsArray(), np.full((12, 12), 5))


def test_uint32_classes_above_int32_range(tmp_path):
    values = np.full((10, 10), 4_000_000_000, np.uint32)
    values[4, 4] = 3_000_000_000
    after, _ = sieve_arrays(tmp_path, values, min_area_m2=300)
    np.testing.assert_array_equal(after, np.full((10, 10), 4_000_000_000, np.uint32))


def test_uint32_classes_refused_where_an_old_gdal_would_clip_them(tmp_path, monkeypatch):
    source = write_raster(tmp_path / "big.tif", np.full((4, 4), 3_000_000_000, np.uint32))
    monkeypatch.setattr(gdal, "VersionInfo", lambda *args: "3040000")  # GDAL 3.4 reads Int32
    with pytest.raises(InvalidInputError, match="3000000000.*renumber"):
        sieve.sieve_raster(source, tmp_path / "out.tif", min_area_m2=300)
    assert not (tmp_path / "out.tif").exists()


def test_internal_validity_mask_is_kept(tmp_path):
    values = np.ones((16, 16), np.uint8)
    values[:, 8:] = 2
    values[2, 2] = 2
    mask = np.ones(values.shape, bool)
    mask[10:, :] = False
    values[12, 12] = 1  # masked: never changes, though it differs from its neighbours
    source = write_raster(tmp_path / "in.tif", values, mask=mask)
    output = tmp_path / "out.tif"
    report = sieve.sieve_raster(source, output, min_area_m2=300)
    dataset = gdal.Open(str(output))
    band = dataset.GetRasterBand(1)
    assert band.GetMaskFlags() == gdal.GMF_PER_DATASET
    np.testing.assert_array_equal(band.GetMaskBand().ReadAsArray() != 0, mask)
    after = band.ReadAsArray()
    assert after[2, 2] == 1 and after[12, 12] == 1 and report.changed_pixels == 1
    assert not os.path.exists(str(output) + ".msk")  # the mask is inside the GeoTIFF


def test_min_area_below_one_pixel_passes_input_through(tmp_path):
    values = np.random.default_rng(3).integers(1, 4, (15, 15)).astype(np.uint8)
    after, report = sieve_arrays(tmp_path, values, min_area_m2=60)
    np.testing.assert_array_equal(after, values)
    assert report.pixel_threshold == (1, 1) and report.changed_pixels == 0
    assert len(report.warnings) == 1
    assert "smaller than one pixel" in report.warnings[0] or "not larger than one pixel" in (
        report.warnings[0]
    )
    assert "unchanged" in report.warnings[0]


def test_min_area_above_raster_area_warns_and_leaves_one_class(tmp_path):
    values = np.random.default_rng(4).integers(1, 4, (15, 15)).astype(np.uint8)
    after, report = sieve_arrays(tmp_path, values, min_area_m2=15 * 15 * 100 + 1)
    assert len(report.warnings) == 1 and "exceeds the whole raster's area" in report.warnings[0]
    assert "single class" in report.warnings[0]
    assert len(np.unique(after)) == 1
    assert report.changed_pixels == int(np.count_nonzero(after != values))


def test_stale_sidecar_of_a_previous_output_is_removed(tmp_path):
    values = np.ones((10, 10), np.uint8)
    named = write_raster(tmp_path / "named.tif", values, categories=["x", "old name"])
    plain = write_raster(tmp_path / "plain.tif", values)
    output = tmp_path / "out.tif"
    sieve.sieve_raster(named, output, min_area_m2=500)
    assert os.path.exists(str(output) + ".aux.xml")
    sieve.sieve_raster(plain, output, min_area_m2=500)
    assert not os.path.exists(str(output) + ".aux.xml")
    dataset = gdal.Open(str(output))
    assert dataset.GetRasterBand(1).GetCategoryNames() is None


def test_progress_rises_to_one(tmp_path):
    values = np.random.default_rng(5).integers(1, 4, (60, 60)).astype(np.uint8)
    source = write_raster(tmp_path / "in.tif", values)
    fractions = []
    sieve.sieve_raster(source, tmp_path / "out.tif", min_area_m2=800, progress=fractions.append)
    assert fractions[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert fractions == sorted(fractions)


# ----------------------------------------------------------------------------- errors


@pytest.fixture
def classes_tif(tmp_path):
    return write_raster(tmp_path / "classes.tif", np.ones((8, 8), np.uint8))


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        (dict(min_area_m2=0), "must be an area in m² greater than 0"),
        (dict(min_area_m2=-100), "must be an area in m² greater than 0"),
        (dict(min_area_m2=float("nan")), "must be an area in m² greater than 0"),
        (dict(min_area_m2=100, connectivity=6), "CONNECTIVITY must be 4 or 8"),
        (dict(min_area_m2=100, connectivity=True), "CONNECTIVITY must be 4 or 8"),
        (dict(min_area_m2=100, band=2), "BAND 2 does not exist"),
        (dict(min_area_m2=100, band=0), "does not exist"),
    ],
)
def test_bad_parameters_are_refused(tmp_path, classes_tif, kwargs, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        sieve.sieve_raster(classes_tif, tmp_path / "out.tif", **kwargs)
    assert not (tmp_path / "out.tif").exists()


def test_float_raster_is_refused(tmp_path):
    source = write_raster(tmp_path / "float.tif", np.ones((5, 5), np.float32))
    with pytest.raises(InvalidInputError, match="Float32.*integer") as raised:
        sieve.sieve_raster(source, tmp_path / "out.tif", min_area_m2=100)
    assert "Translate" in str(raised.value)


def test_raster_without_crs_is_refused(tmp_path):
    source = write_raster(tmp_path / "nocrs.tif", np.ones((5, 5), np.uint8), epsg=None)
    with pytest.raises(InvalidInputError, match="no CRS.*Assign Projection"):
        sieve.sieve_raster(source, tmp_path / "out.tif", min_area_m2=100)


def test_output_equal_to_input_is_refused(tmp_path, classes_tif):
    before = Path(classes_tif).read_bytes()
    with pytest.raises(InvalidInputError, match="one of the inputs"):
        sieve.sieve_raster(classes_tif, classes_tif, min_area_m2=100)
    same_file = tmp_path / "." / "classes.tif"
    with pytest.raises(InvalidInputError, match="one of the inputs"):
        sieve.sieve_raster(classes_tif, same_file, min_area_m2=100)
    assert Path(classes_tif).read_bytes() == before


def test_missing_input_and_missing_output_folder(tmp_path, classes_tif):
    with pytest.raises(InvalidInputError, match="cannot open"):
        sieve.sieve_raster(tmp_path / "absent.tif", tmp_path / "out.tif", min_area_m2=100)
    with pytest.raises(InvalidInputError, match="folder .* does not exist"):
        sieve.sieve_raster(classes_tif, tmp_path / "no" / "out.tif", min_area_m2=100)


def cancel_after(n_calls):
    """An is_cancelled that answers True from its (n_calls + 1)-th call on; counts its calls."""
    calls = {"n": 0}

    def is_cancelled():
        calls["n"] += 1
        return calls["n"] > n_calls

    is_cancelled.calls = calls
    return is_cancelled


@pytest.mark.parametrize("geographic", [False, True])
@pytest.mark.parametrize("stage", [0.0, 0.3, 0.6, 0.99])
def test_cancellation_leaves_no_file(tmp_path, geographic, stage):
    values = np.random.default_rng(6).integers(1, 4, (120, 120)).astype(np.uint8)
    kwargs = dict(epsg=4326, geotransform=(0.0, 0.5, 0.0, 70.0, 0.0, -0.5)) if geographic else {}
    source = write_raster(tmp_path / "in.tif", values, **kwargs)
    min_area = 4e9 if geographic else 800
    counter = cancel_after(10**9)
    sieve.sieve_raster(source, tmp_path / "dry.tif", min_area_m2=min_area, is_cancelled=counter)
    os.remove(tmp_path / "dry.tif")
    output = tmp_path / "out.tif"
    output.write_bytes(b"previous result")
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(CancelledError):
        sieve.sieve_raster(source, output, min_area_m2=min_area,
                           is_cancelled=cancel_after(int(stage * counter.calls["n"])))
    assert sorted(os.listdir(tmp_path)) == before
    assert output.read_bytes() == b"previous result"
