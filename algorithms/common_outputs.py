"""Glue shared by the algorithms: the sieve parameters, tables without geometry, class
statistics and the log lines about them."""

from __future__ import annotations

from collections.abc import Sequence

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterMultipleLayers,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant

from ..core.clustering.class_statistics import ClassStatistics, statistics_table
from ..core.parameters import (
    CLUSTERS,
    CONNECTIVITY,
    DISTANCE_METRIC,
    FUZZINESS,
    MIN_ZONE_AREA,
    SEED,
)
from .base import number_parameter

_INTEGER_STATISTICS_COLUMNS = {"class", "pixel_count"}


def add_feature_rasters_parameter(algorithm, help_text: str) -> None:
    """Declare INPUT, the rasters whose bands are the features of each pixel (k-means's)."""
    algorithm.add_with_help(QgsProcessingParameterMultipleLayers(
        algorithm.INPUT, algorithm.tr("Input rasters"), QgsProcessing.TypeRaster), help_text)


def add_area_parameters(algorithm, *, pixels_role: str) -> None:
    """Declare the algorithm's AOI (polygons) and EXTENT (bounding box), both in any CRS.

    Args:
        pixels_role: what the area's pixels are for, e.g. "whose pixels fit the centres".
    """
    algorithm.add_with_help(QgsProcessingParameterFeatureSource(
        algorithm.AOI, algorithm.tr("Area of interest"), [QgsProcessing.TypeVectorPolygon],
        optional=True),
        algorithm.tr("Polygons (any CRS) {}; \"selected features only\" works.").format(
            pixels_role))
    algorithm.add_with_help(QgsProcessingParameterExtent(
        algorithm.EXTENT, algorithm.tr("Extent"), optional=True),
        algorithm.tr("Bounding box (any CRS) {}; intersected with the area of "
                     "interest.").format(pixels_role))


def add_clusters_parameter(algorithm, description: str, classes: str) -> None:
    """Declare CLUSTERS, the number of classes k (`core.parameters.CLUSTERS`).

    Args:
        description: its label; classes: what the classes are called ("classes", "zones").
    """
    allowed = CLUSTERS.allowed
    algorithm.add_number(CLUSTERS, description, algorithm.tr("Number of {} k, {:g}–{:g}.").format(
        classes, allowed.low, allowed.high))


def add_seed_parameter(algorithm, help_text: str) -> None:
    """Declare SEED, the random seed (`core.parameters.SEED`)."""
    algorithm.add_number(SEED, algorithm.tr("Random seed"), help_text)


#: The help text's items of the sieve and zone-polygon parameters of the algorithms that
#: classify like k-means (HTML).
SIEVE_AND_ZONES_HELP = """<li><b>Minimum zone area</b> (MIN_AREA, m², default 0 = off) and
<b>Connectivity of zones</b> (CONNECTIVITY, 4 or 8): as in k-means, zones smaller than the area
are merged into their largest neighbour after labelling.</li>
<li><b>One multipolygon per class</b> (ZONES_PER_CLASS, advanced, default no): the zone polygons
hold one feature per class instead of one per connected zone.</li>"""


def add_sieve_parameters(algorithm) -> None:
    """Declare the algorithm's MIN_AREA (m², 0 = no sieve) and CONNECTIVITY (4 or 8)."""
    algorithm.add_number(
        MIN_ZONE_AREA, algorithm.tr("Minimum zone area (m²)"),
        algorithm.tr("Zones smaller than this are merged into their largest neighbour after "
                     "labelling; 0 or empty = no sieve. The reference clustering API accepts "
                     "1000–999999 m²."), optional=True)
    add_connectivity_parameter(
        algorithm, algorithm.tr("Connectivity of zones"),
        algorithm.tr("4: pixels touch by their sides; 8: also by their corners (for the "
                     "minimum zone area)."))


def add_connectivity_parameter(algorithm, description: str, help_text: str) -> None:
    """Declare CONNECTIVITY: the number 4 or 8 (default 8), chosen from a list in the dialogs.

    Args:
        description, help_text: the label and help, translated by the caller.
    """
    parameter = number_parameter(CONNECTIVITY, description)
    # A dotted path: the Processing GUI imports the widget only when a dialog shows it.
    parameter.setMetadata({"widget_wrapper": {
        "class": f"{__package__}.widgets.ConnectivityWidgetWrapper"}})
    algorithm.add_with_help(parameter, help_text, rule=CONNECTIVITY)


def add_fuzziness_parameter(algorithm, help_text: str, *, advanced: bool = False) -> None:
    """Declare FUZZINESS, fuzzy c-means's exponent m (`core.parameters.FUZZINESS`)."""
    algorithm.add_number(FUZZINESS, algorithm.tr("Fuzziness exponent m"), help_text,
                         advanced=advanced)


def add_distance_metric_parameter(algorithm, help_text: str, *, advanced: bool = False) -> None:
    """Declare DISTANCE_METRIC, one of MZA's norms (`core.parameters.DISTANCE_METRIC`, in
    order)."""
    algorithm.add_with_help(QgsProcessingParameterEnum(
        algorithm.DISTANCE_METRIC, algorithm.tr("Distance"),
        options=[algorithm.tr("Euclidean"),
                 algorithm.tr("Diagonal (features over their standard deviations)"),
                 algorithm.tr("Mahalanobis (inverse covariance)")], defaultValue=0),
        help_text, advanced=advanced)


def distance_metric(algorithm, parameters, context) -> str:
    """The DISTANCE_METRIC parameter as the core names it."""
    return DISTANCE_METRIC.allowed.values[algorithm.parameterAsEnum(
        parameters, algorithm.DISTANCE_METRIC, context)]


def write_table(algorithm, parameters, name: str, context,
                columns: Sequence[tuple[str, QVariant.Type]], rows: Sequence[Sequence]):
    """Write rows into the feature sink parameter `name`, a table without geometry.

    Args:
        algorithm: the running QgsProcessingAlgorithm.
        parameters, context: those of processAlgorithm.
        name: the QgsProcessingParameterFeatureSink's name.
        columns: (field name, QVariant type) of each column.
        rows: one sequence of values per row, in column order; NaN is written as NULL.

    Returns:
        The sink's destination id, or None when the output is not wanted.

    Raises:
        QgsProcessingException: a row cannot be written.
    """
    fields = QgsFields()
    for column, kind in columns:
        fields.append(QgsField(column, kind))
    sink, dest_id = algorithm.parameterAsSink(parameters, name, context, fields,
                                              QgsWkbTypes.NoGeometry,
                                              QgsCoordinateReferenceSystem())
    if sink is None:
        return None
    for row in rows:
        feature = QgsFeature(fields)
        feature.setAttributes([None if isinstance(v, float) and v != v else v for v in row])
        if not sink.addFeature(feature, QgsFeatureSink.FastInsert):
            raise QgsProcessingException(f"Writing the table {name} failed: {sink.lastError()}")
    return dest_id


def write_class_statistics(algorithm, parameters, name: str, context,
                           statistics: Sequence[ClassStatistics], model):
    """Write the per-class statistics table (class, centres, count, area, band statistics).

    Returns:
        The sink's destination id, or None when the output is not wanted.
    """
    columns, rows = statistics_table(statistics, band_names=model.feature_names,
                                     centres=model.centres)
    types = [(column, QVariant.LongLong if column in _INTEGER_STATISTICS_COLUMNS
              else QVariant.Double) for column in columns]
    return write_table(algorithm, parameters, name, context, types, rows)


def optional_min_area(algorithm, parameters, name: str, context) -> float | None:
    """The MIN_AREA parameter in m², or None for an empty value or 0 (no sieve)."""
    if parameters.get(name) in (None, ""):
        return None
    return algorithm.parameterAsDouble(parameters, name, context) or None


def report_sieve(feedback, sieve) -> None:
    """Log what the minimum-area sieve did (nothing when there was no sieve)."""
    if sieve is None:
        return
    low, high = sieve.pixel_threshold
    pixels = f"{low}" if low == high else f"{low}–{high}"
    feedback.pushInfo(f"Sieve: zones under {sieve.min_area_m2:g} m² ({pixels} pixels, "
                      f"{sieve.connectivity}-connected) merged; "
                      f"{sieve.changed_pixels:,} pixels changed class.")


def report_classes(feedback, model, statistics: Sequence[ClassStatistics]) -> None:
    """Log each class's centre, pixel count and area."""
    for row in statistics:
        centre = ", ".join(f"{v:.6g}" for v in model.centres[row.class_number - 1])
        feedback.pushInfo(f"Class {row.class_number}: centre {centre}, "
                          f"{row.pixel_count:,} pixels, {row.area_m2:,.0f} m²")
