"""Dialog widgets of the plugin's own: loaded by the Processing GUI only, never headless."""

from processing.gui.NumberInputPanel import ModelerNumberInputPanel
from processing.gui.wrappers import DIALOG_MODELER, WidgetWrapper
from qgis.PyQt.QtWidgets import QComboBox


class ConnectivityWidgetWrapper(WidgetWrapper):
    """CONNECTIVITY as a choice of 4 or 8 in the dialog and batch table (a spin box would offer
    5–7); the value stays the number scripts and qgis_process pass. The modeler keeps QGIS's
    number panel, so a model input can feed it."""

    LABELS = {4: "4 — pixels sharing a side", 8: "8 — also pixels touching at a corner"}

    def createWidget(self):
        if self.dialogType == DIALOG_MODELER:
            return ModelerNumberInputPanel(self.parameterDefinition(), self.dialog)
        combo = QComboBox()
        for connectivity, label in self.LABELS.items():
            combo.addItem(self.tr(label), connectivity)
        combo.currentIndexChanged.connect(lambda: self.widgetValueHasChanged.emit(self))
        return combo

    def setValue(self, value):
        if self.dialogType == DIALOG_MODELER:
            self.widget.setValue(value)
            return
        try:
            index = self.widget.findData(int(float(value)))
        except (TypeError, ValueError):
            return
        if index >= 0:
            self.widget.setCurrentIndex(index)

    def value(self):
        if self.dialogType == DIALOG_MODELER:
            return self.widget.getValue()
        return self.widget.currentData()

