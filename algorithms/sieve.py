"""rasterclustering:sieve: regions of a classified raster smaller than an area in m² are merged."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBand,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsRasterLayer,
)

from ..core.errors import InvalidInputError
from ..core.io.pixel_area import describe_pixel_area
from ..core.io.rasters import open_raster
from ..core.parameters import MIN_REGION_AREA
from ..core.sieve.sieve import integer_band_problem, sieve_raster
from .base import (
    RasterClusteringAlgorithm,
    core_errors_as_processing_exceptions,
    feedback_callables,
    gdal_source,
    refuse_output_over_inputs,
)
from .common_outputs import add_connectivity_parameter
from .styling import copy_paletted_style, name_on_load, style_on_load

HELP = """<p>Removes the speckle of a <b>classified raster</b> (e.g. the output of K-means
clustering): every connected region of one class smaller than a <b>minimum area in square
metres</b> is merged into its largest neighbouring region, so the zones left are large enough to
manage. Nodata is never changed and never merged into.</p>
<h3>Parameters</h3>
<ul>
<li><b>Classified raster</b> (INPUT): a raster with an integer band (Byte, UInt16, Int16, UInt32,
Int32) read by GDAL (a file), with a CRS.</li>
<li><b>Band</b> (BAND, default 1, also when left empty): the band holding the classes; the
output has this one band.</li>
<li><b>Minimum region area</b> (MIN_AREA, m², &gt; 0, default 1000): regions smaller than this
are merged; a region of exactly this area is kept. The reference clustering API accepts
1000–999999 m²; any positive area is allowed here.</li>
<li><b>Connectivity</b> (CONNECTIVITY, the number 4 or 8, default 8): 4 = pixels form a region
when they share a side; 8 = also when they touch by a corner.</li>
<li><b>Sieved classes</b> (OUTPUT): GeoTIFF (tiled, DEFLATE).</li>
</ul>
<h3>From m² to pixels</h3>
<ul>
<li><b>Projected CRS in metres</b> (UTM, …): the pixel area is the pixel width × height, and the
minimum area becomes the smallest whole number of pixels reaching it: 2000 m² at 10 m = 20 pixels,
2001 m² = 21.</li>
<li><b>Projected CRS in another linear unit</b> (US survey feet, feet, …): the pixel size is
converted to metres first (10 US ft pixels: 9.29 m² each, 2000 m² = 216 pixels).</li>
<li><b>Geographic CRS</b> (degrees): a pixel covers fewer m² the farther it is from the equator,
so the area of each row's pixels is computed exactly on the CRS's ellipsoid, and regions are
compared by their <i>true</i> area, the sum of their pixels' areas (a 0.0001° pixel is about
123 m² at the equator and 62 m² at 60° latitude). When every row needs the same pixel count,
GDAL's sieve does it all; otherwise GDAL removes first the regions too small at any latitude,
and an exact step compares the true areas of the rest. It streams, like GDAL's sieve, reading
the raster in strips of rows.</li>
<li>A CRS that is neither geographic nor in a linear unit, or no CRS, is refused: assign or
reproject the raster first.</li>
</ul>
<p>The log shows the pixel area and the pixel threshold used; they are also outputs (fewest and
most pixels a region needs, smallest and largest pixel area; the fewest equals the most unless the
CRS is geographic).</p>
<h3>What is guaranteed</h3>
<ul>
<li>Nodata pixels (nodata value, mask) keep their value and valid pixels stay valid.</li>
<li>A region of at least the minimum area keeps all its pixels (it may grow).</li>
<li>Every region smaller than the minimum area is left only where it touches no other valid region
(e.g. an island enclosed by nodata or the raster edge). A small region merges, as in GDAL's
sieve, into its largest neighbour, and a chain of small regions continues until it reaches a
large one. A patch in which every region is small (which GDAL's sieve leaves as it is) merges
into its largest regions until they reach the minimum area or the patch is one region.</li>
<li>A minimum area smaller than one pixel: nothing to do, the classes are copied (with a warning).
A minimum area larger than the whole raster: every region is small, so each patch of touching valid
pixels becomes a single class (with a warning).</li>
</ul>
<h3>Output</h3>
<p>The input's data type, grid, CRS, nodata, colour table, category names and band description.
When the input is shown in QGIS with a paletted style (e.g. a K-means output, whose .qml QGIS
loads with it), the same style is saved as a .qml beside the output and applied when it loads.
The output <i>Valid pixels whose class changed</i> counts them.</p>
"""


class SieveAlgorithm(RasterClusteringAlgorithm):
    """Minimum-area sieve of a classified raster, with the area in square metres."""

    NAME = "sieve"
    DISPLAY_NAME = "Minimum-area sieve"
    GROUP = "Post-processing"
    GROUP_ID = "postprocessing"
    HELP = HELP
    ICON = "sieve.svg"

    PIXEL_THRESHOLD_MIN = "PIXEL_THRESHOLD_MIN"
    PIXEL_THRESHOLD_MAX = "PIXEL_THRESHOLD_MAX"
    PIXEL_AREA_MIN_M2 = "PIXEL_AREA_MIN_M2"
    PIXEL_AREA_MAX_M2 = "PIXEL_AREA_MAX_M2"
    CHANGED_PIXELS = "CHANGED_PIXELS"

    def canExecute(self):
        """Needs only GDAL and scipy, which QGIS ships; not scikit-learn."""
        return True, ""

    def initAlgorithm(self, config=None):
        """Declare the parameters (their names are the public API of models and qgis_process)."""
        add_classified_raster_parameters(self)
        # minValue is inclusive in QGIS: 0 passes it, and checkParameterValues refuses it.
        self.add_number(MIN_REGION_AREA, self.tr("Minimum region area (m²)"),
                        self.tr("Regions smaller than this many square metres on the ground (> 0) "
                                "are merged into their largest neighbour. The reference "
                                "clustering API accepts 1000–999999 m²."))
        add_connectivity_parameter(
            self, self.tr("Connectivity"),
            self.tr("4: pixels of a region share a side; 8: they may also touch by a corner."))
        self.add_with_help(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Sieved "
                                                                                        "classes")),
            self.tr("GeoTIFF with the input's type, grid, nodata, colour table and style."))
        for name, description in (
                (self.PIXEL_THRESHOLD_MIN, self.tr("Fewest pixels a region needs (largest "
                                                   "pixels)")),
                (self.PIXEL_THRESHOLD_MAX, self.tr("Most pixels a region needs (smallest "
                                                   "pixels)")),
                (self.PIXEL_AREA_MIN_M2, self.tr("Smallest pixel area (m²)")),
                (self.PIXEL_AREA_MAX_M2, self.tr("Largest pixel area (m²)")),
                (self.CHANGED_PIXELS, self.tr("Valid pixels whose class changed"))):
            self.addOutput(QgsProcessingOutputNumber(name, description))

    def checkParameterValues(self, parameters, context):
        """Refuse what cannot work before any work starts (QGIS's own checks come after)."""
        problem = self.rule_problem(parameters) or classified_raster_problem(
            self, parameters, context, needed_by="a sieve needs")
        if problem:
            return False, problem
        return super().checkParameterValues(parameters, context)

    def process(self, parameters, context, feedback):
        """Sieve with the core, log the thresholds, copy the input's paletted style."""
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        source = gdal_source(layer, self.INPUT)
        band = self.parameterAsInt(parameters, self.BAND, context)
        min_area_m2 = self.parameterAsDouble(parameters, self.MIN_AREA, context)
        connectivity = self.parameterAsInt(parameters, self.CONNECTIVITY, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        refuse_output_over_inputs(output, [source])
        progress, is_cancelled = feedback_callables(feedback)
        with core_errors_as_processing_exceptions():
            feedback.pushInfo(f"Pixel area: {_describe_pixel_area(source.source)}.")
            report = sieve_raster(source.source, output, min_area_m2=min_area_m2,
                                  connectivity=connectivity, band=band, progress=progress,
                                  is_cancelled=is_cancelled)
        for warning in report.warnings:
            feedback.pushWarning(warning)
        fewest, most = report.pixel_threshold
        threshold = (f"{fewest} pixels" if fewest == most else
                     f"{fewest}–{most} pixels depending on the latitude, compared by true area")
        feedback.pushInfo(f"Regions under {min_area_m2:g} m² ({threshold}, "
                          f"{connectivity}-connected) merged into their largest neighbour; "
                          f"{report.changed_pixels:,} pixels changed class.")
        self._style(layer, band, output, context, feedback)
        name_on_load(context, output, f"{layer.name()} · sieved, regions ≥ {min_area_m2:g} m²")
        return {self.OUTPUT: output,
                self.PIXEL_THRESHOLD_MIN: fewest, self.PIXEL_THRESHOLD_MAX: most,
                self.PIXEL_AREA_MIN_M2: report.pixel_area_m2[0],
                self.PIXEL_AREA_MAX_M2: report.pixel_area_m2[1],
                self.CHANGED_PIXELS: report.changed_pixels}

    def _style(self, layer, band, output, context, feedback):
        """The input's paletted style as a .qml beside the output, applied when it loads."""
        try:
            qml = copy_paletted_style(layer_as_shown(layer, context), output, band=band)
        except OSError as error:
            # The output is complete and carries its colour table: a missing .qml is no failure.
            feedback.pushWarning(f"The output is written, but its style could not be: {error}")
            return
        if qml is not None:
            style_on_load(context, output, qml)


def add_classified_raster_parameters(algorithm) -> None:
    """Declare INPUT (a classified raster) and BAND (the band holding its classes)."""
    algorithm.add_with_help(QgsProcessingParameterRasterLayer(
        algorithm.INPUT, algorithm.tr("Classified raster")),
        algorithm.tr("Integer classes (Byte … Int32), e.g. a K-means output; a file GDAL reads."))
    # Optional only because QGIS 3.22 does not fall back to the default of a missing band:
    # qgis_process would demand BAND (QGIS issue 54370, fixed later by PR 54414).
    algorithm.add_with_help(QgsProcessingParameterBand(
        algorithm.BAND, algorithm.tr("Band"), defaultValue=1,
        parentLayerParameterName=algorithm.INPUT, optional=True),
        algorithm.tr("The band holding the classes (default, or empty: 1)."))


def classified_raster_problem(algorithm, parameters, context, *, needed_by: str) -> str | None:
    """What is wrong with INPUT and BAND (a layer GDAL cannot read, a missing band, no integer
    classes: `integer_band_problem`), or None.

    Args:
        needed_by: what needs the classes, as the message's subject ("a sieve needs").
    """
    layer = algorithm.parameterAsRasterLayer(parameters, algorithm.INPUT, context)
    try:
        source = gdal_source(layer, algorithm.INPUT)
        dataset = open_raster(source.source, what="classified raster")
    except (QgsProcessingException, InvalidInputError) as error:
        return str(error)
    return integer_band_problem(dataset, algorithm.parameterAsInt(parameters, algorithm.BAND,
                                                                  context),
                                layer.name(), needed_by=needed_by)


def layer_as_shown(layer: QgsRasterLayer, context) -> QgsRasterLayer:
    """The layer with the style QGIS shows it with.

    A project layer is shown as it is. A file path given as INPUT is loaded by Processing
    without its default style (the .qml beside it, e.g. a K-means output's); QGIS would show
    that file with it, so it is opened again the way QGIS opens files.
    """
    project = context.project()
    if project is not None and project.mapLayer(layer.id()) is not None:
        return layer
    styled = QgsRasterLayer(layer.source(), layer.name(), layer.providerType())
    return styled if styled.isValid() else layer


def _describe_pixel_area(path: str) -> str:
    """The pixel area of a raster file for the log, e.g. "100 m² per pixel".

    Raises:
        InvalidInputError: the file cannot be opened, or its CRS gives no area (no CRS, no
            linear unit).
    """
    dataset = open_raster(path, what="classified raster")
    return describe_pixel_area(dataset.GetGeoTransform(), dataset.GetProjection(),
                               n_rows=dataset.RasterYSize)
