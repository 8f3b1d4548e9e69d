"""Class styles for classified outputs, made with QGIS's own renderer and style API.

Every classified output is styled three ways so the legend shows wherever the file goes:
the GeoTIFF colour table and category names (written by the core), a `.qml` beside the
file, and a post-processor that applies the style when the layer loads in QGIS.
"""

from __future__ import annotations

import os

from qgis.core import (QgsPalettedRasterRenderer, QgsProcessingLayerPostProcessorInterface,
                       QgsRasterLayer)
from qgis.PyQt.QtGui import QColor

from ..core.palette import legend

# Post-processors must outlive processAlgorithm (QGIS calls them later, in the main thread).
_post_processors: dict[str, QgsProcessingLayerPostProcessorInterface] = {}


def class_renderer(layer: QgsRasterLayer, centres) -> QgsPalettedRasterRenderer:
    """A paletted renderer: one colour per class from the ramp, labelled "class · centre"."""
    classes = [QgsPalettedRasterRenderer.Class(number, QColor(*rgb), label)
               for number, rgb, label in legend(centres)]
    return QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes)


def style_path(raster_path: str) -> str:
    return os.path.splitext(raster_path)[0] + ".qml"


def write_class_style(raster_path: str, centres) -> str:
    """Write the class style as a .qml beside the raster; return the .qml's path."""
    layer = QgsRasterLayer(raster_path, os.path.basename(raster_path), "gdal")
    if not layer.isValid():
        raise OSError(f"cannot open '{raster_path}' to style it")
    layer.setRenderer(class_renderer(layer, centres))
    qml = style_path(raster_path)
    message, saved = layer.saveNamedStyle(qml)
    if not saved:
        raise OSError(f"cannot write the style '{qml}': {message}")
    return qml


class LoadStylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Loads a .qml onto the output layer when QGIS adds it to the project."""

    def __init__(self, qml_path: str):
        super().__init__()
        self.qml_path = qml_path

    def postProcessLayer(self, layer, context, feedback):
        """Apply the saved style and name the layer after its legend."""
        if isinstance(layer, QgsRasterLayer) and os.path.exists(self.qml_path):
            layer.loadNamedStyle(self.qml_path)
            layer.triggerRepaint()


def style_on_load(context, output_path: str, qml_path: str) -> None:
    """Ask QGIS to apply `qml_path` when `output_path` is loaded at the end of the run."""
    if not context.willLoadLayerOnCompletion(output_path):
        return
    processor = LoadStylePostProcessor(qml_path)
    _post_processors[output_path] = processor
    context.layerToLoadOnCompletionDetails(output_path).setPostProcessor(processor)
