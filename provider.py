"""The processing provider `rasterclustering`: its algorithms and bundled models."""

import configparser
import os
import traceback

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsMessageLog,
    QgsProcessingModelAlgorithm,
    QgsProcessingProvider,
)
from qgis.PyQt.QtGui import QIcon

from .algorithms import ALGORITHM_CLASSES
from .algorithms.base import RASTER_OUTPUT_EXTENSIONS
from .algorithms.bundled_models import BundledModel, bundled_model_paths
from .algorithms.executor_choice import register_scheduler_setting, remove_scheduler_setting
from .algorithms.zone_polygons import VECTOR_OUTPUT_EXTENSIONS

PLUGIN_DIR = os.path.dirname(__file__)


def plugin_version() -> str:
    """The plugin's version, as metadata.txt (what the plugin manager installs) states it."""
    metadata = configparser.ConfigParser(interpolation=None)
    metadata.read(os.path.join(PLUGIN_DIR, "metadata.txt"), encoding="utf-8")
    return metadata.get("general", "version")


VERSION = plugin_version()


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

    def load(self):
        """Add the provider's "Dask scheduler" setting, then load the algorithms."""
        register_scheduler_setting(self)
        return super().load()

    def unload(self):
        """Remove the setting; close the Dask clients and local clusters runs started."""
        remove_scheduler_setting()
        super().unload()

    def supportedOutputRasterLayerExtensions(self):
        """Only GeoTIFF: the file dialogs offer it, and other extensions are refused."""
        return list(RASTER_OUTPUT_EXTENSIONS)

    def supportedOutputVectorLayerExtensions(self):
        """The polygon files the plugin writes (zone polygons): GeoPackage first."""
        return list(VECTOR_OUTPUT_EXTENSIONS)

    def defaultVectorFileExtension(self, has_geometry=True):
        """GeoPackage, which keeps the style in the file."""
        return VECTOR_OUTPUT_EXTENSIONS[0]

    def loadAlgorithms(self):
        """Register each algorithm; one that fails to load is logged, not fatal to the others."""
        for algorithm_class in ALGORITHM_CLASSES:
            try:
                self.addAlgorithm(algorithm_class())
            except Exception:  # noqa: BLE001 - keep the provider alive whatever one algorithm does
                QgsMessageLog.logMessage(
                    f"Could not load {algorithm_class.__name__}:\n{traceback.format_exc()}",
                    "Raster clustering", Qgis.Critical)
        self._load_models()

    def _load_models(self):
        """Register each bundled models/*.model3 as rasterclustering:<file stem>; a model that
        does not load is logged, not fatal to the others."""
        for path in bundled_model_paths():
            try:
                self.addAlgorithm(BundledModel(path))
            except Exception:  # noqa: BLE001 - keep the provider alive whatever one model does
                QgsMessageLog.logMessage(
                    f"Could not load the model {path}:\n{traceback.format_exc()}",
                    "Raster clustering", Qgis.Critical)
        registry = QgsApplication.processingRegistry()
        if registry.providerById(self.id()) is None:
            # The registry loads a provider before adding it, so the models' steps (this
            # provider's algorithms) cannot be found yet, nor the outputs they give the models.
            registry.providerAdded.connect(self._complete_models)

    def _complete_models(self, provider_id):
        """Reload the models once the provider is registered, so their steps and outputs
        resolve (`qgis_process help` and the toolbox show the model's outputs)."""
        if provider_id != self.id():
            return
        QgsApplication.processingRegistry().providerAdded.disconnect(self._complete_models)
        for algorithm in self.algorithms():
            if isinstance(algorithm, QgsProcessingModelAlgorithm):
                algorithm.fromFile(algorithm.sourceFilePath())
