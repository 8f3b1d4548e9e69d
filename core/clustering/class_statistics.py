"""Per-class pixel counts, areas and band statistics, accumulated block by block."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClassStatistics:
    """Statistics of one class.

    Attributes:
        class_number: 1..k.
        pixel_count: pixels of the class.
        area_m2: their area in square metres.
        mean, std, minimum, maximum: float64 arrays (n_bands,) of the input bands within the
            class (population standard deviation); NaN when the class has no pixel.
        mean_membership: fuzzy classes: the mean membership of the class's pixels in it (NaN
            when it has none); None for hard classes.
    """

    class_number: int
    pixel_count: int
    area_m2: float
    mean: np.ndarray
    std: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    mean_membership: float | None = None


@dataclass(frozen=True, eq=False)
class BlockClassStatistics:
    """One block's statistics of the classes present in it (`block_class_statistics`).

    Attributes:
        present: int (p,) the classes present; counts: int64 (p,) their pixels.
        area_m2: float64 (n_classes + 1,) the block's area of every class, m².
        mean, m2, minimum, maximum: float64 (p, n_bands) per present class: mean, sum of
            squared deviations from it, extremes.
    """

    present: np.ndarray
    counts: np.ndarray
    area_m2: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray


def block_class_statistics(labels: np.ndarray, features: np.ndarray, pixel_area_m2: np.ndarray,
                           n_classes: int) -> BlockClassStatistics | None:
    """The statistics of one block's classes, None when it has no classified pixel.

    Args:
        labels: unsigned int array (height, width): 0 = nodata, else the class (1..n_classes).
        features: array (n_bands, height, width) of the raw input values.
        pixel_area_m2: float array (height,) with the pixel area of each row.
    """
    flat_labels = labels.ravel()
    keep = flat_labels > 0
    classes = flat_labels[keep]
    counts = np.bincount(classes, minlength=n_classes + 1)
    present = np.nonzero(counts[1:])[0] + 1
    if len(present) == 0:
        return None
    if np.all(pixel_area_m2 == pixel_area_m2[0]):
        area_m2 = counts * pixel_area_m2[0]
    else:
        row_areas = np.broadcast_to(pixel_area_m2[:, None], labels.shape).ravel()[keep]
        area_m2 = np.bincount(classes, weights=row_areas, minlength=n_classes + 1)
    # Sorting by class (a radix sort for small unsigned ints) makes every class a contiguous
    # run, so each statistic is one reduceat per band.
    order = np.argsort(classes, kind="stable")
    present_counts = counts[present]
    starts = (np.cumsum(counts) - counts)[present]
    shape = (len(present), features.shape[0])
    mean, m2, minimum, maximum = (np.empty(shape) for _ in range(4))
    for band in range(features.shape[0]):
        values = features[band].ravel()[keep][order].astype(np.float64)
        mean[:, band] = np.add.reduceat(values, starts) / present_counts
        deviations = values - np.repeat(mean[:, band], present_counts)
        m2[:, band] = np.add.reduceat(deviations * deviations, starts)
        minimum[:, band] = np.minimum.reduceat(values, starts)
        maximum[:, band] = np.maximum.reduceat(values, starts)
    return BlockClassStatistics(present, present_counts, area_m2, mean, m2, minimum, maximum)


class ClassStatisticsAccumulator:
    """Merges block statistics exactly (Chan et al.'s pairwise update of mean and M2), in the
    order the blocks are merged."""

    def __init__(self, n_classes: int, n_bands: int):
        self.n_classes = n_classes
        self.count = np.zeros(n_classes + 1, dtype=np.int64)
        self.area_m2 = np.zeros(n_classes + 1)
        self.mean = np.zeros((n_classes + 1, n_bands))
        self.m2 = np.zeros((n_classes + 1, n_bands))
        self.minimum = np.full((n_classes + 1, n_bands), np.inf)
        self.maximum = np.full((n_classes + 1, n_bands), -np.inf)

    def add(self, labels: np.ndarray, features: np.ndarray, pixel_area_m2: np.ndarray) -> None:
        """Add a block (see `block_class_statistics`)."""
        self.merge(block_class_statistics(labels, features, pixel_area_m2, self.n_classes))

    def merge(self, block: BlockClassStatistics | None) -> None:
        """Add a block's statistics."""
        if block is None:
            return
        present = block.present
        self.area_m2 += block.area_m2
        self.minimum[present] = np.minimum(self.minimum[present], block.minimum)
        self.maximum[present] = np.maximum(self.maximum[present], block.maximum)
        old_count = self.count[present][:, None].astype(np.float64)
        new_count = block.counts[:, None].astype(np.float64)
        total = old_count + new_count
        delta = block.mean - self.mean[present]
        self.mean[present] += delta * new_count / total
        self.m2[present] += block.m2 + delta * delta * old_count * new_count / total
        self.count[present] += block.counts

    def result(self) -> list[ClassStatistics]:
        arrays = self.arrays()
        return [ClassStatistics(number, int(arrays.count[number - 1]),
                                float(arrays.area_m2[number - 1]), arrays.mean[number - 1],
                                arrays.std[number - 1], arrays.minimum[number - 1],
                                arrays.maximum[number - 1])
                for number in range(1, self.n_classes + 1)]

    def arrays(self) -> StatisticsArrays:
        """The statistics of classes 1..n as arrays (row i: class i + 1), for many classes
        (e.g. every zone of a map) where one object per class would be slow."""
        count = self.count[1:].copy()
        empty = count == 0
        with np.errstate(invalid="ignore", divide="ignore"):
            std = np.sqrt(self.m2[1:] / count[:, None])

        def blank(values):
            values = values.copy()
            values[empty] = np.nan
            return values

        return StatisticsArrays(count, self.area_m2[1:].copy(), blank(self.mean[1:]),
                                blank(std), blank(self.minimum[1:]), blank(self.maximum[1:]))


@dataclass(frozen=True)
class StatisticsArrays:
    """The statistics of n classes as arrays: count and area_m2 of shape (n,); mean, std (the
    population standard deviation), minimum and maximum of shape (n, n_bands), NaN where a
    class has no pixel."""

    count: np.ndarray
    area_m2: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray


def statistics_table(statistics: Sequence[ClassStatistics], *, band_names: Sequence[str],
                     centres: np.ndarray) -> tuple[list[str], list[list]]:
    """Column names and rows of the per-class table (class, centres, count, area, band stats,
    and the mean membership of fuzzy classes)."""
    fuzzy = any(row.mean_membership is not None for row in statistics)
    columns = ["class"] + [f"centre_{name}" for name in band_names] + ["pixel_count", "area_m2"]
    for name in band_names:
        columns += [f"{name}_mean", f"{name}_std", f"{name}_min", f"{name}_max"]
    columns += ["mean_membership"] if fuzzy else []
    rows = []
    for row in statistics:
        values = [row.class_number, *map(float, centres[row.class_number - 1]),
                  row.pixel_count, row.area_m2]
        for band in range(len(band_names)):
            values += [float(row.mean[band]), float(row.std[band]), float(row.minimum[band]),
                       float(row.maximum[band])]
        values += [float(row.mean_membership)] if fuzzy else []
        rows.append(values)
    return columns, rows
