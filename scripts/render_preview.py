"""Render styled rasters to PNG with QGIS itself: the map, a legend and a title, as a print layout.

Usage: python render_preview.py OUTPUT.png TITLE RASTER [RASTER ...]
Each raster is loaded with its .qml (QGIS applies the style beside the file by default).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsLayoutExporter,
    QgsLayoutItemLabel,
    QgsLayoutItemLegend,
    QgsLayoutItemMap,
    QgsLayoutPoint,
    QgsLayoutSize,
    QgsPrintLayout,
    QgsProject,
    QgsRasterLayer,
    QgsUnitTypes,
)
from qgis.PyQt.QtGui import QFont  # noqa: E402


def render(png_path: str, title: str, raster_paths: list[str]) -> None:
    project = QgsProject.instance()
    layers = []
    for path in raster_paths:
        layer = QgsRasterLayer(path, os.path.splitext(os.path.basename(path))[0], "gdal")
        if not layer.isValid():
            raise SystemExit(f"cannot load {path}")
        project.addMapLayer(layer)
        layers.append(layer)
    layout = QgsPrintLayout(project)
    layout.initializeDefaults()
    page = layout.pageCollection().page(0)
    page.setPageSize(QgsLayoutSize(260, 170, QgsUnitTypes.LayoutMillimeters))

    label = QgsLayoutItemLabel(layout)
    label.setText(title)
    label.setFont(QFont("DejaVu Sans", 16))
    layout.addLayoutItem(label)
    label.attemptMove(QgsLayoutPoint(8, 5, QgsUnitTypes.LayoutMillimeters))
    label.attemptResize(QgsLayoutSize(240, 12, QgsUnitTypes.LayoutMillimeters))

    map_item = QgsLayoutItemMap(layout)
    map_item.setLayers(layers)
    map_item.setCrs(layers[0].crs())
    layout.addLayoutItem(map_item)
    map_item.attemptMove(QgsLayoutPoint(8, 20, QgsUnitTypes.LayoutMillimeters))
    extent = layers[0].extent()
    scale = 145 / max(extent.width(), extent.height())  # fit the map in a 145 mm square
    map_item.attemptResize(QgsLayoutSize(extent.width() * scale, extent.height() * scale,
                                         QgsUnitTypes.LayoutMillimeters))
    map_item.setExtent(layers[0].extent())

    legend = QgsLayoutItemLegend(layout)
    legend.setLinkedMap(map_item)
    legend.setTitle("Classes (class · centre)")
    layout.addLayoutItem(legend)
    legend.attemptMove(QgsLayoutPoint(160, 20, QgsUnitTypes.LayoutMillimeters))

    # Render to a QImage and save it with Qt: exportToImage would also try to georeference the
    # PNG through GDAL, which cannot update PNG files.
    image = QgsLayoutExporter(layout).renderPageToImage(0, dpi=110)
    if image.isNull() or not image.save(png_path, "PNG"):
        raise SystemExit(f"rendering {png_path} failed")


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    QgsApplication.setPrefixPath("/usr", True)
    application = QgsApplication([], False)
    application.initQgis()
    try:
        render(sys.argv[1], sys.argv[2], sys.argv[3:])
    finally:
        QgsProject.instance().clear()
    return 0


if __name__ == "__main__":
    sys.exit(main())
