"""The processing provider `rasterclustering`: its algorithms and bundled models."""

import os
import traceback

from qgis.core import Qgis, QgsMessageLog, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import ALGORITHM_CLASSES

PLUGIN_DIR = os.path.dirname(__file__)
VERSION = "0.1.0"


class RasterClusteringProvider(QgsProcessingProvider):
    """Unsupervised raster classification: k-means zones and the steps around it."""

    def id(self):
        """Short lowercase id used in algorithm ids: rasterclustering:kmeans."""
        return "rasterclustering"

    def name(self):
        """Name shown in the toolbox."""
        return "Raster clustering"

    def longName(self):
        return f"Raster clustering {VERSION}"

    def versionInfo(self):
        return VERSION

    def icon(self):
        return QIcon(os.path.join(PLUGIN_DIR, "icons", "provider.svg"))

    def svgIconPath(self):
        return os.path.join(PLUGIN_DIR, "icons", "provider.svg")

    def loadAlgorithms(self):
        """Register each algorithm; one that fails to load is logged, not fatal to the others."""
        for algorithm_class in ALGORITHM_CLASSES:
            try:
                self.addAlgorithm(algorithm_class())
            except Exception:  # noqa: BLE001 - keep the provider alive whatever one algorithm does
                QgsMessageLog.logMessage(
                    f"Could not load {algorithm_class.__name__}:\n{traceback.format_exc()}",
                    "Raster clustering", Qgis.Critical)
