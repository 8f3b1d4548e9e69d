"""The plugin object QGIS creates: it only registers the processing provider."""

from qgis.core import QgsApplication


class RasterClusteringPlugin:
    """Adds the Raster clustering provider to QGIS Processing (also under qgis_process)."""

    def __init__(self, iface):
        self.iface = iface
        self.provider = None

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
