"""Cluster centres with everything needed to reapply them: feature names, scaling, clipping.

Saved as the centroid JSON. With one feature the file has exactly the reference API's shape,
``{"NDVI": [[1, [0.171]], [2, [0.404]]]}``; with several features the first key lists the
feature names and the entries hold one value per feature, followed by the model's metadata.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..parameters import MAX_CLASSES
from .kmeans_1d import label_values

FEATURE_SEPARATOR = ", "
ORDERING_1D = "ascending centre value"
ORDERING_ND = "ascending mean of the standardized centre values"


@dataclass(frozen=True)
class CentroidModel:
    """Ordered cluster centres; class i+1 is row i.

    Attributes:
        feature_names: one name per feature (band), in input order.
        centres: float64 array (n_clusters, n_features) in the features' own units.
        mean, std: float64 arrays (n_features,) used to standardize features before measuring
            distances, or None when the features are used as they are.
        clip_lower, clip_upper: float64 arrays (n_features,) the features are clipped to before
            labelling, or None.
        clip_quantiles: the (low, high) percentiles the clip bounds came from, for the record.
    """

    feature_names: tuple[str, ...]
    centres: np.ndarray
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    clip_lower: np.ndarray | None = None
    clip_upper: np.ndarray | None = None
    clip_quantiles: tuple[float, float] | None = None

    @property
    def n_clusters(self) -> int:
        return self.centres.shape[0]

    @property
    def n_features(self) -> int:
        return self.centres.shape[1]

    def prepare(self, features: np.ndarray) -> np.ndarray:
        """Clip and standardize raw features (n_pixels, n_features) into the model's space."""
        prepared = np.asarray(features, dtype=np.float64)
        if self.clip_lower is not None:
            prepared = np.clip(prepared, self.clip_lower, self.clip_upper)
        if self.mean is not None:
            prepared = (prepared - self.mean) / self.std
        return prepared

    def model_centres(self) -> np.ndarray:
        """The centres in the model's (standardized) space."""
        if self.mean is None:
            return self.centres
        return (self.centres - self.mean) / self.std

    def label(self, features: np.ndarray) -> np.ndarray:
        """Class numbers 1..k (uint8, or uint16 past 255) of raw features (n_pixels, n_features).

        Each pixel takes its nearest centre; a tie goes to the lower class.
        """
        if self.n_features == 1:
            # In 1-D clipping and scaling never change which centre is nearest. k-means writes
            # ascending centres; a hand-written JSON may number them in any order.
            values, centres = np.asarray(features)[:, 0], self.centres[:, 0]
            order = np.argsort(centres, kind="stable")
            labels = label_values(values, centres[order])
            if np.array_equal(order, np.arange(len(order))):
                return labels
            return (order + 1).astype(class_dtype(self.n_clusters))[labels.astype(np.intp) - 1]
        points = self.prepare(features)
        centres = self.model_centres()
        distances = (-2.0 * points @ centres.T) + np.einsum("ij,ij->i", centres, centres)
        return (np.argmin(distances, axis=1) + 1).astype(class_dtype(self.n_clusters))

    def to_json(self) -> dict:
        key = FEATURE_SEPARATOR.join(self.feature_names)
        document: dict = {key: [[i + 1, [float(v) for v in row]]
                                for i, row in enumerate(self.centres)]}
        if self.n_features > 1:
            document["features"] = list(self.feature_names)
            document["ordering"] = ORDERING_ND
            document["standardize"] = None if self.mean is None else {
                "mean": self.mean.tolist(), "std": self.std.tolist()}
            document["clip"] = None if self.clip_lower is None else {
                "quantiles": list(self.clip_quantiles or ()),
                "lower": self.clip_lower.tolist(), "upper": self.clip_upper.tolist()}
        return document

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as stream:
            json.dump(self.to_json(), stream, indent=2)
            stream.write("\n")


def class_dtype(n_clusters: int):
    return np.uint8 if n_clusters <= MAX_CLASSES else np.uint16


def order_centres(centres: np.ndarray, *, mean: np.ndarray | None,
                  std: np.ndarray | None) -> np.ndarray:
    """Indices that sort centres (k, f): by value for one feature, else by mean z-score."""
    if centres.shape[1] == 1:
        return np.argsort(centres[:, 0], kind="stable")
    scaled = centres if mean is None else (centres - mean) / std
    return np.argsort(scaled.mean(axis=1), kind="stable")


def load_centroid_model(path: str | os.PathLike) -> CentroidModel:
    """Read a centroid JSON written by this plugin (or the reference API's one-feature shape).

    Raises:
        InvalidInputError: the file is missing, not JSON, or not a centroid document.
    """
    try:
        with open(path, encoding="utf-8") as stream:
            document = json.load(stream)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        # ValueError: not JSON, or an integer of thousands of digits; RecursionError: nesting.
        raise InvalidInputError(f"Cannot read the centroid JSON '{path}': {error}") from error
    return centroid_model_from_json(document, source=str(path))


def centroid_model_from_json(document, *, source: str = "centroid JSON") -> CentroidModel:
    def fail(problem: str):
        raise InvalidInputError(
            f"'{source}' is not a centroid JSON written by k-means ({problem}).")

    if not isinstance(document, dict) or not document:
        fail("expected an object whose first key names the features")
    key, entries = next(iter(document.items()))
    if not isinstance(entries, list) or not entries:
        fail(f"'{key}' should hold a list of [class, [centre values]] pairs")
    names = document.get("features", [key])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not names:
        fail("'features' should be a list of names")
    rows = []
    for expected_class, entry in enumerate(entries, start=1):
        if (not isinstance(entry, list) or len(entry) != 2 or entry[0] != expected_class
                or not isinstance(entry[1], list) or len(entry[1]) != len(names)):
            fail(f"entry {expected_class} should be [{expected_class}, [{len(names)} numbers]]")
        rows.append([_finite(v, fail) for v in entry[1]])
    scaling = document.get("standardize")
    clip = document.get("clip")
    return CentroidModel(
        tuple(names), np.array(rows, dtype=np.float64),
        mean=_vector(scaling, "mean", len(names), fail),
        std=_vector(scaling, "std", len(names), fail, positive=True),
        clip_lower=_vector(clip, "lower", len(names), fail),
        clip_upper=_vector(clip, "upper", len(names), fail),
        clip_quantiles=tuple(clip["quantiles"]) if isinstance(clip, dict)
        and isinstance(clip.get("quantiles"), list) and len(clip["quantiles"]) == 2 else None)


def _finite(value, fail) -> float:
    try:
        number = (float(value) if isinstance(value, (int, float)) and not isinstance(value, bool)
                  else math.nan)
    except OverflowError:  # an integer beyond the float range
        number = math.inf
    if not math.isfinite(number):
        fail(f"centre value {repr(value)[:40]} is not a finite number")
    return number


def _vector(section, name: str, length: int, fail, *, positive: bool = False):
    if section is None:
        return None
    values = section.get(name) if isinstance(section, dict) else None
    if not isinstance(values, list) or len(values) != length:
        fail(f"'{name}' should list {length} numbers")
    vector = np.array([_finite(v, fail) for v in values], dtype=np.float64)
    if positive and np.any(vector <= 0):
        fail(f"'{name}' values must be positive")
    return vector


def names_match(model: CentroidModel, feature_names: Sequence[str]) -> bool:
    return tuple(feature_names) == model.feature_names
