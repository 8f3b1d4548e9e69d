"""rasterclustering:kmeans run through processing.run, as the toolbox and models run it."""

import json

import numpy as np
import pytest
from helpers import (
    assert_metadata_complete,
    build_model,
    rasterized,
    read_raster,
    run_algorithm,
    small_regions_with_neighbours,
    styled_layer,
    vector_rows,
)
from osgeo import gdal, ogr
from raster_clustering.core.palette import class_colours

ALGORITHM = "rasterclustering:kmeans"
PARAMETERS = ["INPUT", "CLUSTERS", "AOI", "EXTENT", "CLIP", "SEED", "SAMPLE_SIZE", "STANDARDIZE",
              "CLIP_QUANTILES", "MIN_AREA", "CONNECTIVITY", "OUTPUT", "CENTROIDS", "STATISTICS",
              "DISTANCE", "ZONES_PER_CLASS", "ZONES"]


def run(parameters, tmp_path, name="classes"):
    defaults = {"OUTPUT": str(tmp_path / f"{name}.tif"),
                "CENTROIDS": str(tmp_path / f"{name}.json"),
                "STATISTICS": "TEMPORARY_OUTPUT"}
    return run_algorithm(ALGORITHM, {**defaults, **parameters})


def rasterized_ring(ring, like_raster):
    """Pixels whose centre is inside one ring (as a polygon of its own)."""
    polygon = ogr.Geometry(ogr.wkbPolygon)
    polygon.AddGeometry(ring)
    like = gdal.Open(str(like_raster))
    target = gdal.GetDriverByName("MEM").Create("", like.RasterXSize, like.RasterYSize, 1,
                                                gdal.GDT_Byte)
    target.SetGeoTransform(like.GetGeoTransform())
    layer_source = ogr.GetDriverByName("Memory").CreateDataSource("ring")
    layer = layer_source.CreateLayer("ring")
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(polygon)
    layer.CreateFeature(feature)
    gdal.RasterizeLayer(target, [1], layer, burn_values=[1])
    return target.GetRasterBand(1).ReadAsArray().astype(bool)


def test_metadata_is_complete(provider):
    from qgis.core import QgsApplication

    algorithm = provider.algorithm("kmeans")
    assert_metadata_complete(algorithm, display_name="Raster k-means clustering",
                             parameters=PARAMETERS,
                             outputs=["OUTPUT", "CENTROIDS", "STATISTICS", "DISTANCE",
                                      "ZONES"])
    # QGIS's own vector algorithm is "K-means clustering": the toolbox must tell them apart.
    native = QgsApplication.processingRegistry().algorithmById("native:kmeansclustering")
    assert algorithm.displayName() != native.displayName()


def test_water_land_split_on_nir_with_an_aoi_in_another_crs(provider, scene, tmp_path):
    result = run({"INPUT": [str(scene.nir)], "CLUSTERS": 2, "AOI": str(scene.aoi)}, tmp_path)
    labels = read_raster(result["OUTPUT"])
    truth_on_output = gdal.Warp("", str(scene.truth), format="MEM",
                                outputBounds=_bounds(result["OUTPUT"]), xRes=10, yRes=10)
    truth = truth_on_output.GetRasterBand(1).ReadAsArray()
    inside = rasterized(scene.aoi, result["OUTPUT"])
    assert np.all(labels[~inside] == 0)
    valid = inside & (truth > 0)
    water = truth == 1
    assert water[valid].any() and (~water[valid]).any()
    assert np.mean((labels[valid] == 1) == water[valid]) >= 0.99

    document = json.loads(open(result["CENTROIDS"]).read())
    assert list(document) == ["nir"] and len(document["nir"]) == 2
    rows = vector_rows(result["STATISTICS"])
    assert [row["class"] for row in rows] == [1, 2]
    for row in rows:
        assert row["pixel_count"] == int((labels == row["class"]).sum())
        assert row["area_m2"] == pytest.approx(row["pixel_count"] * 100.0)
        assert row["nir_min"] <= row["centre_nir"] <= row["nir_max"]


def _bounds(path):
    dataset = gdal.Open(str(path))
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    return (x0, y0 + dy * dataset.RasterYSize, x0 + dx * dataset.RasterXSize, y0)


def test_style_travels_with_the_file_and_renders_the_class_colours(provider, scene, tmp_path):
    from qgis.core import (
        QgsMapRendererSequentialJob,
        QgsMapSettings,
        QgsPalettedRasterRenderer,
    )
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    result = run({"INPUT": [str(scene.ndvi)], "CLUSTERS": 4}, tmp_path)
    layer = styled_layer(result["OUTPUT"])
    renderer = layer.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    centres = [entry[1][0] for entry in json.loads(open(result["CENTROIDS"]).read())["NDVI"]]
    colours = class_colours(4)
    for item, colour, centre in zip(renderer.classes(), colours, centres):
        assert item.color.getRgb()[:3] == colour
        assert item.label == f"{int(item.value)} · {centre:.3f}"

    labels = read_raster(result["OUTPUT"])
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(layer.extent())
    settings.setOutputSize(QSize(labels.shape[1], labels.shape[0]))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    rng = np.random.default_rng(0)
    rows, cols = np.nonzero(labels > 0)
    for index in rng.choice(len(rows), 50, replace=False):
        row, col = rows[index], cols[index]
        pixel = image.pixelColor(int(col), int(row)).getRgb()[:3]
        assert pixel == colours[labels[row, col] - 1]


def test_selected_features_only(provider, scene, tmp_path, qgis_new_project):
    from qgis.core import (
        QgsFeature,
        QgsGeometry,
        QgsProcessingFeatureSourceDefinition,
        QgsProject,
        QgsRectangle,
        QgsVectorLayer,
    )

    dataset = gdal.Open(str(scene.nir))
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    layer = QgsVectorLayer("Polygon?crs=EPSG:32633", "fields", "memory")
    features = []
    for col0, row0 in ((10, 10), (150, 150)):
        feature = QgsFeature()
        feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(
            x0 + col0 * dx, y0 + (row0 + 100) * dy, x0 + (col0 + 100) * dx, y0 + row0 * dy)))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    QgsProject.instance().addMapLayer(layer)
    layer.selectByIds([layer.getFeatures().__next__().id() + 1])
    source = QgsProcessingFeatureSourceDefinition(layer.id(), True)
    result = run({"INPUT": [str(scene.nir)], "CLUSTERS": 3, "AOI": source}, tmp_path)
    output = gdal.Open(result["OUTPUT"])
    assert (output.RasterXSize, output.RasterYSize) == (100, 100)
    assert output.GetGeoTransform()[0] == pytest.approx(x0 + 150 * dx)


def test_extent_in_another_crs_is_reprojected(provider, scene, tmp_path):
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsCoordinateTransform,
        QgsProject,
        QgsRectangle,
    )

    dataset = gdal.Open(str(scene.nir))
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    box = QgsRectangle(x0 + 50 * dx, y0 + 150 * dy, x0 + 150 * dx, y0 + 50 * dy)
    transform = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:32633"),
                                       QgsCoordinateReferenceSystem("EPSG:4326"),
                                       QgsProject.instance())
    geographic = transform.transformBoundingBox(box)
    extent = (f"{geographic.xMinimum()},{geographic.xMaximum()},{geographic.yMinimum()},"
              f"{geographic.yMaximum()} [EPSG:4326]")
    result = run({"INPUT": [str(scene.nir)], "CLUSTERS": 2, "EXTENT": extent}, tmp_path)
    output = gdal.Open(result["OUTPUT"])
    # The reprojected box's envelope is slightly larger than the original 100 x 100 pixels.
    assert 100 <= output.RasterXSize <= 104 and 100 <= output.RasterYSize <= 104


def test_multiband_scene_finds_the_true_classes(provider, scene, tmp_path):
    from scipy.optimize import linear_sum_assignment

    result = run({"INPUT": [str(scene.scene)], "CLUSTERS": 5, "SEED": 1}, tmp_path)
    labels = read_raster(result["OUTPUT"])
    truth = read_raster(scene.truth)
    valid = truth > 0
    assert np.array_equal(labels > 0, valid), "nodata of the scene is nodata of the output"
    table = np.zeros((6, 6))
    np.add.at(table, (labels[valid], truth[valid]), 1)
    rows, cols = linear_sum_assignment(-table)
    assert table[rows, cols].sum() / valid.sum() >= 0.95
    document = json.loads(open(result["CENTROIDS"]).read())
    assert document["features"] == list(scene.bands)


def test_bad_cluster_count_is_refused(provider, scene, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException):
        run({"INPUT": [str(scene.nir)], "CLUSTERS": 300}, tmp_path)


def test_output_over_an_input_is_refused(provider, scene, tmp_path, make_raster):
    from qgis.core import QgsProcessingException

    copy = make_raster("copy.tif", read_raster(scene.nir))
    before = copy.read_bytes()
    with pytest.raises(QgsProcessingException, match="one of the inputs"):
        run({"INPUT": [str(copy)], "CLUSTERS": 2, "OUTPUT": str(copy)}, tmp_path)
    assert copy.read_bytes() == before


def test_model_containing_kmeans_runs(provider, scene, tmp_path):
    """A model built as the graphical modeler builds it, proving modeler compatibility."""
    loaded = build_model(tmp_path / "zones.model3", ["rasters"], [
        ("kmeans", ALGORITHM, {"INPUT": ("model", "rasters"), "CLUSTERS": 3},
         ["OUTPUT", "CENTROIDS"])])
    result = run_algorithm(loaded, {
        "rasters": [str(scene.ndvi)], "kmeans:output": str(tmp_path / "model.tif"),
        "kmeans:centroids": str(tmp_path / "model.json")})
    labels = read_raster(result["kmeans:output"])
    assert set(np.unique(labels)) <= {0, 1, 2, 3} and (labels > 0).any()
    assert len(json.loads(open(result["kmeans:centroids"]).read())["NDVI"]) == 3


@pytest.mark.usefixtures("provider")
class TestRealData:
    def test_sentinel2_polygon_with_a_hole(self, shared_data, tmp_path):
        folder = shared_data / "sentinel2"
        image = folder / "S2_20210527_Aberystwyth_SR_10band_EPSG27700_10m.tif"
        aoi = folder / "aber_osgb_single_poly_hole.geojson"
        result = run({"INPUT": [str(image)], "CLUSTERS": 4, "AOI": str(aoi)}, tmp_path)
        labels = read_raster(result["OUTPUT"])
        inside = rasterized(aoi, result["OUTPUT"])
        assert np.all(labels[~inside] == 0) and np.all(labels[inside] > 0)
        source = ogr.Open(str(aoi))
        feature = source.GetLayer(0).GetNextFeature()
        polygon = feature.GetGeometryRef().Clone()
        if polygon.GetGeometryType() == ogr.wkbMultiPolygon:
            polygon = polygon.GetGeometryRef(0).Clone()
        assert polygon.GetGeometryCount() == 2, "an outer ring and a hole"
        hole_pixels = rasterized_ring(polygon.GetGeometryRef(1), result["OUTPUT"])
        assert hole_pixels.sum() > 100 and np.all(labels[hole_pixels] == 0)
        rows = vector_rows(result["STATISTICS"])
        assert sum(r["pixel_count"] for r in rows) == int(inside.sum())

    def test_rgb_byte_nodata_is_respected(self, shared_data, tmp_path):
        image = shared_data / "misc" / "RGB.byte.tif"
        result = run({"INPUT": [str(image)], "CLUSTERS": 5}, tmp_path)
        labels = read_raster(result["OUTPUT"])
        bands = gdal.Open(str(image)).ReadAsArray()
        nodata = np.any(bands == 0, axis=0)
        assert nodata.any()
        assert np.array_equal(labels == 0, nodata)

    def test_landsat_red_and_nir_as_two_layers(self, shared_data, tmp_path):
        """k-means's definition on the DN of two layers: every pixel takes the nearest centre in
        the standardized space the JSON describes, and every centre is the mean DN of its class
        (the crop's 378,081 pixels are fewer than SAMPLE_SIZE: the fit sees all of them)."""
        folder = shared_data / "landsat8-thermal"
        names = ["LC80200392015216LGN00_B4_crop", "LC80200392015216LGN00_B5_crop"]
        result = run({"INPUT": [str(folder / f"{name}.TIF") for name in names], "CLUSTERS": 3},
                     tmp_path)
        document = json.loads(open(result["CENTROIDS"]).read())
        assert document["features"] == names
        centres = np.array([centre for _, centre in document[", ".join(names)]])
        mean = np.array(document["standardize"]["mean"])
        std = np.array(document["standardize"]["std"])
        dn = np.stack([read_raster(folder / f"{name}.TIF") for name in names], axis=-1)
        pixels = dn.reshape(-1, 2).astype(np.float64)
        np.testing.assert_allclose(mean, pixels.mean(axis=0), rtol=1e-9)
        np.testing.assert_allclose(std, pixels.std(axis=0), rtol=1e-9)
        distances = ((((pixels - mean) / std)[:, None, :] - ((centres - mean) / std)) ** 2
                     ).sum(axis=2)
        labels = read_raster(result["OUTPUT"])
        assert labels.shape == (603, 627)
        np.testing.assert_array_equal(labels.ravel(), distances.argmin(axis=1) + 1)
        for number, row in enumerate(vector_rows(result["STATISTICS"]), start=1):
            members = pixels[labels.ravel() == number]
            assert row["pixel_count"] == len(members) > 0
            assert [row[f"{name}_mean"] for name in names] == pytest.approx(
                members.mean(axis=0), rel=1e-9)
            np.testing.assert_allclose(centres[number - 1], members.mean(axis=0), rtol=1e-3)

    def test_naip_dates_are_aligned_onto_the_first_grid(self, shared_data, tmp_path):
        files = sorted((shared_data / "naip-timeseries").glob("*.tif"))
        assert len(files) == 5
        result = run({"INPUT": [str(f) for f in files], "CLUSTERS": 5, "SAMPLE_SIZE": 50000},
                     tmp_path)
        output, first = gdal.Open(result["OUTPUT"]), gdal.Open(str(files[0]))
        assert output.GetGeoTransform() == first.GetGeoTransform()
        assert (output.RasterXSize, output.RasterYSize) == (first.RasterXSize, first.RasterYSize)
        document = json.loads(open(result["CENTROIDS"]).read())
        assert len(document["features"]) == 20
        labels = output.GetRasterBand(1).ReadAsArray()
        assert (labels > 0).mean() > 0.9


def test_min_area_sieves_the_zones(provider, scene, tmp_path):
    plain = run({"INPUT": [str(scene.ndvi)], "CLUSTERS": 5}, tmp_path, name="plain")
    sieved = run({"INPUT": [str(scene.ndvi)], "CLUSTERS": 5, "MIN_AREA": 2000,
                  "CONNECTIVITY": 4}, tmp_path, name="sieved")
    before, after = read_raster(plain["OUTPUT"]), read_raster(sieved["OUTPUT"])
    assert np.array_equal(before == 0, after == 0)
    def small_regions(labels):  # 2000 m² = 20 pixels of 100 m²
        return len(small_regions_with_neighbours(labels, labels != 0, connectivity=4,
                                                 min_size=20))
    assert small_regions(before) > 50 and small_regions(after) == 0
    assert open(plain["CENTROIDS"]).read() == open(sieved["CENTROIDS"]).read()
    rows = vector_rows(sieved["STATISTICS"])
    for row in rows:
        assert row["pixel_count"] == int((after == row["class"]).sum())
    dataset = gdal.Open(sieved["OUTPUT"])
    table = dataset.GetRasterBand(1).GetColorTable()
    assert table.GetColorEntry(5)[:3] == class_colours(5)[4]


def test_connectivity_other_than_4_or_8_is_refused(provider, scene, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="CONNECTIVITY must be 4 or 8"):
        run({"INPUT": [str(scene.ndvi)], "CLUSTERS": 3, "MIN_AREA": 2000, "CONNECTIVITY": 5},
            tmp_path)
