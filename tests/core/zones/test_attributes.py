"""Field names of zone layers: valid in Shapefile (≤ 10 characters), distinct, aliased."""

import pytest
from raster_clustering.core.zones.attributes import MAX_FIELD_NAME, zone_fields

S2_BANDS = [f"S2_20210527_Aberystwyth_SR_10band_EPSG27700_10m@{band}" for band in range(1, 11)]


@pytest.mark.parametrize("names", [[], ["NDVI"], ["red", "nir"], S2_BANDS,
                                   ["NDVI 2021-05-01", "NDVI 2021-06-01"], ["B4", "b4"],
                                   ["area"], ["x" * 40] * 3])
def test_names_fit_shapefiles_and_are_distinct(names):
    fields = zone_fields(names)
    assert all(len(field.name) <= MAX_FIELD_NAME for field in fields)
    folded = [field.name.lower() for field in fields]
    assert len(set(folded)) == len(folded)
    assert len(fields) == 4 + 5 * len(names)


def test_short_names_name_the_fields_and_long_ones_are_numbered_with_full_aliases():
    assert [field.name for field in zone_fields(["NDVI"])] == [
        "zone", "class", "NDVI_ctr", "area_m2", "perim_m", "NDVI_mean", "NDVI_min",
        "NDVI_max", "NDVI_std"]
    fields = {field.name: field for field in zone_fields(S2_BANDS)}
    assert fields["f10_mean"].alias == f"{S2_BANDS[9]} mean"
    assert fields["f1_ctr"].alias == f"{S2_BANDS[0]} class centre"
    assert fields["zone"].integer and fields["class"].integer and not fields["area_m2"].integer
    assert [field.name for field in zone_fields(["B4", "b4"])][2:4] == ["f1_ctr", "f2_ctr"]
