"""algorithms/base.py: every error the core raises reaches the user as a QgsProcessingException
that carries the core's own message (what is wrong, how to fix it), and leaves no output."""

import numpy as np
import pytest
from helpers import file_names, run_algorithm
from raster_clustering.core.bandmath.raster import band_math_to_raster
from raster_clustering.core.calibration.calibrators import calibrator_for
from raster_clustering.core.clustering.kmeans import KMeansSettings, cluster_rasters
from raster_clustering.core.errors import (
    CancelledError,
    ExpressionError,
    InvalidInputError,
    MetadataError,
)
from raster_clustering.core.io.feature_stack import RasterInput

pytestmark = pytest.mark.usefixtures("provider")


def core_message(error_class, function, *args, **options):
    """The message the core raises for these arguments: the oracle of what the user reads."""
    with pytest.raises(error_class) as raised:
        function(*args, **options)
    return str(raised.value)


def algorithm_message(algorithm, parameters, feedback=None):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException) as raised:
        run_algorithm(f"rasterclustering:{algorithm}", parameters, feedback)
    return str(raised.value)


def test_invalid_input_error(make_raster, tmp_path):
    nodata = make_raster("nodata.tif", np.full((20, 30), -9999.0, np.float32), nodata=-9999.0)
    expected = core_message(InvalidInputError, cluster_rasters, [RasterInput(str(nodata))],
                            tmp_path / "core.tif", settings=KMeansSettings(n_clusters=3))
    assert "no valid pixel" in expected
    out = tmp_path / "out"
    out.mkdir()
    message = algorithm_message("kmeans", {
        "INPUT": [str(nodata)], "CLUSTERS": 3, "OUTPUT": str(out / "classes.tif"),
        "CENTROIDS": str(out / "classes.json"), "STATISTICS": str(out / "classes.csv")})
    assert message == expected
    assert file_names(out) == []


def test_metadata_error(make_raster, tmp_path):
    band = make_raster("LC80200392015216LGN00_B4.TIF",
                       np.full((10, 10), 9000, np.uint16))
    (tmp_path / "LC80200392015216LGN00_MTL.txt").write_text(
        "GROUP = L1_METADATA_FILE\n  GROUP = PRODUCT_METADATA\n")
    expected = core_message(MetadataError, calibrator_for, band)
    assert "truncated" in expected
    out = tmp_path / "out"
    message = algorithm_message("calibrate", {"INPUT": [str(band)], "OUTPUT_FOLDER": str(out)})
    assert message == expected
    assert file_names(out) == []


def test_expression_error(make_raster, tmp_path):
    band = make_raster("one.tif", np.ones((10, 10), np.float32))
    expected = core_message(ExpressionError, band_math_to_raster, [RasterInput(str(band))],
                            "B9 - B1", tmp_path / "core.tif")
    assert "B9" in expected
    message = algorithm_message("bandmath", {"INPUT": [str(band)], "EXPRESSION": "B9 - B1",
                                             "OUTPUT": str(tmp_path / "out.tif")})
    # Refused while checking the parameters, which QGIS introduces with a line of its own.
    assert message.endswith(expected)
    assert not (tmp_path / "out.tif").exists()


def test_cancelled_error(make_raster, tmp_path):
    from qgis.core import QgsProcessingFeedback

    values = make_raster("values.tif", np.arange(600, dtype=np.float32).reshape(20, 30))
    expected = core_message(CancelledError, cluster_rasters, [RasterInput(str(values))],
                            tmp_path / "core.tif", settings=KMeansSettings(n_clusters=3),
                            is_cancelled=lambda: True)
    assert "Cancelled" in expected
    feedback = QgsProcessingFeedback()
    feedback.cancel()
    out = tmp_path / "out"
    out.mkdir()
    message = algorithm_message("kmeans", {
        "INPUT": [str(values)], "CLUSTERS": 3, "OUTPUT": str(out / "classes.tif"),
        "CENTROIDS": str(out / "classes.json"), "STATISTICS": str(out / "classes.csv")},
        feedback)
    assert message == expected
    assert file_names(out) == []


def test_number_parameters_take_their_type_bounds_and_default_from_the_core_rules(provider):
    from qgis.core import QgsProcessingModelAlgorithm, QgsProcessingParameterNumber
    from raster_clustering.core.parameters import Options

    checked = 0
    for algorithm in provider.algorithms():
        if isinstance(algorithm, QgsProcessingModelAlgorithm):
            continue  # a bundled model's inputs feed the algorithms, which check them
        for definition in algorithm.parameterDefinitions():
            if not isinstance(definition, QgsProcessingParameterNumber):
                continue
            rule = getattr(algorithm, "_rules", {}).get(definition.name())
            assert rule is not None, f"{algorithm.id()} {definition.name()} has no core rule"
            allowed = rule.allowed
            values = allowed.values if isinstance(allowed, Options) else None
            low = min(values) if values else allowed.low
            high = max(values) if values else allowed.high
            assert definition.defaultValue() == rule.default
            assert definition.minimum() == low
            if high is not None:
                assert definition.maximum() == high
            whole = values is not None or allowed.whole
            assert (definition.dataType() == QgsProcessingParameterNumber.Integer) == whole
            checked += 1
    assert checked >= 12


def test_the_provider_version_is_that_of_metadata_txt(provider):
    import configparser
    from pathlib import Path

    metadata = configparser.ConfigParser(interpolation=None)
    metadata.read(Path(__file__).resolve().parents[2] / "metadata.txt", encoding="utf-8")
    assert provider.versionInfo() == metadata["general"]["version"]
    assert provider.longName().endswith(metadata["general"]["version"])
