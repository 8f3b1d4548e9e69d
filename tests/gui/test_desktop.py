"""The plugin in the real QGIS desktop, used as a person does: every algorithm from its dialog with
only the required inputs, k-means in batch mode, the bundled models, the help panels, and
screenshots for review.

QGIS starts once for the module (desktop_driver.py does the clicking and writes what it saw);
the tests below judge it. RASTERCLUSTERING_SCREENSHOTS names a folder to keep the screenshots in.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui

DRIVER = Path(__file__).with_name("desktop_driver.py")
PROVIDER = "rasterclustering"
DESKTOP_TIMEOUT_S = float(os.environ.get("RASTERCLUSTERING_DESKTOP_TIMEOUT", 600))
RUN_TIMEOUT_S = 180
LANDSAT = "LC80200392015216LGN00"
MODEL_TITLE = "NDVI zones in a field"

# A class label as the legend shows it for one feature: number and centre, "1 · 0.171".
CENTRE_LABEL = r"\d+ · -?\d+(\.\d+)?"
# Sentences end so; a paragraph ending otherwise was cut (a hard line break in the help text).
SENTENCE_END = (".", "!", "?", ":", ")", "…")
# Lines QGIS itself adds to a model's help, "Algorithm author: …", without a full stop.
QGIS_MODEL_HELP_LINE = r"(Algorithm author|Help author|Algorithm version): .*"


def loaded_layers(run: dict) -> dict:
    """Output name → the layer the run loaded for it."""
    return {output: layer for layer in run["layers"] for output in layer["outputs"]}


class LoadedLayer:
    """An output loaded into the project as a layer; subclasses say what it must look like."""

    def problems(self, run: dict, output: str) -> list[str]:
        layer = loaded_layers(run).get(output)
        if layer is None:
            return [f"{output}: not loaded into the project"]
        return [f"{output} ({layer['name']}): {problem}" for problem in self.of_layer(layer)]

    def of_layer(self, layer: dict) -> list[str]:
        return []


@dataclass(frozen=True)
class Classes(LoadedLayer):
    """A paletted layer with `count` classes whose legend labels match `label` (regex) and fit
    in the Layers panel."""

    count: int
    label: str = r"\d+\b.*"

    def of_layer(self, layer: dict) -> list[str]:
        if layer.get("renderer") != "paletted":
            return [f"renderer is {layer.get('renderer')!r}, not a paletted (class) renderer"]
        found = []
        if len(layer["classes"]) != self.count:
            found.append(f"{len(layer['classes'])} classes, expected {self.count}")
        # The legend shows the band's name, then one entry per class.
        found += [f"legend label {label!r} does not read like {self.label!r}"
                  for label in layer["legend"][-len(layer["classes"]):]
                  if not re.fullmatch(self.label, label)]
        found += [f"legend label {label!r} is cut off in the Layers panel (1280×800 window)"
                  for label in layer["legend_cut_off"]]
        return found


@dataclass(frozen=True)
class ZonePolygons(LoadedLayer):
    """Polygons categorized by class: `count` categories whose legend labels match `label`
    (regex) and fit in the Layers panel."""

    count: int
    label: str = r"\d+\b.*"

    def of_layer(self, layer: dict) -> list[str]:
        if layer.get("renderer") != "categorizedSymbol":
            return [f"renderer is {layer.get('renderer')!r}, not categorized by class"]
        found = [] if layer.get("features") else ["no feature"]
        if len(layer["categories"]) != self.count:
            found.append(f"{len(layer['categories'])} categories, expected {self.count}")
        found += [f"legend label {label!r} does not read like {self.label!r}"
                  for _, label in layer["categories"] if not re.fullmatch(self.label, label)]
        found += [f"legend label {label!r} is cut off in the Layers panel (1280×800 window)"
                  for label in layer["legend_cut_off"]]
        return found


@dataclass(frozen=True)
class Ramp(LoadedLayer):
    """A continuous colour ramp (single-band pseudocolour)."""

    def of_layer(self, layer: dict) -> list[str]:
        if layer.get("renderer") != "singlebandpseudocolor":
            return [f"renderer is {layer.get('renderer')!r}, not a pseudocolour ramp"]
        return []


@dataclass(frozen=True)
class Rows(LoadedLayer):
    """A table with `count` rows."""

    count: int

    def of_layer(self, layer: dict) -> list[str]:
        rows = layer.get("features")
        return [] if rows == self.count else [f"{rows} rows, expected {self.count}"]


@dataclass(frozen=True)
class File:
    """A file written by the run (an output that is no layer)."""

    def problems(self, run: dict, output: str) -> list[str]:
        paths = run["written"].get(output, [])
        return [] if paths and all(path["exists"] for path in paths) else [
            f"{output}: no file written ({paths or run['results'].get(output)!r})"]


@dataclass(frozen=True)
class InModelsToolbox:
    """After the run, the Processing toolbox lists `title` under Models."""

    title: str

    def problems(self, run: dict, output: str) -> list[str]:
        listed = run["models_toolbox"]
        return [] if self.title in listed else [f"{self.title!r} not under Models: {listed}"]


@dataclass(frozen=True)
class Case:
    """How a person fills one dialog: the required inputs only (data names of `desktop_data`,
    or lists of them; a case whose data is absent skips), and what the outputs must be."""

    inputs: dict
    outputs: dict = field(default_factory=dict)


# One entry per algorithm and model of the provider (a new algorithm without one fails).
CASES = {
    "kmeans": Case({"INPUT": ["scene"]}, {"OUTPUT": Classes(5), "STATISTICS": Rows(5),
                                          "DISTANCE": Ramp(), "ZONES": ZonePolygons(5)}),
    "fuzzycmeans": Case({"INPUT": ["scene"]}, {"OUTPUT": Classes(5), "STATISTICS": Rows(5),
                                               "DISTANCE": Ramp(), "MEMBERSHIP": Ramp(),
                                               "ZONES": ZonePolygons(5)}),
    "isodata": Case({"INPUT": ["scene"]}, {"OUTPUT": Classes(5), "STATISTICS": Rows(5),
                                           "DISTANCE": Ramp(), "ZONES": ZonePolygons(5)}),
    "bandmath": Case({"INPUT": ["scene"]}, {"OUTPUT": Ramp()}),
    "calibrate": Case({"INPUT": ["landsat_red"]}, {"OUTPUT_LAYERS": LoadedLayer()}),
    "choosek": Case({"INPUT": ["ndvi"]}, {"TABLE": Rows(9)}),
    "sieve": Case({"INPUT": "ndvi_classes"}, {"OUTPUT": Classes(5, CENTRE_LABEL)}),
    "applycentroids": Case({"INPUT": ["ndvi"], "CENTROIDS": "ndvi_centroids"},
                           {"OUTPUT": Classes(5, CENTRE_LABEL), "STATISTICS": Rows(5),
                            "DISTANCE": Ramp(), "ZONES": ZonePolygons(5, CENTRE_LABEL)}),
    "zones": Case({"INPUT": ["scene"]},
                  {"OUTPUT": Classes(5, CENTRE_LABEL), "STATISTICS": Rows(5),
                   "ZONES": ZonePolygons(5, CENTRE_LABEL)}),
    "polygonize": Case({"INPUT": "ndvi_classes"}, {"OUTPUT": ZonePolygons(5, CENTRE_LABEL)}),
    "ndvi_zones_in_a_field": Case({"bands": ["landsat_red", "landsat_nir"],
                                   "field": "landsat_field"},
                                  {"kmeans:zones": Classes(5, CENTRE_LABEL),
                                   "kmeans:statistics": Rows(5),
                                   "kmeans:zone_polygons": ZonePolygons(5, CENTRE_LABEL)}),
    "copymodel": Case({}, {"OUTPUT": File(), "toolbox": InModelsToolbox(MODEL_TITLE)}),
}
BATCH_ROWS = [{"INPUT": ["ndvi"]}, {"INPUT": ["nir"]}]


@pytest.fixture(scope="module")
def desktop_data(request, scene, tmp_path_factory) -> dict:
    """Data names → paths: the synthetic scene (a copy: QGIS writes beside what it opens), the
    Landsat crop where ../shared/data exists, and outputs the driver makes first."""
    folder = tmp_path_factory.mktemp("desktop_data")
    data = {}
    for name in ("scene", "ndvi", "nir"):
        source = Path(getattr(scene, name))
        data[name] = str(shutil.copyfile(source, folder / source.name))
    data["ndvi_classes"] = str(folder / "ndvi_classes.tif")
    data["ndvi_centroids"] = str(folder / "ndvi_centroids.json")
    try:
        landsat = request.getfixturevalue("shared_data") / "landsat8-thermal"
    except pytest.skip.Exception:
        return data
    for band in (4, 5):
        name = f"{LANDSAT}_B{band}_crop.TIF"
        shutil.copyfile(landsat / name, folder / name)
    shutil.copyfile(landsat / f"{LANDSAT}_MTL.txt", folder / f"{LANDSAT}_MTL.txt")
    data.update(landsat_red=str(folder / f"{LANDSAT}_B4_crop.TIF"),
                landsat_nir=str(folder / f"{LANDSAT}_B5_crop.TIF"),
                landsat_field=str(folder / "landsat_field.geojson"))
    return data


def resolve(value, data: dict):
    return [data[name] for name in value] if isinstance(value, list) else data[value]


def case_data_present(case: Case, data: dict) -> bool:
    return all(name in data for value in case.inputs.values()
               for name in (value if isinstance(value, list) else [value]))


def screenshot_folder(tmp_path_factory) -> Path:
    chosen = os.environ.get("RASTERCLUSTERING_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("desktop_screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def desktop(request, qgis_desktop, desktop_data, tmp_path_factory) -> dict:
    """Start QGIS once, let the driver work through the plan, and return what it saw."""
    data = desktop_data
    prepare = [{"algorithm": f"{PROVIDER}:kmeans",
                "parameters": {"INPUT": [data["ndvi"]], "OUTPUT": data["ndvi_classes"],
                               "CENTROIDS": data["ndvi_centroids"],
                               "STATISTICS": "TEMPORARY_OUTPUT"}}]
    if "landsat_red" in data:
        prepare.append({"algorithm": "native:polygonfromlayerextent",
                        "parameters": {"INPUT": data["landsat_red"],
                                       "OUTPUT": data["landsat_field"]}})
    screenshots = screenshot_folder(tmp_path_factory)
    batch_folder = tmp_path_factory.mktemp("desktop_batch")
    plan = {
        "results": str(qgis_desktop.folder / "results.json"),
        "screenshots": str(screenshots),
        "timeout_s": RUN_TIMEOUT_S,
        "prepare": prepare,
        "dialogs": {f"{PROVIDER}:{name}": {parameter: resolve(value, data)
                                            for parameter, value in case.inputs.items()}
                    for name, case in CASES.items() if case_data_present(case, data)},
        "batch": {"algorithm": f"{PROVIDER}:kmeans", "folder": str(batch_folder),
                  "rows": [{name: resolve(value, data) for name, value in row.items()}
                           for row in BATCH_ROWS]},
        "screenshot_dialog": f"{PROVIDER}:kmeans",
        "screenshot_result": [f"{PROVIDER}:zones", f"{PROVIDER}:kmeans"],
        "screenshot_model": f"{PROVIDER}:ndvi_zones_in_a_field",
    }
    results = qgis_desktop.run(DRIVER, plan, DESKTOP_TIMEOUT_S)
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nQGIS desktop screenshots: {screenshots}")
    return results


def qgis_output_tail(desktop: dict) -> str:
    return desktop["qgis"]["output"][-3000:]


def test_qgis_starts_with_the_plugin_and_quits_cleanly(desktop):
    qgis = desktop["qgis"]
    assert not qgis["timed_out"], (f"QGIS still ran after {qgis['timeout_s']} s, in stage "
                                   f"{desktop.get('stage')!r}:\n{qgis_output_tail(desktop)}")
    assert desktop.get("finished"), (f"the driver stopped in stage {desktop.get('stage')!r}:\n"
                                     f"{qgis_output_tail(desktop)}")
    quit_prompts = [popup for popup in desktop["popups"] if popup["stage"] == "quitting"]
    assert not desktop.get("quit_blocked"), f"QGIS did not quit when asked: {quit_prompts}"
    assert not desktop.get("tasks_left_running"), (
        f"tasks still running at the end: {desktop['tasks_left_running']}")
    assert qgis["returncode"] == 0, f"QGIS exited with {qgis['returncode']}"
    assert "raster_clustering" in desktop["active_plugins"]
    assert not desktop.get("stage_errors"), json.dumps(desktop["stage_errors"], indent=1)
    startup_errors = [entry for entry in desktop["message_log"]
                      if entry["stage"] == "started" and entry["level"] == "critical"]
    assert not startup_errors, f"errors in the message log at start: {startup_errors}"


def test_every_algorithm_of_the_provider_has_a_desktop_case(desktop):
    names = {info["name"] for info in desktop["algorithms"].values()}
    assert names, "the provider has no algorithms in the desktop"
    assert not names - set(CASES), f"add a CASES entry for {sorted(names - set(CASES))}"
    assert not set(CASES) - names, f"CASES names no algorithm: {sorted(set(CASES) - names)}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_dialog_runs_with_only_the_required_inputs(desktop, desktop_data, name):
    case = CASES[name]
    algorithm_id = f"{PROVIDER}:{name}"
    if not case_data_present(case, desktop_data):
        pytest.skip("needs ../shared/data (absent here)")
    failed_preparations = [step for step in desktop["prepared"] if step["error"]]
    assert not failed_preparations, f"making the inputs failed: {failed_preparations}"
    run = desktop["dialogs"][algorithm_id]
    assert "driver_error" not in run, run["driver_error"]
    assert not run["refused"], f"the dialog refused to run {run['submitted']}: {run['refused']}"
    assert not run.get("timed_out"), f"no result within {RUN_TIMEOUT_S} s"
    assert run["ok"] and not run["log_errors"], (
        f"the run from the dialog failed with {run['submitted']}: {run['log_errors']}")
    errors = [entry["message"] for entry in run["message_log"] if entry["level"] == "critical"]
    assert not errors, f"errors in QGIS's message log: {errors}"
    layers = loaded_layers(run)
    missing = []
    for output, destination in desktop["algorithms"][algorithm_id]["destinations"].items():
        if not destination["created_by_default"]:
            continue
        paths = run["written"].get(output, [])
        if destination["type"] in ("sink", "vectorDestination"):
            present = output in layers
        elif destination["type"] == "folderDestination":
            present = bool(paths) and all(path["entries"] for path in paths)
        else:
            present = bool(paths) and all(path["exists"] for path in paths)
        if not present:
            missing.append(f"{output} ({destination['type']}): {run['results'].get(output)!r}")
    assert not missing, f"outputs not produced or not loaded: {missing}"
    problems = [problem for output, expected in case.outputs.items()
                for problem in expected.problems(run, output)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(CASES))
def test_loaded_layers_are_named_for_what_they_hold(desktop, desktop_data, name):
    """Names that tell repeated runs apart: not just the output's label ("Classes"), and no
    parameter ids ("OUTPUT") where a person reads them."""
    if not case_data_present(CASES[name], desktop_data):
        pytest.skip("needs ../shared/data (absent here)")
    algorithm_id = f"{PROVIDER}:{name}"
    run = desktop["dialogs"][algorithm_id]
    descriptions = {output: destination["description"] for output, destination
                    in desktop["algorithms"][algorithm_id]["destinations"].items()}
    parameter_ids = {parameter for info in desktop["algorithms"].values()
                     for parameter in info["parameters"] if parameter.isupper()}
    problems = []
    for layer in run["layers"]:
        if any(layer["name"] == descriptions.get(output) for output in layer["outputs"]):
            problems.append(f"{layer['name']!r} is only the output's label")
        ids = parameter_ids & set(re.findall(r"[A-Z][A-Z_]+", layer["name"]))
        if ids:
            problems.append(f"{layer['name']!r} shows the parameter ids {sorted(ids)}")
    assert not problems, "; ".join(problems)


def test_batch_runs_two_rows_of_kmeans_with_defaults(desktop):
    batch = desktop["batch"]
    assert not batch["refused"], f"the batch dialog refused the rows: {batch['refused']}"
    assert not batch["log_errors"], (f"the batch run failed with {batch['rows']}:\n"
                                     f"{batch['log_errors']}")
    for row in batch["rows"]:
        for output, path in row["outputs"].items():
            assert os.path.exists(path), f"row {row['INPUT']}: {output} {path} not written"
    classes = [layer for layer in batch["layers"] if layer.get("renderer") == "paletted"]
    assert len(classes) == len(BATCH_ROWS), f"loaded: {batch['layers']}"
    for layer in classes:
        assert not Classes(5, CENTRE_LABEL).of_layer(layer), layer
    names = [layer["name"] for layer in batch["layers"]]
    assert len(set(names)) == len(names), f"the rows' layers cannot be told apart: {names}"


def test_every_bundled_model_is_registered_and_valid(desktop):
    models = desktop["models"]
    model_files = sorted(Path(__file__).resolve().parents[2].glob("models/*.model3"))
    assert len(models) == len(model_files), f"registered {sorted(models)} of {model_files}"
    invalid = {model: report["issues"] for model, report in models.items() if not report["valid"]}
    assert not invalid, f"models with issues in the modeler: {invalid}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_help_panel_has_no_paragraph_ending_mid_sentence(desktop, name):
    blocks = desktop["help"][f"{PROVIDER}:{name}"]
    assert blocks, "the help panel is empty"
    # Headings, table cells and QGIS's own "Algorithm author: …" lines need no full stop.
    cut = [block["text"] for block in blocks
           if not block["heading"] and not block["table_cell"]
           and not re.fullmatch(QGIS_MODEL_HELP_LINE, block["text"])
           and not block["text"].endswith(SENTENCE_END)]
    assert not cut, "paragraphs of the help panel end mid-sentence:\n" + "\n".join(
        f"  …{text[-70:]!r}" for text in cut)


def test_connectivity_widgets_hold_only_what_the_algorithm_accepts(desktop):
    refused_later = [f"{algorithm}: typed {check['typed']}, held {check['held']}: "
                     f"{check['message']}"
                     for algorithm, checks in desktop["connectivity"].items() for check in checks
                     if "accepted" in check and not check["accepted"]
                     and "connectivity" in check["message"].lower()]
    assert desktop["connectivity"], "no algorithm has a CONNECTIVITY parameter"
    assert not refused_later, "the widget takes values the algorithm refuses:\n" + "\n".join(
        refused_later)


def test_toolbox_names_are_unique_and_readable(desktop):
    clashes = {info["display_name"]: info["same_name_elsewhere"]
               for info in desktop["algorithms"].values() if info["same_name_elsewhere"]}
    assert not clashes, f"toolbox names shared with other providers: {clashes}"
    ids_as_names = [info["display_name"] for info in desktop["algorithms"].values()
                    if info["display_name"] == info["name"] and "_" in info["name"]]
    assert not ids_as_names, f"listed by their ids: {ids_as_names}"


@pytest.mark.parametrize("screenshot", ["desktop_kmeans_dialog", "desktop_styled_result",
                                        "desktop_modeler"])
def test_screenshot_written_for_review(desktop, screenshot):
    path = desktop.get("screenshots", {}).get(screenshot)
    assert path and Path(path).stat().st_size > 10_000, f"no {screenshot} screenshot: {path}"
