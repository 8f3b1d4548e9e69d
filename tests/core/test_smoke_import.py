import raster_clustering.core.errors as errors


def test_errors_share_a_base():
    assert issubclass(errors.InvalidInputError, errors.RasterClusteringError)
