"""The `hub` command and the settings it starts from."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from hub.cli import main
from hub.settings import SettingsError, load_settings


def test_help_lists_every_subcommand_with_a_description() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    listed = result.output.split("Commands:")[1]
    for name, command in main.commands.items():
        assert name in listed
        assert command.get_short_help_str(), f"`hub {name}` has no one-line description"


def test_misconfigured_hub_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_DEFAULT_REGION", "Mars")
    monkeypatch.setenv("HUB_SITE__PAGE_SIZE", "-5")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "HUB_DEFAULT_REGION" in str(err.value) and "HUB_SITE__PAGE_SIZE" in str(err.value)


def test_misconfiguration_stops_the_cli_with_a_message_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {"HUB_TIMEZONE": "Europe/Atlantis", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "HUB_TIMEZONE" in result.stderr and "Traceback" not in result.stderr


def test_yaml_file_under_environment(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "hub.yaml"
    config.write_text("default_region: PL\nsite:\n  page_size: 50\n  base_url: https://shop.example.pl\n")
    monkeypatch.setenv("HUB_CONFIG", str(config))
    monkeypatch.setenv("HUB_SITE__PAGE_SIZE", "200")
    settings = load_settings()
    assert settings.default_region == "PL" and settings.site.base_url == "https://shop.example.pl"
    assert settings.site.page_size == 200  # the environment wins over the file


def test_unknown_setting_in_yaml_is_named(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "hub.yaml"
    config.write_text("site:\n  base_ulr: https://typo.example\n")
    monkeypatch.setenv("HUB_CONFIG", str(config))
    with pytest.raises(SettingsError, match="base_ulr"):
        load_settings()
