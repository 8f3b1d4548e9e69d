"""Issue 7: a raster of more than 2³¹ pixels, described by a VRT over a small file.

Decided behaviour (testable in seconds, documented here and in the report):
- With an area (EXTENT or AOI), only the area's window is read: k-means, choose-k and
  apply-centroids on a 200 × 200 extent of a 46341 × 46341 raster take about a second.
- Without an area, every algorithm streams the whole raster block by block; nothing is refused
  for its size and nothing is allocated for the whole raster. A full pass over 2³¹ pixels takes
  minutes, so here the runs are cancelled after a few blocks: they stop at once, leave nothing
  behind, and the process's peak memory grows by far less than one band of the raster (8.6 GB
  as float32).
"""

from __future__ import annotations

import resource
import time

import numpy as np
import pytest
from helpers import read_raster, run_algorithm
from osgeo import gdal
from reliability_tools import (
    EPSG,
    ORIGIN,
    PIXEL_M,
    left_behind,
    raster,
    recording_feedback,
    snapshot,
    three_levels,
)

pytestmark = pytest.mark.usefixtures("provider")

SIDE = 46341  # SIDE² = 2 147 488 281 > 2³¹
SOURCE_SIDE = 200
SOURCE_OFFSET = (20000, 30000)  # column, row of the small file inside the huge grid
NODATA = -9999.0


def huge_vrt(folder, values: np.ndarray, name: str, data_type: str) -> str:
    """A SIDE × SIDE VRT, nodata everywhere except a SOURCE_SIDE² window read from a file."""
    source = raster(folder, f"{name}_source.tif", values, nodata=NODATA)
    srs = gdal.Open(str(source)).GetProjection()
    column, row = SOURCE_OFFSET
    text = f"""<VRTDataset rasterXSize="{SIDE}" rasterYSize="{SIDE}">
  <SRS>{srs.replace('"', "&quot;")}</SRS>
  <GeoTransform>{ORIGIN[0]}, {PIXEL_M}, 0, {ORIGIN[1]}, 0, {-PIXEL_M}</GeoTransform>
  <VRTRasterBand dataType="{data_type}" band="1">
    <NoDataValue>{NODATA if data_type != "Byte" else 0}</NoDataValue>
    <SimpleSource>
      <SourceFilename relativeToVRT="1">{source.name}</SourceFilename>
      <SourceBand>1</SourceBand>
      <SrcRect xOff="0" yOff="0" xSize="{SOURCE_SIDE}" ySize="{SOURCE_SIDE}"/>
      <DstRect xOff="{column}" yOff="{row}" xSize="{SOURCE_SIDE}" ySize="{SOURCE_SIDE}"/>
    </SimpleSource>
  </VRTRasterBand>
</VRTDataset>
"""
    path = folder / f"{name}.vrt"
    path.write_text(text)
    dataset = gdal.Open(str(path))
    assert dataset.RasterXSize * dataset.RasterYSize > 2**31
    return str(path)


@pytest.fixture(scope="module")
def huge(tmp_path_factory):
    folder = tmp_path_factory.mktemp("huge")
    values = three_levels(SOURCE_SIDE, SOURCE_SIDE)
    return {"folder": folder, "values": values,
            "float": huge_vrt(folder, values, "huge_float", "Float32"),
            "classes": huge_vrt(folder, (np.digitize(values, [0.3, 0.7]) + 1).astype(np.uint8),
                                "huge_classes", "Byte")}


def source_extent(margin_pixels: int = 0) -> str:
    column, row = SOURCE_OFFSET
    xmin = ORIGIN[0] + (column - margin_pixels) * PIXEL_M
    ymax = ORIGIN[1] - (row - margin_pixels) * PIXEL_M
    size = (SOURCE_SIDE + 2 * margin_pixels) * PIXEL_M
    return f"{xmin},{xmin + size},{ymax - size},{ymax} [EPSG:{EPSG}]"


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("algorithm", ["kmeans", "applycentroids", "choosek"])
def test_an_extent_on_the_huge_raster_reads_only_its_window(huge, algorithm, tmp_path):
    out = tmp_path
    parameters = {"INPUT": [huge["float"]], "EXTENT": source_extent(margin_pixels=5)}
    if algorithm == "kmeans":
        parameters.update(CLUSTERS=3, OUTPUT=str(out / "out.tif"),
                          CENTROIDS=str(out / "out.json"), STATISTICS=str(out / "s.csv"))
    elif algorithm == "applycentroids":
        (out / "centres.json").write_text('{"v": [[1, [0.1]], [2, [0.5]], [3, [0.9]]]}')
        parameters.update(CENTROIDS=str(out / "centres.json"), OUTPUT=str(out / "out.tif"),
                          STATISTICS=str(out / "s.csv"))
    else:
        parameters.update(K_MIN=2, K_MAX=4, SAMPLE_SIZE=2000, TABLE=str(out / "scores.csv"),
                          REPORT=str(out / "report.html"))
    start = time.monotonic()
    result = run_algorithm(f"rasterclustering:{algorithm}", parameters, recording_feedback())
    assert time.monotonic() - start < 20
    if algorithm == "choosek":
        assert result["RECOMMENDED_K"] == 3
        return
    labels = read_raster(result["OUTPUT"])
    assert labels.shape == (SOURCE_SIDE + 10, SOURCE_SIDE + 10)
    expected = np.zeros_like(labels)
    expected[5:-5, 5:-5] = np.digitize(huge["values"], [0.3, 0.7]) + 1
    np.testing.assert_array_equal(labels, expected)


@pytest.mark.parametrize("algorithm", ["kmeans", "bandmath", "sieve"])
def test_the_whole_huge_raster_is_streamed_and_cancellable(huge, algorithm, tmp_path,
                                                           monkeypatch):
    from qgis.core import QgsProcessingException

    feedback = recording_feedback()
    reads = []
    original = gdal.Band.ReadAsArray

    def read_and_cancel_after_three_blocks(band, *args, **kwargs):
        reads.append(args[2:4] if len(args) >= 4 else None)
        if len(reads) >= 3:
            feedback.cancel()
        return original(band, *args, **kwargs)

    monkeypatch.setattr(gdal.Band, "ReadAsArray", read_and_cancel_after_three_blocks)
    parameters = {
        "kmeans": {"INPUT": [huge["float"]], "CLUSTERS": 3, "CENTROIDS": str(tmp_path / "o.json"),
                   "STATISTICS": str(tmp_path / "s.csv")},
        "bandmath": {"INPUT": [huge["float"]], "EXPRESSION": "B1 * 2"},
        "sieve": {"INPUT": huge["classes"], "MIN_AREA": 1000},
    }[algorithm]
    if algorithm == "sieve":  # GDAL's C sieve reads without the bindings: cancel on progress
        feedback.progressChanged.connect(lambda value: feedback.cancel())
    before = snapshot(tmp_path)
    peak_before = peak_memory_mb()
    start = time.monotonic()
    with pytest.raises(QgsProcessingException, match="[Cc]ancel"):
        run_algorithm(f"rasterclustering:{algorithm}",
                      {**parameters, "OUTPUT": str(tmp_path / "out.tif")}, feedback)
    assert time.monotonic() - start < 30
    assert peak_memory_mb() - peak_before < 1500
    assert len(reads) <= 4 and all(size is None or size[0] * size[1] < SIDE * 1024
                                   for size in reads), reads
    assert left_behind(tmp_path, before) == set()
