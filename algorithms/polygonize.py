"""rasterclustering:polygonize: the zones of a classified raster as polygons with attributes."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterMultipleLayers,
)

from ..core import parameters as rules
from ..core.errors import InvalidInputError
from ..core.zones.polygons import MAX_SMOOTHING
from ..core.zones.smoothing import AREA_CHANGE_LIMIT
from ..core.zones.zone_raster import MAX_CLASSES, count_classes, too_many_classes_message
from .base import RasterClusteringAlgorithm, gdal_source, refuse_output_over_inputs
from .common_outputs import add_connectivity_parameter
from .sieve import (
    add_classified_raster_parameters,
    classified_raster_problem,
    layer_as_shown,
)
from .zone_polygons import (
    add_per_class_parameter,
    add_polygon_destination,
    raster_legend,
    write_zone_polygons,
    zone_output_problem,
)

HELP = f"""<p>Turns a <b>classified raster</b> (e.g. the output of Raster k-means clustering)
into <b>management-zone polygons</b> ready for a farm terminal, a map or an agronomist: one
feature per connected zone (or one multipolygon per class), with the zone's class, its class
centre, true area and perimeter, and the mean, minimum, maximum and standard deviation of any
rasters within it. Exact pixel edges by default, or smoothed without opening gaps or overlaps
between neighbouring zones.</p>
<h3>Parameters</h3>
<ul>
<li><b>Classified raster</b> (INPUT): integer classes (Byte, UInt16, Int16, UInt32, Int32) read
by GDAL (a file), with a CRS, at most {MAX_CLASSES} distinct values. Nodata pixels belong to no
zone.</li>
<li><b>Band</b> (BAND, default 1, also when left empty): the band holding the classes.</li>
<li><b>Rasters described per zone</b> (FEATURES, optional): every band of these layers becomes
attributes: its class centre (the mean over the class's pixels) and its mean, minimum, maximum
and standard deviation within each zone, over the pixels where every band holds data. Layers
on another grid are aligned onto the classified raster's by nearest neighbour.</li>
<li><b>Connectivity of zones</b> (CONNECTIVITY, 4 or 8, default 8): 4 = pixels of one class form a
zone when they share a side; 8 = also when they touch by a corner.</li>
<li><b>Smoothing</b> (SMOOTHING, advanced, 0–{MAX_SMOOTHING}, default 0): 0 = exact pixel edges;
1 = pixel corners cut; 2 = rounded; 3 = the straightest lines the pixels allow.</li>
<li><b>One multipolygon per class</b> (ZONES_PER_CLASS, advanced, default no): one feature per
class (all its zones) instead of one per connected zone.</li>
<li><b>Zone polygons</b> (OUTPUT): a GeoPackage (.gpkg), Shapefile (.shp) or GeoJSON (.geojson)
file.</li>
</ul>
<h3>Attributes</h3>
<p><code>zone</code> (1..n, numbered by class, then by each zone's first pixel from the top
left), <code>class</code>, the class centre of each band (<code>…_ctr</code>),
<code>area_m2</code> (on the ground: in a geographic CRS each row's true pixel area on the
ellipsoid), <code>perim_m</code> (perimeter in metres), then <code>…_mean</code>,
<code>…_min</code>, <code>…_max</code>, <code>…_std</code> of each band. Field names fit a
Shapefile (10 characters: a band named with up to 5 letters and digits, such as NDVI, names its
fields, otherwise bands are numbered f1, f2, …); each field's alias holds the full band
name.</p>
<h3>Geometry</h3>
<ul>
<li><b>Exact</b>: rasterized back on the same grid, the polygons give the classified raster
pixel for pixel; neighbours share their edges, with no gap and no overlap; every geometry is
valid (OGC), also where a zone touches itself by a corner.</li>
<li><b>Smoothed</b>: a pixel boundary is known only to within half a pixel, so each point of a
boundary moves at most 0.45 pixel along each axis, inside its own square; the squares of
different boundaries never meet, so every boundary shared by two zones is smoothed once for
both, and zones keep their neighbours, holes and islands: no gap, no overlap, no pixel centre
changes zone. Each boundary keeps the area on each side (it is shifted sideways to compensate
what smoothing cuts off), and no zone's area changes by more than
{AREA_CHANGE_LIMIT:.0%} (boundaries are smoothed less where it would); the change is reported
in the log and as an output. The outline of the area (against nodata) and its holes, such as a
farmyard in a field, keep their exact pixel edges.</li>
</ul>
<p>The layer is styled like the raster: categorized by class with the colours and labels the
raster shows (a K-means output's class centres), saved in a GeoPackage's own style table or as
a .qml beside a Shapefile or GeoJSON. It streams: rasters of any size, with hundreds of
thousands of zones, in bounded memory. Cancelling leaves no file.</p>
"""


class PolygonizeAlgorithm(RasterClusteringAlgorithm):
    """Zone polygons of a classified raster, exact or smoothed, with per-zone attributes."""

    NAME = "polygonize"
    DISPLAY_NAME = "Classes to zone polygons"
    GROUP = "Post-processing"
    GROUP_ID = "postprocessing"
    HELP = HELP
    ICON = "polygonize.svg"

    FEATURES = "FEATURES"
    SMOOTHING = rules.SMOOTHING.name
    FEATURE_COUNT = "FEATURE_COUNT"
    AREA_CHANGE_MAX = "AREA_CHANGE_MAX"

    def canExecute(self):
        """Needs only GDAL and scipy, which QGIS ships; not scikit-learn."""
        return True, ""

    def initAlgorithm(self, config=None):
        """Declare the parameters (their names are the public API of models and qgis_process)."""
        add_classified_raster_parameters(self)
        self.add_with_help(QgsProcessingParameterMultipleLayers(
            self.FEATURES, self.tr("Rasters described per zone"), QgsProcessing.TypeRaster,
            optional=True),
            self.tr("Every band becomes attributes: class centre, and mean, min, max, std "
                    "within each zone."))
        add_connectivity_parameter(
            self, self.tr("Connectivity of zones"),
            self.tr("4: pixels of a zone share a side; 8: they may also touch by a corner."))
        self.add_number(
            rules.SMOOTHING, self.tr("Smoothing"),
            self.tr("0: exact pixel edges; 1: corners cut; 2: rounded; 3: straightest. Shared "
                    "boundaries stay shared, no gap or overlap."), advanced=True)
        add_per_class_parameter(self)
        add_polygon_destination(
            self, self.OUTPUT, self.tr("Zone polygons"),
            self.tr("GeoPackage, Shapefile or GeoJSON, styled by class."), optional=False)
        self.addOutput(QgsProcessingOutputNumber(self.FEATURE_COUNT,
                                                 self.tr("Features written")))
        self.addOutput(QgsProcessingOutputNumber(
            self.AREA_CHANGE_MAX, self.tr("Largest change of a zone's area by smoothing (%)")))

    def checkParameterValues(self, parameters, context):
        """Refuse what cannot work before any work starts: nothing is written then."""
        problem = (self.rule_problem(parameters)
                   or zone_output_problem(self, parameters, self.OUTPUT)
                   or classified_raster_problem(self, parameters, context,
                                                needed_by="zone polygons need"))
        if problem:
            return False, problem
        valid, message = super().checkParameterValues(parameters, context)
        if not valid:
            return valid, message
        try:
            for feature_layer in self.parameterAsLayerList(parameters, self.FEATURES, context):
                gdal_source(feature_layer, self.FEATURES)
        except QgsProcessingException as error:
            return False, str(error)
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        source = gdal_source(layer, self.INPUT)
        band = self.parameterAsInt(parameters, self.BAND, context)
        if not layer.crs().isValid():
            return False, (f"'{layer.name()}' has no CRS, so zone areas in m² are unknown; "
                           "assign it one (Raster ▸ Projections ▸ Assign Projection).")
        try:
            count = count_classes(source.source, band)
        except InvalidInputError as error:
            return False, str(error)
        if count > MAX_CLASSES:
            return False, too_many_classes_message(f"'{layer.name()}'", count)
        return True, message

    def process(self, parameters, context, feedback):
        """Polygonize with the core, log what was done, style the layer like the raster."""
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        source = gdal_source(layer, self.INPUT)
        features = [gdal_source(item, self.FEATURES) for item in
                    self.parameterAsLayerList(parameters, self.FEATURES, context)]
        band = self.parameterAsInt(parameters, self.BAND, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        refuse_output_over_inputs(output, [source, *features])
        shown = layer_as_shown(layer, context)
        report = write_zone_polygons(
            self, context, feedback, output, classes_path=source.source, band=band,
            features=features,
            connectivity=self.parameterAsInt(parameters, self.CONNECTIVITY, context),
            smoothing=self.parameterAsInt(parameters, self.SMOOTHING, context),
            per_class=self.parameterAsBool(parameters, self.ZONES_PER_CLASS, context),
            legend_for=lambda report: raster_legend(shown, band, report),
            title=f"{layer.name()} · zones")
        return {self.OUTPUT: output, self.FEATURE_COUNT: report.features,
                self.AREA_CHANGE_MAX: report.area_change_max_percent}
