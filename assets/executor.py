"""The executor of the hub's jobs: Dagster's default (a process per step on the run's host), or
dagster-celery's when HUB_OPS__CELERY_CONFIG names the YAML file the Celery workers start with."""

from pathlib import Path
from typing import Any

import yaml
from dagster import ExecutorDefinition

from hub.settings import OpsSettings, SettingsError

SETTING = "HUB_OPS__CELERY_CONFIG"


def celery_executor_config(path: str) -> dict[str, Any]:
    """The `execution: config:` block of a dagster-celery worker config file."""
    file = Path(path)
    if not file.is_file():
        raise SettingsError(f"{SETTING}: {path} does not exist (a copy of deploy/celery.yaml, or empty)")
    try:
        document = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"{SETTING}: {path} is not valid YAML: {exc}") from exc
    config = (document.get("execution") or {}).get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise SettingsError(
            f"{SETTING}: {path} has no `execution: config:` block (the shape `dagster-celery worker "
            "start -y` reads; see deploy/celery.yaml)"
        )
    return config


def build_executor(settings: OpsSettings) -> ExecutorDefinition | None:
    """None keeps Dagster's default executor; with a Celery config, every step of every run
    goes to the Celery workers listening on its queue."""
    if not settings.celery_config:
        return None
    try:
        from dagster_celery import celery_executor
    except ImportError as exc:  # an optional extra: one-host installs do without it
        raise SettingsError(
            f"{SETTING} is set but dagster-celery is not installed: install the hub with its "
            "`celery` extra (uv sync --extra celery)"
        ) from exc
    return celery_executor.configured(celery_executor_config(settings.celery_config), name="celery")
