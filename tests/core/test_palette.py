"""Class colours tell neighbouring classes apart, and legend labels stay short and readable."""

import numpy as np
import pytest
import skimage.color as skimage_color  # the oracle (Debian python3-skimage)
from raster_clustering.core.palette import (
    LABEL_LENGTH,
    class_colours,
    class_label,
    short_feature_name,
)


def _adjacent_differences(n_classes):
    """CIEDE2000 colour difference of each class and the next (scikit-image as the oracle)."""
    rgb = np.array(class_colours(n_classes), dtype=float)[None] / 255
    lab = skimage_color.rgb2lab(rgb)[0]
    return skimage_color.deltaE_ciede2000(lab[:-1], lab[1:])


@pytest.mark.parametrize("n_classes", [2, 3, 5, 7, 10, 19])
def test_neighbouring_classes_differ_visibly_and_evenly(n_classes):
    differences = _adjacent_differences(n_classes)
    # A difference of about 2.3 is just noticeable; the old evenly-spaced ramp positions gave
    # classes 1 and 2 of 5 a difference of 24 against 31 for 4 and 5.
    assert differences.min() >= 0.9 * differences.mean()
    if n_classes <= 10:
        assert differences.min() >= 12


def test_colours_run_dark_to_bright_for_low_to_high_centres():
    lightness = skimage_color.rgb2lab(np.array(class_colours(7), float)[None] / 255)[0][:, 0]
    assert np.all(np.diff(lightness) > 0)


def test_one_feature_label_is_number_and_centre():
    assert class_label(1, [0.1714]) == "1 · 0.171"
    assert class_label(12, [1234.5]) == "12 · 1234"


def test_several_features_are_named_as_many_as_fit():
    names = ["blue", "green", "red", "nir", "swir1", "swir2"]
    label = class_label(2, [0.05, 0.08, 0.06, 0.312, 0.2, 0.1], names)
    assert label == "2 · blue 0.050, green 0.080 …"
    assert len(label) <= LABEL_LENGTH
    assert class_label(1, [0.05, 0.31], ["red", "nir"]) == "1 · red 0.050, nir 0.310"
    # The first feature is always shown, however long.
    assert class_label(1, [0.5, 0.2], ["a_very_long_name_x", "b"]).startswith("1 · a_very_lon")


def test_dates_in_feature_names_stand_for_them():
    stem = "NAIP_m_4709963_se_14_20090818_RGBN_5m_EPSG26914"
    assert short_feature_name(stem) == "2009-08-18"
    assert short_feature_name(f"{stem}@4") == "2009-08-18@4"
    assert short_feature_name("ndvi_2021-06-15") == "2021-06-15"
    assert short_feature_name("a very long band name") == "a very long…"
    assert class_label(1, [0.2, 0.7], ["ndvi_20210515", "ndvi_20210615"]) == (
        "1 · 2021-05-15 0.200 …")
