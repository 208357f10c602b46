"""The `hub` command. Each domain registers its subcommands from its own module in
hub/cli/; `hub inspect ...` gathers the parsers' inspection commands."""

from __future__ import annotations

import sys
from importlib import import_module

import click

from hub.settings import SettingsError

# Modules defining `register(main, inspect)`; one per domain.
COMMAND_MODULES = [
    "hub.cli.core",
    "hub.cli.site",
    "hub.cli.mail",
    "hub.cli.telephony",
    "hub.cli.identity",
    "hub.cli.accounting",
    "hub.cli.analytics",
    "hub.cli.crm",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """CRM integration hub: telephony, mail, website and accounting into the CRM store."""


@main.group()
def inspect() -> None:
    """Show how the hub parses a source file, and why it would quarantine a record."""


for _name in COMMAND_MODULES:
    import_module(_name).register(main, inspect)


def run() -> None:
    try:
        main(standalone_mode=True)
    except SettingsError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
