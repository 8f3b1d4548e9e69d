"""rasterclustering:bandmath: a raster-calculator expression or index (NDVI, …) over input bands."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from ..core.bandmath.expression import syntax_help
from ..core.bandmath.plan import AUTO_SENSOR, compile_band_math, layer_bands
from ..core.bandmath.raster import RESAMPLINGS, RESOLUTIONS, band_math_to_raster, display_style
from ..core.bandmath.spectral_indices import SENSOR_TITLES, SENSORS, alias_help
from ..core.errors import RasterClusteringError
from .base import (
    RasterClusteringAlgorithm,
    core_errors_as_processing_exceptions,
    feedback_callables,
    gdal_source,
    layers_title,
    refuse_output_over_inputs,
)
from .styling import style_on_load, write_pseudocolour_style

SENSOR_CHOICES = (AUTO_SENSOR, *SENSORS)
SENSOR_LABELS = ("Auto-detect (file names, band descriptions)",
                 *(SENSOR_TITLES[name] for name in SENSORS))
RESOLUTION_LABELS = {"finest": "Finest input resolution", "coarsest": "Coarsest input resolution",
                     "first": "Resolution and pixel edges of the first input read"}
RESAMPLING_LABELS = {"near": "Nearest neighbour", "bilinear": "Bilinear", "cubic": "Cubic",
                     "average": "Average (for a coarser output)"}

HELP = f"""<p>Computes a <b>raster-calculator expression</b> or a <b>spectral index</b> (NDVI,
NDWI, …) from the bands of one or more rasters, block by block, into a Float32 GeoTIFF: the
typical first step before k-means zones.</p>
<h3>Parameters</h3>
<ul>
<li><b>Input rasters</b> (INPUT): one or more layers. <i>One multiband layer</i>: B1…Bn are its
bands. <i>Several layers</i>: each single-band layer is named by the band code in its file name
(Landsat <code>…_B4.TIF</code>, <code>…_B4_crop.TIF</code>; Sentinel-2 <code>…_B04.jp2</code>,
<code>…_B8A.tif</code>), so B4 and B04 are the same band. Always available:
<code>"layer name@band"</code> as in QGIS's raster calculator. An unknown or ambiguous name is an
error that lists the names available.</li>
<li><b>Expression</b> (EXPRESSION): e.g. <code>(B5 - B4) / (B5 + B4)</code>, <code>NDVI</code>,
<code>where(NDVI &gt; 0.3, NDVI, 0)</code>. Parsed safely (no Python is run); a mistake is reported
with its column. Syntax below.</li>
<li><b>Sensor</b> (SENSOR): which bands an index name reads. Auto-detect (default) reads the
file names — Landsat (<code>LC08_…</code>, <code>LC8…</code>, <code>LE07_…</code>) and
Sentinel-2 (<code>S2A_…</code>, <code>T33UXX_…</code>, <code>B04</code>/<code>B8A</code> codes) —
and the band descriptions: a band described by what it holds (<code>red</code>,
<code>nir</code>, <code>swir1</code>, …) is read for that role, and band codes in the
descriptions (<code>B4</code>, <code>B8A</code>) name their bands. When nothing tells the bands,
an index is an error asking for the sensor. Where the Sentinel-2 B8 is absent but B8A is present
(20 m and 60 m products), B8A is read for NIR and the log says so. Without descriptions, Bk of a
single multiband layer is its k-th band: an index is right only when the bands follow the
sensor's numbering.
<i>Generic</i> is blue, green, red, NIR, SWIR1, SWIR2 = B1…B6; NAIP (red, green, blue, NIR)
does not follow it: write <code>(B4 - B1) / (B4 + B1)</code> for its NDVI.</li>
<li><b>Calibrate digital numbers to reflectance / temperature first</b> (CALIBRATE, default off):
convert digital numbers to top-of-atmosphere (or,
for Level-2 products, surface) reflectance, or to brightness temperature for thermal bands,
block by block before the expression (no intermediate file). Landsat: ρ = (M·DN + A) /
sin(sun elevation) from the MTL; Sentinel-2: (DN + offset) / quantification. Each layer read must
be a single-band file whose name gives the band; fill DN become nodata. The formula of each band
is written to the log.</li>
<li><b>Metadata file for calibration</b> (METADATA, optional): the Landsat
<code>_MTL.txt/.json/.xml</code> or
Sentinel-2 <code>MTD_MSIL1C/2A.xml</code> for calibration; when empty it is found beside each
band (or up the SAFE folder).</li>
<li><b>Output resolution</b> (RESOLUTION, advanced): the layers the expression reads are aligned
onto one grid, in the CRS of the <i>first</i> input (others are reprojected): the pixel size and
pixel edges of the input with the finest (default), coarsest, or first pixels, over the
<i>intersection</i> of their extents (shrunk to whole pixels).</li>
<li><b>Resampling of layers not on the output grid</b> (RESAMPLING, advanced): how layers not on
that grid are resampled. Nearest
neighbour (default): values stay measurements and nodata does not spread; a 20 m Sentinel-2
band becomes 2 × 2 identical 10 m pixels. Bilinear/cubic: smoother, but a pixel beside nodata
takes its valid neighbours' values. Average: the mean of the finer pixels in each output pixel
(use it with the coarsest resolution).</li>
<li><b>Band math result</b> (OUTPUT): Float32 GeoTIFF (tiled, DEFLATE), nodata NaN.</li>
</ul>
<h3>Nodata</h3>
<p>An output pixel is nodata (NaN) when any band the expression reads is nodata there (its
nodata value, mask, NaN/±inf, calibration fill), and when the result is invalid: division by
zero, log of 0, out of Float32 range. It is never a valid-looking number.</p>
<h3>Output</h3>
<p>The band description is the index name (<code>NDVI</code>) or the expression, so k-means keys
its centroids by it. Style: a pseudocolour ramp (RdYlGn −1…1 for vegetation indices, RdYlBu −1…1
for water and moisture indices, data minimum…maximum with Viridis for other expressions) saved
as a .qml beside the file and applied when the layer loads.</p>
<h3>Expression syntax</h3>
{syntax_help(html_format=True)}
<h3>Index names</h3>
{alias_help(html_format=True)}
"""


def add_sensor_parameter(algorithm) -> None:
    """Declare SENSOR: which bands the index names (NDVI, …) read; band math and zones."""
    algorithm.add_with_help(QgsProcessingParameterEnum(
        algorithm.SENSOR, algorithm.tr("Sensor (bands of index names)"),
        options=[algorithm.tr(label) for label in SENSOR_LABELS], defaultValue=0),
        algorithm.tr("Which bands NDVI, NDWI, … read; auto-detect reads the file names and the "
                     "band descriptions."))


def add_metadata_parameter(algorithm) -> None:
    """Declare METADATA: the scene metadata calibration reads; band math and zones."""
    algorithm.add_with_help(QgsProcessingParameterFile(
        algorithm.METADATA, algorithm.tr("Metadata file for calibration (MTL / MTD)"),
        behavior=QgsProcessingParameterFile.File, optional=True,
        fileFilter=algorithm.tr("Scene metadata (*_MTL.txt *_MTL.json *_MTL.xml MTD_*.xml);;All "
                                "files (*)")),
        algorithm.tr("Landsat _MTL.txt/.json/.xml or Sentinel-2 MTD_MSIL1C/2A.xml; found beside "
                     "the bands when empty."))


class BandMathAlgorithm(RasterClusteringAlgorithm):
    """Band math: an expression over the bands of several rasters, aligned onto one grid."""

    NAME = "bandmath"
    DISPLAY_NAME = "Band math"
    GROUP = "Preparation"
    GROUP_ID = "preparation"
    HELP = HELP
    ICON = "bandmath.svg"

    RESOLUTION = "RESOLUTION"
    RESAMPLING = "RESAMPLING"

    def initAlgorithm(self, config=None):
        """Declare the parameters (their names are the public API of models and qgis_process)."""
        self.add_with_help(QgsProcessingParameterMultipleLayers(
            self.INPUT, self.tr("Input rasters"), QgsProcessing.TypeRaster),
            self.tr("Bands are B1…Bn of one multiband layer, the band code in each single-band "
                    "file name (…_B4.TIF, …_B04.jp2), or \"layer name@band\"."))
        self.add_with_help(QgsProcessingParameterString(self.EXPRESSION, self.tr("Expression"),
                                                        defaultValue="NDVI"),
            self.tr("E.g. (B5 - B4) / (B5 + B4), NDVI, where(NDVI > 0.3, NDVI, 0)."))
        add_sensor_parameter(self)
        self.add_with_help(QgsProcessingParameterBoolean(
            self.CALIBRATE, self.tr("Calibrate digital numbers to reflectance / temperature "
                                    "first"),
            defaultValue=False),
            self.tr("Landsat/Sentinel-2 single-band files: DN → reflectance (or brightness "
                    "temperature, K) from the metadata, block by block."))
        add_metadata_parameter(self)
        self.add_with_help(QgsProcessingParameterEnum(
            self.RESOLUTION, self.tr("Output resolution"),
            options=[self.tr(RESOLUTION_LABELS[name]) for name in RESOLUTIONS],
            defaultValue=0),
            self.tr("Pixel size and edges of the output grid (over the inputs' common extent, in "
                    "the first input's CRS)."), advanced=True)
        self.add_with_help(QgsProcessingParameterEnum(
            self.RESAMPLING, self.tr("Resampling of layers not on the output grid"),
            options=[self.tr(RESAMPLING_LABELS[name]) for name in RESAMPLINGS],
            defaultValue=0),
            self.tr("Nearest neighbour keeps values as measured; bilinear/cubic smooth; average "
                    "for a coarser output."), advanced=True)
        self.add_with_help(QgsProcessingParameterRasterDestination(
            self.OUTPUT, self.tr("Band math result")),
            self.tr("Float32 GeoTIFF, nodata NaN, band description = index name or expression, "
                    "styled with a colour ramp."))

    def checkParameterValues(self, parameters, context):
        """Refuse an empty input list or an expression that does not fit the layers."""
        valid, message = super().checkParameterValues(parameters, context)
        if not valid:
            return valid, message
        layers = self.parameterAsLayerList(parameters, self.INPUT, context)
        try:
            described = layer_bands([gdal_source(layer, self.INPUT) for layer in layers])
            compile_band_math(described, self.parameterAsString(parameters, self.EXPRESSION,
                                                                context),
                              sensor=self._sensor(parameters, context))
        except (QgsProcessingException, RasterClusteringError) as error:
            return False, str(error)
        return True, ""

    def _sensor(self, parameters, context) -> str:
        return SENSOR_CHOICES[self.parameterAsEnum(parameters, self.SENSOR, context)]

    def process(self, parameters, context, feedback):
        """Align, calibrate if asked, evaluate block by block, style the result."""
        layers, inputs = self.input_rasters(parameters, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        refuse_output_over_inputs(output, inputs)
        calibrate = self.parameterAsBool(parameters, self.CALIBRATE, context)
        metadata = self.parameterAsFile(parameters, self.METADATA, context) or None
        if metadata and not calibrate:
            feedback.pushWarning("The metadata file is ignored: calibration is off.")
        progress, is_cancelled = feedback_callables(feedback)
        with core_errors_as_processing_exceptions():
            result = band_math_to_raster(
                inputs, self.parameterAsString(parameters, self.EXPRESSION, context), output,
                sensor=self._sensor(parameters, context),
                resolution=RESOLUTIONS[self.parameterAsEnum(parameters, self.RESOLUTION,
                                                            context)],
                resampling=RESAMPLINGS[self.parameterAsEnum(parameters, self.RESAMPLING,
                                                            context)],
                calibrate=calibrate, metadata_path=metadata if calibrate else None,
                progress=progress, is_cancelled=is_cancelled)
        for message in result.messages:
            feedback.pushInfo(message)
        for warning in result.warnings:
            feedback.pushWarning(warning)
        if result.valid_pixels:
            feedback.pushInfo(f"{result.plan.expression.display_name}: {result.valid_pixels:,} "
                              f"valid pixels, {result.minimum:.6g} … {result.maximum:.6g}, "
                              f"mean {result.mean:.6g}.")
        style = display_style(result)
        qml = write_pseudocolour_style(output, ramp_name=style.ramp, minimum=style.minimum,
                                       maximum=style.maximum, invert=style.invert)
        style_on_load(context, output, qml, layer_name=f"{layers_title(layers)} · "
                                                       f"{result.plan.expression.display_name}")
        return {self.OUTPUT: output}
