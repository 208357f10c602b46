"""Misconfiguration meets a one-line message and a stopped hub, not a traceback or a silent
default (issue 17 items 5-9): a broken or unreachable store, typos in HUB_* names, invalid YAML
or JSON, passwords in URLs, personal data in logs when the store fails under `hub serve`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.conftest import POSTGRES_URL
from tests.local_server import free_port
from tests.serve.conftest import SECRET, WEBHOOK, signature_headers
from tests.serve.process import HubServe, hub_serve, run_hub, start_hub_serve

PASSWORD = "S3cret-Pw-91xq"


def _unreachable_postgres() -> str:
    return f"postgresql+psycopg2://hub:{PASSWORD}@127.0.0.1:{free_port()}/hub"


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr[-3000:]
    assert "Traceback" not in stderr
    return lines[0]


def _exit_of(server: HubServe, timeout_s: float = 60) -> int:
    try:
        return server.process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        server.kill()
        pytest.fail(f"hub serve kept running:\n{server.log()[-2000:]}")


# ---------------------------------------------------------------- 5: the store at start and later


@pytest.mark.parametrize(
    ("database_url", "expected"),
    [
        ("not-a-url", "not a database URL"),
        (_unreachable_postgres(), "cannot reach the store"),
    ],
    ids=["not-a-url", "unreachable"],
)
def test_hub_serve_stops_at_start_when_the_store_is_broken(
    database_url: str, expected: str, tmp_path: Path
) -> None:
    settings = {"HUB_DATABASE_URL": database_url, "HUB_SITE__WEBHOOK_SECRET": SECRET}
    server = start_hub_serve(settings, tmp_path / "serve.log", wait=False)
    assert _exit_of(server) != 0
    line = _one_line(server.log())
    assert "HUB_DATABASE_URL" in line and expected in line and PASSWORD not in line


def test_hub_serve_stops_at_start_on_a_store_without_the_schema(tmp_path: Path) -> None:
    settings = {"HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}", "HUB_SITE__WEBHOOK_SECRET": SECRET}
    server = start_hub_serve(settings, tmp_path / "serve.log", wait=False)
    assert _exit_of(server) != 0
    assert "hub db upgrade" in _one_line(server.log())


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[tuple[str, str]]:
    from hub.store import migrate

    migrate.upgrade(postgres_url)
    yield postgres_url, postgres_url.split("search_path%3D")[1]


@pytest.mark.postgres
def test_readiness_answers_503_once_the_store_is_gone(
    postgres_schema_url: tuple[str, str], tmp_path: Path
) -> None:
    url, schema = postgres_schema_url
    settings = {"HUB_DATABASE_URL": url, "HUB_SITE__WEBHOOK_SECRET": SECRET}
    with hub_serve(settings, tmp_path / "serve.log") as server:
        assert requests.get(server.url + "/readyz", timeout=10).status_code == 200
        admin = create_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))  # the fixture drops it again
        admin.dispose()
        ready = requests.get(server.url + "/readyz", timeout=10)
        assert ready.status_code == 503 and "hub db upgrade" in ready.json()["error"]
        assert requests.get(server.url + "/healthz", timeout=10).status_code == 200  # alive, not ready


# ---------------------------------------------------------------- 6: personal data in logs


def test_a_store_error_logs_one_masked_line_without_the_post(sqlite_store: str, tmp_path: Path) -> None:
    settings = {"HUB_DATABASE_URL": sqlite_store, "HUB_SITE__WEBHOOK_SECRET": SECRET}
    with hub_serve(settings, tmp_path / "serve.log") as server:
        engine = create_engine(sqlite_store)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE hub_webhook_inbox"))
        engine.dispose()
        lead = {
            "id": "pii-1",
            "name": "Святослав Кривошеев",
            "phone": "+7 916 555-12-34",
            "email": "svyatoslav.k@client.example.ru",
            "submitted_at": "2026-11-20T10:00:00Z",
        }
        body = json.dumps(lead, ensure_ascii=False).encode()
        answer = requests.post(server.url + WEBHOOK, data=body, headers=signature_headers(body), timeout=30)
        assert answer.status_code == 503 and "Retry-After" in answer.headers
        log = server.log()
    for value in ("Святослав", "Кривошеев", "555-12-34", "5551234", "svyatoslav.k"):
        assert value not in log, value
    errors = [line for line in log.splitlines() if "store" in line.lower() and "error" in line.lower()]
    assert errors and len(log.splitlines()) < 15, log


# ---------------------------------------------------------------- 7: passwords in URLs


def test_the_demo_and_db_upgrade_mask_the_database_password(tmp_path: Path) -> None:
    url = _unreachable_postgres()
    for args in (["demo"], ["db", "upgrade"]):
        result = run_hub(args, {"HUB_DATABASE_URL": url, "HUB_DATA_DIR": str(tmp_path)})
        assert PASSWORD not in result.stdout + result.stderr, args
        assert result.returncode == 3, args
        line = _one_line(result.stderr)
        assert "hub:***@127.0.0.1" in line and "HUB_DATABASE_URL" in line, args


@pytest.mark.postgres
def test_db_upgrade_prints_the_store_with_the_password_masked(postgres_url: str, tmp_path: Path) -> None:
    url = postgres_url.replace("postgres@", f"postgres:{PASSWORD}@", 1)
    result = run_hub(["db", "upgrade"], {"HUB_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout + result.stderr and "postgres:***@" in result.stdout


# ---------------------------------------------------------------- 8: unknown HUB_* names


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("HUB_DATABSE_URL", "HUB_DATABASE_URL"), ("HUB_SITE__WEBHOK_SECRET", "HUB_SITE__WEBHOOK_SECRET")],
)
def test_an_unknown_hub_variable_stops_every_command_naming_the_closest_setting(
    typo: str, meant: str, tmp_path: Path
) -> None:
    settings = {typo: f"sqlite:///{tmp_path / 'elsewhere.db'}", "HUB_DATA_DIR": str(tmp_path)}
    for args in (["db", "upgrade"], ["serve", "--port", str(free_port())]):
        result = run_hub(args, settings, timeout=60)
        assert result.returncode == 2, (args, result.stderr[-2000:])
        line = _one_line(result.stderr)
        assert typo in line and f"did you mean {meant}" in line
    assert list(tmp_path.iterdir()) == []  # nothing written to the default store either


def test_variables_the_project_itself_uses_are_not_settings_and_are_allowed(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text("default_region: PL\n")
    settings = {
        "HUB_CONFIG": str(config),
        "HUB_TEST_POSTGRES_URL": POSTGRES_URL,
        "HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "HUB_OPS__SCHEDULES__SITE": "*/5 * * * *",  # a key inside a dict setting
    }
    result = run_hub(["db", "upgrade"], settings)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- 9: messages, not tracebacks


def test_invalid_yaml_in_hub_config_is_one_line_naming_the_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text("site:\n  base_url: https://shop.example\n  page_size: [1, 2\nmail: {}\n")
    for args in (["db", "upgrade"], ["demo"]):
        result = run_hub(args, {"HUB_CONFIG": str(config), "HUB_DATA_DIR": str(tmp_path / "var")})
        assert result.returncode == 2, (args, result.stdout[-2000:], result.stderr[-2000:])
        line = _one_line(result.stderr)
        assert str(config) in line and "line " in line, args


def test_a_section_given_as_invalid_json_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    result = run_hub(["db", "upgrade"], {"HUB_SITE": "notjson", "HUB_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert "HUB_SITE" in line and "JSON" in line and "HUB_SITE__" in line
