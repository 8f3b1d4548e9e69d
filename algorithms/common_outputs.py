"""Output glue shared by the algorithms: tables without geometry, class statistics, sieve logs."""

from __future__ import annotations

from collections.abc import Sequence

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessingException,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant

from ..core.class_statistics import ClassStatistics, statistics_table

_INTEGER_STATISTICS_COLUMNS = {"class", "pixel_count"}


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
