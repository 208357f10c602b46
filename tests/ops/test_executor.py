"""HUB_OPS__CELERY_CONFIG picks the executor of every job: empty keeps Dagster's default, the
shipped deploy/celery.yaml gives dagster-celery's, a bad file stops loading with the variable named."""

from __future__ import annotations

from pathlib import Path

import pytest

from assets.executor import build_executor
from hub.settings import PROJECT_DIR, OpsSettings, SettingsError


def test_no_celery_config_keeps_dagsters_default_executor() -> None:
    assert build_executor(OpsSettings()) is None


def test_the_shipped_celery_config_gives_the_celery_executor() -> None:
    executor = build_executor(OpsSettings(celery_config=str(PROJECT_DIR / "deploy" / "celery.yaml")))
    assert executor is not None and executor.name == "celery"


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "does not exist"),
        ("execution: [unclosed", "not valid YAML"),
        ("broker: amqp://x//\n", "no `execution: config:` block"),
    ],
)
def test_a_bad_celery_config_names_the_variable(tmp_path: Path, content: str | None, says: str) -> None:
    path = tmp_path / "celery.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SettingsError, match=says) as error:
        build_executor(OpsSettings(celery_config=str(path)))
    assert "HUB_OPS__CELERY_CONFIG" in str(error.value)
