"""What the reliability tests share beyond tests/helpers.py: feedback that records or cancels,
small inputs on a known grid, and finding files a run left behind."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from helpers import write_raster

ORIGIN = (500000.0, 5800000.0)  # UTM 33N: about 15° E, 52.3° N
PIXEL_M = 10.0
EPSG = 32633
LANDSAT = "LC80200392015216LGN00"  # the scene of shared_data/landsat8-thermal
OTHER_LANDSAT = "LC81060712016134LGN00"  # the scene of shared_data/landsat8


_feedback_class = None


def recording_feedback(*, cancel_at_progress_report: int | None = None):
    """A QgsProcessingFeedback keeping its log (infos, warnings, errors) and progress values.

    Args:
        cancel_at_progress_report: cancel when this many progress reports have arrived (1: at
            the first one); None never cancels.
    """
    global _feedback_class
    if _feedback_class is None:
        from qgis.core import QgsProcessingFeedback

        class RecordingFeedback(QgsProcessingFeedback):
            def __init__(self):
                super().__init__()
                self.infos, self.warnings, self.errors, self.progress = [], [], [], []
                self.cancel_at = None
                #: Progress reports that arrived after the cancel.
                self.reports_after_cancel = 0
                self.progressChanged.connect(self._on_progress)

            def _on_progress(self, value):
                if self.isCanceled():
                    self.reports_after_cancel += 1
                self.progress.append(value)
                if self.cancel_at is not None and len(self.progress) >= self.cancel_at:
                    self.cancel()

            def pushInfo(self, info):  # noqa: N802 - QGIS's name
                self.infos.append(info)
                super().pushInfo(info)

            def pushWarning(self, warning):  # noqa: N802 - QGIS's name
                self.warnings.append(warning)
                super().pushWarning(warning)

            def reportError(self, error, fatalError=False):  # noqa: N802, N803 - QGIS's names
                self.errors.append(error)
                super().reportError(error, fatalError)

            @property
            def log(self) -> str:
                return "\n".join(self.infos + self.warnings + self.errors)

        _feedback_class = RecordingFeedback
    feedback = _feedback_class()
    feedback.cancel_at = cancel_at_progress_report
    return feedback


def raster(folder: Path, name: str, array, **options) -> Path:
    """A north-up GeoTIFF on the shared test grid (10 m pixels, EPSG:32633) unless told."""
    options.setdefault("origin", ORIGIN)
    options.setdefault("pixel_size", PIXEL_M)
    options.setdefault("epsg", EPSG)
    return write_raster(folder / name, array, **options)


def three_levels(height: int = 30, width: int = 30, *, seed: int = 0) -> np.ndarray:
    """Float32 values near 0.1, 0.5 or 0.9 in 5 × 5 patches (noise ±0.02): three clear classes."""
    rng = np.random.default_rng(seed)
    levels = np.array([0.1, 0.5, 0.9], dtype=np.float32)
    patches = rng.integers(0, 3, size=(-(-height // 5), -(-width // 5)))
    level = np.kron(patches, np.ones((5, 5), dtype=int))[:height, :width]
    noise = rng.uniform(-0.02, 0.02, size=(height, width))
    return (levels[level] + noise).astype(np.float32)


def memory_polygons(wkts, *, epsg: int = EPSG):
    """A memory polygon layer with one feature per WKT (None: a feature without geometry)."""
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    layer = QgsVectorLayer(f"Polygon?crs=EPSG:{epsg}", "area", "memory")
    features = []
    for wkt in wkts:
        feature = QgsFeature(layer.fields())
        if wkt is not None:
            feature.setGeometry(QgsGeometry.fromWkt(wkt))
        features.append(feature)
    assert layer.dataProvider().addFeatures(features)[0]
    assert layer.featureCount() == len(wkts)
    return layer


def box_wkt(xmin: float, ymin: float, xmax: float, ymax: float) -> str:
    return f"POLYGON(({xmin} {ymin},{xmax} {ymin},{xmax} {ymax},{xmin} {ymax},{xmin} {ymin}))"


def virtual_raster_layer(source: Path):
    """A valid raster layer of QGIS's 'virtualraster' provider (QGIS's own raster calculator
    on the fly), which GDAL cannot open: "source" × 1."""
    from qgis.core import QgsRasterDataProvider, QgsRasterLayer

    base = QgsRasterLayer(str(source), "base", "gdal")
    assert base.isValid()
    parameters = QgsRasterDataProvider.VirtualRasterParameters()
    parameters.crs = base.crs()
    parameters.extent = base.extent()
    parameters.width, parameters.height = base.width(), base.height()
    parameters.formula = '"base@1" * 1'
    layer_input = QgsRasterDataProvider.VirtualRasterInputLayers()
    layer_input.name, layer_input.uri, layer_input.provider = "base", str(source), "gdal"
    parameters.rInputLayers = [layer_input]
    uri = QgsRasterDataProvider.encodeVirtualRasterProviderUri(parameters)
    layer = QgsRasterLayer(uri, "on the fly", "virtualraster")
    assert layer.isValid() and layer.providerType() == "virtualraster"
    return layer


def snapshot(folder: Path) -> set[str]:
    """Every file and folder under `folder` (hidden ones too), as relative paths."""
    if not folder.exists():
        return set()
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*")}


def left_behind(folder: Path, before: set[str]) -> set[str]:
    """What appeared under `folder` since `before`, except the statistics GDAL or QGIS cache
    beside an input they opened (<input>.aux.xml), which is not an output of the run."""
    added = snapshot(folder) - before
    return {name for name in added
            if not (name.endswith(".aux.xml") and name[:-len(".aux.xml")] in before)}


def processing_temp_folder() -> Path:
    from qgis.core import QgsProcessingUtils

    return Path(QgsProcessingUtils.tempFolder())


class ExampleTimeoutError(Exception):
    """An example of a fuzz test ran longer than its time limit (a hang)."""


@contextmanager
def time_limit(seconds: float):
    """Fail with ExampleTimeoutError when the block runs longer than `seconds` (SIGALRM, main
    thread only; a C call that never returns to Python is still caught when it does)."""

    def expire(signum, frame):
        raise ExampleTimeoutError(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
