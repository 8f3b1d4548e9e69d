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
