"""The deployment guide and the production instance config stay true to the code."""

from __future__ import annotations

import re

import yaml

from hub.ops.envvars import markdown_table, settings_variables
from hub.settings import PROJECT_DIR

GUIDE = (PROJECT_DIR / "docs" / "DEPLOYMENT.md").read_text()


def test_variable_table_comes_from_the_settings_model() -> None:
    variables = {v.name: v for v in settings_variables()}
    assert variables["HUB_OPS__SMTP_PASSWORD"].secret and variables["HUB_OPS__SLACK_WEBHOOK_URL"].secret
    assert variables["HUB_OPS__TELEGRAM_BOT_TOKEN"].secret
    assert not variables["HUB_OPS__MAIL_TO"].secret
    table = markdown_table()
    assert all(f"`{name}`" in table for name in variables)


def test_guide_names_every_ops_variable_process_and_unit() -> None:
    for var in settings_variables():
        if var.name.startswith(("HUB_OPS__", "HUB_DATABASE_URL", "HUB_DAGSTER_UI_URL")):
            assert f"`{var.name}`" in GUIDE, var.name
    config = yaml.safe_load((PROJECT_DIR / "deploy" / "dagster.yaml").read_text())
    db = config["storage"]["postgres"]["postgres_db"]
    for key in ("hostname", "port", "db_name", "username", "password"):
        assert f"`{db[key]['env']}`" in GUIDE
    assert config["telemetry"]["enabled"] is False
    # Every variable the deployment's Dagster files read (dagster.yaml, celery.yaml, workspace).
    for path in (PROJECT_DIR / "deploy").glob("*.yaml"):
        for name in re.findall(r"^\s*env: (\w+)\s*$", path.read_text(), re.M):
            assert f"`{name}`" in GUIDE, f"{path.name} reads {name}: add it to docs/DEPLOYMENT.md"
    for unit in (PROJECT_DIR / "deploy" / "systemd").glob("*.service"):
        assert unit.name in GUIDE
        text = unit.read_text()
        assert "EnvironmentFile=/etc/hub/hub.env" in text and "User=hub" in text
