"""Build the bundled Processing models in models/ with QGIS's model API (run after editing them).

Usage: .venv/bin/python scripts/make_models.py [output folder, default models/]
The .model3 files are committed so that they open in the graphical modeler; the provider
registers each one as rasterclustering:<file stem>, titled with the model's name.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# A fixed hash seed makes Qt write XML attributes in one order: regenerated files diff cleanly.
os.environ.setdefault("QT_HASH_SEED", "0")

from qgis.core import (  # noqa: E402
    QgsProcessing,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
)
from qgis.PyQt.QtCore import QPointF  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GROUP = "Workflows"
GROUP_ID = "workflows"

NDVI_ZONES_ID = "ndvi_zones_in_a_field"
NDVI_ZONES_TITLE = "NDVI zones in a field"
NDVI_ZONES_HELP = {
    "ALG_DESC": (
        "NDVI management zones in a field from Landsat or Sentinel-2 band files: the red and "
        "NIR digital numbers are calibrated to reflectance with the scene's metadata "
        "(Radiometric calibration), then Cluster index zones computes their NDVI (band math, "
        "sensor auto-detected from the file names) and groups the NDVI pixels inside the field "
        "into k zones by k-means, or fuzzy c-means as Management Zone Analyst makes zones "
        "(clipped to the field, seed 0), with zones smaller than a minimum area merged into "
        "their largest neighbour (8-connected)."),
    "ALG_CREATOR": "Raster Clustering",
    "bands": ("The red and NIR band files of one scene, digital numbers, named with their band "
              "code (LC08_…_B4.TIF and …_B5.TIF; Sentinel-2 …_B04.jp2 and …_B08.jp2)."),
    "metadata": ("The scene's metadata (Landsat _MTL.txt/.json/.xml, Sentinel-2 "
                 "MTD_MSIL1C/2A.xml); found beside the bands when empty."),
    "field": "The field boundary: polygons in any CRS (reprojected to the bands' CRS).",
    "clusters": "Number of zones k, 2–255 (default 5).",
    "method": "k-means (the default: the exact optimum for one index) or fuzzy c-means (MZA's "
              "zones, fuzziness 1.3).",
    "min_area": "Zones smaller than this area in m² are merged into their largest neighbour; "
                "0 = off (default 1000).",
    "kmeans:zones": "The zones: UInt8 GeoTIFF, classes 1..k in ascending NDVI, styled.",
    "kmeans:centroids": "Zone centres as JSON: {\"NDVI\": [[1, [0.171]], …]}.",
    "kmeans:statistics": "One row per zone: centre, pixel count, area (m²), NDVI statistics.",
    "kmeans:zone_polygons": ("Optional: the zones as polygons (GeoPackage, Shapefile or "
                             "GeoJSON), one per connected zone, with class, NDVI centre, area, "
                             "perimeter and NDVI statistics; styled like the zones."),
}


def _model_input(model: QgsProcessingModelAlgorithm, parameter, position: tuple[float, float]):
    parameter.setHelp(NDVI_ZONES_HELP.get(parameter.name(), ""))
    component = QgsProcessingModelParameter(parameter.name())
    component.setPosition(QPointF(*position))
    model.addModelParameter(parameter, component)


def _from_input(name: str) -> list[QgsProcessingModelChildParameterSource]:
    return [QgsProcessingModelChildParameterSource.fromModelParameter(name)]


def _from_child(child_id: str, output: str) -> list[QgsProcessingModelChildParameterSource]:
    return [QgsProcessingModelChildParameterSource.fromChildOutput(child_id, output)]


def _static(value) -> list[QgsProcessingModelChildParameterSource]:
    return [QgsProcessingModelChildParameterSource.fromStaticValue(value)]


def _child(algorithm_id: str, child_id: str, description: str, sources: dict,
           position: tuple[float, float]) -> QgsProcessingModelChildAlgorithm:
    """A step with the given sources; every other mandatory parameter takes its default, as the
    modeler's dialog sets it (a model is valid only when each mandatory parameter has a value)."""
    from qgis.core import QgsApplication, QgsProcessingDestinationParameter

    child = QgsProcessingModelChildAlgorithm(algorithm_id)
    child.setChildId(child_id)
    child.setDescription(description)
    child.setPosition(QPointF(*position))
    algorithm = QgsApplication.processingRegistry().algorithmById(algorithm_id)
    for definition in algorithm.parameterDefinitions():
        name = definition.name()
        if name in sources:
            child.addParameterSources(name, sources[name])
        elif (not isinstance(definition, QgsProcessingDestinationParameter)
              and not definition.flags() & definition.FlagOptional):
            child.addParameterSources(name, _static(definition.defaultValue()))
    return child


def _model_outputs(child: QgsProcessingModelChildAlgorithm, outputs: dict[str, tuple[str, str]],
                   *, x: float, y: float, optional: tuple[str, ...] = ()) -> None:
    """Expose child outputs: {child output name: (model output name, description)}; those
    named in `optional` are written only when asked for."""
    exposed = {}
    for offset, (child_output, (name, description)) in enumerate(outputs.items()):
        output = QgsProcessingModelOutput(name, description)
        output.setChildId(child.childId())
        output.setChildOutputName(child_output)
        output.setMandatory(child_output not in optional)
        output.setPosition(QPointF(x + 220 * offset, y))
        exposed[name] = output
    child.setModelOutputs(exposed)


def ndvi_zones_in_a_field() -> QgsProcessingModelAlgorithm:
    """Calibrate → index zones (NDVI, then k-means or fuzzy c-means) with the field as AOI and a
    minimum zone area."""
    model = QgsProcessingModelAlgorithm(NDVI_ZONES_TITLE, GROUP, GROUP_ID)
    _model_input(model, QgsProcessingParameterMultipleLayers(
        "bands", "Red and NIR band files (digital numbers)", QgsProcessing.TypeRaster),
        (120, 60))
    _model_input(model, QgsProcessingParameterFile(
        "metadata", "Scene metadata (MTL / MTD; found beside the bands when empty)",
        QgsProcessingParameterFile.File, optional=True), (420, 60))
    _model_input(model, QgsProcessingParameterFeatureSource(
        "field", "Field boundary", [QgsProcessing.TypeVectorPolygon]), (720, 60))
    _model_input(model, QgsProcessingParameterNumber(
        "clusters", "Number of zones", QgsProcessingParameterNumber.Integer, defaultValue=5,
        minValue=2, maxValue=255), (1020, 60))
    _model_input(model, QgsProcessingParameterNumber(
        "min_area", "Minimum zone area (m²)", QgsProcessingParameterNumber.Double,
        defaultValue=1000, minValue=0), (1320, 60))
    _model_input(model, QgsProcessingParameterEnum(
        "method", "Zoning method", options=["k-means", "fuzzy c-means"], defaultValue=0),
        (1620, 60))

    calibrate = _child("rasterclustering:calibrate", "calibrate",
                       "Calibrate DN to TOA reflectance",
                       {"INPUT": _from_input("bands"), "METADATA": _from_input("metadata"),
                        "CELSIUS": _static(False), "CLIP": _static(False)}, (270, 200))
    # The step keeps the id "kmeans" it had as a k-means step: the model's output names
    # (kmeans:zones, …) are its public API in scripts and qgis_process.
    zones = _child("rasterclustering:zones", "kmeans", "NDVI zones in the field",
                   {"INPUT": _from_child("calibrate", "OUTPUT_LAYERS"),
                    "EXPRESSION": _static("NDVI"), "SENSOR": _static(0),
                    "CALIBRATE": _static(False), "CLUSTERS": _from_input("clusters"),
                    "METHOD": _from_input("method"), "AOI": _from_input("field"),
                    "SEED": _static(0), "MIN_AREA": _from_input("min_area"),
                    "CONNECTIVITY": _static(8)}, (720, 400))
    _model_outputs(zones, {"OUTPUT": ("zones", "NDVI zones"),
                           "CENTROIDS": ("centroids", "Zone centroids (JSON)"),
                           "STATISTICS": ("statistics", "Zone statistics"),
                           "ZONES": ("zone_polygons", "Zone polygons")}, x=500, y=540,
                   optional=("ZONES",))
    for child in (calibrate, zones):
        model.addChildAlgorithm(child)
    model.setParameterOrder(["bands", "metadata", "field", "clusters", "min_area", "method"])
    model.setHelpContent(NDVI_ZONES_HELP)
    return model


#: (file stem = the id within the provider, builder) of each bundled model.
MODELS = ((NDVI_ZONES_ID, ndvi_zones_in_a_field),)
_PROVIDERS: list = []


def write_models(folder: Path) -> list[Path]:
    """Write every bundled model as <folder>/<id>.model3; return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for model_id, build in MODELS:
        model = build()
        path = folder / f"{model_id}.model3"
        if not model.toFile(str(path)):
            raise OSError(f"cannot write {path}")
        paths.append(path)
    return paths


def _register_provider(link_folder: Path) -> None:
    """Register the plugin's provider, so each child algorithm resolves and the model records
    its outputs as the modeler does. The checkout may have any folder name: a link named
    raster_clustering in `link_folder` makes it importable under the plugin's package name."""
    from qgis.core import QgsApplication

    (link_folder / "raster_clustering").symlink_to(ROOT, target_is_directory=True)
    sys.path.insert(0, str(link_folder))
    from raster_clustering.provider import RasterClusteringProvider

    registry = QgsApplication.processingRegistry()
    if registry.providerById("rasterclustering") is None:
        # A reference kept for the run: without it Python frees the provider's Python half.
        _PROVIDERS.append(RasterClusteringProvider())
        registry.addProvider(_PROVIDERS[-1])


def main(arguments: list[str]) -> int:
    from qgis.core import QgsApplication

    application = QgsApplication([], False)
    application.initQgis()
    try:
        with tempfile.TemporaryDirectory(prefix="raster_clustering_models_") as link_folder:
            _register_provider(Path(link_folder))
            for path in write_models(Path(arguments[0]) if arguments else ROOT / "models"):
                print(path)
    finally:
        application.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
