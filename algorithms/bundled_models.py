"""The workflows of models/: registered as provider algorithms, and copied on request into the
user's own models, where the graphical modeler edits them (QGIS edits no provider's models)."""

from __future__ import annotations

import glob
import os
import shutil

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingModelAlgorithm,
    QgsProcessingOutputFile,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
)

from .base import RasterClusteringAlgorithm

MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "models")


def bundled_model_paths() -> list[str]:
    """The .model3 files the plugin ships, in a fixed order."""
    return sorted(glob.glob(os.path.join(MODELS_DIR, "*.model3")))


class BundledModel(QgsProcessingModelAlgorithm):
    """A model of models/: its id is its file's stem (rasterclustering:ndvi_zones_in_a_field,
    stable for scripts), its title in the toolbox and dialogs the model's own name."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path
        if not self.fromFile(path):
            raise ValueError(f"{path} is not a readable .model3 file")
        self.setSourceFilePath(path)

    def name(self):
        """Id within the provider: the file's stem."""
        return os.path.splitext(os.path.basename(self._path))[0]

    def displayName(self):
        """The model's name, as the modeler shows it."""
        return super().name()

    def shortHelpString(self):
        """The model's help, and how to change it."""
        return (f"{super().shortHelpString() or ''}<p>To change a step, run <i>Copy a bundled "
                f"model to the Models toolbox</i> (Workflows group): the copy appears under "
                f"<i>Models</i>, where right-click ▸ <i>Edit Model…</i> opens it in the graphical "
                f"modeler. This model's file: <code>{self._path}</code> (Model ▸ Open Model… in "
                "the modeler opens it too).</p>")

    def createInstance(self):
        """A fresh copy for each run, of this class (QGIS copies algorithms before running)."""
        return BundledModel(self._path)


class CopyModelAlgorithm(RasterClusteringAlgorithm):
    """Copies a bundled model into the user's models folder, so the modeler can edit it."""

    NAME = "copymodel"
    DISPLAY_NAME = "Copy a bundled model to the Models toolbox"
    GROUP = "Workflows"
    GROUP_ID = "workflows"
    ICON = "provider.svg"
    HELP = """<p>Copies one of the plugin's bundled models (<i>Workflows</i> group) into your own
models folder (Settings ▸ Options ▸ Processing ▸ Models), so that it appears under
<i>Models</i> in the Processing toolbox, where right-click ▸ <i>Edit Model…</i> opens it in the
graphical modeler: change a step, add one, save. QGIS's modeler does not edit the models a plugin
provides, only copies of them.</p>
<ul><li><b>Model</b> (MODEL): the bundled model to copy.</li>
<li><b>Replace an existing copy</b> (OVERWRITE, default no): a copy of the same name in your
models folder is kept unless this is on.</li>
<li><b>Copied model</b> (OUTPUT): the file written.</li></ul>"""

    MODEL = "MODEL"
    OVERWRITE = "OVERWRITE"

    def flags(self):
        """The Models provider is refreshed at the end, which belongs to the main thread."""
        return super().flags() | QgsProcessingAlgorithm.FlagNoThreading

    def canExecute(self):
        """Needs nothing but QGIS."""
        return True, ""

    def initAlgorithm(self, config=None):
        """Declare the parameters."""
        titles = [BundledModel(path).displayName() for path in bundled_model_paths()]
        self.add_with_help(QgsProcessingParameterEnum(
            self.MODEL, self.tr("Model"), options=titles, defaultValue=0),
            self.tr("The bundled model to copy into your models folder."))
        self.add_with_help(QgsProcessingParameterBoolean(
            self.OVERWRITE, self.tr("Replace an existing copy"), defaultValue=False),
            self.tr("Replace a model of the same name in your models folder."))
        self.addOutput(QgsProcessingOutputFile(self.OUTPUT, self.tr("Copied model")))

    def processAlgorithm(self, parameters, context, feedback):
        """Copy the file, then make the Models provider list it (no block jobs: QGIS's own
        processAlgorithm, without choosing an executor)."""
        from processing.modeler.ModelerUtils import ModelerUtils

        paths = bundled_model_paths()
        index = self.parameterAsEnum(parameters, self.MODEL, context)
        if not 0 <= index < len(paths):
            raise QgsProcessingException(self.tr("Choose one of the bundled models."))
        model = BundledModel(paths[index])
        folder = ModelerUtils.modelsFolders()[0]
        os.makedirs(folder, exist_ok=True)
        target = os.path.join(folder, f"{model.displayName()}.model3")
        if os.path.exists(target) and not self.parameterAsBool(parameters, self.OVERWRITE,
                                                                  context):
            raise QgsProcessingException(
                f"'{target}' exists already: edit that copy, or turn on 'Replace an existing "
                "copy' to start again from the bundled model.")
        shutil.copyfile(paths[index], target)
        feedback.pushInfo(f"Copied '{model.displayName()}' to {target}: it is listed under "
                          "Models in the Processing toolbox (right-click ▸ Edit Model…).")
        models = QgsApplication.processingRegistry().providerById("model")
        if models is not None:
            models.refreshAlgorithms()
        return {self.OUTPUT: target}
