"""The QGIS algorithm classes: parameters, validation and glue to `core`."""

from .apply_centroids import ApplyCentroidsAlgorithm
from .band_math import BandMathAlgorithm
from .bundled_models import CopyModelAlgorithm
from .calibrate import CalibrateAlgorithm
from .choose_k import ChooseKAlgorithm
from .fuzzy_cmeans import FuzzyCMeansAlgorithm
from .isodata import IsodataAlgorithm
from .kmeans import KMeansAlgorithm
from .polygonize import PolygonizeAlgorithm
from .sieve import SieveAlgorithm
from .zones import ZonesAlgorithm

ALGORITHM_CLASSES = [KMeansAlgorithm, CalibrateAlgorithm, BandMathAlgorithm, SieveAlgorithm,
                     ApplyCentroidsAlgorithm, ChooseKAlgorithm, ZonesAlgorithm,
                     FuzzyCMeansAlgorithm, IsodataAlgorithm, CopyModelAlgorithm,
                     PolygonizeAlgorithm]
