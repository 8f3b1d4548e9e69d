"""The QGIS algorithm classes: parameters, validation and glue to `core`."""

from .band_math import BandMathAlgorithm
from .calibrate import CalibrateAlgorithm
from .kmeans import KMeansAlgorithm
from .sieve import SieveAlgorithm

ALGORITHM_CLASSES = [KMeansAlgorithm, CalibrateAlgorithm, BandMathAlgorithm, SieveAlgorithm]
