"""What every algorithm of the provider shares: metadata, layer resolution and error mapping."""

from __future__ import annotations

import math
import os
import re
from contextlib import contextmanager

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsGeometry,
    QgsMapLayer,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingFeatureSource,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterNumber,
    QgsProcessingUtils,
    QgsProperty,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsRectangle,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..core import parameters as rules
from ..core.errors import CancelledError, RasterClusteringError
from ..core.io.feature_stack import RasterInput
from ..core.io.rasters import output_over_input_problem
from ..core.parameters import Options, Parameter
from .executor_choice import chosen_executor

ICON_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "icons")

#: Every raster the plugin writes is a GeoTIFF; the provider offers only these extensions.
RASTER_OUTPUT_EXTENSIONS = ("tif", "tiff")


class RasterClusteringAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses set NAME, DISPLAY_NAME, GROUP, GROUP_ID and HELP."""

    NAME = ""
    DISPLAY_NAME = ""
    GROUP = "Clustering"
    GROUP_ID = "clustering"
    HELP = ""
    ICON = "provider.svg"

    # The parameter names several algorithms share: the public API of models and qgis_process.
    INPUT = "INPUT"
    OUTPUT = "OUTPUT"
    AOI = "AOI"
    EXTENT = "EXTENT"
    CLIP = "CLIP"
    CENTROIDS = "CENTROIDS"
    STATISTICS = "STATISTICS"
    DISTANCE = "DISTANCE"
    STANDARDIZE = "STANDARDIZE"
    METADATA = "METADATA"
    CALIBRATE = "CALIBRATE"
    EXPRESSION = "EXPRESSION"
    SENSOR = "SENSOR"
    BAND = "BAND"
    ZONES = "ZONES"
    ZONES_PER_CLASS = "ZONES_PER_CLASS"
    # Those whose values the core's rules check (`core.parameters`).
    CLUSTERS = rules.CLUSTERS.name
    SEED = rules.SEED.name
    SAMPLE_SIZE = rules.KMEANS_SAMPLE_SIZE.name
    MIN_AREA = rules.MIN_ZONE_AREA.name
    CONNECTIVITY = rules.CONNECTIVITY.name
    FUZZINESS = rules.FUZZINESS.name
    DISTANCE_METRIC = rules.DISTANCE_METRIC.name
    METHOD = rules.CHOOSE_K_METHOD.name

    def name(self):
        """Id within the provider (rasterclustering:<name>)."""
        return self.NAME

    def displayName(self):
        """Name shown in the toolbox."""
        return self.DISPLAY_NAME

    def group(self):
        return self.GROUP

    def groupId(self):
        return self.GROUP_ID

    def shortHelpString(self):
        """Help shown beside the dialog and by `qgis_process help`, as flowing HTML."""
        return flowing_html(self.tr(self.HELP))

    def tr(self, text: str) -> str:
        """`text` in the user's language (the plugin's translations, when there is one)."""
        return QCoreApplication.translate(type(self).__name__, text)

    def icon(self):
        return QIcon(os.path.join(ICON_DIR, self.ICON))

    def svgIconPath(self):
        return os.path.join(ICON_DIR, self.ICON)

    def add_with_help(self, parameter, help_text: str, *, advanced: bool = False,
                      rule: Parameter | None = None):
        """Add a parameter with its help text; advanced ones fold under "Advanced parameters".

        Args:
            rule: the core's rule of the parameter's values (`core.parameters`), which
                checkParameterValues applies.
        """
        parameter.setHelp(help_text)
        if advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(parameter)
        if rule is not None:
            if not hasattr(self, "_rules"):
                self._rules = {}
            self._rules[parameter.name()] = rule

    def add_number(self, rule: Parameter, description: str, help_text: str, *,
                   advanced: bool = False, optional: bool = False):
        """Add a number parameter whose type, bounds and default are those of the core's rule."""
        self.add_with_help(number_parameter(rule, description, optional=optional), help_text,
                           advanced=advanced, rule=rule)

    def input_rasters(self, parameters: dict, context) -> tuple[list, list[RasterInput]]:
        """The INPUT layers and the GDAL sources the core reads them by (`gdal_source`)."""
        layers = self.parameterAsLayerList(parameters, self.INPUT, context)
        return layers, [gdal_source(layer, self.INPUT) for layer in layers]

    def input_problem(self, parameters: dict, context) -> str | None:
        """The message refusing an empty list of input rasters (which QGIS accepts), or None."""
        definition = self.parameterDefinition(self.INPUT)
        if (definition is not None and definition.type() == "multilayer"
                and not self.parameterAsLayerList(parameters, self.INPUT, context)):
            return self.tr("Select at least one raster layer as input.")
        return None

    def rule_problem(self, parameters: dict) -> str | None:
        """The core's message refusing a parameter value its rule does not allow, or None.

        QGIS itself only says "Incorrect parameter value", or silently takes the default for
        text that is no number. Absent, empty and data-defined values are for QGIS to judge.
        """
        for name, rule in getattr(self, "_rules", {}).items():
            value = parameters.get(name)
            if value is None or value == "" or isinstance(value, QgsProperty):
                continue
            problem = rule.problem(_as_number(value))
            if problem:
                return problem
        return None

    def processAlgorithm(self, parameters, context, feedback):
        """`process` with the run's block jobs on the executor the provider's settings choose
        (in this process, or on a Dask cluster: `executor_choice`)."""
        with core_errors_as_processing_exceptions():
            with chosen_executor(feedback):
                return self.process(parameters, context, feedback)

    def process(self, parameters, context, feedback) -> dict:
        """The algorithm's work (QGIS's processAlgorithm), wherever its block jobs run."""
        raise NotImplementedError

    def createInstance(self):
        """A fresh copy for each run (QGIS runs algorithms in threads)."""
        return type(self)()

    def canExecute(self):
        """scikit-learn is needed; say how to install it when it is missing."""
        try:
            import sklearn  # noqa: F401
        except ImportError:
            return False, ("scikit-learn is not installed. Install it (Debian/Ubuntu: "
                           "apt install python3-sklearn; OSGeo4W: the python3-scikit-learn "
                           "package) and restart QGIS.")
        return True, ""

    def checkParameterValues(self, parameters, context):
        """QGIS's checks, then the output files: each in an existing folder, none over an input
        or another output, so that no run fails after writing part of its outputs."""
        problem = self.input_problem(parameters, context) or self.rule_problem(parameters)
        if problem:
            return False, problem
        valid, message = super().checkParameterValues(parameters, context)
        if not valid:
            return valid, message
        problem = output_file_problem(self, parameters, context)
        return (False, problem) if problem else (True, message)


def flowing_html(text: str) -> str:
    """HTML without hard line breaks: QGIS's help panel turns each one into a new paragraph."""
    return _LINE_BREAK.sub(" ", text).strip()


_LINE_BREAK = re.compile(r"[ \t]*\n\s*")


def number_parameter(rule: Parameter, description: str, *,
                     optional: bool = False) -> QgsProcessingParameterNumber:
    """A number parameter named, typed, bounded and defaulted as the core's rule says."""
    allowed = rule.allowed
    if isinstance(allowed, Options):
        whole, low, high = True, min(allowed.values), max(allowed.values)
    else:
        whole, low, high = allowed.whole, allowed.low, allowed.high
    bounds = {}
    if low is not None:
        bounds["minValue"] = low
    if high is not None:
        bounds["maxValue"] = high
    kind = QgsProcessingParameterNumber.Integer if whole else QgsProcessingParameterNumber.Double
    return QgsProcessingParameterNumber(rule.name, description, kind, defaultValue=rule.default,
                                        optional=optional, **bounds)


def _as_number(value):
    """A parameter value as the number it says (whole numbers as int), or as it is."""
    if isinstance(value, bool):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return int(number) if number.is_integer() else number


def gdal_source(layer, parameter_name: str) -> RasterInput:
    """The GDAL-readable source of a raster layer, with the name the user knows it by.

    Raises:
        QgsProcessingException: the layer is not read by GDAL (WMS, memory, …).
    """
    if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
        raise QgsProcessingException(f"{parameter_name}: the layer is missing or invalid.")
    if layer.providerType() != "gdal":
        raise QgsProcessingException(
            f"{parameter_name}: layer '{layer.name()}' comes from the '{layer.providerType()}' "
            "provider, which GDAL cannot read block by block. Save it as a GeoTIFF first "
            "(Raster ▸ Conversion ▸ Translate, or Export ▸ Save As…).")
    return RasterInput(layer_path(layer), layer.name())


def layer_path(layer) -> str:
    """What GDAL opens of a layer: its source without QGIS's open options (|option:…), a
    /vsizip/ or other virtual path kept whole."""
    registry = QgsProviderRegistry.instance()
    parts = registry.decodeUri(layer.providerType(), layer.source())
    parts.pop("openOptions", None)
    return registry.encodeUri(layer.providerType(), parts)


def layer_file(layer) -> str:
    """The file on disk a layer reads (the archive of a /vsizip/ path), or "" for none."""
    return QgsProviderRegistry.instance().decodeUri(layer.providerType(),
                                                    layer.source()).get("path") or ""


def refuse_output_over_inputs(output_path: str, inputs: list[RasterInput]) -> None:
    """Writing onto an input would destroy it while it is being read."""
    if not output_path or output_path.upper() == "TEMPORARY_OUTPUT":
        return
    problem = output_over_input_problem(output_path, [raster.source for raster in inputs])
    if problem:
        raise QgsProcessingException(problem)


_INPUT_TYPES = ("raster", "multilayer", "file", "source", "vector")
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # memory:, ogr:, postgres://, …


def output_file(value) -> str | None:
    """The file a destination parameter's value names, None for temporary or non-file outputs."""
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        sink = value.sink
        value = sink.staticValue() if sink.propertyType() == QgsProperty.StaticProperty else None
    if not isinstance(value, str) or not value or value == QgsProcessing.TEMPORARY_OUTPUT:
        return None
    return None if _URI_SCHEME.match(value) else value


def _input_files(algorithm, parameters, context) -> set[str]:
    """The real paths of the existing files the algorithm reads (layers, files), found without
    loading any layer (loading one makes QGIS write statistics beside it)."""
    values = []
    for definition in algorithm.parameterDefinitions():
        if definition.type() in _INPUT_TYPES:
            value = parameters.get(definition.name())
            values += value if isinstance(value, (list, tuple)) else [value]
    paths = set()
    for value in values:
        if isinstance(value, QgsMapLayer):
            path = layer_file(value)
        elif isinstance(value, str) and value:
            layer = QgsProcessingUtils.mapLayerFromString(value, context, False)
            path = layer_file(layer) if layer is not None else value
        else:
            continue
        if path and os.path.isfile(path):
            paths.add(path)
    return paths


def output_file_problem(algorithm, parameters, context) -> str | None:
    """What is wrong with the output files of a run, before any work, or None.

    Refuses an output whose folder does not exist (the folder of an output folder parameter is
    created, so it is not checked), an output that is one of the input files, and two outputs
    that are one file.
    """
    inputs = _input_files(algorithm, parameters, context)
    outputs: dict[str, str] = {}
    for definition in algorithm.destinationParameterDefinitions():
        name = definition.name()
        path = output_file(parameters.get(name))
        if path is None or definition.type() == "folderDestination":
            continue
        target = os.path.realpath(path)
        problem = output_over_input_problem(path, inputs)
        if problem:
            return f"{name}: {problem}"
        extension = os.path.splitext(path)[1].lstrip(".").lower()
        if (definition.type() == "rasterDestination" and extension
                and extension not in RASTER_OUTPUT_EXTENSIONS):
            return (f"{name}: the output '{os.path.basename(path)}' must be a GeoTIFF (the "
                    "plugin writes GeoTIFF only): use one of the extensions "
                    f"{', '.join('.' + e for e in RASTER_OUTPUT_EXTENSIONS)}.")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            return (f"{name}: the output folder '{folder}' does not exist (or is a file); "
                    "create it or choose another output file.")
        if target in outputs:
            return (f"The outputs {outputs[target]} and {name} are the same file '{path}'; "
                    "choose a file name for each.")
        outputs[target] = name
    return None


def feedback_callables(feedback):
    """The (progress, is_cancelled) pair the core expects, built from a QgsProcessingFeedback."""
    if feedback is None:
        return None, None
    return (lambda fraction: feedback.setProgress(100.0 * fraction)), feedback.isCanceled


@contextmanager
def core_errors_as_processing_exceptions():
    """Turn the core's errors into the QgsProcessingException QGIS shows to the user."""
    try:
        yield
    except CancelledError as error:
        raise QgsProcessingException(str(error)) from None
    except RasterClusteringError as error:
        raise QgsProcessingException(str(error)) from None


def area_geometry_wkt(source, target_crs: QgsCoordinateReferenceSystem, context,
                      feedback) -> str | None:
    """Union of a polygon feature source's geometries, reprojected to `target_crs`, as WKT.

    Null geometries are skipped; invalid ones (self-intersections, …) are repaired with
    makeValid and the repair is reported in the log.

    Raises:
        QgsProcessingException: no polygon area remains.
    """
    if source is None:
        return None
    transform = QgsCoordinateTransform(source.sourceCrs(), target_crs, context.transformContext())
    parts = []
    repaired = 0
    # Processing's own invalid-geometry check would stop the run before makeValid can repair.
    for feature in source.getFeatures(QgsFeatureRequest(),
                                      QgsProcessingFeatureSource.FlagSkipGeometryValidityChecks):
        geometry = feature.geometry()
        if geometry is None or geometry.isNull() or geometry.isEmpty():
            continue
        geometry = QgsGeometry(geometry)
        if not geometry.isGeosValid():
            geometry = geometry.makeValid()
            repaired += 1
        if geometry.transform(transform) != 0:
            raise QgsProcessingException("The area of interest cannot be reprojected to the "
                                         "raster's CRS; check both CRSs.")
        parts.append(geometry)
    if repaired and feedback is not None:
        feedback.pushInfo(f"Repaired {repaired} invalid area-of-interest geometr"
                          f"{'y' if repaired == 1 else 'ies'} (self-intersections) with makeValid.")
    union = QgsGeometry.unaryUnion(parts) if parts else QgsGeometry()
    if union.isNull() or union.isEmpty() or union.area() <= 0:
        raise QgsProcessingException(
            "The area of interest has no polygon area: the layer (or its selection) is empty or "
            "holds only null geometries. Choose polygon features or leave it empty.")
    return union.asWkt()


def area_of_run(algorithm, parameters, context, feedback, crs) -> tuple[str | None,
                                                                       tuple[float, ...] | None]:
    """The run's AOI (union, as WKT) and EXTENT (xmin, ymin, xmax, ymax), both in `crs`, the
    raster's; None for what is not given."""
    geometry_wkt = area_geometry_wkt(algorithm.parameterAsSource(parameters, algorithm.AOI,
                                                                 context), crs, context, feedback)
    return geometry_wkt, extent_in_crs(algorithm, parameters, algorithm.EXTENT, context, crs)


def extent_in_crs(algorithm, parameters, name, context, crs) -> tuple[float, ...] | None:
    """The EXTENT parameter in `crs` as (xmin, ymin, xmax, ymax), or None when not given."""
    if parameters.get(name) in (None, ""):
        return None
    rectangle: QgsRectangle = algorithm.parameterAsExtent(parameters, name, context, crs)
    if rectangle is None or rectangle.isNull():
        return None
    return (rectangle.xMinimum(), rectangle.yMinimum(), rectangle.xMaximum(), rectangle.yMaximum())


def optional_range(algorithm, parameters, name, context) -> tuple[float, float] | None:
    """A range parameter as (low, high), or None when it is not set: absent, empty, or the
    dialog's empty range widget ('None,None', which QGIS reads as NaN, NaN). A half-filled
    range keeps its NaN, for the algorithm's check to refuse."""
    if parameters.get(name) in (None, ""):
        return None
    values = algorithm.parameterAsRange(parameters, name, context)
    if len(values) != 2 or all(math.isnan(value) for value in values):
        return None
    return float(values[0]), float(values[1])


def optional_output_layer(algorithm, parameters, name, context) -> str | None:
    """The path of an optional raster output, or None when the run does not ask for it: absent,
    empty, or an empty destination (a batch row's empty cell). Asking QGIS for the path of an
    empty one would make it load a layer that was never written."""
    value = parameters.get(name)
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        sink = value.sink
        value = sink.staticValue() if sink.propertyType() == QgsProperty.StaticProperty else name
    if value in (None, ""):
        return None
    return algorithm.parameterAsOutputLayer(parameters, name, context) or None


def layers_title(layers, feature_names=()) -> str:
    """The inputs of a run as its output layers' names tell them: the one feature's name when
    there is one feature (a band description such as NDVI, which a model's temporary inputs,
    named after their output, lack), else the first layer's name and how many more there are."""
    if len(feature_names) == 1:
        return feature_names[0]
    if not layers:
        return ""
    more = f" + {len(layers) - 1}" if len(layers) > 1 else ""
    return f"{layers[0].name()}{more}"


def is_model_step(context) -> bool:
    """Whether the algorithm runs as a step of a Processing model (the model puts its variables,
    @model_name among them, in the context's expression scopes)."""
    return context.expressionContext().hasVariable("model_name")
