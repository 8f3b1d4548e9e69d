"""Errors raised by the core; the algorithms turn them into QgsProcessingException."""


class RasterClusteringError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class InvalidInputError(RasterClusteringError):
    """An input raster, geometry or parameter value cannot be used."""


class MetadataError(RasterClusteringError):
    """A scene metadata file is missing, unreadable or lacks a needed key."""


class ExpressionError(RasterClusteringError):
    """A band-math expression cannot be parsed or evaluated."""


class CancelledError(RasterClusteringError):
    """The user cancelled the run; partial outputs have been removed."""


class EngineError(RasterClusteringError):
    """The engine cannot run the block jobs where it was asked to: Dask is not installed, the
    scheduler cannot be reached, a worker runs other plugin code or a job failed on a worker."""
