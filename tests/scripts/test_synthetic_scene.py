"""Tests of the synthetic scene generator against GDAL/OGR/OSR, scikit-learn and scipy oracles."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import synthetic_scene
from osgeo import gdal, ogr, osr
from raster_clustering.core.errors import CancelledError, InvalidInputError
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans

SIZE = 600
PIXEL_M = 10.0


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return synthetic_scene.make_scene(tmp_path_factory.mktemp("scene"), size=SIZE, seed=0)


@pytest.fixture(scope="module")
def arrays(scene):
    """Scene bands (6, rows, cols), truth (rows, cols) and the nodata mask, read back with GDAL."""
    bands = gdal.Open(str(scene.scene)).ReadAsArray().astype(np.float64)
    truth = gdal.Open(str(scene.truth)).ReadAsArray()
    return bands, truth, bands[0] == scene.nodata


def epsg_of(wkt: str) -> int:
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    srs.AutoIdentifyEPSG()
    return int(srs.GetAuthorityCode(None))


def best_match_accuracy(labels: np.ndarray, truth: np.ndarray) -> float:
    """Agreement after the label permutation that maximises it (Hungarian method)."""
    label_values, label_index = np.unique(labels, return_inverse=True)
    truth_values, truth_index = np.unique(truth, return_inverse=True)
    confusion = np.zeros((label_values.size, truth_values.size))
    np.add.at(confusion, (label_index, truth_index), 1)
    rows, cols = linear_sum_assignment(-confusion)
    return confusion[rows, cols].sum() / truth.size


def ndvi_of(bands: np.ndarray) -> np.ndarray:
    red, nir = bands[2], bands[3]
    return (nir - red) / (nir + red)


def test_every_raster_has_the_documented_grid_and_tags(scene):
    expected = {
        scene.scene: (gdal.GDT_Float32, ("blue", "green", "red", "nir", "swir1", "swir2"), -9999),
        scene.truth: (gdal.GDT_Byte, ("true class",), 0),
        scene.nir: (gdal.GDT_Float32, ("nir",), -9999),
        scene.ndvi: (gdal.GDT_Float32, ("NDVI",), -9999),
    }
    assert scene.bands == expected[scene.scene][1]
    assert scene.nodata == -9999
    for path, (data_type, descriptions, nodata) in expected.items():
        dataset = gdal.Open(str(path))
        assert dataset is not None, path
        assert (dataset.RasterXSize, dataset.RasterYSize) == (SIZE, SIZE)
        assert dataset.GetGeoTransform() == (500000.0, PIXEL_M, 0.0, 5800000.0, 0.0, -PIXEL_M)
        assert epsg_of(dataset.GetProjection()) == 32633
        assert dataset.GetMetadataItem("COMPRESSION", "IMAGE_STRUCTURE") == "DEFLATE"
        assert dataset.RasterCount == len(descriptions)
        for index, description in enumerate(descriptions, start=1):
            band = dataset.GetRasterBand(index)
            assert band.DataType == data_type
            assert band.GetDescription() == description
            assert band.GetNoDataValue() == nodata
            assert band.GetBlockSize() == [256, 256]


def test_nodata_is_a_small_corner_shared_by_every_band_and_the_truth(scene, arrays):
    bands, truth, nodata = arrays
    assert 0.01 < nodata.mean() < 0.08
    assert nodata[0, -1] and not nodata[-1, 0]  # the north-east corner is cut off
    assert np.all((bands == -9999) == nodata[None])
    np.testing.assert_array_equal(truth == 0, nodata)
    ndvi = gdal.Open(str(scene.ndvi)).ReadAsArray()
    np.testing.assert_array_equal(ndvi == -9999, nodata)


def test_without_nodata_every_pixel_is_valid(tmp_path):
    files = synthetic_scene.make_scene(tmp_path, size=64, with_nodata=False)
    bands = gdal.Open(str(files.scene)).ReadAsArray()
    assert np.all(bands != -9999) and np.all(bands > 0)
    assert gdal.Open(str(files.scene)).GetRasterBand(1).GetNoDataValue() == -9999
    assert np.all(gdal.Open(str(files.truth)).ReadAsArray() > 0)


def test_truth_holds_every_class_in_plausible_proportions(arrays):
    _, truth, nodata = arrays
    valid = truth[~nodata]
    fractions = {value: np.mean(valid == value) for value in synthetic_scene.TRUE_CLASSES}
    assert set(np.unique(valid)) == set(synthetic_scene.TRUE_CLASSES)
    assert 0.04 < fractions[synthetic_scene.WATER] < 0.2
    assert all(0.04 < share < 0.5 for share in fractions.values()), fractions


def test_class_spectra_look_like_their_land_cover(arrays):
    bands, truth, nodata = arrays
    assert bands[:, ~nodata].min() > 0 and bands[:, ~nodata].max() < 0.7
    ndvi = ndvi_of(bands)
    median = {value: np.median(bands[:, truth == value], axis=1)
              for value in synthetic_scene.TRUE_CLASSES}
    median_ndvi = {value: np.median(ndvi[truth == value]) for value in synthetic_scene.TRUE_CLASSES}
    blue, green, red, nir, swir1, swir2 = range(6)
    water = median[synthetic_scene.WATER]
    assert water[nir] < 0.06 and water[nir] < water[red] < water[green]
    assert median_ndvi[synthetic_scene.WATER] < 0
    assert 0.05 < median_ndvi[synthetic_scene.BARE_SOIL] < 0.2
    assert median[synthetic_scene.BARE_SOIL][swir1] > median[synthetic_scene.BARE_SOIL][nir]
    assert 0.6 < median_ndvi[synthetic_scene.CROP] < 0.85
    assert 0.35 < median_ndvi[synthetic_scene.GRASSLAND] < 0.55
    assert 0.7 < median_ndvi[synthetic_scene.FOREST] < 0.9
    forest, crop = median[synthetic_scene.FOREST], median[synthetic_scene.CROP]
    assert all(forest[b] < crop[b] for b in (blue, green, red, nir, swir1, swir2))


def test_fields_vary_smoothly_inside_not_just_pixel_noise(arrays):
    bands, truth, _ = arrays
    ndvi = ndvi_of(bands)
    crop = truth == synthetic_scene.CROP

    def median_difference(lag_px):
        both = crop[:, :-lag_px] & crop[:, lag_px:]
        return np.median(np.abs(ndvi[:, lag_px:] - ndvi[:, :-lag_px])[both])

    # Pixel noise alone (or constant fields plus noise) would make the NDVI of pixels 300 m
    # apart differ no more than that of neighbours; smooth zones make it differ more.
    assert median_difference(1) > 0.005
    assert median_difference(30) > 1.3 * median_difference(1)


def test_ndvi_and_nir_files_match_the_scene(scene, arrays):
    bands, _, nodata = arrays
    ndvi = gdal.Open(str(scene.ndvi)).ReadAsArray()
    np.testing.assert_allclose(ndvi[~nodata], ndvi_of(bands)[~nodata], atol=1e-6)
    nir = gdal.Open(str(scene.nir)).ReadAsArray()
    np.testing.assert_array_equal(nir, bands[3].astype(np.float32))


def test_kmeans_on_six_bands_recovers_the_true_classes(arrays):
    bands, truth, nodata = arrays
    rng = np.random.default_rng(0)
    sample = rng.choice(np.flatnonzero(~nodata.ravel()), 20000, replace=False)
    features = bands.reshape(6, -1)[:, sample].T
    labels = KMeans(n_clusters=5, n_init=4, random_state=0).fit_predict(features)
    assert best_match_accuracy(labels, truth.ravel()[sample]) >= 0.95


def test_two_means_on_nir_splits_water_from_land(arrays):
    bands, truth, nodata = arrays
    nir = bands[3][~nodata].reshape(-1, 1)
    labels = KMeans(n_clusters=2, n_init=4, random_state=0).fit_predict(nir)
    is_water = truth[~nodata] == synthetic_scene.WATER
    assert best_match_accuracy(labels, is_water) >= 0.99


def test_aoi_in_wgs84_reprojects_onto_the_native_polygon(scene):
    def read_polygon(path):
        source = ogr.Open(str(path))
        layer = source.GetLayer(0)
        assert layer.GetFeatureCount() == 1
        feature = layer.GetNextFeature()
        assert feature.GetField("name")
        return layer.GetSpatialRef().Clone(), feature.GetGeometryRef().Clone()

    wgs84_srs, geographic = read_polygon(scene.aoi)
    native_srs, native = read_polygon(scene.aoi_native)
    assert wgs84_srs.IsGeographic() and native_srs.IsProjected()
    assert geographic.GetGeometryType() == ogr.wkbPolygon
    assert geographic.GetGeometryCount() == 2  # exterior + one hole
    assert native.GetGeometryCount() == 2
    lon, lat = geographic.GetGeometryRef(0).GetPoint_2D(0)
    assert 14 < lon < 16 and 52 < lat < 53  # lon, lat order as GeoJSON wants

    source_srs = osr.SpatialReference()
    source_srs.ImportFromEPSG(4326)
    source_srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    target_srs = osr.SpatialReference()
    target_srs.ImportFromEPSG(32633)
    target_srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    assert geographic.Transform(osr.CoordinateTransformation(source_srs, target_srs)) == 0
    for ring in range(2):
        projected = np.array(geographic.GetGeometryRef(ring).GetPoints())
        expected = np.array(native.GetGeometryRef(ring).GetPoints())
        np.testing.assert_allclose(projected, expected, atol=0.01, rtol=0)

    extent_m = SIZE * PIXEL_M
    scene_box = ogr.CreateGeometryFromWkt(
        f"POLYGON ((500000 5800000, {500000 + extent_m} 5800000, {500000 + extent_m} "
        f"{5800000 - extent_m}, 500000 {5800000 - extent_m}, 500000 5800000))")
    assert scene_box.Contains(native)
    assert 1 / 3 <= native.GetArea() / scene_box.GetArea() <= 1 / 2
    hole = ogr.Geometry(ogr.wkbPolygon)
    hole.AddGeometry(native.GetGeometryRef(1))
    assert 0 < hole.GetArea() < 0.01 * scene_box.GetArea()


def test_same_seed_same_files_other_seed_other_landscape(tmp_path):
    first = synthetic_scene.make_scene(tmp_path / "a", size=64, seed=3)
    again = synthetic_scene.make_scene(tmp_path / "b", size=64, seed=3)
    other = synthetic_scene.make_scene(tmp_path / "c", size=64, seed=4)
    for name in ("scene", "truth", "ndvi"):
        read = [gdal.Open(str(getattr(files, name))).ReadAsArray()
                for files in (first, again, other)]
        np.testing.assert_array_equal(read[0], read[1])
        assert not np.array_equal(read[0], read[2])
    assert first.aoi.read_text() == again.aoi.read_text() != other.aoi.read_text()


def test_time_series_dates_are_shifted_but_overlapping_grids(tmp_path):
    dates = ("2021-05-01", "2021-06-15", "2021-08-01")
    paths = synthetic_scene.make_time_series(tmp_path, dates=dates, size=300, seed=0, shift_m=3.0)
    assert [p.name for p in paths] == [
        "ndvi_20210501.tif", "ndvi_20210615.tif", "ndvi_20210801.tif"]
    datasets = [gdal.Open(str(p)) for p in paths]
    first = datasets[0].GetGeoTransform()
    sizes = set()
    for date, dataset in zip(dates, datasets):
        band = dataset.GetRasterBand(1)
        assert band.GetDescription() == f"NDVI {date}"
        assert band.GetNoDataValue() == -9999 and band.DataType == gdal.GDT_Float32
        assert epsg_of(dataset.GetProjection()) == 32633
        x0, pixel_w, _, y0, _, pixel_h = dataset.GetGeoTransform()
        assert (pixel_w, pixel_h) == (10.0, -10.0)
        assert abs(x0 - first[0]) <= 3.0 and abs(y0 - first[3]) <= 3.0
        sizes.add((dataset.RasterXSize, dataset.RasterYSize))
    assert sizes == {(300, 300), (301, 301)}
    for dataset in datasets[1:]:
        x0, _, _, y0, _, _ = dataset.GetGeoTransform()
        offsets = np.array([x0 - first[0], y0 - first[3]]) / 10.0
        assert np.all(np.abs(offsets - np.round(offsets)) > 0.01)  # not pixel-aligned
        overlap_x = min(first[0], x0) + 3000 - max(first[0], x0)
        overlap_y = min(first[3], y0) - (max(first[3], y0) - 3000)
        assert overlap_x * overlap_y > 0.99 * 3000 * 3000


def test_time_series_phenology_lets_temporal_clustering_find_the_classes(tmp_path):
    paths = synthetic_scene.make_time_series(tmp_path / "series", size=300, seed=1)
    # The series shows the landscape of the scene of the same size and seed: its truth applies.
    truth_files = synthetic_scene.make_scene(tmp_path / "scene", size=300, seed=1,
                                             with_nodata=False)
    truth = gdal.Open(str(truth_files.truth)).ReadAsArray()
    stack = []
    for path in paths:  # GDAL aligns each date onto the truth grid
        warped = gdal.Warp("", str(path), format="MEM", width=300, height=300, resampleAlg="near",
                           outputBounds=(500000, 5797000, 503000, 5800000))
        stack.append(warped.ReadAsArray())
    stack = np.array(stack)
    interior = np.zeros_like(truth, bool)
    interior[1:-1, 1:-1] = True  # the shifted dates may not cover the outermost pixels
    trajectory = {value: np.median(stack[:, (truth == value) & interior], axis=1)
                  for value in synthetic_scene.TRUE_CLASSES}
    may, june, august = trajectory[synthetic_scene.CROP]
    assert june > 0.7 and june - may > 0.3 and june - august > 0.4
    assert np.all(trajectory[synthetic_scene.BARE_SOIL] < 0.25)
    assert np.all(trajectory[synthetic_scene.FOREST] > 0.6)
    assert np.all(trajectory[synthetic_scene.WATER] < 0)
    assert np.all((trajectory[synthetic_scene.GRASSLAND] > 0.3)
                  & (trajectory[synthetic_scene.GRASSLAND] < 0.6))
    features = stack[:, interior].T
    labels = KMeans(n_clusters=5, n_init=4, random_state=0).fit_predict(features)
    assert best_match_accuracy(labels, truth[interior]) >= 0.95


def test_large_band_is_streamed_with_bounded_memory(tmp_path):
    path = tmp_path / "large.tif"
    fractions = []
    size = 4000
    tracemalloc.start()
    try:
        synthetic_scene.make_large_band(path, size=size, block_rows=256, progress=fractions.append)
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # One full Float32 array would be 64 MB; a streamed run holds a few blocks only.
    assert peak_bytes < 0.75 * size * size * 4
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) > 10

    dataset = gdal.Open(str(path))
    band = dataset.GetRasterBand(1)
    assert (dataset.RasterXSize, dataset.RasterYSize) == (size, size)
    assert band.DataType == gdal.GDT_Float32 and band.GetNoDataValue() == -9999
    assert band.GetBlockSize() == [256, 256]
    assert dataset.GetMetadataItem("PREDICTOR", "IMAGE_STRUCTURE") == "3"
    assert dataset.GetMetadataItem("COMPRESSION", "IMAGE_STRUCTURE") == "DEFLATE"
    values = band.ReadAsArray()
    nodata = values == -9999
    assert nodata[0, -1] and not nodata[-1, 0] and 0.005 < nodata.mean() < 0.08
    valid = values[~nodata]
    assert np.all(np.isfinite(valid)) and -1 <= valid.min() and valid.max() <= 1
    assert valid.std() > 0.2  # fields of different classes, not a flat field
    assert list(tmp_path.iterdir()) == [path]


def test_large_band_values_do_not_depend_on_the_block_size(tmp_path):
    small = synthetic_scene.make_large_band(tmp_path / "a.tif", size=1000, block_rows=256)
    large = synthetic_scene.make_large_band(tmp_path / "b.tif", size=1000, block_rows=1000)
    np.testing.assert_array_equal(gdal.Open(str(small)).ReadAsArray(),
                                  gdal.Open(str(large)).ReadAsArray())


def test_cancelling_the_large_band_leaves_no_file(tmp_path):
    calls = []

    def cancel_after_first_block():
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(CancelledError):
        synthetic_scene.make_large_band(tmp_path / "large.tif", size=600,
                                        is_cancelled=cancel_after_first_block)
    assert list(tmp_path.iterdir()) == []


def test_s2_style_bands_share_one_extent_at_10_and_20_m(tmp_path):
    paths = synthetic_scene.make_s2_style_bands(tmp_path, size_10m=300, seed=0)
    assert {p.name for p in paths.values()} == {
        f"T33UXX_20210527_{code}.tif" for code in ("B04", "B08", "B11", "B8A")}
    datasets = {code: gdal.Open(str(path)) for code, path in paths.items()}
    for code, dataset in datasets.items():
        pixel = 10.0 if code in ("B04", "B08") else 20.0
        size = int(3000 / pixel)
        assert dataset.GetGeoTransform() == (500000.0, pixel, 0.0, 5800000.0, 0.0, -pixel)
        assert (dataset.RasterXSize, dataset.RasterYSize) == (size, size)
        assert epsg_of(dataset.GetProjection()) == 32633
        band = dataset.GetRasterBand(1)
        assert band.DataType == gdal.GDT_UInt16 and band.GetNoDataValue() == 0
    values = {code: dataset.ReadAsArray().astype(np.float64) for code, dataset in datasets.items()}
    valid_10m = (values["B04"] > 0) & (values["B08"] > 0)
    assert 0.01 < 1 - valid_10m.mean() < 0.08
    red, nir = values["B04"][valid_10m], values["B08"][valid_10m]
    assert np.all(np.abs((nir - red) / (nir + red)) <= 1) and nir.max() < 6000
    # 20 m pixels cover 2x2 10 m pixels: the narrow NIR follows the aggregated broad NIR.
    aggregated_nir = values["B08"].reshape(150, 2, 150, 2).mean(axis=(1, 3))
    valid_20m = (values["B8A"] > 0) & valid_10m.reshape(150, 2, 150, 2).all(axis=(1, 3))
    np.testing.assert_array_equal(values["B8A"] > 0, values["B11"] > 0)
    assert np.corrcoef(aggregated_nir[valid_20m], values["B8A"][valid_20m])[0, 1] > 0.95


@pytest.mark.parametrize("call", [
    lambda folder: synthetic_scene.make_scene(folder, size=8),
    lambda folder: synthetic_scene.make_scene(folder, pixel_size_m=-10),
    lambda folder: synthetic_scene.make_scene(folder, epsg=4326),
    lambda folder: synthetic_scene.make_scene(folder, seed=-1),
    lambda folder: synthetic_scene.make_time_series(folder, dates=("2021-13-01",)),
    lambda folder: synthetic_scene.make_time_series(folder, dates=("2021-05-01", "2021-05-01")),
    lambda folder: synthetic_scene.make_s2_style_bands(folder, size_10m=301),
    lambda folder: synthetic_scene.make_large_band(folder / "x.tif", size=100, block_rows=0),
])
def test_bad_parameters_are_refused_with_a_clear_error(tmp_path, call):
    with pytest.raises(InvalidInputError):
        call(tmp_path)
