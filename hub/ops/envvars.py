"""Every environment variable the hub reads, derived from the settings model itself, so the
deployment guide's table stays complete: `python -m hub.ops.envvars` prints it as markdown."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from hub.settings import PROJECT_DIR, HubSettings


@dataclass(frozen=True)
class EnvVariable:
    name: str
    default: Any
    secret: bool
    description: str


def settings_variables(model: type[BaseModel] = HubSettings, prefix: str = "HUB_") -> Iterator[EnvVariable]:
    for name, field in model.model_fields.items():
        env_name = prefix + name.upper()
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from settings_variables(annotation, env_name + "__")
            continue
        default = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
        yield EnvVariable(env_name, default, field.repr is False, field.description or "")


def markdown_table() -> str:
    lines = ["| variable | default | secret | what it is |", "|---|---|---|---|"]
    for var in settings_variables():
        default = str(var.default).replace(str(PROJECT_DIR), "<project>").replace("|", "\\|")
        default = default if len(default) <= 60 else default[:57] + "..."
        shown = f"`{default}`" if default else "(empty)"
        lines.append(
            f"| `{var.name}` | {shown} | {'**yes**' if var.secret else ''} | {var.description.replace('|', '/')} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
