"""Classify rasters with saved cluster centres (a centroid JSON), e.g. another date of one scene.

The centres, scaling, clipping and class numbering come from the JSON written by k-means (or
the reference API's one-feature shape); labelling, sieving, styling and statistics are k-means's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..engine import run_scope
from ..errors import InvalidInputError
from ..io.area_of_interest import BoundingBox
from ..io.feature_stack import AreaBlocks, RasterInput, open_area_blocks
from ..io.rasters import RasterGrid
from ..parameters import MAX_CLASSES
from ..progress import Progress
from ..sieve.sieve import SieveReport
from .centroid_model import CentroidModel, load_centroid_model, names_match
from .class_statistics import ClassStatistics
from .classify import check_sieve_options, write_classified_raster


@dataclass
class ApplyResult:
    """What a run produced.

    Attributes:
        model: the centres applied (as read from the JSON).
        statistics: one row per class of the output, classes 1..k.
        output_grid: the grid of the written raster.
        messages: warnings for the user (feature names that differ, empty classes, ...).
        sieve: what the minimum-area sieve did, or None without one.
    """

    model: CentroidModel
    statistics: list[ClassStatistics]
    output_grid: RasterGrid
    messages: list[str] = field(default_factory=list)
    sieve: SieveReport | None = None


def apply_centroids(inputs: Sequence[RasterInput], centroids: CentroidModel | str | os.PathLike,
                    output_path: str | os.PathLike, *, geometry_wkt: str | None = None,
                    bbox: BoundingBox | None = None, clip_to_area: bool = True,
                    strict_names: bool = False, min_area_m2: float | None = None,
                    connectivity: int = 8, progress=None, is_cancelled=None) -> ApplyResult:
    """Label every pixel with its nearest saved centre and write the classified raster.

    The output is what k-means writes for the same centres: UInt8 GeoTIFF, nodata 0, classes
    numbered as in the JSON, the same colour table and category names. Applied to the raster the
    centres were fitted on, with the same area options, it is byte-identical to k-means's output.

    Args:
        inputs: rasters whose bands are the features, in the order the centres list them; the
            first one sets the grid (others are aligned onto it, as in k-means).
        centroids: a CentroidModel, or the path of a centroid JSON.
        output_path: GeoTIFF to write.
        geometry_wkt: polygon/multipolygon area to classify, in the first raster's CRS, or None.
        bbox: (xmin, ymin, xmax, ymax) in the first raster's CRS, or None; intersected with the
            geometry when both are given.
        clip_to_area: when an area is given, output only its bounding box, nodata outside the
            area; otherwise classify the whole raster (the area then changes nothing).
        strict_names: refuse features whose names differ from the centres' (by default they
            are applied by position, with a warning).
        min_area_m2, connectivity: the minimum-area sieve, as in `kmeans.cluster_rasters`.
        progress, is_cancelled: see `core.progress`.

    Returns:
        ApplyResult; its messages hold the warnings to show.

    Raises:
        InvalidInputError: the JSON cannot be read or used, the band count differs from the
            centres' feature count (or, with strict_names, a name differs), bad area or sieve
            options, no overlap.
        CancelledError: cancelled; nothing is left behind.
    """
    model = centroids if isinstance(centroids, CentroidModel) else load_centroid_model(centroids)
    model = usable_model(model)
    check_sieve_options(min_area_m2, connectivity)
    steps = Progress(progress, is_cancelled)
    with run_scope() as scope:
        # The area is opened even when not clipped to: one that does not overlap is refused.
        blocks, stack, area = open_area_blocks(inputs, scope, geometry_wkt=geometry_wkt,
                                               bbox=bbox)
        messages = check_features(model, stack.names, strict_names=strict_names)
        window = area.window if clip_to_area else stack.grid.full_window
        written = write_classified_raster(
            stack, blocks if clip_to_area else AreaBlocks(blocks.stack), model, output_path,
            window, min_area_m2=min_area_m2, connectivity=connectivity, steps=steps)
        messages += written.warnings + _empty_class_warnings(written.statistics)
        return ApplyResult(model, written.statistics, stack.grid.sub_grid(window), messages,
                           written.sieve)


def usable_model(model: CentroidModel) -> CentroidModel:
    """The model, checked for what labelling needs (a hand-written JSON may number one-feature
    centres in any order; `CentroidModel.label` keeps that numbering).

    Raises:
        InvalidInputError: more than 255 classes, or two classes with the same centre.
    """
    if model.n_clusters > MAX_CLASSES:
        raise InvalidInputError(
            f"The centroid JSON has {model.n_clusters} classes; at most {MAX_CLASSES} can be "
            "written. Use a JSON with fewer classes.")
    _, first_index, counts = np.unique(model.centres, axis=0, return_index=True,
                                       return_counts=True)
    if np.any(counts > 1):
        first = int(first_index[np.argmax(counts > 1)])
        twins = np.flatnonzero(np.all(model.centres == model.centres[first], axis=1)) + 1
        raise InvalidInputError(
            f"Classes {', '.join(map(str, twins))} of the centroid JSON have the same centre, so "
            "a pixel cannot be given to one of them. Remove the duplicates or renumber the "
            "classes.")
    return model


def check_features(model: CentroidModel, feature_names: Sequence[str], *,
                   strict_names: bool = False) -> list[str]:
    """Compare the raster's features with the centres'; return the warnings to show.

    Features are matched by position. A different count is always an error (the centres cannot
    be measured against the pixels). Different names are a warning by default, because the
    usual use is another date or another file of the same quantity (a band described "NDVI
    2021-06-15" against centres of "NDVI 2021-05-01"); with strict_names they are an error.

    Args:
        model: the centres.
        feature_names: the raster's feature names in input order (band descriptions, else layer
            names, as `FeatureStack.names`).
        strict_names: make a name difference an error.

    Raises:
        InvalidInputError: the counts differ, or the names differ and strict_names is set.
    """
    names = list(feature_names)
    if len(names) != model.n_features:
        raise InvalidInputError(
            f"The centres are for {model.n_features} feature(s) ({_quoted(model.feature_names)}), "
            f"but the input rasters have {len(names)} band(s) ({_quoted(names)}). Select rasters "
            "with the same bands, in the same order, as those the centres were computed from.")
    if names_match(model, names):
        return []
    differences = "; ".join(
        f"feature {index}: centres '{saved}', raster '{name}'"
        for index, (saved, name) in enumerate(zip(model.feature_names, names), start=1)
        if saved != name)
    if strict_names:
        raise InvalidInputError(
            f"The input bands' names differ from the centres' ({differences}). Select the same "
            "bands in the same order, or turn off 'Require identical feature names' to apply "
            "the centres by band position.")
    return [f"Feature names differ ({differences}); the centres were applied by band position. "
            "This is expected for another date or file of the same bands; otherwise check the "
            "band order."]


def _empty_class_warnings(statistics: Sequence[ClassStatistics]) -> list[str]:
    empty = [row.class_number for row in statistics if row.pixel_count == 0]
    if not empty:
        return []
    return [f"Class(es) {', '.join(map(str, empty))} received no pixel. That happens when the "
            "scene has none of them; if many classes are empty, check that the rasters are in "
            "the same units and scaling as those the centres were computed from."]


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)
