"""Every environment variable the hub reads, derived from the settings model itself, so the
deployment guide's table stays complete: `python -m hub.ops.envvars` prints it as markdown."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hub.settings import PROJECT_DIR, setting_fields


@dataclass(frozen=True)
class EnvVariable:
    name: str
    default: Any
    secret: bool
    description: str


def settings_variables() -> Iterator[EnvVariable]:
    """Every setting that holds a value (sections are listed through their fields)."""
    for field in setting_fields():
        if field.section:
            continue
        info = field.info
        default = info.default_factory() if info.default_factory is not None else info.default  # type: ignore[call-arg]
        yield EnvVariable(field.env_name, default, info.repr is False, info.description or "")


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
