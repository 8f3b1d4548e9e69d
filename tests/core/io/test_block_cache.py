"""io/rasters.gdal_cache_for: GDAL's block cache sized to a run's data, restored afterwards."""

from osgeo import gdal
from raster_clustering.core.io.rasters import MIN_BLOCK_CACHE_BYTES, gdal_cache_for

MIB = 1 << 20


def test_data_larger_than_the_cache_cuts_it_to_a_few_strips_and_restores_it():
    original = gdal.GetCacheMax()
    try:
        gdal.SetCacheMax(1000 * MIB)
        with gdal_cache_for(5000 * MIB, 40 * MIB):
            assert gdal.GetCacheMax() == 160 * MIB
            with gdal_cache_for(0, 0):  # a step needing nothing more keeps the run's size
                assert gdal.GetCacheMax() == 160 * MIB
            with gdal_cache_for(4000 * MIB, 60 * MIB):  # a step needing more gets it
                assert gdal.GetCacheMax() == 240 * MIB
            assert gdal.GetCacheMax() == 160 * MIB
        assert gdal.GetCacheMax() == 1000 * MIB
    finally:
        gdal.SetCacheMax(original)


def test_data_that_fits_keeps_room_for_it_and_the_cache_never_grows():
    original = gdal.GetCacheMax()
    try:
        gdal.SetCacheMax(1000 * MIB)
        with gdal_cache_for(500 * MIB, 10 * MIB):
            assert gdal.GetCacheMax() == 540 * MIB  # later passes find the data decoded
        with gdal_cache_for(1 * MIB, 0):
            assert gdal.GetCacheMax() == MIN_BLOCK_CACHE_BYTES
        gdal.SetCacheMax(32 * MIB)
        with gdal_cache_for(5000 * MIB, 100 * MIB):
            assert gdal.GetCacheMax() == 32 * MIB
    finally:
        gdal.SetCacheMax(original)


def test_the_cache_is_restored_when_the_run_fails():
    original = gdal.GetCacheMax()
    try:
        with gdal_cache_for(1 << 40, MIB):
            assert gdal.GetCacheMax() < original
            raise RuntimeError("stop")
    except RuntimeError:
        pass
    assert gdal.GetCacheMax() == original
