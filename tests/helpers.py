"""Helpers shared by the tests: rasters and files, oracles (handbook formulas, region labels),
running algorithms and building models as QGIS does, the checks every algorithm passes."""

import re
import shutil
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


def three_level_field(seed=0, shape=(120, 150), noise=0.04):
    """Float32 NDVI-like values: three levels (0.15, 0.45, 0.8) in vertical thirds, with Gaussian
    noise of this standard deviation."""
    import numpy as np

    rng = np.random.default_rng(seed)
    levels = np.array([0.15, 0.45, 0.8])
    zone = (np.arange(shape[1])[None, :] * 3 // shape[1]).repeat(shape[0], axis=0)
    return (levels[zone] + rng.normal(0, noise, shape)).astype(np.float32)


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


def file_names(folder):
    """The paths of the files below `folder`, relative to it, sorted; [] when it is absent."""
    folder = Path(folder)
    if not folder.exists():
        return []
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*")
                  if path.is_file())


def write_variant(source, target, *replacements):
    """Copy a real metadata file with exact text replacements (each (old, new) must occur)."""
    text = Path(source).read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, f"{old!r} not in {Path(source).name}"
        text = text.replace(old, new)
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_text(text, encoding="utf-8")
    return Path(target)


def mtl_number(mtl, key):
    """A value of an MTL text file, read with a regex independent of the core's parser."""
    match = re.search(rf"^\s*{key}\s*=\s*([-+0-9.Ee]+)\s*$", Path(mtl).read_text(),
                      re.MULTILINE)
    assert match, f"{key} not in {Path(mtl).name}"
    return float(match.group(1))


def toa_reflectance(dn, mult, add, sun_elevation_deg):
    """USGS Landsat 8 handbook: ρ = (M·Q + A) / sin(θ_SE)."""
    import math

    return (mult * dn.astype("float64") + add) / math.sin(math.radians(sun_elevation_deg))


def handbook_ndvi(red, nir):
    """(nir - red) / (nir + red) in float64, NaN where undefined."""
    import numpy as np

    red, nir = red.astype(np.float64), nir.astype(np.float64)
    with np.errstate(all="ignore"):
        ndvi = (nir - red) / (nir + red)
    ndvi[~np.isfinite(ndvi)] = np.nan
    return ndvi


def landsat_toa_ndvi(folder, scene):
    """NDVI of the TOA reflectance of a Landsat 8 scene's B4 and B5 crops (`<scene>_B4_crop.TIF`)
    by the handbook, with the coefficients of `<scene>_MTL.txt`; NaN where a DN is 0 (fill)."""
    import numpy as np

    mtl = Path(folder) / f"{scene}_MTL.txt"
    sun_elevation_deg = mtl_number(mtl, "SUN_ELEVATION")
    reflectance = []
    for band in (4, 5):
        dn = read_raster(Path(folder) / f"{scene}_B{band}_crop.TIF")
        rho = toa_reflectance(dn, mtl_number(mtl, f"REFLECTANCE_MULT_BAND_{band}"),
                              mtl_number(mtl, f"REFLECTANCE_ADD_BAND_{band}"), sun_elevation_deg)
        rho[dn == 0] = np.nan
        reflectance.append(rho)
    return handbook_ndvi(*reflectance)


def write_safe_tree(root, metadata_source, metadata_name, band_relative):
    """A minimal Sentinel-2 .SAFE folder under `root`: a copy of real product metadata named
    `metadata_name` and an empty band file at `band_relative`; returns the band's path."""

    product = Path(root) / "PRODUCT.SAFE"
    product.mkdir(parents=True)
    shutil.copy(metadata_source, product / metadata_name)
    band = product / band_relative
    band.parent.mkdir(parents=True)
    band.write_bytes(b"")
    return band


def rasterized(vector_path, like_raster, attribute=None):
    """An independent mask of a polygon file on a raster's grid (GDAL, pixel centres); with
    `attribute`, that attribute's (integer) values burnt instead, 0 outside the polygons."""
    from osgeo import gdal, ogr

    like = gdal.Open(str(like_raster))
    target = gdal.GetDriverByName("MEM").Create("", like.RasterXSize, like.RasterYSize, 1,
                                                gdal.GDT_Int32 if attribute else gdal.GDT_Byte)
    target.SetGeoTransform(like.GetGeoTransform())
    target.SetProjection(like.GetProjection())
    if attribute:
        # The first layer: a styled GeoPackage also holds its style table.
        source = ogr.Open(str(vector_path))
        layer = source.GetLayer(0).GetName()
        assert gdal.Rasterize(target, str(vector_path), attribute=attribute,
                              layers=[layer]) is not None
        return target.GetRasterBand(1).ReadAsArray()
    gdal.Rasterize(target, str(vector_path), burnValues=[1])
    return target.GetRasterBand(1).ReadAsArray().astype(bool)


def write_lonlat_square(path, bounds, epsg):
    """A GeoJSON polygon in EPSG:4326 of the square `bounds` (xmin, ymin, xmax, ymax) in the CRS
    `epsg`, its corners reprojected."""
    from osgeo import ogr, osr

    projected, wgs84 = osr.SpatialReference(), osr.SpatialReference()
    projected.ImportFromEPSG(epsg)
    wgs84.ImportFromEPSG(4326)
    wgs84.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    transform = osr.CoordinateTransformation(projected, wgs84)
    x0, y0, x1, y1 = bounds
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)):
        lon, lat, _ = transform.TransformPoint(x, y)
        ring.AddPoint_2D(lon, lat)
    polygon = ogr.Geometry(ogr.wkbPolygon)
    polygon.AddGeometry(ring)
    source = ogr.GetDriverByName("GeoJSON").CreateDataSource(str(path))
    layer = source.CreateLayer("field", wgs84, ogr.wkbPolygon)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(polygon)
    layer.CreateFeature(feature)
    source = None
    return Path(path)


# ------------------------------------------------------------------------ QGIS (tests/algorithms)

def run_algorithm(algorithm, parameters, feedback=None, context=None):
    """processing.run; a failure is re-raised as a new exception without its traceback.

    The traceback holds the context processing.run made around a Python feedback subclass;
    kept alive by pytest.raises, the garbage collector may later free the two in an order that
    crashes the interpreter (seen with every algorithm of the plugin).
    """
    import processing
    from qgis.core import QgsProcessingException

    try:
        return processing.run(algorithm, parameters, feedback=feedback, context=context)
    except QgsProcessingException as error:
        message = str(error)
    raise QgsProcessingException(message)


def loading_output(path):
    """(a processing context of the current project, an output definition of `path` loaded in
    it on completion): what a dialog's output with "Open output file" submits."""
    from qgis.core import QgsProcessingContext, QgsProcessingOutputLayerDefinition, QgsProject

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    return context, QgsProcessingOutputLayerDefinition(str(path), QgsProject.instance())


def vector_rows(layer):
    """The attribute rows of a vector layer, or of the vector file at a path, as dicts."""
    from qgis.core import QgsVectorLayer

    if not isinstance(layer, QgsVectorLayer):
        layer = QgsVectorLayer(str(layer))
    assert layer.isValid(), layer.source()
    names = layer.fields().names()
    return [dict(zip(names, feature.attributes())) for feature in layer.getFeatures()]


def styled_layer(raster_path, qml_path=None):
    """The raster as a layer with a .qml (by default the one beside it) loaded, as QGIS loads a
    style; keep the layer while using its renderer, which it owns."""
    from qgis.core import QgsRasterLayer

    layer = QgsRasterLayer(str(raster_path), Path(raster_path).stem, "gdal")
    message, loaded = layer.loadNamedStyle(str(qml_path or Path(raster_path).with_suffix(".qml")))
    assert loaded, message
    return layer


def assert_metadata_complete(algorithm, *, display_name, parameters, outputs):
    """What every algorithm offers the toolbox: its name, a group, its own icon, the parameters
    in order, each with help and named in the help text, and the outputs in order."""
    assert algorithm.displayName() == display_name
    assert algorithm.group() and algorithm.groupId() and not algorithm.icon().isNull()
    assert algorithm.svgIconPath().endswith(f"{algorithm.name()}.svg")
    assert [p.name() for p in algorithm.parameterDefinitions()] == list(parameters)
    for parameter in algorithm.parameterDefinitions():
        assert parameter.help(), f"{parameter.name()} has no help"
        assert parameter.name() in algorithm.shortHelpString()
    assert [o.name() for o in algorithm.outputDefinitions()] == list(outputs)


def build_model(path, inputs, steps):
    """A model as the graphical modeler builds it, saved to and loaded back from a .model3 file.

    Args:
        path: the .model3 file to write.
        inputs: names of the model's raster-list inputs.
        steps: (child id, algorithm id, {parameter: ("model", input name) | ("child", child id,
            output name) | static value}, [names of the child's outputs the model exposes, as
            "<child id>:<name in lower case>"]) for each child algorithm, in order.
    """
    from qgis.core import (
        QgsProcessing,
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterMultipleLayers,
    )

    model = QgsProcessingModelAlgorithm(Path(path).stem, "Tests")
    for name in inputs:
        model.addModelParameter(QgsProcessingParameterMultipleLayers(
            name, name, QgsProcessing.TypeRaster), QgsProcessingModelParameter(name))
    for child_id, algorithm_id, sources, exposed in steps:
        child = QgsProcessingModelChildAlgorithm(algorithm_id)
        child.setChildId(child_id)
        for name, source in sources.items():
            if isinstance(source, tuple) and source[0] == "model":
                value = QgsProcessingModelChildParameterSource.fromModelParameter(source[1])
            elif isinstance(source, tuple) and source[0] == "child":
                value = QgsProcessingModelChildParameterSource.fromChildOutput(source[1],
                                                                               source[2])
            else:
                value = QgsProcessingModelChildParameterSource.fromStaticValue(source)
            child.addParameterSources(name, [value])
        outputs = {}
        for name in exposed:
            output = QgsProcessingModelOutput(name.lower())
            output.setChildOutputName(name)
            outputs[name.lower()] = output
        child.setModelOutputs(outputs)
        model.addChildAlgorithm(child)
    assert model.toFile(str(path))
    loaded = QgsProcessingModelAlgorithm()
    assert loaded.fromFile(str(path))
    return loaded
