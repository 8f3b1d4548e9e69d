"""Where a run's block jobs go, chosen in one place: the provider's "Dask scheduler" setting
(Processing ▸ Options ▸ Providers ▸ Raster clustering), overridden by the environment variable
RASTERCLUSTERING_DASK_SCHEDULER; the algorithms never know which executor ran."""

from __future__ import annotations

import os
from contextlib import contextmanager

from qgis.PyQt.QtCore import QCoreApplication

from ..core.engine import use_executor
from ..core.engine.dask_executor import (
    SCHEDULER_VARIABLE,
    close_clients,
    executor_for,
    parse_scheduler,
)
from ..core.errors import RasterClusteringError

#: The setting's key: the environment variable's name.
SCHEDULER_SETTING = SCHEDULER_VARIABLE


def _tr(text: str) -> str:
    return QCoreApplication.translate("RasterClusteringProvider", text)


def register_scheduler_setting(provider) -> None:
    """Add the "Dask scheduler" setting to the provider's group of Processing's options."""
    try:
        from processing.core.ProcessingConfig import ProcessingConfig, Setting
    except ImportError:  # without the Processing plugin only the environment variable chooses
        return

    def validate(value):
        try:
            parse_scheduler(value)
        except RasterClusteringError as error:
            raise ValueError(str(error)) from None

    ProcessingConfig.settingIcons[provider.name()] = provider.icon()
    ProcessingConfig.addSetting(Setting(
        provider.name(), SCHEDULER_SETTING, _tr("Dask scheduler"), "", validator=validate,
        placeholder=_tr("empty: in this process · tcp://HOST:8786 · local · local:N")))
    ProcessingConfig.readSettings()


def remove_scheduler_setting() -> None:
    """Remove the setting, and close the Dask clients and local clusters runs opened."""
    close_clients()
    try:
        from processing.core.ProcessingConfig import ProcessingConfig
    except ImportError:
        return
    if SCHEDULER_SETTING in ProcessingConfig.settings:
        ProcessingConfig.removeSetting(SCHEDULER_SETTING)


def scheduler_text() -> str:
    """The scheduler asked for: the environment variable when it is set (even empty), else the
    provider setting, else "" (in this process)."""
    if SCHEDULER_VARIABLE in os.environ:
        return os.environ[SCHEDULER_VARIABLE]
    try:
        from processing.core.ProcessingConfig import ProcessingConfig
    except ImportError:
        return ""
    return str(ProcessingConfig.getSetting(SCHEDULER_SETTING) or "")


@contextmanager
def chosen_executor(feedback):
    """Run the block jobs of the core calls inside on the executor the settings choose; the
    log names it (engine, scheduler, workers).

    Raises:
        RasterClusteringError: the scheduler is unusable (the caller maps it to a
            QgsProcessingException).
    """
    executor = executor_for(scheduler_text())
    if feedback is not None:
        feedback.pushInfo(_tr("Engine: {}").format(executor.describe()))
    with use_executor(executor):
        yield executor
