"""The Dagster UI on the demo data, as an ops engineer sees it: `hub demo` into a temporary
project, the real dagster-webserver, headless Chromium (Debian's) through Playwright. Every
asset is materialized and its checks passed; screenshots go to tests/artifacts/."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from hub.processes import console_script
from hub.settings import PROJECT_DIR
from tests.local_server import free_port

pytestmark = pytest.mark.slow

ARTIFACTS = PROJECT_DIR / "tests" / "artifacts" / "ui"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The demo data holds deliberate oddities (a deal moved back a stage) that WARN checks must show;
# a check of ERROR severity, and any check on the receivables asset, must pass.
ASSETS_QUERY = """
{
  repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } }
  assetNodes {
    assetKey { path }
    groupName
    assetMaterializations(limit: 1) { runId }
    assetChecksOrError {
      ... on AssetChecks {
        checks {
          name
          blocking
          executionForLatestMaterialization { status evaluation { severity description } }
        }
      }
    }
  }
}
"""

DEMO_SCRIPT = """
import sys
from pathlib import Path
from assets.demo import materialize_all
from hub.demo.run import set_up
set_up(reset=True, project_dir=Path(sys.argv[1]))
sys.exit(0 if materialize_all().success else 1)
"""


@pytest.fixture
def demo_webserver(tmp_path: Path) -> Iterator[str]:
    """`hub demo` into tmp_path (its own store and DAGSTER_HOME), then the webserver on it."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (scripts/install-system-deps.sh installs it)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DAGSTER_"))}
    env.update(
        HUB_DATA_DIR=str(tmp_path / "var"),
        HUB_CONFIG=str(tmp_path / "var" / "demo" / "hub.yaml"),
        DAGSTER_HOME=str(tmp_path / "var" / "dagster_home"),
    )
    demo = subprocess.run(
        [sys.executable, "-c", DEMO_SCRIPT, str(tmp_path)],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]

    port = free_port()
    log = (tmp_path / "webserver.log").open("w")
    server = subprocess.Popen(
        [
            console_script("dagster-webserver"),
            "-w",
            str(PROJECT_DIR / "workspace.yaml"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=PROJECT_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "webserver.log").read_text()[-3000:]
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("dagster-webserver did not answer within 120 s")
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _graphql(url: str, query: str) -> dict[str, Any]:
    # The code location loads in its own process after the server answers: wait for the assets.
    deadline = time.monotonic() + 90
    while True:
        answer = requests.post(f"{url}/graphql", json={"query": query}, timeout=60).json()
        if answer.get("data", {}).get("assetNodes") or time.monotonic() > deadline:
            return answer["data"]
        time.sleep(1)


def _dismiss_dialogs(page: Any) -> None:
    # The webserver greets a new browser with a "Join the community" dialog.
    skip = page.get_by_role("button", name="Skip")
    if skip.count():
        skip.first.click()
        page.wait_for_timeout(300)


def _open(page: Any, url: str, name: str, ready_text: str) -> str:
    page.goto(url, wait_until="networkidle", timeout=60_000)
    _dismiss_dialogs(page)
    page.get_by_text(ready_text).first.wait_for(timeout=30_000)
    # Statuses arrive after the graph is drawn; the page says "fetching statuses" meanwhile.
    deadline = time.monotonic() + 30
    while "fetching statuses" in page.inner_text("body") and time.monotonic() < deadline:
        page.wait_for_timeout(500)
    page.wait_for_timeout(1000)
    _dismiss_dialogs(page)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    return str(page.inner_text("body"))


def test_ui_shows_every_asset_materialized_and_its_checks_passed(demo_webserver: str) -> None:
    from playwright.sync_api import sync_playwright

    url = demo_webserver
    data = _graphql(url, ASSETS_QUERY)
    nodes = data["assetNodes"]
    repository = data["repositoriesOrError"]["nodes"][0]
    repository_path = f"{repository['name']}@{repository['location']['name']}"
    names = {"/".join(n["assetKey"]["path"]) for n in nodes}
    assert {"site_leads", "resolved_leads", "lead_assignments"} <= names

    not_materialized = sorted(
        "/".join(n["assetKey"]["path"]) for n in nodes if not n["assetMaterializations"]
    )
    assert not not_materialized, f"never materialized: {not_materialized}"
    problems = []
    for node in nodes:
        asset = "/".join(node["assetKey"]["path"])
        for check in node["assetChecksOrError"].get("checks", []):
            execution = check["executionForLatestMaterialization"]
            status = execution["status"] if execution else "NOT RUN"
            severity = ((execution or {}).get("evaluation") or {}).get("severity", "ERROR")
            strict = severity == "ERROR" or check["blocking"] or asset == "receivables"
            if status != "SUCCEEDED" and strict:
                problems.append(f"{asset}.{check['name']}: {status} {execution}")
    assert not problems

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        try:
            body = _open(page, f"{url}/asset-groups", "asset_graph", "Global asset lineage")
            for group in {n["groupName"] for n in nodes}:
                assert group in body
            for group in sorted({n["groupName"] for n in nodes}):
                group_url = f"{url}/locations/{repository_path}/asset-groups/{group}"
                body = _open(page, group_url, f"group_{group}", "Latest event")
                group_assets = ["/".join(n["assetKey"]["path"]) for n in nodes if n["groupName"] == group]
                # On a loaded machine the group's statuses can render after the page looks ready.
                deadline = time.monotonic() + 30
                while body.count("Materialized") < len(group_assets) and time.monotonic() < deadline:
                    page.wait_for_timeout(500)
                    body = str(page.inner_text("body"))
                page.screenshot(path=str(ARTIFACTS / f"group_{group}.png"), full_page=True)
                for asset in group_assets:
                    assert asset in body, f"{asset} not drawn in the {group} graph"
                assert body.count("Materialized") >= len(group_assets), body
            if "receivables" in names:
                body = _open(page, f"{url}/assets/receivables", "receivables", "Latest materialization")
                assert "outstanding_total" in body  # metadata of the latest run
                body = _open(
                    page, f"{url}/assets/receivables?view=checks", "receivables_checks", "receivables"
                )
                assert "Failed" not in body
        finally:
            browser.close()
