"""rasterclustering:calibrate: Landsat and Sentinel-2 band files to reflectance or temperature."""

from __future__ import annotations

import os
from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
    QgsProcessingUtils,
)

from ..core.calibration.calibrators import calibrator_for
from ..core.calibration.raster import (
    CalibratedBand,
    CalibrationJob,
    calibrate_band_files,
    output_file_name,
)
from ..core.io.rasters import remove_raster_files
from ..core.palette import format_value
from .base import (
    RasterClusteringAlgorithm,
    core_errors_as_processing_exceptions,
    feedback_callables,
    is_model_step,
    refuse_output_over_inputs,
)
from .styling import (
    load_on_completion,
    style_on_load,
    style_path,
    write_grey_style,
    write_temperature_style,
)

HELP = """<p>Converts the digital numbers (DN) of Landsat and Sentinel-2 band files into
<b>reflectance</b> (0–1, dimensionless) or, for thermal bands, <b>brightness temperature</b>,
with the coefficients of the scene's own metadata file, so bands of different dates and sensors
can be clustered or combined in band math.</p>
<h3>Formulas</h3>
<ul>
<li>Landsat Level-1 reflective bands: TOA reflectance ρ = (M·DN + A) / sin(sun elevation) with
REFLECTANCE_MULT/ADD_BAND_n and SUN_ELEVATION (older files: π·L·d² / (ESUN·sin(elevation)) with
L from RADIANCE_MULT/ADD or LMAX/LMIN/QCALMAX/QCALMIN).</li>
<li>Landsat thermal bands (TM/ETM+ 6, TIRS 10/11): brightness temperature T = K2 / ln(K1/L + 1) in
kelvin (or °C), L = RADIANCE_MULT·DN + RADIANCE_ADD.</li>
<li>Landsat Collection 2 Level-2 SR_B*/ST_B* files: the Level-2 scale and offset (surface
reflectance / surface temperature, not a top-of-atmosphere value; the log says so).</li>
<li>Sentinel-2: ρ = (DN + offset) / QUANTIFICATION_VALUE with the band's RADIO_ADD_OFFSET (L1C) or
BOA_ADD_OFFSET (L2A), −1000 from processing baseline 04.00 on and 0 before; L2A gives surface
reflectance.</li>
</ul>
<h3>Parameters</h3>
<ul>
<li><b>Band files</b> (INPUT): one or more single-band files of digital numbers
(…_B4.TIF, …_B10_crop.TIF, T33XWJ_…_B04_10m.jp2). Quality, classification and other
non-reflectance layers (BQA, QA_PIXEL, SCL, AOT, WVP, TCI, …) are refused.</li>
<li><b>Metadata file</b> (METADATA, optional): when empty it is found automatically: Landsat
&lt;product id&gt;_MTL.txt / .xml / .json beside the band; Sentinel-2 MTD_MSIL1C.xml /
MTD_MSIL2A.xml up the .SAFE folder tree. When given it applies to every input, and a band named for
another scene is refused.</li>
<li><b>Band</b> (BAND, optional): the band when the file name does not tell it (B4, 10, B6_VCID_1,
SR_B4, B8A). Only with a single input.</li>
<li><b>Temperatures in °C instead of kelvin</b> (CELSIUS, default no): thermal bands in degrees
Celsius instead of
kelvin.</li>
<li><b>Clip reflectance to [0, 1]</b> (CLIP, default no): by default values stay as the handbooks
define them (slightly negative or above 1 over dark water or bright clouds, which shows
calibration or atmospheric effects); temperatures are never clipped.</li>
<li><b>Output folder</b> (OUTPUT_FOLDER): one Float32 GeoTIFF per input band, named
&lt;input name&gt;_&lt;quantity&gt;.tif: <code>_toa</code> (TOA reflectance), <code>_sr</code>
(surface reflectance), <code>_bt</code> (brightness temperature), <code>_st</code> (surface
temperature), followed by <code>_celsius</code> for °C. The band code stays in the name
(LC80200392015216LGN00_B4_crop.TIF → LC80200392015216LGN00_B4_crop_toa.tif), so band math still
knows the band as B4; a name without the band code gets it inserted (red.tif with band B4 →
red_B4_toa.tif). The folder is created when missing.</li>
<li><b>Calibrated band</b> (OUTPUT, optional, off by default): for a <i>single</i> input, write the
result to this file instead of the output folder (and load it styled in QGIS).</li>
</ul>
<h3>Outputs</h3>
<ul>
<li>Every output is a Float32 GeoTIFF (tiled, compressed) on the input's grid and CRS, nodata
<b>NaN</b>: DN 0 (fill), Sentinel-2 65535 (saturated), the input's own nodata value and masked
pixels become NaN, which k-means and band math treat as invalid. The band description names the
band and quantity (<code>B4 TOA reflectance</code>, <code>B10 brightness temperature (K)</code>),
the unit type is K or °C for temperatures, and min/max/mean/std are stored as GDAL statistics. A
.qml beside each file shows reflectance in grey and temperature on a colour ramp, stretched to the
data's min/max.</li>
<li><b>Calibrated layers</b> (OUTPUT_LAYERS): the list of files written, in the order of the band
files; connect it in a model to the input rasters of band math or k-means.</li>
<li><b>Output folder</b> (OUTPUT_FOLDER): the folder the files were written to (the calibrated
band's folder when that is used).</li>
</ul>
<p>Each band's formula, coefficients and metadata keys are written to the log. All files are
written in blocks, so any scene size works in bounded memory; on an error or cancellation no file
of the run is left behind.</p>
"""

class CalibrateAlgorithm(RasterClusteringAlgorithm):
    """Radiometric calibration of band files with their scene metadata."""

    NAME = "calibrate"
    DISPLAY_NAME = "Radiometric calibration"
    GROUP = "Preparation"
    GROUP_ID = "preparation"
    HELP = HELP
    ICON = "calibrate.svg"

    CELSIUS = "CELSIUS"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    OUTPUT_LAYERS = "OUTPUT_LAYERS"

    def initAlgorithm(self, config=None):
        """Declare the parameters (their names are the public API of models and qgis_process)."""
        self.add_with_help(QgsProcessingParameterMultipleLayers(
            self.INPUT, self.tr("Band files"), QgsProcessing.TypeRaster),
            self.tr("Single-band files of digital numbers (…_B4.TIF, …_B04.jp2); one output "
                    "each."))
        self.add_with_help(QgsProcessingParameterFile(
            self.METADATA, self.tr("Metadata file (found beside the band when empty)"),
            QgsProcessingParameterFile.File, optional=True,
            fileFilter=self.tr("Scene metadata (*_MTL.txt *_MTL.xml *_MTL.json "
                               "*MTD_MSIL*.xml);;All files (*.*)")),
            self.tr("Landsat <product id>_MTL.txt/.xml/.json or Sentinel-2 "
                    "MTD_MSIL1C/MTD_MSIL2A.xml."))
        self.add_with_help(QgsProcessingParameterString(
            self.BAND, self.tr("Band (when the file name does not tell it)"), optional=True),
            self.tr("B4, 10, B6_VCID_1, SR_B4 or B8A; only with a single input."), advanced=True)
        self.add_with_help(QgsProcessingParameterBoolean(
            self.CELSIUS, self.tr("Temperatures in °C instead of kelvin"), defaultValue=False),
            self.tr("Thermal bands in degrees Celsius (T − 273.15)."))
        self.add_with_help(QgsProcessingParameterBoolean(
            self.CLIP, self.tr("Clip reflectance to [0, 1]"), defaultValue=False),
            self.tr("Off: values as the handbooks define them (may leave [0, 1] slightly)."))
        # Optional with a temporary default: processing.run and models may leave it out.
        self.add_with_help(QgsProcessingParameterFolderDestination(
            self.OUTPUT_FOLDER, self.tr("Output folder"),
            defaultValue=QgsProcessing.TEMPORARY_OUTPUT, optional=True),
            self.tr("One Float32 GeoTIFF per band, named <input name>_toa/_sr/_bt/_st.tif."))
        self.add_with_help(QgsProcessingParameterRasterDestination(
            self.OUTPUT, self.tr("Calibrated band (single input only)"), optional=True,
            createByDefault=False),
            self.tr("For one input: write it to this GeoTIFF instead of the output folder."))
        self.addOutput(QgsProcessingOutputMultipleLayers(self.OUTPUT_LAYERS,
                                                         self.tr("Calibrated layers")))

    def checkParameterValues(self, parameters, context):
        """Refuse what cannot work before any work starts."""
        problem = self._parameter_problem(parameters, context)
        if problem:
            return False, problem
        return super().checkParameterValues(parameters, context)

    def _parameter_problem(self, parameters, context) -> str | None:
        """What is wrong with the parameters, or None."""
        count = len(self.parameterAsLayerList(parameters, self.INPUT, context))
        if count == 0:
            return "Select at least one band file as input."
        if count > 1 and self._band(parameters, context):
            return (f"BAND names the band of a single file, but {count} inputs are selected. "
                    "Leave BAND empty (the band is read from each file name) or calibrate the "
                    "files one at a time.")
        output = self._single_output(parameters, context)
        if output and count > 1:
            return (f"The single output file (OUTPUT) takes one input, but {count} are selected. "
                    "Leave OUTPUT empty: every band is written to the output folder "
                    "(OUTPUT_FOLDER).")
        return None

    def _band(self, parameters, context) -> str | None:
        return (self.parameterAsString(parameters, self.BAND, context) or "").strip() or None

    def _single_output(self, parameters, context) -> str:
        if parameters.get(self.OUTPUT) in (None, ""):
            return ""
        return self.parameterAsOutputLayer(parameters, self.OUTPUT, context) or ""

    def process(self, parameters, context, feedback):
        """Build every band's calibrator, stream the bands to GeoTIFF, style them."""
        problem = self._parameter_problem(parameters, context)
        if problem:
            raise QgsProcessingException(problem)
        layers, inputs = self.input_rasters(parameters, context)
        calibrators = self._calibrators(parameters, context, inputs, feedback)
        single_output = self._single_output(parameters, context)
        if single_output:
            refuse_output_over_inputs(single_output, inputs)
            folder = os.path.dirname(os.path.abspath(single_output))
            output_paths = [single_output]
        else:
            folder = (self.parameterAsFileOutput(parameters, self.OUTPUT_FOLDER, context)
                      or QgsProcessingUtils.generateTempFilename(self.OUTPUT_FOLDER))
            output_paths = [os.path.join(folder, output_file_name(raster.source, calibrator))
                            for raster, calibrator in zip(inputs, calibrators)]
        jobs = [CalibrationJob(raster.source, Path(path), calibrator)
                for raster, calibrator, path in zip(inputs, calibrators, output_paths)]
        progress, is_cancelled = feedback_callables(feedback)
        created_folder = not single_output and _make_folder(folder)
        try:
            with core_errors_as_processing_exceptions():
                results = calibrate_band_files(jobs, progress=progress,
                                               is_cancelled=is_cancelled)
            _style_all_or_remove(results)
        except BaseException:
            if created_folder:  # leave no trace of the run, not even its empty folder
                _remove_if_empty(folder)
            raise
        for result, layer in zip(results, layers):
            _report(result, feedback)
            title = f"{layer.name()} · {result.calibrator.description}"
            if single_output:
                style_on_load(context, single_output, style_path(single_output), layer_name=title)
            elif context.project() is not None and not is_model_step(context):
                # Shown like the files of QGIS's own folder outputs are not (3.22): a desktop
                # run would otherwise end with nothing on the map. A model's step leaves it to
                # the model, which loads only its own outputs.
                load_on_completion(context, str(result.output_path), self.OUTPUT_LAYERS, title)
        return {self.OUTPUT_FOLDER: folder, self.OUTPUT_LAYERS: output_paths,
                self.OUTPUT: single_output or None}

    def _calibrators(self, parameters, context, inputs, feedback):
        """One calibrator per input, all built (metadata read and checked) before any writing;
        each one's formula and keys go to the log."""
        metadata = self.parameterAsFile(parameters, self.METADATA, context) or None
        band = self._band(parameters, context)
        celsius = self.parameterAsBool(parameters, self.CELSIUS, context)
        clip = self.parameterAsBool(parameters, self.CLIP, context)
        with core_errors_as_processing_exceptions():
            calibrators = [calibrator_for(raster.source, metadata_path=metadata, band=band,
                                          celsius=celsius, clip=clip) for raster in inputs]
        how = "given" if metadata else "found automatically"
        for raster, calibrator in zip(inputs, calibrators):
            feedback.pushInfo(f"{raster.name}: metadata {calibrator.metadata_path} ({how}).")
            feedback.pushInfo(calibrator.log_message)
        return calibrators


def _make_folder(folder: str) -> bool:
    """Create the output folder if needed; return whether it was created."""
    if os.path.isdir(folder):
        return False
    try:
        os.makedirs(folder)
    except OSError as error:
        raise QgsProcessingException(
            f"Cannot create the output folder '{folder}': {error.strerror or error}. Choose a "
            "folder you can write to.") from None
    return True


def _remove_if_empty(folder: str) -> None:
    try:
        os.rmdir(folder)
    except OSError:
        pass  # not empty: it holds files of someone else


def _report(result: CalibratedBand, feedback) -> None:
    calibrator = result.calibrator
    if result.minimum is None:
        feedback.pushWarning(f"{result.output_path.name}: no valid pixel (every DN is fill or "
                             "nodata).")
        return
    unit = f" {calibrator.unit}" if calibrator.unit else ""
    feedback.pushInfo(
        f"Wrote {result.output_path}: {calibrator.description}, {result.valid_pixels:,} valid "
        f"pixels, {format_value(result.minimum)}–{format_value(result.maximum)}{unit}, mean "
        f"{format_value(result.mean)}{unit}.")


def _style_all_or_remove(results: list[CalibratedBand]) -> None:
    """Write every output's .qml; if one fails, remove every file of the run."""
    try:
        for result in results:
            write_calibrated_style(str(result.output_path), result)
    except OSError as error:
        for result in results:
            remove_raster_files(result.output_path)
            qml = style_path(str(result.output_path))
            if os.path.exists(qml):
                os.remove(qml)
        raise QgsProcessingException(f"Styling the output failed ({error}); no file was "
                                     "kept. Check the output folder.") from None


def _value_range(result: CalibratedBand) -> tuple[float, float]:
    if result.minimum is None or result.maximum is None:
        return 0.0, 1.0
    if result.maximum > result.minimum:
        return result.minimum, result.maximum
    return result.minimum - 0.5, result.maximum + 0.5  # a constant band still renders


def write_calibrated_style(raster_path: str, result: CalibratedBand) -> str:
    """Write a .qml beside a calibrated band: grey for reflectance, a viridis ramp labelled in
    K/°C for temperature, both stretched to the data's min/max; return the .qml's path.

    Raises:
        OSError: the raster cannot be opened or the style cannot be written.
    """
    minimum, maximum = _value_range(result)
    if result.calibrator.is_reflectance:
        return write_grey_style(raster_path, minimum=minimum, maximum=maximum)
    return write_temperature_style(raster_path, minimum=minimum, maximum=maximum,
                                   unit=result.calibrator.unit)
