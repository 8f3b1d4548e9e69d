"""Class styles for classified outputs, made with QGIS's own renderer and style API.

Every classified output is styled three ways so the legend shows wherever the file goes:
the GeoTIFF colour table and category names (written by the core), a `.qml` beside the
file, and a post-processor that applies the style when the layer loads in QGIS.
"""

from __future__ import annotations

import os

from qgis.core import (
    QgsPalettedRasterRenderer,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

from ..core.palette import centres_description, legend

# Post-processors must outlive processAlgorithm (QGIS calls them later, in the main thread).
_post_processors: dict[str, QgsProcessingLayerPostProcessorInterface] = {}


def class_renderer(layer: QgsRasterLayer, model) -> QgsPalettedRasterRenderer:
    """A paletted renderer: one colour per class from the ramp, labelled "class · centre"."""
    classes = [QgsPalettedRasterRenderer.Class(number, QColor(*rgb), label)
               for number, rgb, label in legend(model.centres, model.feature_names)]
    return QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes)


def style_path(raster_path: str) -> str:
    return os.path.splitext(raster_path)[0] + ".qml"


def class_abstract(model) -> str:
    """Every class centre with its full feature names (the legend labels are short)."""
    return centres_description(model.centres, model.feature_names)


def write_class_style(raster_path: str, model) -> str:
    """Write the class style of a CentroidModel's classes as a .qml beside the raster; return
    the .qml's path."""
    layer = QgsRasterLayer(raster_path, os.path.basename(raster_path), "gdal")
    if not layer.isValid():
        raise OSError(f"cannot open '{raster_path}' to style it")
    layer.setRenderer(class_renderer(layer, model))
    qml = style_path(raster_path)
    message, saved = layer.saveNamedStyle(qml)
    if not saved:
        raise OSError(f"cannot write the style '{qml}': {message}")
    return qml


class LoadStylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Loads a .qml onto the output layer when QGIS adds it to the project, and gives the layer
    an abstract (shown in the Layers panel's tooltip) when there is one."""

    def __init__(self, qml_path: str, abstract: str = ""):
        super().__init__()
        self.qml_path = qml_path
        self.abstract = abstract

    def postProcessLayer(self, layer, context, feedback):
        """Apply the saved style and the abstract; a vector layer without a .qml gets its
        file's own default style (a GeoPackage's style table)."""
        if os.path.exists(self.qml_path):
            layer.loadNamedStyle(self.qml_path)
        elif isinstance(layer, QgsVectorLayer):
            layer.loadDefaultStyle()
        else:
            return
        if self.abstract:
            layer.setAbstract(self.abstract)
        layer.triggerRepaint()


def style_on_load(context, output_path: str, qml_path: str, *, layer_name: str = "",
                  abstract: str = "") -> None:
    """Ask QGIS to apply `qml_path` (and `abstract`) when `output_path` is loaded at the end of
    the run, and to name a temporary output `layer_name` (a file output keeps its file name,
    as QGIS does)."""
    if not context.willLoadLayerOnCompletion(output_path):
        return
    processor = LoadStylePostProcessor(qml_path, abstract)
    _post_processors[output_path] = processor
    details = context.layerToLoadOnCompletionDetails(output_path)
    details.setPostProcessor(processor)
    if layer_name:
        details.name = layer_name


def name_on_load(context, output_id, layer_name: str) -> None:
    """Name the layer QGIS loads for `output_id` (a temporary output; files keep their name)."""
    if output_id and context.willLoadLayerOnCompletion(output_id):
        context.layerToLoadOnCompletionDetails(output_id).name = layer_name


def write_pseudocolour_style(raster_path: str, *, ramp_name: str, minimum: float, maximum: float,
                             invert: bool = False) -> str:
    """Write a continuous pseudocolour style of band 1 as a .qml beside the raster.

    Args:
        raster_path: the single-band raster (e.g. a band-math index).
        ramp_name: a colour ramp of QGIS's default style ("RdYlGn", "Viridis", …); Viridis when
            the style lacks it.
        minimum, maximum: the values at the two ends of the ramp (fixed: QGIS keeps them
            instead of recomputing a stretch when the layer loads).
        invert: run the ramp from its last colour to its first.

    Returns:
        The .qml's path.
    """
    # Imported here so that this append-only addition leaves the module's imports untouched.
    from qgis.core import (
        QgsColorRampShader,
        QgsRasterMinMaxOrigin,
        QgsSingleBandPseudoColorRenderer,
        QgsStyle,
    )

    layer = QgsRasterLayer(raster_path, os.path.basename(raster_path), "gdal")
    if not layer.isValid():
        raise OSError(f"cannot open '{raster_path}' to style it")
    style = QgsStyle.defaultStyle()
    ramp = style.colorRamp(ramp_name) or style.colorRamp("Viridis")
    if invert:
        ramp.invert()
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1)
    renderer.setClassificationMin(minimum)
    renderer.setClassificationMax(maximum)
    renderer.createShader(ramp, QgsColorRampShader.Interpolated, QgsColorRampShader.Continuous, 0)
    origin = renderer.minMaxOrigin()
    origin.setLimits(QgsRasterMinMaxOrigin.None_)
    renderer.setMinMaxOrigin(origin)
    layer.setRenderer(renderer)
    qml = style_path(raster_path)
    message, saved = layer.saveNamedStyle(qml)
    if not saved:
        raise OSError(f"cannot write the style '{qml}': {message}")
    return qml


def copy_paletted_style(input_layer: QgsRasterLayer, output_path: str, *,
                        band: int = 1) -> str | None:
    """Save the input layer's paletted style (classes, colours, labels) as the output's .qml.

    For outputs holding the same classes as one band of the input (e.g. a sieved copy).

    Args:
        input_layer: the input layer with the style QGIS shows it with.
        output_path: the single-band output raster; the style is written beside it.
        band: the input band the output was made from; only a paletted renderer of that band
            describes the output's classes.

    Returns:
        The .qml's path, or None when the input's renderer is not a paletted one of `band`
        (nothing is written; the output shows with its own colour table, if any).

    Raises:
        OSError: the output cannot be opened or the .qml cannot be written.
    """
    # Imported here so that this append-only addition leaves the module's imports untouched.
    from qgis.PyQt.QtXml import QDomDocument

    renderer = input_layer.renderer()
    if not isinstance(renderer, QgsPalettedRasterRenderer) or renderer.band() != band:
        return None
    layer = QgsRasterLayer(output_path, os.path.basename(output_path), "gdal")
    if not layer.isValid():
        raise OSError(f"cannot open '{output_path}' to style it")
    # A clone through the renderer's own XML, so that every setting travels (classes, opacity,
    # colour ramp, nodata colour), re-pointed at the output's only band.
    document = QDomDocument()
    holder = document.createElement("holder")
    renderer.writeXml(document, holder)
    element = holder.firstChildElement("rasterrenderer")
    element.setAttribute("band", "1")
    element.setAttribute("alphaBand", "-1")
    layer.setRenderer(QgsPalettedRasterRenderer.create(element, layer.dataProvider()))
    qml = style_path(output_path)
    message, saved = layer.saveNamedStyle(qml)
    if not saved:
        raise OSError(f"cannot write the style '{qml}': {message}")
    return qml
