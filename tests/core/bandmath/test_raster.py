"""Band math on rasters: values against numpy, nodata, alignment of 10 m and 20 m bands,
intersections, reprojection, calibration, cancellation, determinism and the default style."""

import math

import numpy as np
import pytest
from helpers import file_names, handbook_ndvi, read_raster, write_raster
from hypothesis import given, settings
from hypothesis import strategies as st
from osgeo import gdal, osr
from raster_clustering.core.bandmath import raster as band_math_raster
from raster_clustering.core.bandmath.plan import BandMathPlan
from raster_clustering.core.bandmath.raster import (
    BandMathResult,
    band_math_to_raster,
    choose_output_grid,
    display_style,
)
from raster_clustering.core.errors import (
    CancelledError,
    ExpressionError,
    InvalidInputError,
    MetadataError,
)
from raster_clustering.core.io.feature_stack import RasterInput
from raster_clustering.core.io.rasters import RasterGrid
from synthetic_scene import make_s2_style_bands

ORIGIN = (500000.0, 5800000.0)


def utm33():
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    return srs.ExportToWkt()


def inputs(*paths):
    return [RasterInput(str(path)) for path in paths]


@pytest.fixture(scope="module")
def s2_bands(tmp_path_factory):
    return make_s2_style_bands(tmp_path_factory.mktemp("s2"), size_10m=64, seed=3)


@pytest.fixture
def red_nir(tmp_path):
    """A 600 x 1800 UInt16 red/NIR pair (three 256-row blocks), nodata 0 in two corners."""
    rng = np.random.default_rng(7)
    red = rng.integers(1, 3000, size=(600, 1800)).astype(np.uint16)
    nir = rng.integers(1, 6000, size=(600, 1800)).astype(np.uint16)
    red[:5, :5] = 0
    nir[590:, 1790:] = 0
    return (write_raster(tmp_path / "scene_B4.tif", red, nodata=0),
            write_raster(tmp_path / "scene_B5.tif", nir, nodata=0), red, nir)


class TestValues:
    def test_ndvi_of_two_single_band_files_equals_numpy(self, red_nir, tmp_path):
        red_path, nir_path, red, nir = red_nir
        result = band_math_to_raster(inputs(red_path, nir_path), "(B5 - B4) / (B5 + B4)",
                                     tmp_path / "ndvi.tif")
        expected = handbook_ndvi(red, nir)
        expected[(red == 0) | (nir == 0)] = np.nan
        output = read_raster(tmp_path / "ndvi.tif")
        assert output.dtype == np.float32
        np.testing.assert_array_equal(np.isnan(output), np.isnan(expected))
        np.testing.assert_allclose(output, expected, rtol=1e-6, equal_nan=True)
        assert result.valid_pixels == int(np.isfinite(expected).sum())

    def test_functions_on_a_multiband_layer_equal_numpy(self, tmp_path):
        rng = np.random.default_rng(1)
        stack = rng.uniform(-5, 5, size=(3, 30, 20)).astype(np.float32)
        path = write_raster(tmp_path / "stack.tif", stack)
        text = "where(B1 > 0, sqrt(abs(B2)) * log(B1 + 1), clip(B3, -1, 1)) + max(B1, B2, B3)"
        band_math_to_raster(inputs(path), text, tmp_path / "out.tif")
        b1, b2, b3 = stack.astype(np.float64)
        with np.errstate(all="ignore"):
            expected = np.where(b1 > 0, np.sqrt(np.abs(b2)) * np.log(b1 + 1),
                                np.clip(b3, -1, 1)) + np.maximum(np.maximum(b1, b2), b3)
        np.testing.assert_allclose(read_raster(tmp_path / "out.tif"), expected, rtol=1e-5,
                                   atol=1e-6)

    def test_layer_reference_form_reads_the_named_band(self, tmp_path):
        stack = np.stack([np.full((8, 8), 3, np.uint8), np.full((8, 8), 5, np.uint8)])
        path = write_raster(tmp_path / "two bands.tif", stack)
        band_math_to_raster([RasterInput(str(path), "my layer")], '"my layer@2" - "my layer@1"',
                            tmp_path / "out.tif")
        assert np.all(read_raster(tmp_path / "out.tif") == 2)

    def test_int32_inputs_are_computed_in_float64(self, tmp_path):
        big = np.array([[16_777_217, 16_777_219]], dtype=np.int32)  # not exact in float32
        path = write_raster(tmp_path / "big.tif", big)
        band_math_to_raster(inputs(path), "B1 - 16777216", tmp_path / "out.tif")
        assert read_raster(tmp_path / "out.tif").tolist() == [[1.0, 3.0]]

    @settings(max_examples=30, deadline=None)
    @given(st.lists(st.floats(-1e6, 1e6, width=32) | st.just(float("nan")), min_size=12,
                    max_size=12),
           st.lists(st.floats(-1e6, 1e6, width=32) | st.just(float("nan")), min_size=12,
                    max_size=12))
    def test_any_values_match_numpy_or_are_nan(self, tmp_path_factory, a, b):
        folder = tmp_path_factory.mktemp("prop")
        first = np.array(a, dtype=np.float32).reshape(3, 4)
        second = np.array(b, dtype=np.float32).reshape(3, 4)
        write_raster(folder / "x_B1.tif", first)
        write_raster(folder / "x_B2.tif", second)
        band_math_to_raster(inputs(folder / "x_B1.tif", folder / "x_B2.tif"),
                            "(B1 - B2) / (B1 + B2)", folder / "out.tif")
        expected = handbook_ndvi(second, first)  # (B1 - B2) / (B1 + B2)
        output = read_raster(folder / "out.tif")
        np.testing.assert_array_equal(np.isnan(output), np.isnan(expected.astype(np.float32)))
        np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-6, equal_nan=True)


class TestNodata:
    def test_nodata_nan_infinity_and_zero_division_become_nan(self, tmp_path):
        a = np.array([[1, 2, -9999, 4, 0, np.nan, np.inf, 6]], dtype=np.float32)
        b = np.array([[1, 2, 3, -9999, 0, 1, 1, -6]], dtype=np.float32)
        write_raster(tmp_path / "a_B1.tif", a, nodata=-9999)
        write_raster(tmp_path / "a_B2.tif", b, nodata=-9999)
        band_math_to_raster(inputs(tmp_path / "a_B1.tif", tmp_path / "a_B2.tif"),
                            "B1 / (B1 + B2)", tmp_path / "out.tif")
        output = read_raster(tmp_path / "out.tif")
        assert output[0, :2].tolist() == [0.5, 0.5]
        assert np.isnan(output[0, 2:]).all(), "nodata, 0/0, NaN, inf and x/0 are all nodata"
        dataset = gdal.Open(str(tmp_path / "out.tif"))
        assert math.isnan(dataset.GetRasterBand(1).GetNoDataValue())

    def test_nodata_wins_even_where_the_expression_ignores_it(self, tmp_path):
        a = np.array([[1, -1, 1]], dtype=np.int16)
        b = np.array([[7, 7, 0]], dtype=np.int16)
        write_raster(tmp_path / "a_B1.tif", a)
        write_raster(tmp_path / "a_B2.tif", b, nodata=0)
        band_math_to_raster(inputs(tmp_path / "a_B1.tif", tmp_path / "a_B2.tif"),
                            "where(B1 > 0, 10, B2)", tmp_path / "out.tif")
        output = read_raster(tmp_path / "out.tif")
        assert output[0, 0] == 10 and output[0, 1] == 7 and np.isnan(output[0, 2])

    def test_results_beyond_float32_are_nodata(self, tmp_path):
        write_raster(tmp_path / "x.tif", np.array([[1e200, 1.0]], dtype=np.float64))
        band_math_to_raster(inputs(tmp_path / "x.tif"), "B1 * 10", tmp_path / "out.tif")
        output = read_raster(tmp_path / "out.tif")
        assert np.isnan(output[0, 0]) and output[0, 1] == 10

    def test_a_mask_band_is_respected(self, tmp_path):
        path = tmp_path / "masked.tif"
        write_raster(path, np.full((4, 4), 5, np.uint8))
        dataset = gdal.Open(str(path), gdal.GA_Update)
        dataset.CreateMaskBand(gdal.GMF_PER_DATASET)
        mask = np.full((4, 4), 255, np.uint8)
        mask[0, 0] = 0
        dataset.GetRasterBand(1).GetMaskBand().WriteArray(mask)
        dataset = None
        band_math_to_raster(inputs(path), "B1 * 2", tmp_path / "out.tif")
        output = read_raster(tmp_path / "out.tif")
        assert np.isnan(output[0, 0]) and np.nansum(output) == 15 * 10

    def test_no_valid_pixel_is_a_warning_not_an_error(self, tmp_path):
        write_raster(tmp_path / "z.tif", np.zeros((3, 3), np.float32))
        result = band_math_to_raster(inputs(tmp_path / "z.tif"), "B1 / B1", tmp_path / "o.tif")
        assert result.valid_pixels == 0 and "nodata" in result.warnings[-1]
        assert np.isnan(read_raster(tmp_path / "o.tif")).all()


class TestGrid:
    def test_10m_and_20m_bands_give_the_10m_grid_with_20m_pixels_repeated(self, s2_bands,
                                                                          tmp_path):
        result = band_math_to_raster(inputs(*s2_bands.values()), "B11 - B4",
                                     tmp_path / "out.tif")
        red = gdal.Open(str(s2_bands["B04"]))
        assert result.grid.geotransform == red.GetGeoTransform()
        assert (result.grid.width, result.grid.height) == (64, 64)
        swir = read_raster(s2_bands["B11"]).astype(np.float64)
        swir_10m = np.repeat(np.repeat(swir, 2, axis=0), 2, axis=1)
        red_dn = read_raster(s2_bands["B04"]).astype(np.float64)
        expected = swir_10m - red_dn
        expected[(swir_10m == 0) | (red_dn == 0)] = np.nan
        output = read_raster(tmp_path / "out.tif")
        assert np.isnan(expected).any() and np.isfinite(expected).any()
        np.testing.assert_array_equal(output, expected.astype(np.float32))
        assert any("resampled" in message and "B11" in message for message in result.messages)

    def test_coarsest_with_average_is_the_mean_of_the_fine_pixels(self, s2_bands, tmp_path):
        result = band_math_to_raster(inputs(s2_bands["B04"], s2_bands["B8A"]), "B4 + 0 * B8A",
                                     tmp_path / "out.tif", resolution="coarsest",
                                     resampling="average")
        assert result.grid.geotransform[1] == 20 and result.grid.width == 32
        red = read_raster(s2_bands["B04"]).astype(np.float64)
        valid = red != 0
        blocks = red.reshape(32, 2, 32, 2)
        counts = valid.reshape(32, 2, 32, 2).sum(axis=(1, 3))
        # GDAL's average leaves nodata pixels out of the mean.
        with np.errstate(invalid="ignore"):
            mean = blocks.sum(axis=(1, 3)) / counts
        b8a_valid = read_raster(s2_bands["B8A"]) != 0
        output = read_raster(tmp_path / "out.tif")
        both = b8a_valid & (counts > 0)
        np.testing.assert_allclose(output[both], mean[both], rtol=1e-6)
        assert np.isnan(output[~b8a_valid]).all()

    def test_bilinear_interpolates_between_neighbouring_coarse_pixels(self, s2_bands, tmp_path):
        band_math_to_raster(inputs(s2_bands["B04"], s2_bands["B11"]), "B11 + 0 * B4",
                            tmp_path / "out.tif", resampling="bilinear")
        swir = read_raster(s2_bands["B11"]).astype(np.float64)
        output = read_raster(tmp_path / "out.tif")
        # Output pixel (2i+1, 2j+1) lies a quarter of a coarse pixel from 4 coarse centres:
        # weights 9/16, 3/16, 3/16, 1/16.
        i, j = 10, 12
        expected = (9 * swir[i, j] + 3 * swir[i + 1, j] + 3 * swir[i, j + 1]
                    + swir[i + 1, j + 1]) / 16
        assert output[2 * i + 1, 2 * j + 1] == pytest.approx(expected, rel=1e-5)

    def test_different_extents_give_the_intersection(self, tmp_path):
        rng = np.random.default_rng(2)
        big = rng.uniform(1, 2, size=(50, 60)).astype(np.float32)
        write_raster(tmp_path / "big_B1.tif", big)
        # The second layer starts 10 columns right, 5 rows down and is 30 x 70 pixels.
        small = rng.uniform(1, 2, size=(30, 70)).astype(np.float32)
        write_raster(tmp_path / "small_B2.tif", small,
                     origin=(ORIGIN[0] + 100, ORIGIN[1] - 50))
        result = band_math_to_raster(inputs(tmp_path / "big_B1.tif", tmp_path / "small_B2.tif"),
                                     "B1 * B2", tmp_path / "out.tif")
        assert result.grid.geotransform[0] == ORIGIN[0] + 100
        assert result.grid.geotransform[3] == ORIGIN[1] - 50
        assert (result.grid.width, result.grid.height) == (50, 30)
        expected = big[5:35, 10:60].astype(np.float64) * small[:, :50]
        np.testing.assert_allclose(read_raster(tmp_path / "out.tif"), expected, rtol=1e-6)

    def test_disjoint_inputs_are_refused(self, tmp_path):
        write_raster(tmp_path / "a_B1.tif", np.ones((5, 5), np.float32))
        write_raster(tmp_path / "b_B2.tif", np.ones((5, 5), np.float32),
                     origin=(ORIGIN[0] + 1000, ORIGIN[1]))
        with pytest.raises(InvalidInputError, match="do not overlap"):
            band_math_to_raster(inputs(tmp_path / "a_B1.tif", tmp_path / "b_B2.tif"),
                                "B1 + B2", tmp_path / "out.tif")
        assert not (tmp_path / "out.tif").exists()

    def test_other_crs_is_reprojected_onto_the_first_inputs_crs(self, tmp_path):
        values = np.arange(40 * 40, dtype=np.float32).reshape(40, 40)
        write_raster(tmp_path / "utm_B1.tif", values)
        # The same pixels in Web Mercator: GDAL warps them there and back.
        gdal.Warp(str(tmp_path / "merc_B2.tif"), str(tmp_path / "utm_B1.tif"),
                  dstSRS="EPSG:3857", resampleAlg="near")
        result = band_math_to_raster(inputs(tmp_path / "utm_B1.tif", tmp_path / "merc_B2.tif"),
                                     "B2 - B1", tmp_path / "out.tif")
        output = gdal.Open(str(tmp_path / "out.tif"))
        assert osr.SpatialReference(output.GetProjection()).GetAuthorityCode(None) == "32633"
        assert result.grid.geotransform[1] == 10.0  # the UTM layer's pixels are the finest
        difference = output.GetRasterBand(1).ReadAsArray()
        # A round trip with nearest neighbour moves a few pixels by one cell at most.
        assert np.nanmedian(np.abs(difference)) == 0
        assert np.isfinite(difference).mean() > 0.8

    def test_a_sub_pixel_shift_is_resampled_inside_the_intersection(self, tmp_path):
        write_raster(tmp_path / "a_B1.tif", np.ones((20, 20), np.float32))
        write_raster(tmp_path / "b_B2.tif", np.full((20, 20), 2, np.float32),
                     origin=(ORIGIN[0] + 3, ORIGIN[1] - 3))
        result = band_math_to_raster(inputs(tmp_path / "a_B1.tif", tmp_path / "b_B2.tif"),
                                     "B1 + B2", tmp_path / "out.tif")
        # a's lattice shrunk to whole pixels inside the overlap: 19 x 19 from (1, 1).
        assert result.grid.geotransform[0] == ORIGIN[0] + 10
        assert (result.grid.width, result.grid.height) == (19, 19)
        assert np.all(read_raster(tmp_path / "out.tif") == 3)


def test_rasters_without_georeferencing_keep_their_pixel_grid(tmp_path):
    values = np.arange(20, dtype=np.uint8).reshape(4, 5)
    for name in ("plain_B1.tif", "plain_B2.tif"):
        dataset = gdal.GetDriverByName("GTiff").Create(str(tmp_path / name), 5, 4, 1,
                                                       gdal.GDT_Byte)
        dataset.GetRasterBand(1).WriteArray(values)
        dataset = None
    band_math_to_raster(inputs(tmp_path / "plain_B1.tif", tmp_path / "plain_B2.tif"),
                        "B1 + 2 * B2", tmp_path / "out.tif")
    np.testing.assert_array_equal(read_raster(tmp_path / "out.tif"), 3.0 * values)


class TestChooseOutputGrid:
    def grid(self, x0, y0, size, width, height):
        return RasterGrid(width, height, (x0, size, 0.0, y0, 0.0, -size), "")

    def test_finest_coarsest_and_first(self):
        coarse = self.grid(0, 100, 20, 5, 5)
        fine = self.grid(0, 100, 10, 10, 10)
        assert choose_output_grid([coarse, fine]).geotransform[1] == 10
        assert choose_output_grid([coarse, fine], resolution="coarsest").geotransform[1] == 20
        assert choose_output_grid([fine, coarse], resolution="first").geotransform[1] == 10

    def test_ties_go_to_the_first_lattice(self):
        first = self.grid(0, 100, 10, 10, 10)
        shifted = self.grid(4, 96, 10, 10, 10)
        grid = choose_output_grid([first, shifted])
        assert grid.geotransform[0] == 10 and grid.geotransform[3] == 90
        assert (grid.width, grid.height) == (9, 9)

    def test_unknown_resolution_is_refused(self):
        with pytest.raises(InvalidInputError, match="finest"):
            choose_output_grid([self.grid(0, 0, 1, 1, 1)], resolution="median")


class TestErrors:
    def test_unknown_variable_lists_the_available_ones(self, red_nir, tmp_path):
        red_path, nir_path, _, _ = red_nir
        with pytest.raises(ExpressionError) as error:
            band_math_to_raster(inputs(red_path, nir_path), "B8 - B4", tmp_path / "out.tif")
        message = str(error.value)
        assert "B8" in message and "B4, B5" in message and "scene_B4@1" in message

    def test_ambiguous_band_codes_suggest_the_layer_references(self, tmp_path):
        write_raster(tmp_path / "a_B4.tif", np.ones((3, 3), np.uint8))
        write_raster(tmp_path / "b_B4.tif", np.ones((3, 3), np.uint8))
        with pytest.raises(ExpressionError, match='(?s)ambiguous.*"a_B4@1", "b_B4@1"'):
            band_math_to_raster(inputs(tmp_path / "a_B4.tif", tmp_path / "b_B4.tif"), "B4 * 2",
                                tmp_path / "out.tif")

    def test_an_index_without_a_detectable_sensor_asks_for_the_preset(self, tmp_path):
        write_raster(tmp_path / "stack.tif", np.ones((4, 3, 3), np.uint8))
        with pytest.raises(ExpressionError, match=r"(?s)neither the file names \(stack.tif\) "
                           r"nor the band descriptions.*Choose the sensor: Sentinel-2 MSI; "
                           r"Landsat 8-9 OLI"):
            band_math_to_raster(inputs(tmp_path / "stack.tif"), "NDVI", tmp_path / "out.tif")
        band_math_to_raster(inputs(tmp_path / "stack.tif"), "NDVI", tmp_path / "out.tif",
                            sensor="generic")
        assert np.all(read_raster(tmp_path / "out.tif") == 0)

    def test_malicious_text_is_refused_and_writes_nothing(self, red_nir, tmp_path):
        red_path, nir_path, _, _ = red_nir
        with pytest.raises(ExpressionError):
            band_math_to_raster(inputs(red_path, nir_path), "__import__('os').remove('x')",
                                tmp_path / "out.tif")
        assert not (tmp_path / "out.tif").exists()

    def test_output_over_an_input_is_refused(self, red_nir):
        red_path, nir_path, _, _ = red_nir
        before = red_path.read_bytes()
        with pytest.raises(InvalidInputError, match="one of the inputs"):
            band_math_to_raster(inputs(red_path, nir_path), "B4 + B5", red_path)
        assert red_path.read_bytes() == before

    def test_calibrating_a_multiband_layer_is_refused(self, tmp_path):
        write_raster(tmp_path / "LC08_stack.tif", np.ones((2, 3, 3), np.uint16))
        with pytest.raises(InvalidInputError, match="single-band file per band"):
            band_math_to_raster(inputs(tmp_path / "LC08_stack.tif"), "B1 + B2",
                                tmp_path / "out.tif", calibrate=True)

    def test_calibration_without_metadata_says_so(self, red_nir, tmp_path):
        red_path, nir_path, _, _ = red_nir
        with pytest.raises(MetadataError):
            band_math_to_raster(inputs(red_path, nir_path), "B4 + B5", tmp_path / "out.tif",
                                calibrate=True)
        assert not (tmp_path / "out.tif").exists()


class TestRun:
    def test_cancellation_leaves_nothing(self, red_nir, tmp_path):
        red_path, nir_path, _, _ = red_nir
        output = tmp_path / "out" / "ndvi.tif"
        output.parent.mkdir()
        calls = []

        def cancelled():
            calls.append(1)
            return len(calls) > 2  # after the first block

        with pytest.raises(CancelledError):
            band_math_to_raster(inputs(red_path, nir_path), "B4 + B5", output,
                                is_cancelled=cancelled)
        assert file_names(output.parent) == []

    def test_progress_rises_to_one(self, red_nir, tmp_path):
        red_path, nir_path, _, _ = red_nir
        seen = []
        band_math_to_raster(inputs(red_path, nir_path), "B4 + B5", tmp_path / "out.tif",
                            progress=seen.append)
        assert seen == sorted(seen) and seen[-1] == 1.0
        assert len(seen) == 3, "one report per 256-row block, the last one 1.0"

    def test_runs_are_byte_identical(self, s2_bands, tmp_path):
        for name in ("a.tif", "b.tif"):
            band_math_to_raster(inputs(*s2_bands.values()), "NDMI", tmp_path / name)
        assert (tmp_path / "a.tif").read_bytes() == (tmp_path / "b.tif").read_bytes()

    def test_description_metadata_and_statistics(self, s2_bands, tmp_path):
        result = band_math_to_raster(inputs(*s2_bands.values()), "NDVI", tmp_path / "out.tif")
        dataset = gdal.Open(str(tmp_path / "out.tif"))
        band = dataset.GetRasterBand(1)
        assert band.GetDescription() == "NDVI"
        assert band.GetMetadataItem("BAND_MATH_EXPRESSION") == "(B8 - B4) / (B8 + B4)"
        assert band.GetMetadataItem("BAND_MATH_SENSOR") == "sentinel2"
        values = band.ReadAsArray().astype(np.float64)
        valid = values[np.isfinite(values)]
        assert result.valid_pixels == valid.size
        assert result.minimum == valid.min() and result.maximum == valid.max()
        assert result.mean == pytest.approx(valid.mean(), rel=1e-9)
        assert result.std == pytest.approx(valid.std(), rel=1e-9)
        minimum, maximum, mean, std = band.GetStatistics(False, False)
        assert (minimum, maximum) == pytest.approx((valid.min(), valid.max()))
        assert mean == pytest.approx(valid.mean()) and std == pytest.approx(valid.std())
        created = gdal.Info(str(tmp_path / "out.tif"))
        assert "Block=256x256" in created and "COMPRESSION=DEFLATE" in created
        assert any("Sentinel-2" in message for message in result.messages)

    def test_indices_with_reflectance_constants_warn_without_calibration(self, s2_bands,
                                                                         tmp_path):
        result = band_math_to_raster(inputs(s2_bands["B04"], s2_bands["B08"]), "SAVI",
                                     tmp_path / "out.tif")
        assert any("SAVI" in warning and "reflectance" in warning for warning in result.warnings)


class TestCalibration:
    def test_landsat_toa_reflectance_ndvi_matches_the_handbook(self, shared_data, tmp_path):
        folder = shared_data / "landsat8-thermal"
        red = folder / "LC80200392015216LGN00_B4_crop.TIF"
        nir = folder / "LC80200392015216LGN00_B5_crop.TIF"
        result = band_math_to_raster(inputs(red, nir), "NDVI * 1", tmp_path / "out.tif",
                                     calibrate=True)
        # LC80200392015216LGN00_MTL.txt: REFLECTANCE_MULT_BAND_4/5 = 2.0E-05,
        # REFLECTANCE_ADD_BAND_4/5 = -0.1, SUN_ELEVATION = 64.74360932.
        sine = math.sin(math.radians(64.74360932))
        dn_red, dn_nir = read_raster(red).astype(np.float64), read_raster(nir).astype(np.float64)
        rho_red = (2.0e-05 * dn_red - 0.1) / sine
        rho_nir = (2.0e-05 * dn_nir - 0.1) / sine
        expected = (rho_nir - rho_red) / (rho_nir + rho_red)
        expected[(dn_red == 0) | (dn_nir == 0)] = np.nan
        output = read_raster(tmp_path / "out.tif")
        np.testing.assert_allclose(output, expected, rtol=1e-4, atol=1e-5, equal_nan=True)
        assert sum("TOA reflectance" in message for message in result.messages) == 2


def test_display_style_per_kind_of_expression():
    def style(name, minimum=0.2, maximum=0.7, valid=10):
        expression = type("E", (), {"display_name": name})()
        plan = BandMathPlan(expression, None, {}, ())
        return display_style(BandMathResult(None, plan, valid, minimum, maximum))

    assert style("NDVI") == band_math_raster.DisplayStyle("RdYlGn", -1.0, 1.0)
    assert style("MNDWI").ramp == "RdYlBu"
    assert style("BSI").invert
    assert style("SAVI") == band_math_raster.DisplayStyle("RdYlGn", 0.2, 0.7)
    assert style("B1 * 2") == band_math_raster.DisplayStyle("Viridis", 0.2, 0.7)
    assert style("B1 * 0", 3.0, 3.0) == band_math_raster.DisplayStyle("Viridis", 2.5, 3.5)
    assert style("B1", math.nan, math.nan, 0) == band_math_raster.DisplayStyle("Viridis", 0, 1)
