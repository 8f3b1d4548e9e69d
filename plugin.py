"""The plugin object QGIS creates: it registers the processing provider and the translation."""

from __future__ import annotations

import os

from qgis.core import QgsApplication, QgsSettings
from qgis.PyQt.QtCore import QCoreApplication, QTranslator

I18N_DIR = os.path.join(os.path.dirname(__file__), "i18n")


class RasterClusteringPlugin:
    """Adds the Raster clustering provider to QGIS Processing (also under qgis_process)."""

    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.translator = _install_translator()

    def initProcessing(self):
        """Called by QGIS and qgis_process: register the provider."""
        from .provider import RasterClusteringProvider

        self.provider = RasterClusteringProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):
        """Called by the QGIS desktop: the toolbox is all the interface the plugin needs."""
        self.initProcessing()

    def unload(self):
        """Remove the provider when the plugin is disabled."""
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None


def _install_translator() -> QTranslator | None:
    """Load i18n/raster_clustering_<locale>.qm for the user's QGIS locale, when there is one,
    so that the strings the algorithms pass through tr() show in the user's language."""
    locale = (QgsSettings().value("locale/userLocale", "") or "")[:2]
    path = os.path.join(I18N_DIR, f"raster_clustering_{locale}.qm")
    if not locale or not os.path.exists(path):
        return None
    translator = QTranslator()
    if not translator.load(path):
        return None
    QCoreApplication.installTranslator(translator)
    return translator
