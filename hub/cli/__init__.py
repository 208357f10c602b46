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


# Exit codes of a command stopped before doing its work.
EXIT_MISCONFIGURED = 2
EXIT_STORE_UNAVAILABLE = 3


def run() -> None:
    """The `hub` entry point: every command's misconfiguration or unreachable store ends in one
    line naming the setting (or file and line) and what to do, never a traceback."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    from hub.masking import install_log_masking
    from hub.store.health import StoreUnavailable, store_error_message

    install_log_masking()
    try:
        main(standalone_mode=True)
    except SettingsError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_MISCONFIGURED)
    except StoreUnavailable as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_STORE_UNAVAILABLE)
    except (OperationalError, InterfaceError) as exc:
        # Settings were read before the store was touched, so they read again without error.
        from hub.settings import load_settings

        click.echo(store_error_message(load_settings().database_url, exc), err=True)
        sys.exit(EXIT_STORE_UNAVAILABLE)
