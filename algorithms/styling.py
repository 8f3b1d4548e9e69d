"""Styles of every output, made with QGIS's own renderer and style API: classes (paletted),
indices (a colour ramp), calibrated bands (grey reflectance, a labelled temperature ramp).

Every output is styled so it shows wherever the file goes: a `.qml` beside the file, a
post-processor that applies it when the layer loads in QGIS, and for classes also the GeoTIFF
colour table and category names (written by the core).
"""

from __future__ import annotations

import os

from qgis.core import (
    QgsColorRampShader,
    QgsContrastEnhancement,
    QgsPalettedRasterRenderer,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterLayer,
    QgsRasterMinMaxOrigin,
    QgsRasterShader,
    QgsSingleBandGrayRenderer,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtXml import QDomDocument

from ..core.palette import centres_description, class_colours, format_value, legend

TEMPERATURE_RAMP_STOPS = 10

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
    return _save_style(raster_path, lambda layer: class_renderer(layer, model))


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


def load_on_completion(context, raster_path: str, output_name: str, layer_name: str) -> None:
    """Have QGIS load a raster the run wrote beside its declared outputs (e.g. each file of an
    output folder), styled with the .qml beside it."""
    from qgis.core import QgsProcessingContext, QgsProcessingUtils

    details = QgsProcessingContext.LayerDetails(layer_name, context.project(), output_name,
                                                QgsProcessingUtils.LayerHint.Raster)
    context.addLayerToLoadOnCompletion(raster_path, details)
    style_on_load(context, raster_path, style_path(raster_path), layer_name=layer_name)


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
    def renderer_for(layer):
        style = QgsStyle.defaultStyle()
        ramp = style.colorRamp(ramp_name) or style.colorRamp("Viridis")
        if invert:
            ramp.invert()
        renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1)
        renderer.setClassificationMin(minimum)
        renderer.setClassificationMax(maximum)
        renderer.createShader(ramp, QgsColorRampShader.Interpolated,
                              QgsColorRampShader.Continuous, 0)
        return _with_fixed_limits(renderer)

    return _save_style(raster_path, renderer_for)


def write_grey_style(raster_path: str, *, minimum: float, maximum: float) -> str:
    """Write a grey style of band 1, stretched from `minimum` (black) to `maximum` (white), as a
    .qml beside the raster (e.g. a reflectance band); return the .qml's path."""

    def renderer_for(layer):
        renderer = QgsSingleBandGrayRenderer(layer.dataProvider(), 1)
        enhancement = QgsContrastEnhancement(layer.dataProvider().dataType(1))
        enhancement.setContrastEnhancementAlgorithm(
            QgsContrastEnhancement.StretchToMinimumMaximum)
        enhancement.setMinimumValue(minimum)
        enhancement.setMaximumValue(maximum)
        renderer.setContrastEnhancement(enhancement)
        return _with_fixed_limits(renderer)

    return _save_style(raster_path, renderer_for)


def write_temperature_style(raster_path: str, *, minimum: float, maximum: float,
                            unit: str) -> str:
    """Write a viridis ramp of band 1 from `minimum` to `maximum`, its stops labelled in `unit`
    (K, °C), as a .qml beside the raster; return the .qml's path."""

    def renderer_for(layer):
        colours = class_colours(TEMPERATURE_RAMP_STOPS)
        step = (maximum - minimum) / (TEMPERATURE_RAMP_STOPS - 1)
        items = []
        for index, rgb in enumerate(colours):
            value = minimum + index * step
            items.append(QgsColorRampShader.ColorRampItem(value, QColor(*rgb),
                                                          f"{format_value(value)} {unit}"))
        ramp = QgsColorRampShader(minimum, maximum)
        ramp.setColorRampType(QgsColorRampShader.Interpolated)
        ramp.setColorRampItemList(items)
        shader = QgsRasterShader(minimum, maximum)
        shader.setRasterShaderFunction(ramp)
        renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
        renderer.setClassificationMin(minimum)
        renderer.setClassificationMax(maximum)
        return _with_fixed_limits(renderer)

    return _save_style(raster_path, renderer_for)


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
    renderer = input_layer.renderer()
    if not isinstance(renderer, QgsPalettedRasterRenderer) or renderer.band() != band:
        return None
    # A clone through the renderer's own XML, so that every setting travels (classes, opacity,
    # colour ramp, nodata colour), re-pointed at the output's only band.
    document = QDomDocument()
    holder = document.createElement("holder")
    renderer.writeXml(document, holder)
    element = holder.firstChildElement("rasterrenderer")
    element.setAttribute("band", "1")
    element.setAttribute("alphaBand", "-1")
    return _save_style(output_path, lambda layer: QgsPalettedRasterRenderer.create(
        element, layer.dataProvider()))


def _save_style(raster_path: str, renderer_for) -> str:
    """Give the raster the renderer `renderer_for(layer)` makes and save it as the .qml beside
    the raster; return the .qml's path.

    Raises:
        OSError: the raster cannot be opened or the .qml cannot be written.
    """
    layer = QgsRasterLayer(raster_path, os.path.basename(raster_path), "gdal")
    if not layer.isValid():
        raise OSError(f"cannot open '{raster_path}' to style it")
    layer.setRenderer(renderer_for(layer))
    qml = style_path(raster_path)
    message, saved = layer.saveNamedStyle(qml)
    if not saved:
        raise OSError(f"cannot write the style '{qml}': {message}")
    return qml


def _with_fixed_limits(renderer):
    """Keep the given min/max when the style loads instead of QGIS's estimated stretch."""
    origin = renderer.minMaxOrigin()
    origin.setLimits(QgsRasterMinMaxOrigin.None_)
    renderer.setMinMaxOrigin(origin)
    return renderer
