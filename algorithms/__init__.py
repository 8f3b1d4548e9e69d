"""The QGIS algorithm classes: parameters, validation and glue to `core`."""

from .kmeans import KMeansAlgorithm

ALGORITHM_CLASSES = [KMeansAlgorithm]
