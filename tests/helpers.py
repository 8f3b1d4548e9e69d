"""Small helpers shared by the tests: writing and reading rasters."""

from pathlib import Path


def write_raster(path, array, *, origin=(500000.0, 5800000.0), pixel_size=10.0, epsg=32633,
                 nodata=None, descriptions=None, crs_wkt=None):
    """Write a north-up GeoTIFF from an array (height, width) or (bands, height, width)."""
    import numpy as np
    from osgeo import gdal, osr

    data = np.asarray(array)
    if data.ndim == 2:
        data = data[None]
    gdal_type = gdal.GetDataTypeByName({"float64": "Float64", "float32": "Float32",
                                        "uint8": "Byte", "uint16": "UInt16", "int16": "Int16",
                                        "int32": "Int32", "uint32": "UInt32"}[str(data.dtype)])
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), data.shape[2], data.shape[1],
                                                   data.shape[0], gdal_type)
    dataset.SetGeoTransform((origin[0], pixel_size, 0, origin[1], 0, -pixel_size))
    if crs_wkt is None and epsg is not None:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(epsg)
        crs_wkt = srs.ExportToWkt()
    if crs_wkt:
        dataset.SetProjection(crs_wkt)
    for index in range(data.shape[0]):
        band = dataset.GetRasterBand(index + 1)
        band.WriteArray(data[index])
        if nodata is not None:
            band.SetNoDataValue(nodata)
        if descriptions:
            band.SetDescription(descriptions[index])
    dataset = None
    return Path(path)


def read_raster(path, band=1):
    """The array of one band of a raster."""
    from osgeo import gdal

    dataset = gdal.Open(str(path))
    assert dataset is not None, f"cannot open {path}"
    return dataset.GetRasterBand(band).ReadAsArray()


def label_regions(classes, valid, connectivity):
    """Oracle: an id (from 1) for each connected region of one class, 0 on invalid pixels.

    scipy.ndimage.label on each class in turn, with 4 (edges) or 8 (edges and corners)
    connectivity.
    """
    import numpy as np
    from scipy import ndimage

    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    labels = np.zeros(classes.shape, dtype=np.int64)
    next_id = 0
    for value in np.unique(classes[valid]):
        class_labels, count = ndimage.label(valid & (classes == value), structure)
        inside = class_labels > 0
        labels[inside] = class_labels[inside] + next_id
        next_id += count
    return labels


def small_regions_with_neighbours(classes, valid, *, connectivity, min_size, row_sizes=None):
    """Oracle of the sieve's promise: the ids of regions smaller than `min_size` that touch
    another valid region (an empty array when the promise holds).

    Sizes are pixel counts, or with `row_sizes` (the area of one pixel of each row) areas,
    compared with a relative tolerance of 1e-9.
    """
    import numpy as np

    labels = label_regions(classes, valid, connectivity)
    weights = np.ones(classes.shape) if row_sizes is None else np.broadcast_to(
        np.asarray(row_sizes, dtype=float)[:, None], classes.shape)
    sizes = np.bincount(labels.ravel(), weights=weights.ravel())
    small = sizes < min_size * (1 - 1e-9)
    small[0] = False
    shifted = [(labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])]
    if connectivity == 8:
        shifted += [(labels[:-1, :-1], labels[1:, 1:]), (labels[:-1, 1:], labels[1:, :-1])]
    offending = []
    for one, other in shifted:
        touching = (one != other) & (one > 0) & (other > 0)
        offending += [one[touching & small[one]], other[touching & small[other]]]
    return np.unique(np.concatenate(offending))
