"""Every user-visible string of the algorithms goes through tr(), so a translation reaches it."""

import pytest
from qgis.core import QgsApplication, QgsProcessingModelAlgorithm
from qgis.PyQt.QtCore import QCoreApplication, QTranslator


class MarkingTranslator(QTranslator):
    """A 'translation' that wraps every text it is asked for in «…»."""

    def translate(self, context, source, disambiguation=None, n=-1):  # noqa: ARG002
        return f"«{source}»" if source else source


@pytest.fixture
def marking_translator():
    translator = MarkingTranslator()
    QCoreApplication.installTranslator(translator)
    yield translator
    QCoreApplication.removeTranslator(translator)


def _plugin_algorithms(provider):
    return [algorithm for algorithm in provider.algorithms()
            if not isinstance(algorithm, QgsProcessingModelAlgorithm)]


def test_every_label_help_and_output_is_translated(provider, marking_translator):
    algorithms = _plugin_algorithms(provider)
    assert {algorithm.name() for algorithm in algorithms} >= {
        "kmeans", "fuzzycmeans", "isodata", "applycentroids", "choosek", "zones", "bandmath",
        "calibrate", "sieve", "copymodel"}
    for registered in algorithms:
        algorithm = registered.create()  # initAlgorithm runs again, under the translator
        assert algorithm.shortHelpString().startswith("«"), algorithm.id()
        for definition in [*algorithm.parameterDefinitions(), *algorithm.outputDefinitions()]:
            where = f"{algorithm.id()} {definition.name()}"
            assert definition.description().startswith("«"), f"{where}: label not translated"
        for definition in algorithm.parameterDefinitions():
            assert definition.help().startswith("«"), f"{definition.name()}: help not translated"
            if (algorithm.name(), definition.name()) == ("copymodel", "MODEL"):
                continue  # the models' own names, from their files
            for option in getattr(definition, "options", lambda: [])():
                assert option.startswith("«"), f"{definition.name()}: option '{option}'"


def test_without_a_translation_the_strings_are_the_originals(provider):
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("rasterclustering:kmeans")
    assert algorithm.parameterDefinition("CLUSTERS").description() == "Number of clusters"
