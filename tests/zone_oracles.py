"""Independent oracles for zone polygons: zones from scipy's labelling, boundaries counted from
pixels and traced from pixel edges, polygons read by OGR (helpers.rasterized burns them back)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from helpers import label_regions, rasterized, read_raster
from osgeo import gdal, ogr


def numbered_zones(classes, valid, connectivity):
    """The zone number of each pixel (0 on nodata) as the plugin promises to number them: by
    class, then by first pixel in reading order; scipy.ndimage.label finds the regions."""
    labels = label_regions(classes, valid, connectivity)
    flat = labels.ravel()
    ids, first = np.unique(flat, return_index=True)
    keep = ids > 0
    ids, first = ids[keep], first[keep]
    order = np.lexsort((first, classes.ravel()[first]))
    number = np.zeros(flat.max() + 1, dtype=np.int64)
    number[ids[order]] = np.arange(1, len(ids) + 1)
    return number[labels]


def boundary_edges(zones):
    """Per zone (index = zone number), the count of pixel edges on its boundary (against
    another zone, nodata or the raster's edge): the exact polygon's perimeter in pixels."""
    padded = np.pad(zones, 1)
    counts = np.zeros(zones.max() + 1, dtype=np.int64)
    for one, other in ((padded[1:-1, 1:-1], padded[:-2, 1:-1]),
                       (padded[1:-1, 1:-1], padded[2:, 1:-1]),
                       (padded[1:-1, 1:-1], padded[1:-1, :-2]),
                       (padded[1:-1, 1:-1], padded[1:-1, 2:])):
        edge = (one != other) & (one > 0)
        counts += np.bincount(one[edge], minlength=len(counts))
    return counts


def read_features(vector_path):
    """[(attributes dict, geometry clone)] of the file's only layer, in file order."""
    source = ogr.Open(str(vector_path))
    assert source is not None, vector_path
    layer = source.GetLayer(0)
    return [(feature.items(), feature.GetGeometryRef().Clone()) for feature in layer]


def union_of(geometries):
    """GEOS's union of (multi)polygons."""
    union = ogr.Geometry(ogr.wkbMultiPolygon)
    for geometry in geometries:
        if ogr.GT_Flatten(geometry.GetGeometryType()) == ogr.wkbPolygon:
            union.AddGeometry(geometry)
            continue
        for index in range(geometry.GetGeometryCount()):
            union.AddGeometry(geometry.GetGeometryRef(index))
    return union.UnionCascaded()


def hole_count(geometry):
    """Interior rings of a (multi)polygon."""
    if ogr.GT_Flatten(geometry.GetGeometryType()) == ogr.wkbPolygon:
        return geometry.GetGeometryCount() - 1
    return sum(hole_count(geometry.GetGeometryRef(i)) for i in range(geometry.GetGeometryCount()))


def brute_force_nodes(zones):
    """Grid points where the 2 × 2 pixels around hold ≥ 3 zones, or 2 zones diagonally."""
    padded = np.pad(zones, 1)
    keys = []
    height, width = zones.shape
    for row in range(height + 1):
        for col in range(width + 1):
            block = padded[row:row + 2, col:col + 2]
            diagonal = block[0, 0] == block[1, 1] != block[0, 1] == block[1, 0]
            if len(set(block.ravel().tolist())) >= 3 or diagonal:
                keys.append(row * (width + 1) + col)
    return np.array(keys, dtype=np.int64)


def all_nodes(zones):
    """Every node of a zone raster, by the plugin's grid_nodes over the whole raster."""
    from raster_clustering.core.zones.zone_raster import grid_nodes

    width = zones.shape[1]
    rows = np.vstack([np.zeros((1, width), int), zones])
    return grid_nodes(rows[:-1], rows[1:], 0).tolist() + grid_nodes(
        zones[-1:], np.zeros((1, width), int), zones.shape[0]).tolist()


def pixel_rings(zones):
    """Every zone's boundary as rings of grid points, traced from the pixel edges (an oracle
    independent of GDAL): each ring's edges with the zone on its left, chained at points."""
    rings, owners = [], []
    padded = np.pad(zones, 1)
    for zone in range(1, zones.max() + 1):
        inside = padded == zone
        edges = defaultdict(list)
        for row, col in zip(*np.nonzero(inside)):
            r, c = row - 1, col - 1  # pixel (r, c) spans points (c, r)..(c + 1, r + 1)
            if not inside[row - 1, col]:
                edges[(c + 1, r)].append((c, r))
            if not inside[row + 1, col]:
                edges[(c, r + 1)].append((c + 1, r + 1))
            if not inside[row, col - 1]:
                edges[(c, r)].append((c, r + 1))
            if not inside[row, col + 1]:
                edges[(c + 1, r + 1)].append((c + 1, r))
        while any(edges.values()):
            start = next(point for point, ends in edges.items() if ends)
            ring, point = [start], edges[start].pop()
            while point != start:
                ring.append(point)
                point = edges[point].pop()
            ring.append(start)
            rings.append(np.array(ring, dtype=np.int64))
            owners.append(zone)
    return rings, owners


def concatenated(rings):
    """(points, start) of a list of closed rings, ring after ring, as `arcs.densify` takes them."""
    return np.concatenate(rings), np.concatenate([[0], np.cumsum([len(r) for r in rings])])


def assert_smoothed_map(smoothed, exact, classes_raster, *, connectivity=8, per_class=False,
                        area_limit=0.03):
    """What smoothing promises, against the exact polygons of the same classes: valid
    geometries, no overlap (sum of areas = area of the union), no gap, the same outline and
    holes, agreement with the raster on at least 97 % of the pixels, no zone's area changed by
    more than `area_limit`, attributes measuring the smoothed geometry.

    Returns:
        The smoothed features, [(attributes, geometry)].
    """
    classes = read_raster(classes_raster)
    _, dx, _, _, _, dy = gdal.Open(str(classes_raster)).GetGeoTransform()
    pixel_m2 = abs(dx * dy)
    features = read_features(smoothed)
    geometries = [geometry for _, geometry in features]
    assert all(geometry.IsValid() for geometry in geometries)
    total = sum(geometry.GetArea() for geometry in geometries)
    union = union_of(geometries)
    assert union.GetArea() == pytest.approx(total, rel=1e-9)  # no overlap
    assert total == pytest.approx(np.count_nonzero(classes) * pixel_m2, rel=1e-9)  # no gap
    exact_union = union_of([geometry for _, geometry in read_features(exact)])
    assert union.SymDifference(exact_union).GetArea() < 1e-6 * total  # outline and holes kept
    assert hole_count(union) == hole_count(exact_union)
    agree = rasterized(smoothed, classes_raster, "class") == classes
    assert agree[classes > 0].mean() >= 0.97
    if per_class:
        assert [attributes["class"] for attributes, _ in features] == sorted(
            set(classes[classes > 0].tolist()))
        return features
    zones = numbered_zones(classes, classes > 0, connectivity)
    assert len(features) == zones.max()
    for attributes, geometry in features:
        exact_m2 = np.count_nonzero(zones == attributes["zone"]) * pixel_m2
        assert abs(geometry.GetArea() / exact_m2 - 1) <= area_limit + 1e-9
        assert attributes["area_m2"] == pytest.approx(geometry.GetArea(), rel=1e-9)
        assert attributes["perim_m"] == pytest.approx(geometry.Boundary().Length(), rel=1e-9)
    return features
