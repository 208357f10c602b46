"""The deployment files stay true to the code without a Docker daemon or a cluster: deploy/Dockerfile
parses and copies only files that exist, from the lock; deploy/helm/values.yaml validates against the
Dagster chart's values.schema.json (tests/ops/samples/); deploy/compose.yaml runs only commands,
modules, files and variables that exist."""

from __future__ import annotations

import copy
import fnmatch
import importlib.util
import itertools
import json
import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from hub.ops.envvars import settings_variables
from hub.processes import console_script
from hub.settings import PROJECT_DIR

DEPLOY = PROJECT_DIR / "deploy"
SAMPLES = PROJECT_DIR / "tests" / "ops" / "samples"
# Where deploy/Dockerfile puts the repository (its WORKDIR): paths in commands map back to it.
IMAGE_APP_DIR = "/opt/hub/app/"

# ---------------------------------------------------------------- Dockerfile

DOCKERFILE_INSTRUCTIONS = {
    "FROM", "ARG", "ENV", "RUN", "COPY", "ADD", "WORKDIR", "USER", "EXPOSE", "CMD", "ENTRYPOINT",
    "LABEL", "HEALTHCHECK", "VOLUME", "SHELL", "STOPSIGNAL", "ONBUILD",
}  # fmt: skip


@dataclass
class Instruction:
    line: int
    keyword: str
    args: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comments and parser directives dropped."""
    out: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        pending.append(stripped.removesuffix("\\").strip())
        if not stripped.endswith("\\"):
            keyword, _, args = " ".join(pending).partition(" ")
            out.append(Instruction(start, keyword.upper(), args.strip()))
            pending = []
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def _copy_parts(args: str) -> tuple[dict[str, str], list[str], str]:
    """(flags, sources, destination) of a COPY, in shell or JSON form."""
    words = shlex.split(args)
    flags = {}
    while words and words[0].startswith("--"):
        name, _, value = words.pop(0)[2:].partition("=")
        flags[name] = value
    if words and words[0].startswith("["):
        words = json.loads(" ".join(words))
    return flags, words[:-1], words[-1]


def _ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics enough for ours: the last matching pattern wins, `!` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.removeprefix("!")
        if fnmatch.fnmatch(path, body) or fnmatch.fnmatch(path, body.removesuffix("/**")):
            ignored = not negate
    return ignored


def test_dockerfile_parses_and_names_only_what_exists() -> None:
    instructions = parse_dockerfile((DEPLOY / "Dockerfile").read_text())
    unknown = [
        f"line {i.line}: {i.keyword}" for i in instructions if i.keyword not in DOCKERFILE_INSTRUCTIONS
    ]
    assert not unknown
    ignore = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    stages: list[str] = []
    copied: set[str] = set()
    users: dict[str, str] = {}
    args_: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "FROM":
            words = ins.args.split()
            assert len(words) == 3 and words[1].upper() == "AS", f"line {ins.line}: name every stage"
            stages.append(words[2])
        elif ins.keyword == "ARG":
            name, _, default = ins.args.partition("=")
            args_[name] = default
        elif ins.keyword == "USER":
            users[stages[-1]] = ins.args
        elif ins.keyword == "COPY":
            flags, sources, _ = _copy_parts(ins.args)
            if "from" in flags:
                assert flags["from"] in stages[:-1], f"line {ins.line}: no earlier stage {flags['from']}"
                continue
            for source in sources:
                assert (PROJECT_DIR / source).exists(), f"line {ins.line}: {source} is not in the repository"
                assert not _ignored(source.rstrip("/"), ignore), f"line {ins.line}: {source} is dockerignored"
                copied.add(source.rstrip("/"))

    assert len(stages) >= 2, "multi-stage: the build tools stay out of the runtime image"
    # Installed from the lock, with uv at the Makefile's pin, with extras that exist.
    assert {"pyproject.toml", "uv.lock"} <= copied
    syncs = [i for i in instructions if i.keyword == "RUN" and "uv sync" in i.args]
    assert syncs and all("--frozen" in i.args for i in syncs)
    makefile_uv = re.search(r"^UV_VERSION := (\S+)$", (PROJECT_DIR / "Makefile").read_text(), re.M)
    assert makefile_uv and args_["UV_VERSION"] == makefile_uv[1]
    extras = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for ins in syncs:
        assert set(re.findall(r"--extra (\S+)", ins.args)) <= set(extras)
    # Not root at run time.
    final = stages[-1]
    assert users.get(final) not in (None, "root", "0"), "the runtime stage must switch to a non-root USER"
    # The entry points: the default command is the code server on a module that imports.
    (cmd,) = [i for i in instructions if i.keyword == "CMD"]
    command = json.loads(cmd.args)
    assert command[:3] == ["dagster", "code-server", "start"]
    check_command(command)
    for script in ("hub", "dagster"):
        console_script(script)


# ---------------------------------------------------------------- commands of compose and the image


def _click_commands() -> dict[str, Callable[[], click.Command]]:
    """The click object behind each console script a deployment file runs."""

    def dagster() -> click.Command:
        from dagster._cli import create_dagster_cli

        return create_dagster_cli()

    def webserver() -> click.Command:
        from dagster_webserver.cli import create_dagster_webserver_cli

        return create_dagster_webserver_cli()

    def daemon() -> click.Command:
        from dagster._daemon.cli import create_dagster_daemon_cli

        return create_dagster_daemon_cli()

    def hub() -> click.Command:
        from hub.cli import main

        return main

    return {"dagster": dagster, "dagster-webserver": webserver, "dagster-daemon": daemon, "hub": hub}


def check_command(command: list[str]) -> None:
    """The command exists and parses: its script is installed, every subcommand and option is
    known with a value of the right type (click parses it without running anything), each `-m`
    module imports and each file under the image's app folder is in the repository."""
    script, *in_image = command
    console_script(script)
    # A path in the image is the repository's file (click checks that paths exist).
    args = [
        f"{PROJECT_DIR}/{a.removeprefix(IMAGE_APP_DIR)}" if a.startswith(IMAGE_APP_DIR) else a
        for a in in_image
    ]
    cmd = _click_commands()[script]()
    ctx = cmd.make_context(script, list(args))
    while isinstance(cmd, click.Group):
        name, sub, rest = cmd.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        assert sub is not None, f"{command}: no subcommand {name}"
        cmd, ctx = sub, sub.make_context(name or "", rest, parent=ctx)
    for flag, value in itertools.pairwise(args):
        if flag in ("-m", "--module-name"):
            assert importlib.util.find_spec(value) is not None, f"{command}: no module {value}"
    for value in in_image:
        if value.startswith(IMAGE_APP_DIR):
            assert (PROJECT_DIR / value.removeprefix(IMAGE_APP_DIR)).is_file(), f"{command}: {value}"


# ---------------------------------------------------------------- Helm values


def _strict_override_schema(schema: Any) -> Any:
    """The chart's schema as a check of an override file: `required` dropped (helm validates the
    chart's own defaults merged with ours, which supply them) and no key the chart does not
    declare (a misspelt key would otherwise be silently ignored by the chart's templates)."""
    if isinstance(schema, dict):
        out = {k: _strict_override_schema(v) for k, v in schema.items() if k != "required"}
        if out.get("properties") and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict_override_schema(v) for v in schema]
    return schema


def _remote_refs(schema: Any) -> set[str]:
    if isinstance(schema, dict):
        ref = schema.get("$ref", "")
        own = {ref} if ref.startswith("http") else set()
        return own.union(*(_remote_refs(v) for v in schema.values()))
    if isinstance(schema, list):
        return set().union(*(_remote_refs(v) for v in schema))
    return set()


def _kubernetes_definitions(refs: set[str]) -> Registry:
    """Kubernetes' own object schemas (kubernetesjsonschema.dev) are not fetched here: each
    pointer into them resolves to an empty schema, so those parts (resources, securityContext,
    env sources, ...) are checked only as far as the chart's own fields type them."""
    documents: dict[str, dict[str, Any]] = {}
    for ref in refs:
        uri, _, pointer = ref.partition("#")
        node = documents.setdefault(uri, {})
        for part in [p for p in pointer.split("/") if p]:
            node = node.setdefault(part, {})
    registry: Registry = Registry()
    for uri, document in documents.items():
        registry = registry.with_resource(uri, Resource.from_contents(document, default_specification=DRAFT7))
    return registry


def helm_validator() -> jsonschema.Draft7Validator:
    """Draft 7, as Helm reads chart schemas without a $schema: a $ref replaces its siblings."""
    schema = json.loads((SAMPLES / "dagster-helm-values.schema.json").read_text())
    registry = _kubernetes_definitions(_remote_refs(schema))
    return jsonschema.Draft7Validator(_strict_override_schema(schema), registry=registry)


HELM_VALUES = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


def test_helm_values_validate_against_the_charts_schema() -> None:
    validator = helm_validator()
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(HELM_VALUES)
    ]
    assert errors == []

    # The validator does catch mistakes: a misspelt key and a wrong type each fail.
    broken = copy.deepcopy(HELM_VALUES)
    broken["runLauncher"]["config"]["k8sRunLauncher"]["envSecret"] = [{"name": "hub-secrets"}]
    broken["dagster-user-deployments"]["deployments"][0]["port"] = "4266"
    assert len(list(validator.iter_errors(broken))) == 2


def test_helm_values_run_the_image_with_k8s_runs_postgres_and_named_secrets() -> None:
    (deployment,) = HELM_VALUES["dagster-user-deployments"]["deployments"]
    check_command(["dagster", "code-server", "start", *deployment["codeServerArgs"]])
    assert deployment["envSecrets"] == [{"name": "hub-secrets"}]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    assert deployment["podSecurityContext"]["runAsNonRoot"] is True
    assert HELM_VALUES["runLauncher"]["type"] == "K8sRunLauncher"
    postgres = HELM_VALUES["postgresql"]
    assert postgres["enabled"] is False and postgres["postgresqlPassword"] == ""
    assert HELM_VALUES["generatePostgresqlPasswordSecret"] is False
    assert HELM_VALUES["global"]["postgresqlSecretName"]
    # The same per-source run limit as on one host (deploy/dagster.yaml).
    one_host = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["concurrency"]["runs"]
    queued = HELM_VALUES["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued["tagConcurrencyLimits"] == one_host["tag_concurrency_limits"]


# ---------------------------------------------------------------- compose

COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
# Variables the postgres image itself reads (its documentation's names).
POSTGRES_IMAGE_VARIABLES = {"POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD"}


def _deploy_env_references() -> set[str]:
    """Every variable a deploy/*.yaml file reads through Dagster's `env:` source."""
    names = set()
    for path in DEPLOY.glob("*.yaml"):
        names |= set(re.findall(r"^\s*env: (\w+)\s*$", path.read_text(), re.M))
    return names


def _env_file_names(path: Path) -> list[str]:
    return [
        line.split("=", 1)[0].strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


@pytest.mark.parametrize("service", sorted(COMPOSE["services"]))
def test_compose_service_runs_what_exists(service: str) -> None:
    spec = COMPOSE["services"][service]
    if "command" in spec:
        check_command(spec["command"])
    for volume in spec.get("volumes", []):
        source = volume.split(":", 1)[0]
        if source.startswith("."):  # a bind mount, relative to the compose file
            assert (DEPLOY / source).resolve().exists(), f"{service} mounts {source}, not in the repository"
    env_files = spec.get("env_file", [])
    for env_file in [env_files] if isinstance(env_files, str) else env_files:
        # The operator's copy of the example beside it (it holds secrets: not in the repository).
        assert (DEPLOY / f"{env_file}.example").is_file(), f"{service}: no {env_file}.example to copy"
    settings = {v.name for v in settings_variables()}
    dagster = _deploy_env_references() | {"DAGSTER_HOME"}
    for name in spec.get("environment", {}):
        if name.startswith("HUB_"):
            assert name in settings, f"{service}: {name} is not a setting of hub/settings.py"
        elif name.startswith("DAGSTER_"):
            assert name in dagster, f"{service}: no deploy/*.yaml reads {name}"
        else:
            assert service == "postgres" and name in POSTGRES_IMAGE_VARIABLES, f"{service}: {name}?"


def test_compose_has_every_process_of_one_host() -> None:
    services = COMPOSE["services"]
    assert {"postgres", "code-server", "webserver", "daemon", "hub-serve", "watch-mail"} <= set(services)
    commands = {name: spec.get("command", []) for name, spec in services.items()}
    assert commands["code-server"][:3] == ["dagster", "code-server", "start"]
    for name in ("webserver", "daemon"):
        assert f"{IMAGE_APP_DIR}deploy/workspace.grpc.yaml" in commands[name]
    assert commands["hub-serve"][:2] == ["hub", "serve"] and commands["watch-mail"] == ["hub", "watch-mail"]
    # The workspace reaches the code server where compose names it.
    server = yaml.safe_load((DEPLOY / "workspace.grpc.yaml").read_text())["load_from"][0]["grpc_server"]
    environment = services["webserver"]["environment"]
    assert environment[server["host"]["env"]] == "code-server"
    assert (
        environment[server["port"]["env"]] == commands["code-server"][commands["code-server"].index("-p") + 1]
    )


def test_env_example_names_only_real_variables() -> None:
    settings = {v.name for v in settings_variables()}
    dagster = _deploy_env_references()
    for name in _env_file_names(DEPLOY / "hub.env.example"):
        assert name in settings | dagster | POSTGRES_IMAGE_VARIABLES, name


@pytest.mark.parametrize(
    "command",
    [
        ["hub", "watch-mails"],
        ["hub", "serve", "--prot", "8080"],
        ["hub", "serve", "--port", "eighty"],
        ["dagster", "code-server", "begin"],
        ["dagster-daemon", "run", "-w", f"{IMAGE_APP_DIR}deploy/no-such-workspace.yaml"],
    ],
)
def test_a_command_that_would_not_start_is_caught(command: list[str]) -> None:
    with pytest.raises((click.UsageError, AssertionError)):
        check_command(command)


@pytest.mark.parametrize("unit", sorted(p.name for p in (DEPLOY / "systemd").glob("*.service")))
def test_systemd_unit_runs_what_exists(unit: str) -> None:
    (line,) = [
        ln for ln in (DEPLOY / "systemd" / unit).read_text().splitlines() if ln.startswith("ExecStart=")
    ]
    binary, *args = shlex.split(line.removeprefix("ExecStart="))
    assert binary.startswith("/opt/hub/venv/bin/"), unit
    check_command([binary.removeprefix("/opt/hub/venv/bin/"), *args])
