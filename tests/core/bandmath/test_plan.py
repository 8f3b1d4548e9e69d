"""Band math's plan: which bands an expression's variables and index aliases read."""

import numpy as np
from helpers import read_raster, write_raster
from raster_clustering.core.bandmath.plan import compile_band_math, layer_bands
from raster_clustering.core.bandmath.raster import band_math_to_raster
from raster_clustering.core.io.feature_stack import RasterInput


def inputs(*paths):
    return [RasterInput(str(path)) for path in paths]


def test_a_plan_names_the_layer_and_band_of_each_variable(tmp_path):
    write_raster(tmp_path / "naip.tif", np.ones((4, 3, 3), np.float32),
                 descriptions=["Red", "Green", "Blue", "NIR"])
    plan = compile_band_math(layer_bands(inputs(tmp_path / "naip.tif")), "NDVI")
    assert plan.sources == {"B1": (0, 1), "B4": (0, 4)}
    assert plan.expression.expanded_text == "(B4 - B1) / (B4 + B1)"
    assert plan.layers_used == (0,)


class TestBandsTold:
    """Which bands an index reads when the file names tell nothing: the band descriptions, and
    Sentinel-2's B8A where B8 is absent."""

    @staticmethod
    def ndvi_of_a_described_stack(folder, descriptions, red_band, nir_band):
        """Band math's NDVI of a four-band stack with these band descriptions, checked against
        the formula on bands `red_band` and `nir_band` (1-based); the run's result."""
        values = np.arange(4 * 3 * 3, dtype=np.float32).reshape(4, 3, 3) + 1
        write_raster(folder / "stack.tif", values, descriptions=descriptions)
        result = band_math_to_raster(inputs(folder / "stack.tif"), "NDVI", folder / "out.tif")
        red, nir = values[red_band - 1], values[nir_band - 1]
        assert np.allclose(read_raster(folder / "out.tif"), (nir - red) / (nir + red))
        return result

    def test_bands_described_by_their_role(self, tmp_path):
        # NAIP's order (red, green, blue, NIR): not the generic preset's numbering.
        result = self.ndvi_of_a_described_stack(tmp_path, ["Red", "Green", "Blue", "NIR"], 1, 4)
        told = [message for message in result.messages
                if message.startswith("Bands named by their descriptions:")]
        assert told and "red = band 1 of 'stack'" in told[0]
        assert "nir = band 4 of 'stack'" in told[0]

    def test_band_codes_in_descriptions_reveal_sentinel2_and_name_the_bands(self, tmp_path):
        # Positions 3 and 4 hold B4 and B8: the codes of the descriptions, not the positions.
        result = self.ndvi_of_a_described_stack(tmp_path, ["B02", "B03", "B04", "B08"], 3, 4)
        assert result.plan.sensor == "sentinel2"

    def test_sentinel2_b8a_stands_in_for_a_missing_b8(self, tmp_path):
        red = np.full((3, 3), 0.05, np.float32)
        narrow_nir = np.full((3, 3), 0.40, np.float32)
        write_raster(tmp_path / "T30UVD_20210527T112121_B04_60m.tif", red)
        write_raster(tmp_path / "T30UVD_20210527T112121_B8A_60m.tif", narrow_nir)
        result = band_math_to_raster(
            inputs(tmp_path / "T30UVD_20210527T112121_B04_60m.tif",
                   tmp_path / "T30UVD_20210527T112121_B8A_60m.tif"), "NDVI",
            tmp_path / "out.tif")
        assert np.allclose(read_raster(tmp_path / "out.tif"), (0.40 - 0.05) / (0.40 + 0.05))
        assert any(message.startswith("B8 (nir) is not among the inputs: B8A is read")
                   for message in result.messages), result.messages

    def test_b8_is_preferred_when_both_are_there(self, tmp_path):
        for code, value in (("B04", 0.05), ("B08", 0.30), ("B8A", 0.40)):
            write_raster(tmp_path / f"T30UVD_{code}.tif", np.full((3, 3), value, np.float32))
        result = band_math_to_raster(
            inputs(*(tmp_path / f"T30UVD_{code}.tif" for code in ("B04", "B08", "B8A"))),
            "NDVI", tmp_path / "out.tif")
        assert np.allclose(read_raster(tmp_path / "out.tif"), (0.30 - 0.05) / (0.30 + 0.05))
        assert not any("is read in its place" in message for message in result.messages)

    def test_a_chosen_sensor_ignores_role_descriptions(self, tmp_path):
        values = np.arange(4 * 3 * 3, dtype=np.float32).reshape(4, 3, 3) + 1
        write_raster(tmp_path / "naip.tif", values, descriptions=["red", "green", "blue", "nir"])
        band_math_to_raster(inputs(tmp_path / "naip.tif"), "NDVI", tmp_path / "out.tif",
                            sensor="generic")
        red, nir = values[2], values[3]  # generic: B3 red, B4 NIR, as the user asked
        assert np.allclose(read_raster(tmp_path / "out.tif"), (nir - red) / (nir + red))
