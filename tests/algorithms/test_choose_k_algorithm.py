"""rasterclustering:choosek run through processing.run, alone and feeding k-means in a model."""

import xml.etree.ElementTree as ElementTree
from html.parser import HTMLParser

import numpy as np
import pytest
from helpers import assert_metadata_complete, build_model, read_raster, run_algorithm, vector_rows

ALGORITHM = "rasterclustering:choosek"
PARAMETERS = ["INPUT", "AOI", "EXTENT", "K_MIN", "K_MAX", "SAMPLE_SIZE", "STANDARDIZE", "SEED",
              "CALINSKI_HARABASZ", "TABLE", "REPORT"]
SVG = "{http://www.w3.org/2000/svg}"


def run(parameters, tmp_path, name="scores"):
    return run_algorithm(ALGORITHM, {"TABLE": str(tmp_path / f"{name}.gpkg"),
                                     "REPORT": str(tmp_path / f"{name}.html"), **parameters})


def four_blobs(make_raster):
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    quarter = (np.arange(60)[:, None] // 30) * 2 + (np.arange(80)[None, :] // 40)
    bands = centres[quarter].transpose(2, 0, 1) + rng.normal(0, 0.03, (2, 60, 80))
    return make_raster("blobs.tif", bands.astype(np.float32), descriptions=["x", "y"])


def test_metadata_is_complete(provider):
    algorithm = provider.algorithm("choosek")
    assert_metadata_complete(algorithm, display_name="Choose the number of clusters",
                             parameters=PARAMETERS, outputs=["TABLE", "REPORT", "RECOMMENDED_K"])
    assert algorithm.outputDefinition("RECOMMENDED_K").type() == "outputNumber"
    defaults = {p.name(): p.defaultValue() for p in algorithm.parameterDefinitions()}
    assert (defaults["K_MIN"], defaults["K_MAX"], defaults["SAMPLE_SIZE"]) == (2, 10, 10000)


def test_synthetic_scene_recommends_its_five_classes(provider, scene, tmp_path):
    result = run({"INPUT": [str(scene.scene)], "SAMPLE_SIZE": 2000, "K_MAX": 8}, tmp_path)
    assert result["RECOMMENDED_K"] == 5
    rows = vector_rows(result["TABLE"])
    assert [row["k"] for row in rows] == list(range(2, 9))
    assert [row["is_recommended"] for row in rows] == [int(k == 5) for k in range(2, 9)]
    assert sum(row["is_elbow"] for row in rows) == 1
    inertias = [row["inertia"] for row in rows]
    assert all(b < a for a, b in zip(inertias, inertias[1:]))
    assert max(rows, key=lambda row: row["silhouette"])["k"] == 5
    assert "calinski_harabasz" not in rows[0]

    text = open(result["REPORT"], encoding="utf-8").read()
    tags = []
    parser = HTMLParser()
    parser.handle_starttag = lambda tag, attrs: tags.append(tag)
    parser.feed(text)
    assert tags.count("svg") == 2
    root = ElementTree.fromstring(text.split("\n", 1)[1])
    for svg in root.findall(f".//{SVG}svg"):
        points = svg.find(f"{SVG}polyline").get("points").split()
        assert len(points) == 7
        mark = svg.find(f"{SVG}circle[@class='recommended']")
        assert f"{mark.get('cx')},{mark.get('cy')}" == points[5 - 2]
    assert root.find(".//*[@id='recommended-k']").text == "5"


def test_four_blobs_and_calinski_harabasz(provider, tmp_path, make_raster):
    result = run({"INPUT": [str(four_blobs(make_raster))], "SAMPLE_SIZE": 1000,
                  "CALINSKI_HARABASZ": True, "K_MIN": 3, "K_MAX": 6}, tmp_path)
    assert result["RECOMMENDED_K"] == 4
    rows = vector_rows(result["TABLE"])
    assert [row["k"] for row in rows] == [3, 4, 5, 6]
    assert max(rows, key=lambda row: row["calinski_harabasz"])["k"] == 4
    root = ElementTree.fromstring(open(result["REPORT"], encoding="utf-8").read()
                                  .split("\n", 1)[1])
    assert len(root.findall(f".//{SVG}svg")) == 3


def test_one_band_with_an_aoi_in_another_crs(provider, scene, tmp_path):
    from osgeo import gdal

    result = run({"INPUT": [str(scene.nir)], "AOI": str(scene.aoi), "SAMPLE_SIZE": 1000,
                  "K_MAX": 5}, tmp_path)
    assert result["RECOMMENDED_K"] == 2  # water and land
    # The inertia of one feature is the exact optimum over every valid pixel inside the AOI:
    # count those independently (GDAL rasterizes the EPSG:4326 polygon onto the raster grid).
    like = gdal.Open(str(scene.nir))
    target = gdal.GetDriverByName("MEM").Create("", like.RasterXSize, like.RasterYSize, 1,
                                                gdal.GDT_Byte)
    target.SetGeoTransform(like.GetGeoTransform())
    target.SetProjection(like.GetProjection())
    gdal.Rasterize(target, str(scene.aoi), burnValues=[1])
    inside = target.GetRasterBand(1).ReadAsArray().astype(bool)
    n_pixels = int((inside & (read_raster(scene.nir) != scene.nodata)).sum())
    text = open(result["REPORT"], encoding="utf-8").read()
    assert f"exact 1-D k-means optimum over all {n_pixels:,} valid pixels" in text


def test_same_seed_same_table(provider, scene, tmp_path):
    options = {"INPUT": [str(scene.scene)], "SAMPLE_SIZE": 500, "K_MAX": 4, "SEED": 9}
    first = run(options, tmp_path, name="a")
    second = run(options, tmp_path, name="b")
    assert vector_rows(first["TABLE"]) == vector_rows(second["TABLE"])


@pytest.mark.parametrize("options, message", [
    ({"K_MIN": 6, "K_MAX": 4}, "K_MIN"),
    ({"K_MAX": 200, "SAMPLE_SIZE": 150}, "SAMPLE_SIZE"),
])
def test_bad_ranges_are_refused(provider, scene, tmp_path, options, message):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match=message):
        run({"INPUT": [str(scene.ndvi)], **options}, tmp_path)
    assert not (tmp_path / "scores.html").exists()


def test_model_feeds_the_recommended_k_to_kmeans(provider, tmp_path, make_raster):
    """choosek -> kmeans, CLUSTERS from RECOMMENDED_K, built as the graphical modeler builds it."""
    loaded = build_model(tmp_path / "auto_zones.model3", ["rasters"], [
        ("choosek", ALGORITHM, {"INPUT": ("model", "rasters"), "SAMPLE_SIZE": 1000}, []),
        ("kmeans", "rasterclustering:kmeans",
         {"INPUT": ("model", "rasters"), "CLUSTERS": ("child", "choosek", "RECOMMENDED_K")},
         ["OUTPUT"]),
    ])

    result = run_algorithm(loaded, {"rasters": [str(four_blobs(make_raster))],
                                    "kmeans:output": str(tmp_path / "zones.tif")})
    labels = read_raster(result["kmeans:output"])
    assert set(np.unique(labels)) == {1, 2, 3, 4}
    # The four quarters are the four classes.
    quarters = [labels[:30, :40], labels[:30, 40:], labels[30:, :40], labels[30:, 40:]]
    assert len({int(np.bincount(q.ravel()).argmax()) for q in quarters}) == 4
