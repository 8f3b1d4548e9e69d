"""Every algorithm's help reads as the dialog does: flowing HTML, parameters named by the labels
the dialog shows (their ids only in parentheses, for scripts and qgis_process)."""

import re

import pytest

ALGORITHMS = ["kmeans", "applycentroids", "choosek", "zones", "bandmath", "calibrate", "sieve",
              "fuzzycmeans", "isodata", "polygonize"]


def _algorithm(provider, name):
    algorithm = provider.algorithm(name)
    assert algorithm is not None, name
    return algorithm


@pytest.mark.parametrize("name", ALGORITHMS)
def test_help_is_flowing_html(provider, name):
    # QGIS's help panel makes a paragraph of every hard line break.
    assert "\n" not in _algorithm(provider, name).shortHelpString()


@pytest.mark.parametrize("name", ALGORITHMS)
def test_help_names_each_parameter_by_its_dialog_label(provider, name):
    algorithm = _algorithm(provider, name)
    text = algorithm.shortHelpString()
    definitions = list(algorithm.parameterDefinitions()) + list(algorithm.outputDefinitions())
    labels = {definition.name(): definition.description() for definition in definitions}
    for identifier, label in labels.items():
        for match in re.finditer(rf"(?<![\w.]){re.escape(identifier)}(?![\w.])", text):
            before = text[:match.start()]
            introduced = re.search(r"<b>([^<]+)</b> \((?:[A-Z_]+, )*$", before)
            assert introduced, (f"{name}: the help uses the id {identifier} where the dialog "
                                f"shows '{label}': {text[max(0, match.start() - 60):match.end()]}")
            assert _same_label(introduced.group(1), label), (
                f"{name}: the help calls {identifier} '{introduced.group(1)}', the dialog "
                f"'{label}'")


def _same_label(help_label: str, dialog_label: str) -> bool:
    """The help's bold label is the dialog's, perhaps without a trailing "(…)" detail."""
    def plain(text):
        return re.sub(r"\s*\([^)]*\)\s*$", "", text).strip().lower()

    return plain(help_label) == plain(dialog_label) or help_label.lower() == dialog_label.lower()
