"""The CRM backends the hub knows, declared once: `HUB_CRM__BACKEND` picks one by name, the CLI,
docs and checks list them from here. A backend is a module with `build(settings, database_url)`."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.crm.backend import CrmBackend
    from hub.settings import HubSettings


@dataclass(frozen=True)
class BackendSpec:
    name: str
    title: str
    module: str
    # False for the built-in store: the crm_* tables are the CRM, nothing is pulled or pushed.
    external: bool = True
    # "module:Class" of its local replay server (a CrmReplay): `hub demo --crm`, the shared
    # scenario suite and the benchmark find it here.
    replay: str | None = None


BACKENDS: tuple[BackendSpec, ...] = (
    BackendSpec("sql", "the hub's own store (no external CRM)", "hub.crm.sql", external=False),
    BackendSpec("amocrm", "amoCRM / Kommo API v4", "hub.crm.amocrm"),
    BackendSpec(
        "bitrix24", "Bitrix24 REST", "hub.crm.bitrix24", replay="hub.demo.replay.bitrix24:Bitrix24Replay"
    ),
)
BACKEND_NAMES: tuple[str, ...] = tuple(spec.name for spec in BACKENDS)


def backend_spec(name: str) -> BackendSpec:
    for spec in BACKENDS:
        if spec.name == name:
            return spec
    raise KeyError(f"no CRM backend {name!r}; one of: {', '.join(BACKEND_NAMES)}")


def replay_class(name: str) -> Any:
    """The replay server class of a backend (hub/demo/replay), for the demo, tests and bench."""
    spec = backend_spec(name)
    if not spec.replay:
        raise KeyError(f"CRM backend {name!r} has no local replay")
    module, _, attribute = spec.replay.partition(":")
    return getattr(import_module(module), attribute)


REPLAY_BACKENDS: tuple[str, ...] = tuple(spec.name for spec in BACKENDS if spec.replay)


def build_backend(settings: HubSettings, database_url: str | None = None) -> CrmBackend:
    """The configured backend, connected (its module's `build`)."""
    spec = backend_spec(settings.crm.backend)
    return import_module(spec.module).build(settings, database_url or settings.database_url)  # type: ignore[no-any-return]
