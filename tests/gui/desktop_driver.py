"""Runs inside the QGIS desktop (`qgis --code`): drives the plugin's dialogs, batch mode and the
modeler as a person does, and writes what it saw to a JSON file that tests/gui asserts on.

The plan (a JSON file named by RASTERCLUSTERING_DESKTOP_PLAN) says what to fill in; this script
judges nothing. The results file is rewritten after every stage, so a hang shows where it was.
"""

import gc
import json
import os
import time
import traceback

import processing
from processing.gui.AlgorithmDialog import AlgorithmDialog
from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog
from processing.modeler.ModelerDialog import ModelerDialog
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsMapLayerType,
    QgsProcessingContext,
    QgsProcessingModelAlgorithm,
    QgsProject,
    QgsProviderRegistry,
    QgsRectangle,
)
from qgis.PyQt.QtCore import QEventLoop, QSize, Qt, QTimer
from qgis.PyQt.QtGui import QTextCursor
from qgis.PyQt.QtWidgets import (
    QAction,
    QApplication,
    QDialog,
    QDockWidget,
    QMessageBox,
    QTextBrowser,
    QTextEdit,
)
from qgis.utils import active_plugins, iface

PROVIDER_ID = "rasterclustering"
PLAN = json.loads(open(os.environ["RASTERCLUSTERING_DESKTOP_PLAN"], encoding="utf-8").read())
RESULTS = {"stage": "started", "finished": False, "popups": [], "message_log": []}
WINDOW_SIZE = QSize(1280, 800)  # a small laptop screen: what fits there fits anywhere


def save_results():
    with open(PLAN["results"], "w", encoding="utf-8") as file:
        json.dump(RESULTS, file, indent=1, default=str)


# --- what a person would see pop up, and the log ------------------------------------------------

def close_unexpected_popups():
    """Record and dismiss any modal dialog (a warning, a question): nobody is there to answer,
    and a modal dialog would otherwise block the run until the time-out."""
    widget = QApplication.activeModalWidget()
    # The progress window of an algorithm that runs in the main thread (models) is modal too.
    if isinstance(widget, QDialog) and widget.metaObject().className() not in EXPECTED_MODALS:
        text = widget.text() if isinstance(widget, QMessageBox) else ""
        RESULTS["popups"].append({"stage": RESULTS["stage"], "title": widget.windowTitle(),
                                  "text": text})
        widget.reject()
        save_results()


def log_message(message, tag, level):
    if level >= Qgis.Warning:
        RESULTS["message_log"].append({"stage": RESULTS["stage"], "tag": tag,
                                       "level": "critical" if level >= Qgis.Critical else "warning",
                                       "message": message})


EXPECTED_MODALS = {"QgsProcessingAlgorithmProgressDialog"}
POPUP_WATCHDOG = QTimer()
POPUP_WATCHDOG.timeout.connect(close_unexpected_popups)
POPUP_WATCHDOG.start(200)
QgsApplication.messageLog().messageReceived.connect(log_message)
ADDED_LAYER_IDS = []
QgsProject.instance().layersAdded.connect(
    lambda layers: ADDED_LAYER_IDS.extend(layer.id() for layer in layers))


def wait_until(condition, timeout_s):
    """Run the event loop until condition() holds or timeout_s passes; return condition()."""
    loop = QEventLoop()
    poll, deadline = QTimer(), QTimer()
    poll.timeout.connect(lambda: condition() and loop.quit())
    deadline.setSingleShot(True)
    deadline.timeout.connect(loop.quit)
    poll.start(50)
    deadline.start(int(timeout_s * 1000))
    if not condition():
        loop.exec_()
    poll.stop()
    deadline.stop()
    return bool(condition())


def settle(seconds=0.3):
    """Let queued events (legend refreshes, repaints) happen."""
    wait_until(lambda: False, seconds)


ERROR_COLOUR = "#ff0000"  # how the dialog's log shows reported errors


def log_errors(dialog):
    """The lines the dialog's log shows in red: errors reported through the feedback."""
    log = dialog.findChild(QTextEdit, "txtLog")
    errors, block = [], log.document().begin()
    while block.isValid():
        fragments = block.begin()
        while not fragments.atEnd():
            fragment = fragments.fragment()
            colour = fragment.charFormat().foreground().color().name()
            if fragment.isValid() and colour == ERROR_COLOUR:
                errors.append(fragment.text().strip())
            fragments += 1
        block = block.next()
    return [error for error in errors if error]


def message_bar_texts(dialog):
    return [item.text() for item in dialog.messageBar().items()]


# --- what the dialog holds and submits ----------------------------------------------------------

def fill(dialog, inputs):
    """Fill the required inputs through the dialog's own widget wrappers, as typing would."""
    context = dialog.mainWidget().processing_context
    for name, value in inputs.items():
        dialog.mainWidget().wrappers[name].setParameterValue(value, context)


def submitted(dialog, values):
    """The submitted parameters as Python source text, as the dialog's log shows them."""
    context = QgsProcessingContext()
    algorithm = dialog.algorithm()
    return {name: algorithm.parameterDefinition(name).valueAsPythonString(value, context)
            for name, value in values.items()}


def help_blocks(dialog):
    """The help panel beside the dialog, block by block, as QGIS renders its HTML."""
    browser = dialog.findChild(QTextBrowser, "textShortHelp")
    blocks, block = [], browser.document().begin()
    while block.isValid():
        text = block.text().strip()
        if text:
            blocks.append({"text": text, "heading": block.blockFormat().headingLevel(),
                           "table_cell": QTextCursor(block).currentTable() is not None})
        block = block.next()
    return blocks


# --- what the run left in the project -----------------------------------------------------------

def layer_file(layer) -> str:
    """The file a layer reads, without QGIS's options."""
    return QgsProviderRegistry.instance().decodeUri(layer.providerType(),
                                                    layer.source()).get("path") or ""


def layer_report(layer, results):
    """What the Layers panel and the renderer show of one loaded layer."""
    report = {"name": layer.name(), "source": layer.source(),
              "outputs": sorted(name for name, value in results.items()
                                if {layer.id(), layer.source(), layer_file(layer)}
                                & set(value if isinstance(value, list) else [value]))}
    if layer.type() == QgsMapLayerType.RasterLayer:
        renderer = layer.renderer()
        report["renderer"] = renderer.type()
        if renderer.type() == "paletted":
            report["classes"] = [[item.value, item.label] for item in renderer.classes()]
    elif layer.type() == QgsMapLayerType.VectorLayer:
        report["features"] = layer.featureCount()
        renderer = layer.renderer()
        report["renderer"] = renderer.type() if renderer is not None else None
        if report["renderer"] == "categorizedSymbol":
            report["categories"] = [[category.value(), category.label()]
                                    for category in renderer.categories()]
    node = QgsProject.instance().layerTreeRoot().findLayer(layer.id())
    model = iface.layerTreeView().layerTreeModel()
    legend = model.layerLegendNodes(node) if node is not None else []
    report["legend"] = [str(item.data(Qt.DisplayRole) or "") for item in legend]
    report["legend_tooltips"] = [str(item.data(Qt.ToolTipRole) or "") for item in legend]
    report["legend_cut_off"] = [str(item.data(Qt.DisplayRole)) for item in legend
                                if not fits_in_layers_panel(model.legendNode2index(item))]
    return report


def fits_in_layers_panel(index):
    """Whether a legend entry's text ends inside the Layers panel as it is laid out."""
    view = iface.layerTreeView()
    view.expandAll()
    text = str(index.data(Qt.DisplayRole) or "")
    left = view.visualRect(index).left() + view.iconSize().width() + 8  # the symbol, a gap
    return left + view.fontMetrics().horizontalAdvance(text) <= view.viewport().width()


def written(results):
    """Which results are files or folders that exist now (QGIS removes its temporary folder
    when it quits, so the tests cannot look afterwards)."""
    paths = {}
    for name, value in results.items():
        for item in value if isinstance(value, list) else [value]:
            if os.path.isabs(item):
                entries = len(os.listdir(item)) if os.path.isdir(item) else None
                paths.setdefault(name, []).append({"path": item, "exists": os.path.exists(item),
                                                   "entries": entries})
    return paths


def new_layers(since, results):
    project = QgsProject.instance()
    layers = [project.mapLayer(layer_id) for layer_id in ADDED_LAYER_IDS[since:]]
    return [layer_report(layer, results) for layer in layers if layer is not None]


# --- the stages ---------------------------------------------------------------------------------

def provider_algorithms():
    provider = QgsApplication.processingRegistry().providerById(PROVIDER_ID)
    return provider.algorithms() if provider is not None else []


def describe_provider():
    RESULTS["active_plugins"] = list(active_plugins)
    registry = QgsApplication.processingRegistry()
    others = {}
    for algorithm in registry.algorithms():
        if algorithm.provider() is not None and algorithm.provider().id() != PROVIDER_ID:
            others.setdefault(algorithm.displayName().casefold(), []).append(algorithm.id())
    RESULTS["algorithms"] = {
        algorithm.id(): {
            "name": algorithm.name(),
            "display_name": algorithm.displayName(),
            "is_model": isinstance(algorithm, QgsProcessingModelAlgorithm),
            "same_name_elsewhere": others.get(algorithm.displayName().casefold(), []),
            "parameters": [definition.name() for definition in algorithm.parameterDefinitions()],
            "destinations": {definition.name(): {"type": definition.type(),
                                                 "description": definition.description(),
                                                 "created_by_default": definition.createByDefault()}
                             for definition in algorithm.destinationParameterDefinitions()},
        } for algorithm in provider_algorithms()}


def validate_models():
    RESULTS["models"] = {}
    for algorithm in provider_algorithms():
        if isinstance(algorithm, QgsProcessingModelAlgorithm):
            valid, issues = algorithm.validate()
            RESULTS["models"][algorithm.id()] = {"valid": valid, "issues": list(issues)}


def prepare_data():
    """Make the inputs that come from other runs (a k-means output, a field polygon), the way a
    script would: processing.run."""
    RESULTS["prepared"] = []
    for step in PLAN["prepare"]:
        try:
            processing.run(step["algorithm"], step["parameters"])
            RESULTS["prepared"].append({"algorithm": step["algorithm"], "error": None})
        except Exception as error:  # noqa: BLE001 - recorded, the tests say what failed
            RESULTS["prepared"].append({"algorithm": step["algorithm"], "error": str(error)})


def models_toolbox():
    """The display names under Models in the Processing toolbox (the user's own models)."""
    models = QgsApplication.processingRegistry().providerById("model")
    return sorted(algorithm.displayName() for algorithm in models.algorithms()) if models else []


def run_dialog(dialog, timeout_s):
    """Press Run and wait for the end; return the outcome a person would see."""
    outcome = {"finished": False, "ok": False, "results": {}}
    popups_before = len(RESULTS["popups"])

    def finished(ok, results):
        outcome.update(finished=True, ok=bool(ok),
                       results={name: [str(item) for item in value]
                                if isinstance(value, list) else str(value)
                                for name, value in results.items()
                                if name not in ("CHILD_RESULTS", "CHILD_INPUTS")})
        outcome["log_errors"] = log_errors(dialog)

    dialog.algorithmFinished.connect(finished)
    dialog.runButton().click()
    refused = len(RESULTS["popups"]) > popups_before or bool(message_bar_texts(dialog))
    if not refused and not wait_until(lambda: outcome["finished"], timeout_s):
        outcome["timed_out"] = True
    settle()
    outcome["written"] = written(outcome["results"])
    outcome["refused"] = [popup["text"] for popup in RESULTS["popups"][popups_before:]]
    outcome["refused"] += message_bar_texts(dialog)
    outcome.setdefault("log_errors", log_errors(dialog) if not outcome["finished"] else [])
    return outcome


def screenshot(widget, name):
    path = os.path.join(PLAN["screenshots"], f"{name}.png")
    widget.grab().save(path)
    RESULTS.setdefault("screenshots", {})[name] = path


def run_dialogs():
    RESULTS["dialogs"], RESULTS["help"] = {}, {}
    for algorithm in provider_algorithms():
        RESULTS["stage"] = f"dialog {algorithm.id()}"
        dialog = processing.createAlgorithmDialog(algorithm.id(), {})
        dialog.resize(1000, 700)
        dialog.show()
        settle(0.1)
        RESULTS["help"][algorithm.id()] = help_blocks(dialog)
        inputs = PLAN["dialogs"].get(algorithm.id())
        if inputs is None:
            dialog.close()
            continue
        report = RESULTS["dialogs"][algorithm.id()] = {}
        message_log_before, layers_before = len(RESULTS["message_log"]), len(ADDED_LAYER_IDS)
        started = time.monotonic()
        try:
            fill(dialog, inputs)
            report["submitted"] = submitted(dialog, dialog.createProcessingParameters())
            if algorithm.id() == PLAN["screenshot_dialog"]:
                screenshot(dialog, "desktop_kmeans_dialog")
            report.update(run_dialog(dialog, PLAN["timeout_s"]))
        except Exception:  # noqa: BLE001 - recorded, the tests say what failed
            report["driver_error"] = traceback.format_exc()
        report["seconds"] = round(time.monotonic() - started, 1)
        report["layers"] = new_layers(layers_before, report.get("results", {}))
        report["models_toolbox"] = models_toolbox()
        report["message_log"] = RESULTS["message_log"][message_log_before:]
        dialog.close()
        dialog.deleteLater()
        save_results()


def check_connectivity_widgets():
    """Give each CONNECTIVITY widget the values 4…8 as a person could type them, and ask the
    algorithm whether it accepts what the dialog would then submit."""
    RESULTS["connectivity"] = {}
    for algorithm in provider_algorithms():
        if algorithm.parameterDefinition("CONNECTIVITY") is None:
            continue
        dialog = AlgorithmDialog(algorithm.create(), parent=iface.mainWindow())
        fill(dialog, PLAN["dialogs"].get(algorithm.id(), {}))
        wrapper = dialog.mainWidget().wrappers["CONNECTIVITY"]
        context = QgsProcessingContext()
        checks = RESULTS["connectivity"][algorithm.id()] = []
        for typed in range(4, 9):
            wrapper.setParameterValue(typed, context)
            held = wrapper.parameterValue()
            try:
                parameters = dialog.createProcessingParameters()
            except Exception as error:  # noqa: BLE001 - the dialog refused the value itself
                checks.append({"typed": typed, "held": str(held), "widget_refused": str(error)})
                continue
            ok, message = dialog.algorithm().checkParameterValues(parameters, context)
            checks.append({"typed": typed, "held": str(held), "accepted": bool(ok),
                           "message": message})
        dialog.deleteLater()


def run_batch():
    """Batch mode as a person fills it: the inputs of each row, and a file name typed for each
    output the batch table demands (optional ones stay empty)."""
    plan = PLAN["batch"]
    report = RESULTS["batch"] = {"algorithm": plan["algorithm"], "rows": []}
    algorithm = QgsApplication.processingRegistry().createAlgorithmById(plan["algorithm"])
    dialog = BatchAlgorithmDialog(algorithm, parent=iface.mainWindow())
    dialog.show()
    panel = dialog.mainWidget()
    panel.checkLoadLayersOnCompletion.setChecked(True)  # to see the results, as a person would
    panel.addRow(len(plan["rows"]) - panel.batchRowCount())
    context = panel.processing_context
    layers_before, message_log_before = len(ADDED_LAYER_IDS), len(RESULTS["message_log"])
    for row, values in enumerate(plan["rows"]):
        for name, value in values.items():
            panel.wrappers[row][panel.parameter_to_column[name]].setParameterValue(value, context)
        outputs = {}
        for definition in algorithm.destinationParameterDefinitions():
            if definition.flags() & definition.FlagOptional:
                continue
            path = os.path.join(plan["folder"], f"row{row + 1}_{definition.name().lower()}."
                                                f"{definition.defaultFileExtension()}")
            panel.tblParameters.cellWidget(row + 1, panel.parameter_to_column[definition.name()]
                                           ).setValue(path)
            outputs[definition.name()] = path
        report["rows"].append({**values, "outputs": outputs})
    started = time.monotonic()
    # The batch dialog runs its rows in the main thread: the click returns when all are done.
    dialog.runButton().click()
    settle()
    report["seconds"] = round(time.monotonic() - started, 1)
    report["log_errors"] = log_errors(dialog)
    report["refused"] = message_bar_texts(dialog)
    outputs = {f"row{row}:{name}": path for row, values in enumerate(report["rows"], 1)
               for name, path in values["outputs"].items()}
    report["layers"] = new_layers(layers_before, outputs)
    report["message_log"] = RESULTS["message_log"][message_log_before:]
    dialog.close()
    dialog.deleteLater()


def screenshot_styled_result():
    """The main window with one styled result alone on the map and its legend in the panel."""
    project = QgsProject.instance()
    preferred = PLAN["screenshot_result"] + sorted(RESULTS["dialogs"])
    paletted = [layer for algorithm_id in preferred
                for layer in RESULTS["dialogs"].get(algorithm_id, {}).get("layers", [])
                if layer.get("renderer") == "paletted"]
    if not paletted:
        return
    chosen = paletted[0]
    root = project.layerTreeRoot()
    shown = None
    for node in root.findLayers():
        is_chosen = node.layer().source() == chosen["source"] and shown is None
        node.setItemVisibilityChecked(is_chosen)
        node.setExpanded(is_chosen)
        shown = node.layer() if is_chosen else shown
    for layer_id in [layer_id for layer_id in project.mapLayers() if layer_id != shown.id()]:
        project.removeMapLayer(layer_id)
    # Only the Layers panel beside the map, nothing over it.
    for dock in iface.mainWindow().findChildren(QDockWidget):
        dock.setVisible(dock.objectName() == "Layers")
    iface.messageBar().clearWidgets()
    iface.setActiveLayer(shown)
    canvas = iface.mapCanvas()
    canvas.setDestinationCrs(shown.crs())
    extent = QgsRectangle(shown.extent())
    extent.scale(1.05)
    canvas.setExtent(extent)
    canvas.refresh()
    settle(0.5)
    wait_until(lambda: not canvas.isDrawing(), 30)
    settle(0.3)
    screenshot(iface.mainWindow(), "desktop_styled_result")


def screenshot_modeler():
    for algorithm in provider_algorithms():
        if algorithm.id() == PLAN["screenshot_model"]:
            modeler = ModelerDialog.create(algorithm)
            modeler.resize(WINDOW_SIZE)
            modeler.show()
            settle(0.5)
            zoom_full = [action for action in modeler.findChildren(QAction)
                         if action.objectName() == "mActionZoomToItems"]
            for action in zoom_full:
                action.trigger()
            settle(0.3)
            screenshot(modeler, "desktop_modeler")
            modeler.close()


STAGES = [describe_provider, validate_models, prepare_data, run_dialogs, run_batch,
          check_connectivity_widgets, screenshot_styled_result, screenshot_modeler]


def main():
    iface.mainWindow().resize(WINDOW_SIZE)
    for stage in STAGES:
        RESULTS["stage"] = stage.__name__
        save_results()
        try:
            stage()
        except Exception:  # noqa: BLE001 - one broken stage must not hide the others
            RESULTS.setdefault("stage_errors", {})[stage.__name__] = traceback.format_exc()
    RESULTS["stage"] = "quitting"
    # The batch dialog's progress task lives as long as its Python objects: collect them, so
    # QGIS does not ask whether to cancel a task that is long finished.
    gc.collect()
    tasks = QgsApplication.taskManager()
    if not wait_until(lambda: tasks.countActiveTasks() == 0, 10):
        RESULTS["tasks_left_running"] = [task.description() for task in tasks.activeTasks()]
    RESULTS["finished"] = True
    save_results()
    # Nothing to save, no temporary layer to lose: QGIS quits without asking.
    QgsProject.instance().clear()
    QgsProject.instance().setDirty(False)
    QUIT_DEADLINE.start(QUIT_TIMEOUT_S * 1000)
    iface.actionExit().trigger()


def quit_anyway():
    """QGIS did not quit when asked (a prompt was refused): say so, and end at once with an
    error (a clean exit would wait for the running task forever)."""
    RESULTS["quit_blocked"] = True
    save_results()
    os._exit(3)


QUIT_TIMEOUT_S = 15
QUIT_DEADLINE = QTimer()
QUIT_DEADLINE.setSingleShot(True)
QUIT_DEADLINE.timeout.connect(quit_anyway)


QTimer.singleShot(0, main)
