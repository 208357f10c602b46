"""docs/DEPLOYMENT.md's `hub serve` commands, run as written: parsed out of the guide's fenced
block, executed by a shell in a network namespace of its own (its loopback has port 8080 free,
whatever else runs on this machine), answered by real uvicorn. The systemd unit and the guide's
process table name the same command."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serve.process import PROJECT_DIR, hub_env

GUIDE = PROJECT_DIR / "docs" / "DEPLOYMENT.md"
UNIT = PROJECT_DIR / "deploy" / "systemd" / "hub-serve.service"


def _serve_commands() -> list[str]:
    text = GUIDE.read_text()
    section = text[text.index("### `hub serve`") :]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the `hub serve` section has no ```sh block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def _isolated_network() -> list[str] | None:
    """A command prefix giving the shell a network namespace of its own, if this host allows it."""
    for prefix in (["unshare", "-n"], ["unshare", "-rn"]):
        try:
            if subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0:
                return prefix
        except (OSError, subprocess.TimeoutExpired):
            continue
    return None


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_the_unit_and_the_process_table_run_the_guide_s_command() -> None:
    (serve,) = [c for c in _serve_commands() if c.startswith("hub serve")]
    exec_start = next(line for line in UNIT.read_text().splitlines() if line.startswith("ExecStart="))
    assert exec_start == f"ExecStart=/opt/hub/venv/bin/{serve}"
    assert f"| `{serve}` |" in GUIDE.read_text()


def test_the_guide_s_hub_serve_commands_run_as_written(tmp_path: Path) -> None:
    commands = _serve_commands()
    assert any(c.startswith("hub serve") for c in commands) and any(c.startswith("curl") for c in commands)
    prefix = _isolated_network()
    if prefix is None and not _port_free(8080):
        pytest.skip("no network namespace here and 127.0.0.1:8080 is taken")
    script = [
        "set -e",
        "ip link set lo up" if prefix else ":",
        f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH",
    ]
    for command in commands:
        if command.startswith("hub serve"):
            port = re.search(r"--port (\d+)", command)
            assert port is not None
            script += [
                f"{command} > {shlex.quote(str(tmp_path / 'serve.log'))} 2>&1 &",
                "server=$!",
                # The next command is run once the server answers at all (workers still starting).
                f"for _ in $(seq 1 300); do curl -s -o /dev/null http://127.0.0.1:{port.group(1)}/healthz && break; sleep 0.2; done",
            ]
        else:
            script.append(command)
    script += ["kill -TERM $server", "wait $server || true"]
    settings = {
        "HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}",
        "HUB_SITE__WEBHOOK_SECRET": "deployment-guide-secret",
        "HUB_DATA_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [*(prefix or []), "bash", "-c", "\n".join(script)],
        env=hub_env(settings),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    log = (tmp_path / "serve.log").read_text() if (tmp_path / "serve.log").exists() else ""
    assert result.returncode == 0, result.stdout + result.stderr + log
    assert '{"status":"ready"}' in result.stdout
    assert "Started parent process" in log and log.count("Started server process") == 2  # two workers
