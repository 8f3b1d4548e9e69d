"""clustering/classify.py: labels are the nearest centre, the statistics describe what was written
(after the sieve when there is one), and the warnings come back in the result."""

import numpy as np
import pytest
from helpers import read_raster, three_level_field
from raster_clustering.core.clustering.centroid_model import CentroidModel
from raster_clustering.core.clustering.classify import write_classified_raster
from raster_clustering.core.engine import opened, run_scope
from raster_clustering.core.io.feature_stack import AreaBlocks, RasterInput, StackSource
from raster_clustering.core.progress import Progress

CENTRES = np.array([[0.15], [0.45], [0.8]])


def classify(path, output, *, min_area_m2=None):
    with run_scope() as scope:
        source = StackSource((RasterInput(str(path)),), scope)
        stack = opened(source)
        model = CentroidModel(("values",), CENTRES)
        return write_classified_raster(stack, AreaBlocks(source), model, output,
                                       stack.grid.full_window, min_area_m2=min_area_m2,
                                       connectivity=8, steps=Progress())


def assert_statistics_describe(written, labels, values):
    assert [row.class_number for row in written.statistics] == [1, 2, 3]
    for row in written.statistics:
        members = values[labels == row.class_number]
        assert row.pixel_count == members.size
        assert row.mean[0] == pytest.approx(members.astype(np.float64).mean(), rel=1e-9)


def test_labels_are_the_nearest_centre_and_nothing_is_to_warn(make_raster, tmp_path):
    values = three_level_field(seed=1, shape=(40, 60), noise=0.1)
    path = make_raster("values.tif", values)
    written = classify(path, tmp_path / "classes.tif")
    labels = read_raster(tmp_path / "classes.tif")
    nearest = np.abs(values[..., None].astype(np.float64) - CENTRES[:, 0]).argmin(axis=-1) + 1
    np.testing.assert_array_equal(labels, nearest)
    assert_statistics_describe(written, labels, values)
    assert [row.area_m2 for row in written.statistics] == [100.0 * row.pixel_count
                                                          for row in written.statistics]
    assert written.sieve is None and written.warnings == []


def test_unknown_pixel_areas_are_a_returned_warning(make_raster, tmp_path):
    values = three_level_field(seed=2, shape=(20, 30))
    path = make_raster("no_crs.tif", values, epsg=None)
    written = classify(path, tmp_path / "classes.tif")
    (warning,) = written.warnings
    assert warning.startswith("Class areas are unknown: ")
    assert all(np.isnan(row.area_m2) for row in written.statistics)
    assert_statistics_describe(written, read_raster(tmp_path / "classes.tif"), values)


def test_the_sieve_report_and_its_warnings_are_returned(make_raster, tmp_path):
    values = three_level_field(seed=3, shape=(40, 60), noise=0.12)
    path = make_raster("values.tif", values)
    # 50 m² is half a 10 m pixel: the sieve warns that it removes nothing smaller than a pixel.
    written = classify(path, tmp_path / "classes.tif", min_area_m2=50)
    assert written.sieve is not None and written.sieve.warnings
    assert written.warnings == list(written.sieve.warnings)
    sieved = classify(path, tmp_path / "sieved.tif", min_area_m2=1000)
    labels = read_raster(tmp_path / "sieved.tif")
    assert sieved.sieve.changed_pixels > 0
    assert_statistics_describe(sieved, labels, values)
    assert not [p.name for p in tmp_path.iterdir() if "partial" in p.name]  # labels before sieving
