"""What the clustering algorithms (k-means, fuzzy c-means, ISODATA) share: the inputs, the area,
the sample, the sieve, the outputs (zone polygons included) and the run; each subclass adds its
method's parameters and settings."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterDestination,
)

from ..core.clustering.classify import PixelOutputs
from ..core.clustering.kmeans import cluster_rasters
from ..core.errors import InvalidInputError
from ..core.parameters import Parameter
from .base import (
    RasterClusteringAlgorithm,
    area_of_run,
    core_errors_as_processing_exceptions,
    feedback_callables,
    layers_title,
    optional_output_layer,
    refuse_output_over_inputs,
)
from .common_outputs import (
    add_area_parameters,
    add_feature_rasters_parameter,
    add_seed_parameter,
    add_sieve_parameters,
    optional_min_area,
    report_classes,
    report_sieve,
    write_class_statistics,
)
from .styling import (
    class_abstract,
    name_on_load,
    style_on_load,
    write_class_style,
    write_pseudocolour_style,
)
from .zone_polygons import (
    add_zone_outputs,
    classes_to_zone_polygons,
    zone_output_problem,
    zone_step_feedback,
)


class ClusteringAlgorithm(RasterClusteringAlgorithm):
    """Fit centres on the area, label every pixel, sieve, style, write centres and statistics.

    Subclasses set SAMPLE_SIZE_RULE (`core.parameters`) and CLASSES_NAME ("k-means classes"),
    and define `add_method_parameters` (after the inputs), `fit_settings` (the core's settings)
    and, when they have them, `add_advanced_method_parameters`, `add_method_outputs` and
    `method_results`.
    """

    SAMPLE_SIZE_RULE: Parameter
    CLASSES_NAME = ""
    #: Whether the fit always uses the sample (k-means fits one feature on every pixel).
    ALWAYS_SAMPLED = True

    def initAlgorithm(self, config=None):
        """Declare the parameters (their names are the public API of models and qgis_process)."""
        add_feature_rasters_parameter(self, self.tr(
            "Every band of every layer is a feature; layers are aligned to the first one's grid."))
        self.add_method_parameters()
        add_area_parameters(self, pixels_role=self.tr("whose pixels fit the centres"))
        self.add_with_help(QgsProcessingParameterBoolean(
            self.CLIP, self.tr("Clip the output to the area"), defaultValue=True),
            self.tr("Output only the area (nodata outside); otherwise classify the whole raster."))
        add_seed_parameter(self, self.tr("Same inputs and seed give identical outputs."))
        self.add_sample_size_parameter()
        self.add_with_help(QgsProcessingParameterBoolean(
            self.STANDARDIZE, self.tr("Standardize features (several features)"),
            defaultValue=True),
            self.tr("Scale each feature to unit variance before clustering."), advanced=True)
        self.add_advanced_method_parameters()
        add_sieve_parameters(self)
        self.add_with_help(QgsProcessingParameterRasterDestination(
            self.OUTPUT, self.tr("Classes")),
            self.tr("Classified GeoTIFF: UInt8, nodata 0, classes 1..k, styled."))
        self.add_with_help(QgsProcessingParameterFileDestination(
            self.CENTROIDS, self.tr("Centroids"), fileFilter=self.tr("JSON files (*.json)"),
            optional=True, createByDefault=True),
            self.tr("Cluster centres as JSON, e.g. {\"NDVI\": [[1, [0.171]], [2, [0.404]]]}."))
        self.add_with_help(QgsProcessingParameterFeatureSink(
            self.STATISTICS, self.tr("Class statistics"), QgsProcessing.TypeVector,
            optional=True, createByDefault=True),
            self.tr("One row per class: centre, pixel count, area (m²), band mean/std/min/max."))
        self.add_with_help(QgsProcessingParameterRasterDestination(
            self.DISTANCE, self.tr("Distance to the class centre"), optional=True,
            createByDefault=True),
            self.tr("Float32 GeoTIFF: each pixel's distance to its class's centre, in the units "
                    "the fit measured (standardized when standardizing); NaN where nodata."))
        self.add_method_outputs()
        add_zone_outputs(self)

    def add_method_parameters(self):
        """Declare the method's own parameters, shown after the inputs."""

    def add_advanced_method_parameters(self):
        """Declare the method's advanced parameters, shown before the sieve's."""

    def add_method_outputs(self):
        """Declare the method's own outputs, after the shared ones."""

    def add_sample_size_parameter(self):
        if self.ALWAYS_SAMPLED:
            label = self.tr("Sample size (pixels)")
            help_text = self.tr("Pixels drawn at random from the area to fit the centres.")
        else:
            label = self.tr("Sample size for several features (pixels)")
            help_text = self.tr("Pixels drawn at random from the area to fit several features "
                                "and estimate quantiles.")
        self.add_number(self.SAMPLE_SIZE_RULE, label, help_text, advanced=True)

    def fit_settings(self, parameters, context):
        """The core's settings of the method (KMeansSettings, FuzzyCMeansSettings, …)."""
        raise NotImplementedError

    def method_results(self, result, pixel_outputs: PixelOutputs) -> dict:
        """The method's own outputs of a run (besides the shared ones)."""
        return {}

    def pixel_outputs(self, parameters, context) -> PixelOutputs:
        """The per-pixel rasters asked for."""
        return PixelOutputs(distance_path=optional_output_layer(self, parameters, self.DISTANCE,
                                                                context))

    def checkParameterValues(self, parameters, context):
        """Refuse what cannot work before any work starts: each value by its rule (the base
        class), then the method's own checks and the settings together (e.g. MIN_CLUSTERS ≤
        CLUSTERS ≤ MAX_CLUSTERS), by the core's own validation."""
        valid, message = super().checkParameterValues(parameters, context)
        if not valid:
            return valid, message
        problem = (zone_output_problem(self, parameters, self.ZONES)
                   or self.method_problem(parameters, context))
        if problem:
            return False, problem
        try:
            self.fit_settings(parameters, context).validate()
        except InvalidInputError as error:
            return False, str(error)
        return True, message

    def method_problem(self, parameters, context) -> str | None:
        """A problem with the method's parameters the core's settings cannot see, or None."""
        return None

    def process(self, parameters, context, feedback):
        """Fit, label, style, and write the centroid JSON, the statistics table and the zone
        polygons."""
        layers, inputs = self.input_rasters(parameters, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        centroids_path = self.parameterAsFileOutput(parameters, self.CENTROIDS, context)
        pixel_outputs = self.pixel_outputs(parameters, context)
        for path in (output, centroids_path, pixel_outputs.distance_path,
                     pixel_outputs.membership_path):
            refuse_output_over_inputs(path, inputs)
        geometry_wkt, bbox = area_of_run(self, parameters, context, feedback, layers[0].crs())
        settings = self.fit_settings(parameters, context)
        steps = zone_step_feedback(self, parameters, feedback)
        progress, is_cancelled = feedback_callables(steps)
        with core_errors_as_processing_exceptions():
            result = cluster_rasters(
                inputs, output, settings=settings, geometry_wkt=geometry_wkt, bbox=bbox,
                clip_to_area=self.parameterAsBool(parameters, self.CLIP, context),
                min_area_m2=optional_min_area(self, parameters, self.MIN_AREA, context),
                connectivity=self.parameterAsInt(parameters, self.CONNECTIVITY, context),
                pixel_outputs=pixel_outputs, progress=progress, is_cancelled=is_cancelled)
        for note in result.notes:
            feedback.pushInfo(note)
        model = result.model
        title = (f"{layers_title(layers, model.feature_names)} · {model.n_clusters} "
                 f"{self.CLASSES_NAME}")
        zones, statistics_id = publish_classes(
            self, parameters, context, feedback, steps, result, output=output, inputs=inputs,
            title=title, pixel_outputs=pixel_outputs,
            summary=f"Fitted {model.n_clusters} clusters on {result.fitted_pixels:,} pixels.")
        if centroids_path:
            model.save(centroids_path)
        return {self.OUTPUT: output, self.CENTROIDS: centroids_path or None,
                self.STATISTICS: statistics_id, self.DISTANCE: pixel_outputs.distance_path,
                self.ZONES: zones, **self.method_results(result, pixel_outputs)}


def publish_classes(algorithm, parameters, context, feedback, steps, result, *, output: str,
                    inputs, title: str, pixel_outputs: PixelOutputs,
                    summary: str) -> tuple[str | None, str | None]:
    """What every classifying run does with its classes: log the warnings, the sieve, `summary`
    and the classes; make the zone polygons; style the classes and the per-pixel rasters; write
    the statistics table.

    Returns:
        (the zone polygons' layer id or None, the statistics table's id or None).
    """
    for message in result.messages:
        feedback.pushWarning(message)
    report_sieve(feedback, result.sieve)
    model = result.model
    feedback.pushInfo(summary)
    report_classes(feedback, model, result.statistics)
    zones = classes_to_zone_polygons(algorithm, parameters, context, steps, classes=output,
                                     inputs=inputs, model=model, title=title,
                                     pixel_outputs=pixel_outputs)
    try:
        qml = write_class_style(output, model)
    except OSError as error:
        raise QgsProcessingException(f"Styling the output failed: {error}") from None
    style_on_load(context, output, qml, layer_name=title, abstract=class_abstract(model))
    statistics_id = write_class_statistics(algorithm, parameters, algorithm.STATISTICS, context,
                                           result.statistics, model)
    name_on_load(context, statistics_id, f"{title}: statistics")
    style_pixel_outputs(algorithm, context, pixel_outputs, result, title)
    return zones, statistics_id


def style_pixel_outputs(algorithm, context, pixel_outputs: PixelOutputs, result,
                        title: str) -> None:
    """Style the per-pixel rasters: distances from 0 (fits) to their 98th percentile (red),
    memberships 0..1 on the classes' ramp (the first class's band shows)."""
    if pixel_outputs.distance_path:
        path = str(pixel_outputs.distance_path)
        qml = write_pseudocolour_style(path, ramp_name="Reds", minimum=0.0,
                                       maximum=result.distance_p98 or 1.0)
        style_on_load(context, path, qml, layer_name=algorithm.tr("{}: distance to the class "
                                                                  "centre").format(title))
    if pixel_outputs.membership_path:
        path = str(pixel_outputs.membership_path)
        qml = write_pseudocolour_style(path, ramp_name="Viridis", minimum=0.0, maximum=1.0)
        style_on_load(context, path, qml,
                      layer_name=algorithm.tr("{}: memberships").format(title))
