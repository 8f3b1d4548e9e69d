"""Raster Clustering: unsupervised raster classification for QGIS Processing."""


def classFactory(iface):  # noqa: N802 (QGIS's name)
    """Entry point QGIS calls when the plugin is enabled."""
    from .plugin import RasterClusteringPlugin

    return RasterClusteringPlugin(iface)
