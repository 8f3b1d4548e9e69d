"""rasterclustering:applycentroids: classify rasters with the centres of a saved centroid JSON."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
)

from ..core.clustering.apply_centroids import apply_centroids, check_features, usable_model
from ..core.clustering.centroid_model import load_centroid_model
from ..core.clustering.classify import PixelOutputs
from ..core.errors import InvalidInputError
from .base import (
    RasterClusteringAlgorithm,
    area_of_run,
    core_errors_as_processing_exceptions,
    feedback_callables,
    layers_title,
    optional_output_layer,
    refuse_output_over_inputs,
)
from .clustering import publish_classes
from .common_outputs import (
    SIEVE_AND_ZONES_HELP,
    add_area_parameters,
    add_feature_rasters_parameter,
    add_sieve_parameters,
    optional_min_area,
)
from .zone_polygons import (
    add_zone_outputs,
    zone_output_problem,
    zone_step_feedback,
)

HELP = """<p>Classifies rasters with the <b>centres saved by Raster k-means clustering</b> (its
Centroids JSON; also those of Fuzzy c-means zones and ISODATA clustering) instead of fitting new
ones, so zones of one date can be compared with another
date, or one field's zones carried to the next field: a pixel gets the class of its nearest saved
centre, with the same features, scaling, clipping, class numbers, colours and labels as the run
that saved them. Applied to the raster K-means ran on, with the same area options, the result is
byte-identical to K-means's.</p>
<h3>Parameters</h3>
<ul>
<li><b>Input rasters</b> (INPUT): as in K-means: every band of every layer is one feature, the
layers aligned onto the first one's grid. They must give the <b>same number of features, in the
same order</b>, as the rasters the centres were computed from.</li>
<li><b>Centroids JSON</b> (CENTROIDS): the <i>Centroids</i> file K-means wrote, or a
hand-written one in the reference API's one-feature shape,
<code>{"NDVI": [[1, [0.17]], [2, [0.40]], [3, [0.72]]]}</code> (classes numbered 1..k in order;
centres in any order). A file that is not such a JSON, or whose feature count differs from the
inputs' band count, stops the run with an error before anything is written.</li>
<li><b>Require identical feature names</b> (STRICT_NAMES, advanced, default no): feature names
are band descriptions, else layer names ("NDVI" from a band described "NDVI"; a layer without
description gives its layer name). By default the centres are applied by band position and a
name difference is only a <i>warning</i> in the log, because the usual case is another date or
file of the same quantity ("NDVI 2021-06-15" against centres of "NDVI 2021-05-01"). Turn it on to
make any difference an error. A different band <i>count</i> is always an error.</li>
<li><b>Area of interest</b> (AOI, optional) and <b>Extent</b> (EXTENT, optional): the area to
classify, in any CRS (their intersection when both are given). Invalid area-of-interest geometries
are
repaired (makeValid, reported in the log).</li>
<li><b>Clip the output to the area</b> (CLIP, default yes): output only the area's bounding box,
nodata outside the area; when off, the whole raster is classified.</li>
""" + SIEVE_AND_ZONES_HELP + """
</ul>
<h3>Outputs</h3>
<ul><li><b>Classes</b> (OUTPUT): UInt8 GeoTIFF, nodata 0, classes numbered as in the JSON and
styled as K-means styles them (colour table and category names inside, a .qml beside).</li>
<li><b>Class statistics</b> (STATISTICS): one row per class: centre, pixel count, area in m² and
mean/std/min/max of every input band within the class (with fuzzy c-means centres, also each
zone's mean membership). A class without any pixel is reported in the log: many empty classes
suggest rasters in other units than the centres'.</li>
<li><b>Distance to the class centre</b> (DISTANCE, optional): Float32 GeoTIFF of each pixel's
distance to its class's centre, in the units and norm of the run that saved the centres; NaN
where nodata. On another date it shows where the saved centres no longer fit (clouds, new
crops).</li>
<li><b>Zone polygons</b> (ZONES, optional): one polygon per connected zone of the classes, on the
exact pixel edges, with its zone number, class, class centre, area in m², perimeter in m and the
mean/min/max/std of every input band within it, styled like the classes (GeoPackage, Shapefile
or GeoJSON), as K-means writes them.</li></ul>
"""


class ApplyCentroidsAlgorithm(RasterClusteringAlgorithm):
    """Classification with saved k-means centres."""

    NAME = "applycentroids"
    DISPLAY_NAME = "Classify with saved centres"
    HELP = HELP
    ICON = "applycentroids.svg"

    STRICT_NAMES = "STRICT_NAMES"

    def initAlgorithm(self, config=None):
        """Declare the parameters (their names are the public API of models and qgis_process)."""
        add_feature_rasters_parameter(self, self.tr(
            "The same bands, in the same order, as the rasters the centres were computed from."))
        self.add_with_help(QgsProcessingParameterFile(
            self.CENTROIDS, self.tr("Centroids JSON (from K-means)"), extension="json"),
            self.tr("The Centroids file of a k-means run, or {\"NDVI\": [[1, [0.17]], [2, "
                    "[0.4]]]}."))
        self.add_with_help(QgsProcessingParameterBoolean(
            self.STRICT_NAMES, self.tr("Require identical feature names"), defaultValue=False),
            self.tr("Refuse bands whose names differ from the centres' (default: apply by "
                    "position and warn)."), advanced=True)
        add_area_parameters(self, pixels_role=self.tr("to classify"))
        self.add_with_help(QgsProcessingParameterBoolean(
            self.CLIP, self.tr("Clip the output to the area"), defaultValue=True),
            self.tr("Output only the area (nodata outside); otherwise classify the whole raster."))
        add_sieve_parameters(self)
        self.add_with_help(QgsProcessingParameterRasterDestination(
            self.OUTPUT, self.tr("Classes")),
            self.tr("Classified GeoTIFF: UInt8, nodata 0, classes numbered as in the JSON, "
                    "styled."))
        self.add_with_help(QgsProcessingParameterFeatureSink(
            self.STATISTICS, self.tr("Class statistics"), QgsProcessing.TypeVector,
            optional=True, createByDefault=True),
            self.tr("One row per class: centre, pixel count, area (m²), band mean/std/min/max."))
        self.add_with_help(QgsProcessingParameterRasterDestination(
            self.DISTANCE, self.tr("Distance to the class centre"), optional=True,
            createByDefault=True),
            self.tr("Float32 GeoTIFF: each pixel's distance to its class's saved centre, in the "
                    "units of the run that saved them; NaN where nodata."))
        add_zone_outputs(self)

    def checkParameterValues(self, parameters, context):
        """Refuse an unreadable JSON or a band count that differs from the centres' up front."""
        problem = zone_output_problem(self, parameters, self.ZONES)
        if problem:
            return False, problem
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        layers = self.parameterAsLayerList(parameters, self.INPUT, context)
        path = self.parameterAsFile(parameters, self.CENTROIDS, context)
        try:
            model = usable_model(load_centroid_model(path))
            # Named as FeatureStack names bands without description; only the count matters.
            band_names = [layer.name() if layer.bandCount() == 1 else f"{layer.name()}@{band}"
                          for layer in layers for band in range(1, layer.bandCount() + 1)]
            if len(band_names) != model.n_features:
                check_features(model, band_names)  # raises with the full explanation
        except InvalidInputError as error:
            return False, str(error)
        return True, ""

    def process(self, parameters, context, feedback):
        """Label, sieve, style, and write the statistics table."""
        layers, inputs = self.input_rasters(parameters, context)
        centroids_path = self.parameterAsFile(parameters, self.CENTROIDS, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        distance = optional_output_layer(self, parameters, self.DISTANCE, context)
        pixel_outputs = PixelOutputs(distance_path=distance)
        for path in (output, distance):
            refuse_output_over_inputs(path, inputs)
        geometry_wkt, bbox = area_of_run(self, parameters, context, feedback, layers[0].crs())
        steps = zone_step_feedback(self, parameters, feedback)
        progress, is_cancelled = feedback_callables(steps)
        with core_errors_as_processing_exceptions():
            result = apply_centroids(
                inputs, centroids_path, output, geometry_wkt=geometry_wkt, bbox=bbox,
                clip_to_area=self.parameterAsBool(parameters, self.CLIP, context),
                strict_names=self.parameterAsBool(parameters, self.STRICT_NAMES, context),
                min_area_m2=optional_min_area(self, parameters, self.MIN_AREA, context),
                connectivity=self.parameterAsInt(parameters, self.CONNECTIVITY, context),
                pixel_outputs=pixel_outputs, progress=progress, is_cancelled=is_cancelled)
        model = result.model
        title = (f"{layers_title(layers, model.feature_names)} · {model.n_clusters} classes of "
                 "saved centres")
        zones, statistics_id = publish_classes(
            self, parameters, context, feedback, steps, result, output=output, inputs=inputs,
            title=title, pixel_outputs=pixel_outputs,
            summary=f"Applied {model.n_clusters} saved centres of "
                    f"{', '.join(model.feature_names)} from {centroids_path}.")
        return {self.OUTPUT: output, self.STATISTICS: statistics_id, self.DISTANCE: distance,
                self.ZONES: zones}
