"""Glue for zone polygons shared by the algorithms: the ZONES output, running the core, and the
style (categorized by class, the raster's colours and centre labels)."""

from __future__ import annotations

import os

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsFillSymbol,
    QgsPalettedRasterRenderer,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingMultiStepFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterVectorDestination,
    QgsRendererCategory,
    QgsVectorLayer,
)

from ..core.errors import InvalidInputError
from ..core.io.rasters import remove_raster_files
from ..core.io.vectors import vector_driver
from ..core.palette import class_colours, class_label, legend
from ..core.zones.polygons import ZonePolygonsReport, polygonize_zones
from .base import core_errors_as_processing_exceptions, feedback_callables, output_file
from .styling import style_on_load, style_path

#: Extensions the dialogs offer for polygon outputs (the provider's list), first the default.
VECTOR_OUTPUT_EXTENSIONS = ("gpkg", "shp", "geojson")
_OUTLINE = "35,35,35,255"


def add_per_class_parameter(algorithm) -> None:
    """Declare ZONES_PER_CLASS (advanced, default false)."""
    algorithm.add_with_help(QgsProcessingParameterBoolean(
        algorithm.ZONES_PER_CLASS, algorithm.tr("One multipolygon per class"),
        defaultValue=False),
        algorithm.tr("Zone polygons: one feature per class instead of one per connected zone."),
        advanced=True)


def add_polygon_destination(algorithm, name: str, description: str, help_text: str, *,
                            optional: bool) -> None:
    """Declare a polygon file output (GeoPackage, Shapefile or GeoJSON; created by default in
    the dialogs when optional)."""
    parameter = QgsProcessingParameterVectorDestination(
        name, description, QgsProcessing.TypeVectorPolygon, optional=optional,
        createByDefault=True)
    parameter.setSupportsNonFileBasedOutput(False)
    algorithm.add_with_help(parameter, help_text)


def add_zone_outputs(algorithm) -> None:
    """Declare ZONES_PER_CLASS (advanced) and the optional polygon output ZONES."""
    add_per_class_parameter(algorithm)
    add_polygon_destination(
        algorithm, algorithm.ZONES, algorithm.tr("Zone polygons"), algorithm.tr(
            "One polygon per connected zone of the classes (exact pixel edges) with its class, "
            "centre, area, perimeter and band statistics; GeoPackage, Shapefile or GeoJSON."),
        optional=True)


def zone_output_problem(algorithm, parameters, name: str) -> str | None:
    """The message refusing a polygon output that is not a GeoPackage, Shapefile or GeoJSON
    file, or whose .qml would be another output's, or None. Reads the parameter values only
    (resolving an output would register it to load, a side effect of a check)."""
    value = parameters.get(name)
    path = output_file(value)
    if not path:
        if isinstance(value, QgsProcessingOutputLayerDefinition):
            value = value.sink.staticValue()
        if isinstance(value, str) and value not in ("", QgsProcessing.TEMPORARY_OUTPUT):
            return (f"{name}: '{value}' is not a file; the zone polygons are written to a "
                    "GeoPackage (.gpkg), Shapefile (.shp) or GeoJSON file (.geojson).")
        return None  # not asked for, or a temporary output (a GeoPackage)
    try:
        vector_driver(path)
    except InvalidInputError as error:
        return f"{name}: {error}"
    qml = zone_style_path(path)
    for other in algorithm.destinationParameterDefinitions():
        other_path = output_file(parameters.get(other.name()))
        if qml and other.name() != name and other_path and style_path(other_path) == qml:
            return (f"{name}: the zone polygons '{os.path.basename(path)}' and {other.name()} "
                    f"'{os.path.basename(other_path)}' would share the style file "
                    f"'{os.path.basename(qml)}'; give them different names (or write the "
                    "polygons as a GeoPackage, which keeps its style inside).")
    return None


def _asked_for(value) -> bool:
    """Whether an optional output's value asks for it: not empty, nor a definition of an empty
    destination (what a batch row's empty cell submits)."""
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        value = value.sink.staticValue()
    return value not in (None, "")


def zone_polygons_requested(algorithm, parameters, context, name: str) -> str | None:
    """The file the polygon output `name` goes to, or None when it is not asked for."""
    if not _asked_for(parameters.get(name)):
        return None
    return algorithm.parameterAsOutputLayer(parameters, name, context) or None


def zone_step_feedback(algorithm, parameters, feedback):
    """The feedback of a classifying run: its own, or two steps when ZONES is asked for (the
    classes, then their polygons)."""
    if not _asked_for(parameters.get(algorithm.ZONES)) or feedback is None:
        return feedback
    steps = QgsProcessingMultiStepFeedback(2, feedback)
    if feedback.isCanceled():  # the steps follow only cancels that come later
        steps.cancel()
    return steps


def classes_to_zone_polygons(algorithm, parameters, context, steps, *, classes: str, inputs,
                             model, title: str, pixel_outputs=None) -> str | None:
    """The ZONES output of a classifying algorithm: the zones of its classes, described by its
    inputs, styled like its classes. When it fails or is cancelled the classes and the
    per-pixel rasters written with them (`pixel_outputs`, a PixelOutputs) are removed too, so
    that the run leaves nothing.

    Returns:
        The polygons' path, or None when ZONES is not asked for.
    """
    path = zone_polygons_requested(algorithm, parameters, context, algorithm.ZONES)
    if path is None:
        return None
    steps.setCurrentStep(1)
    try:
        write_zone_polygons(
            algorithm, context, steps, path, classes_path=classes, features=inputs,
            centres=model.centres, feature_names=model.feature_names,
            connectivity=algorithm.parameterAsInt(parameters, algorithm.CONNECTIVITY, context),
            per_class=algorithm.parameterAsBool(parameters, algorithm.ZONES_PER_CLASS, context),
            legend_for=lambda report: model_legend(model), title=f"{title}: zone polygons")
    except BaseException:
        beside = () if pixel_outputs is None else (pixel_outputs.distance_path,
                                                   pixel_outputs.membership_path)
        for raster in (classes, *beside):
            if raster:
                remove_raster_files(raster)
        raise
    return path


def zone_style_path(path: str) -> str:
    """Where the polygons' style is kept: a .qml beside the file, "" for a GeoPackage (its own
    style table)."""
    return "" if path.lower().endswith(".gpkg") else style_path(path)


def write_zone_polygons(algorithm, context, feedback, path: str, *, classes_path: str,
                        legend_for, title: str, **options) -> ZonePolygonsReport:
    """Polygonize `classes_path` into `path` (options: see `polygonize_zones`), log what was
    done, style the result, and have it load styled and named `title`.

    Args:
        legend_for: report -> (class, RGB, label) of each class, for the style.
    """
    progress, is_cancelled = feedback_callables(feedback)
    with core_errors_as_processing_exceptions():
        report = polygonize_zones(classes_path, path, progress=progress,
                                  is_cancelled=is_cancelled, **options)
    report_zone_polygons(feedback, report)
    qml = write_zone_style(path, report, legend_for(report))
    style_on_load(context, path, qml, layer_name=title)
    return report


def report_zone_polygons(feedback, report: ZonePolygonsReport) -> None:
    """Log the zones written and what the smoothing changed."""
    what = "classes" if report.features != report.zones else "zones"
    feedback.pushInfo(f"Zone polygons: {report.zones:,} connected zones of "
                      f"{len(report.class_values)} classes; {report.features:,} {what} "
                      f"written to layer '{report.layer_name}'.")
    if report.repaired:
        feedback.pushInfo(f"{report.repaired:,} zones touching themselves at a corner were "
                          "written as valid (multi)polygons (GEOS MakeValid).")
    if report.smoothing:
        feedback.pushInfo(
            f"Smoothing level {report.smoothing}: {report.smoothed_arcs:,} of "
            f"{report.shared_arcs:,} boundaries between zones smoothed (each once, shared by "
            "both zones); the outline of the area and its holes keep their pixel edges. "
            f"Zone areas changed by {report.area_change_mean_percent:.2f} % on average, "
            f"{report.area_change_max_percent:.2f} % at most.")
    for warning in report.warnings:
        feedback.pushWarning(warning)


def model_legend(model):
    """(class, RGB, label) of a CentroidModel's classes, as the classified raster shows them."""
    return legend(model.centres, model.feature_names)


def raster_legend(layer, band: int, report: ZonePolygonsReport):
    """(class, RGB, label) of each class present, as the raster layer shows it (its paletted
    style, e.g. a K-means output's); other classes take the plugin's ramp and their centre
    (the features' class means) or their number as label."""
    renderer = layer.renderer() if layer is not None else None
    shown = {}
    if isinstance(renderer, QgsPalettedRasterRenderer) and renderer.band() == band:
        shown = {int(item.value): (item.color.getRgb()[:3], item.label)
                 for item in renderer.classes()}
    colours = class_colours(len(report.class_values))
    entries = []
    for index, value in enumerate(int(value) for value in report.class_values):
        label = str(value)
        if report.class_centres is not None:
            label = class_label(value, report.class_centres[index], report.feature_names)
        entries.append((value, *shown.get(value, (colours[index], label))))
    return entries


def write_zone_style(path: str, report: ZonePolygonsReport, legend_entries) -> str:
    """Style the polygons categorized by class (the legend's colours and labels) with the
    fields' aliases, and store the style with the file: in a GeoPackage's own style table
    (the default style QGIS loads), else as a .qml beside it.

    Returns:
        The .qml's path, or "" for a GeoPackage.

    Raises:
        QgsProcessingException: the file cannot be opened or the style not saved.
    """
    source = f"{path}|layername={report.layer_name}" if path.lower().endswith(".gpkg") else path
    layer = QgsVectorLayer(source, report.layer_name, "ogr")
    if not layer.isValid():
        raise QgsProcessingException(f"Cannot open the zone polygons '{path}' to style them.")
    categories = []
    for value, rgb, label in legend_entries:
        symbol = QgsFillSymbol.createSimple({"color": ",".join(map(str, rgb)) + ",255",
                                             "outline_color": _OUTLINE,
                                             "outline_width": "0.1"})
        categories.append(QgsRendererCategory(value, symbol, label))
    layer.setRenderer(QgsCategorizedSymbolRenderer("class", categories))
    for item in report.fields:
        layer.setFieldAlias(layer.fields().indexOf(item.name), item.alias)
    qml = zone_style_path(path)
    if not qml:
        message = layer.saveStyleToDatabase(report.layer_name, "Zones by class", True, "")
        if message:
            raise QgsProcessingException(f"Cannot save the style in '{path}': {message}")
        return ""
    message, saved = layer.saveNamedStyle(qml)
    if not saved:
        raise QgsProcessingException(f"Cannot write the style '{qml}': {message}")
    return qml
