import json, time, numpy as np, pytest
from helpers import read_raster
from osgeo import gdal
@pytest.mark.parametrize("variant", ["a", "b"])
def test_scratch(provider, scene, tmp_path, variant):
    import processing
    from raster_clustering.core.synthetic_scene import make_time_series
    paths = make_time_series(tmp_path / "ts", dates=("2021-06-15",), size=300, seed=0)
    r = processing.run("rasterclustering:kmeans", {"INPUT": [str(x) for x in paths], "CLUSTERS": 5, "OUTPUT": str(tmp_path / "o.tif"), "CENTROIDS": str(tmp_path / "o.json"), "STATISTICS": "TEMPORARY_OUTPUT"})
    r = processing.run("rasterclustering:kmeans", {"INPUT": [str(x) for x in paths], "CLUSTERS": 5, "OUTPUT": str(tmp_path / "o2.tif"), "CENTROIDS": str(tmp_path / "o2.json"), "STATISTICS": "TEMPORARY_OUTPUT"})
