"""rasterclustering:zones: index zones in one run, as band math then k-means child algorithms."""

from __future__ import annotations

import os
import shutil

from qgis.core import (
    QgsApplication,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingMultiStepFeedback,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
    QgsProcessingUtils,
)

from ..core import parameters as rules
from ..core.io.rasters import remove_raster_files
from .band_math import add_metadata_parameter, add_sensor_parameter
from .base import (
    RasterClusteringAlgorithm,
    layer_file,
    layers_title,
    refuse_output_over_inputs,
)
from .common_outputs import (
    add_clusters_parameter,
    add_fuzziness_parameter,
    add_seed_parameter,
    add_sieve_parameters,
)
from .styling import name_on_load, style_on_load, style_path
from .zone_polygons import (
    add_zone_outputs,
    zone_output_problem,
    zone_polygons_requested,
    zone_style_path,
)

BAND_MATH = "rasterclustering:bandmath"
KMEANS = "rasterclustering:kmeans"
FUZZY_CMEANS = "rasterclustering:fuzzycmeans"
#: The clustering step of each METHOD.
CLUSTERING_STEPS = (KMEANS, FUZZY_CMEANS)

HELP = """<p>Management zones from a <b>spectral index</b> in one run: the index (NDVI by default)
is computed from the band layers by <i>Band math</i>, optionally after calibrating digital
numbers, and its pixels are grouped into <b>k zones</b> by <i>Raster k-means
clustering</i> (or <i>Fuzzy c-means zones</i>), fitted on
an area of interest and sieved to a minimum zone area. The same as running the two algorithms one
after the other with the same parameters, with byte-identical results.</p>
<h3>Parameters</h3>
<ul>
<li><b>Band layers</b> (INPUT): the bands the index reads. One multiband layer (B1…Bn are its
bands) or single-band files named with their band code (Landsat <code>…_B4.TIF</code>,
Sentinel-2 <code>…_B04.jp2</code>); layers on other grids are aligned onto the finest one.</li>
<li><b>Calibrate digital numbers to reflectance first</b> (CALIBRATE, default off): convert Landsat
/ Sentinel-2 digital numbers to
reflectance before computing the index (single-band files named with their band code).</li>
<li><b>Metadata file for calibration</b> (METADATA, optional): the Landsat MTL or Sentinel-2 MTD
file for
calibration; found beside the bands when empty.</li>
<li><b>Index or expression</b> (EXPRESSION, default NDVI): an index name (NDVI, NDWI, SAVI, …)
or a band-math expression such as <code>(B4 - B3) / (B4 + B3)</code>. Its name keys the centroid
JSON: <code>{"NDVI": [[1, [0.171]], …]}</code>.</li>
<li><b>Sensor</b> (SENSOR): which bands an index name reads (auto-detected from Landsat and
Sentinel-2 file names and from band descriptions such as <code>red</code>, <code>nir</code> or
<code>B8A</code>, as in <i>Band math</i>; <i>Generic</i> = blue, green, red, NIR, SWIR1, SWIR2 =
B1…B6).</li>
<li><b>Number of zones</b> (CLUSTERS): 2–255, default 5.</li>
<li><b>Zoning method</b> (METHOD, default k-means): 0 k-means (the exact 1-D optimum of the
index), 1 fuzzy c-means as Management Zone Analyst makes zones (<i>Fuzzy c-means zones</i>,
fitted on a sample of the index).</li>
<li><b>Fuzziness exponent m</b> (FUZZINESS, advanced, default 1.3): fuzzy c-means's exponent, as
in <i>Fuzzy c-means zones</i>.</li>
<li><b>Area of interest</b> (AOI, optional): polygons in any CRS (reprojected), e.g. a field;
the zones are fitted on, and the output clipped to, the pixels inside.</li>
<li><b>Extent</b> (EXTENT, optional): a bounding box in any CRS, intersected with the AOI.</li>
<li><b>Minimum zone area</b> (MIN_AREA, m², default 0 = off): connected zones smaller than this
are merged into their largest neighbour. The reference clustering API accepts
1000–999999 m².</li>
<li><b>Connectivity of zones</b> (CONNECTIVITY, 4 or 8, default 8): whether pixels touching by a
corner
belong to one zone.</li>
<li><b>Random seed</b> (SEED): the same inputs and seed give identical outputs.</li>
<li><b>One multipolygon per class</b> (ZONES_PER_CLASS, advanced, default no): the zone polygons
hold one feature per class instead of one per connected zone.</li>
</ul>
<h3>Outputs</h3>
<ul>
<li><b>Zones</b> (OUTPUT): UInt8 GeoTIFF, classes 1..k in ascending index value, nodata 0, styled
with one colour per zone labelled with its centre.</li>
<li><b>Centroids</b> (CENTROIDS): JSON keyed by the index name.</li>
<li><b>Zone statistics</b> (STATISTICS): one row per zone: centre, pixel count, area in m², and
mean/std/min/max of the index.</li>
<li><b>Index raster</b> (INDEX, optional, off by default): the Float32 index the zones were made
from; when not requested it is a temporary file, removed at the end.</li>
<li><b>Zone polygons</b> (ZONES, optional): one polygon per connected zone, on the exact pixel
edges, with its zone number, class, index centre, area in m², perimeter in m and the
mean/min/max/std of the index within it, styled like the zones (GeoPackage, Shapefile or
GeoJSON).</li>
</ul>
<p>Index resolution and resampling are band math's defaults (finest input, nearest neighbour);
the k-means output is clipped to the area. Run <i>Band math</i> and <i>Raster k-means clustering</i>
separately for the other options. On an error or cancellation no output of the run is left.</p>
"""


class ZonesAlgorithm(RasterClusteringAlgorithm):
    """An index from band layers, then its k-means zones: two child algorithms in one run."""

    NAME = "zones"
    DISPLAY_NAME = "Cluster index zones"
    HELP = HELP
    ICON = "zones.svg"

    INDEX = "INDEX"

    def initAlgorithm(self, config=None):
        """Declare the parameters (their names are the public API of models and qgis_process)."""
        self.add_with_help(QgsProcessingParameterMultipleLayers(
            self.INPUT, self.tr("Band layers"), QgsProcessing.TypeRaster),
            self.tr("The bands the index reads: one multiband layer, or single-band files named "
                    "with their band code (…_B4.TIF, …_B04.jp2)."))
        self.add_with_help(QgsProcessingParameterBoolean(
            self.CALIBRATE, self.tr("Calibrate digital numbers to reflectance first"),
            defaultValue=False),
            self.tr("Landsat/Sentinel-2 single-band files: DN → reflectance from the scene "
                    "metadata."))
        add_metadata_parameter(self)
        self.add_with_help(QgsProcessingParameterString(self.EXPRESSION, self.tr("Index or "
                                                                                 "expression"),
                                                        defaultValue="NDVI"),
            self.tr("An index name (NDVI, NDWI, …) or an expression, e.g. (B4 - B3) / (B4 + B3); "
                    "it names the centroids."))
        add_sensor_parameter(self)
        add_clusters_parameter(self, self.tr("Number of zones"), self.tr("zones"))
        self.add_with_help(QgsProcessingParameterEnum(
            self.METHOD, self.tr("Zoning method"),
            options=[self.tr("k-means"), self.tr("fuzzy c-means")], defaultValue=0),
            self.tr("k-means (the default), or fuzzy c-means as Management Zone Analyst."))
        add_fuzziness_parameter(self, self.tr("Fuzzy c-means: greater than 1, as in Fuzzy "
                                              "c-means zones."), advanced=True)
        self.add_with_help(QgsProcessingParameterFeatureSource(
            self.AOI, self.tr("Area of interest (field)"), [QgsProcessing.TypeVectorPolygon],
            optional=True),
            self.tr("Polygons (any CRS) whose pixels fit the zones; the output is clipped to "
                    "them."))
        self.add_with_help(QgsProcessingParameterExtent(
            self.EXTENT, self.tr("Extent"), optional=True),
            self.tr("Bounding box (any CRS) whose pixels fit the zones; intersected with the "
                    "area of interest."))
        add_sieve_parameters(self)
        add_seed_parameter(self, self.tr("Same inputs and seed give identical outputs."))
        self.add_with_help(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Zones")),
            self.tr("Classified GeoTIFF: UInt8, nodata 0, zones 1..k, styled."))
        self.add_with_help(QgsProcessingParameterFileDestination(
            self.CENTROIDS, self.tr("Centroids"), fileFilter=self.tr("JSON files (*.json)"),
            optional=True, createByDefault=True),
            self.tr("Zone centres as JSON keyed by the index, e.g. {\"NDVI\": [[1, [0.171]], "
                    "…]}."))
        self.add_with_help(QgsProcessingParameterFeatureSink(
            self.STATISTICS, self.tr("Zone statistics"), QgsProcessing.TypeVector,
            optional=True, createByDefault=True),
            self.tr("One row per zone: centre, pixel count, area (m²), index mean/std/min/max."))
        self.add_with_help(QgsProcessingParameterRasterDestination(
            self.INDEX, self.tr("Index raster"), optional=True, createByDefault=False),
            self.tr("The Float32 index the zones come from; a removed temporary file when not "
                    "requested."))
        add_zone_outputs(self)

    def checkParameterValues(self, parameters, context):
        """Refuse what cannot work before any work starts, with the children's own checks.

        The clustering step's parameters are checked with the band layers standing in for the
        index, which does not exist yet (it checks only that its input is not empty).
        """
        valid, message = super().checkParameterValues(parameters, context)
        if not valid:
            return valid, message
        problem = zone_output_problem(self, parameters, self.ZONES)
        if problem:
            return False, problem
        step = self._clustering_step(parameters, context)
        for algorithm_id, child_parameters in (
                (BAND_MATH, self._band_math_parameters(parameters, QgsProcessing.TEMPORARY_OUTPUT)),
                (step, self._clustering_parameters(parameters, parameters.get(self.INPUT),
                                                   step=step,
                                                   output=QgsProcessing.TEMPORARY_OUTPUT,
                                                   centroids=QgsProcessing.TEMPORARY_OUTPUT,
                                                   zones=parameters.get(self.ZONES)))):
            child = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
            if child is None:
                return False, (f"The algorithm {algorithm_id} is not available: reinstall or "
                               "re-enable the Raster Clustering plugin.")
            valid, message = child.checkParameterValues(child_parameters, context)
            if not valid:
                return valid, message
        return True, ""

    def _band_math_parameters(self, parameters, index_output) -> dict:
        return {"INPUT": parameters.get(self.INPUT),
                "EXPRESSION": parameters.get(self.EXPRESSION, "NDVI"),
                "SENSOR": parameters.get(self.SENSOR, 0),
                "CALIBRATE": parameters.get(self.CALIBRATE, False),
                "METADATA": parameters.get(self.METADATA),
                "OUTPUT": index_output}

    def _clustering_step(self, parameters, context) -> str:
        return CLUSTERING_STEPS[self.parameterAsEnum(parameters, self.METHOD, context)]

    def _clustering_parameters(self, parameters, index, *, step, output, centroids,
                               zones=None) -> dict:
        fuzzy = ({self.FUZZINESS: parameters[self.FUZZINESS]} if step == FUZZY_CMEANS
                 and parameters.get(self.FUZZINESS) not in (None, "") else {})
        return {"INPUT": index if isinstance(index, list) else [index], **fuzzy,
                "CLUSTERS": parameters.get(self.CLUSTERS, rules.CLUSTERS.default),
                "AOI": parameters.get(self.AOI),
                "EXTENT": parameters.get(self.EXTENT),
                "MIN_AREA": parameters.get(self.MIN_AREA, rules.MIN_ZONE_AREA.default),
                "CONNECTIVITY": parameters.get(self.CONNECTIVITY, rules.CONNECTIVITY.default),
                "SEED": parameters.get(self.SEED, rules.SEED.default),
                "OUTPUT": output, "CENTROIDS": centroids,
                "STATISTICS": parameters.get(self.STATISTICS),
                "ZONES": zones, "ZONES_PER_CLASS": parameters.get(self.ZONES_PER_CLASS, False)}

    def process(self, parameters, context, feedback):
        """Band math into the index, then its clustering step; no file of the run is left on
        failure."""
        import processing  # QGIS's Processing plugin: loaded by QGIS and qgis_process

        layers, inputs = self.input_rasters(parameters, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        centroids = self.parameterAsFileOutput(parameters, self.CENTROIDS, context)
        zones = zone_polygons_requested(self, parameters, context, self.ZONES)
        refuse_output_over_inputs(output, inputs)
        index_requested = parameters.get(self.INDEX) not in (None, "")
        if index_requested:
            index = self.parameterAsOutputLayer(parameters, self.INDEX, context)
            refuse_output_over_inputs(index, inputs)
            if os.path.abspath(output) == os.path.abspath(index):
                raise QgsProcessingException("The zones (OUTPUT) and the index raster (INDEX) "
                                             "are the same file; choose two file names.")
        # The steps' feedback follows the user's cancel signal from now on, not one before.
        _stop_if_cancelled(feedback)
        if not index_requested:
            index = QgsProcessingUtils.generateTempFilename("index.tif")
        run_files = _RunFiles()
        steps = QgsProcessingMultiStepFeedback(2, feedback)
        try:
            run_files.expect_raster(index)
            processing.run(BAND_MATH, self._band_math_parameters(parameters, index),
                           context=context, feedback=steps, is_child_algorithm=True)
            run_files.completed(index)
            _stop_if_cancelled(feedback)
            steps.setCurrentStep(1)
            run_files.expect_raster(output)
            if centroids:
                run_files.expect_file(centroids)
            step = self._clustering_step(parameters, context)
            results = processing.run(
                step, self._clustering_parameters(parameters, index, step=step, output=output,
                                                  centroids=centroids or None, zones=zones),
                context=context, feedback=steps, is_child_algorithm=True)
            run_files.completed(output, *([centroids] if centroids else []))
        except BaseException:
            _release_layer(context, index)
            run_files.remove()
            raise
        finally:
            if not index_requested:
                _release_layer(context, index)
                _remove_raster_and_style(index)
                shutil.rmtree(os.path.dirname(index), ignore_errors=True)
        title = (f"{layers_title(layers)} · "
                 f"{self.parameterAsString(parameters, self.EXPRESSION, context)} zones")
        style_on_load(context, output, style_path(output), layer_name=title)
        name_on_load(context, results.get("STATISTICS"), f"{title}: statistics")
        if zones:
            style_on_load(context, zones, zone_style_path(zones),
                          layer_name=f"{title}: zone polygons")
        return {self.OUTPUT: output, self.CENTROIDS: centroids or None,
                self.STATISTICS: results.get("STATISTICS"),
                self.INDEX: index if index_requested else None, self.ZONES: zones}


def _stop_if_cancelled(feedback) -> None:
    if feedback is not None and feedback.isCanceled():
        raise QgsProcessingException("Cancelled: the zones were not computed and no file of the "
                                     "run was kept.")


class _RunFiles:
    """The files a run may write, to remove them all when it fails or is cancelled.

    A file is removed when its step completed (its content is this run's) or when it did not
    exist before the run; a file there before whose step did not complete is the user's, left
    untouched (the children's atomic writers never replace it on failure).
    """

    def __init__(self):
        self._existed: dict[str, bool] = {}
        self._rasters: set[str] = set()
        self._completed: set[str] = set()

    def expect_raster(self, path: str) -> None:
        self.expect_file(path)
        self._rasters.add(path)

    def expect_file(self, path: str) -> None:
        self._existed[path] = os.path.exists(path)

    def completed(self, *paths: str) -> None:
        self._completed.update(paths)

    def remove(self) -> None:
        for path, existed in self._existed.items():
            if existed and path not in self._completed:
                continue
            if path in self._rasters:
                _remove_raster_and_style(path)
            elif os.path.exists(path):
                os.remove(path)


def _remove_raster_and_style(path: str) -> None:
    remove_raster_files(path)
    qml = style_path(path)
    if os.path.exists(qml):
        os.remove(qml)


def _release_layer(context, path: str) -> None:
    """Drop the layers the run opened on `path`, so the file can be deleted (Windows locks it)."""
    store = context.temporaryLayerStore()
    target = os.path.abspath(path)
    layers = [layer for layer in store.mapLayers().values()
              if os.path.abspath(layer_file(layer)) == target]
    if layers:
        store.removeMapLayers(layers)
