"""Commands of the mail source: `hub watch-mail` (IMAP IDLE -> parse -> correlate -> record ->
deliver, in one process), `hub alerts deliver`, and `hub inspect receipt FILE.eml`."""

from __future__ import annotations

import json
import logging
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from hub.settings import load_settings


def register(main: click.Group, inspect: click.Group) -> None:
    main.add_command(watch_mail)
    main.add_command(alerts)
    inspect.add_command(inspect_receipt)


@click.command("watch-mail")
@click.option("--once", is_flag=True, help="Run one catch-up pass (sent mail, receipts, alerts) and exit.")
@click.option(
    "--report-to-dagster/--no-report-to-dagster",
    default=True,
    show_default=True,
    help="Record each pass as an observation of the mail_receipts asset in the Dagster instance "
    "(DAGSTER_HOME).",
)
def watch_mail(once: bool, report_to_dagster: bool) -> None:
    """Hold IMAP IDLE on the receipts folder and alert reps within seconds of a client opening
    their email. Reconnects with backoff and catches up from the saved cursors."""
    from hub.alerts.deliver import transports_from_settings
    from hub.ingest.mail_watch import MailWatcher, imap_mailbox, run_mail_pass

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    mail = settings.mail
    transports = transports_from_settings(mail)
    if not transports:
        click.echo("no alert channel is configured (HUB_MAIL__SMTP_HOST, telegram, slack): alerts wait")
    reporter = None
    if report_to_dagster:
        # The CLI is the entry point: reporting to Dagster lives in assets/.
        from assets.mail import watcher_reporter

        reporter = watcher_reporter()
    if once or not mail.imap_host:
        if not mail.imap_host and not once:
            click.echo("HUB_MAIL__IMAP_HOST is not set: nothing to watch; running one pass over the files")
        mailbox = imap_mailbox(mail) if mail.imap_host else None
        started = time.monotonic()
        result = run_mail_pass(settings.database_url, mail, mailbox, transports)
        if mailbox is not None:
            mailbox.close()
        if reporter is not None:
            reporter(result, timedelta(seconds=time.monotonic() - started))
        click.echo(json.dumps(result.as_dict(), ensure_ascii=False, default=str))
        return

    last = [time.monotonic()]

    def on_pass(result: Any) -> None:
        elapsed = timedelta(seconds=time.monotonic() - last[0])
        last[0] = time.monotonic()
        summary = result.as_dict()
        click.echo(json.dumps({"pass": summary["receipts"], "alerts": summary["alerts"]}, default=str))
        if reporter is not None:
            reporter(result, elapsed)

    watcher = MailWatcher(settings.database_url, mail, transports, on_pass=on_pass)

    def stop(_signum: int, _frame: Any) -> None:
        watcher.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(f"watching {mail.imap_host}/{mail.receipts_folder} (IDLE); Ctrl-C to stop")
    watcher.run()


@click.group()
def alerts() -> None:
    """Alerts to reps from the outbox."""


@alerts.command("deliver")
def alerts_deliver() -> None:
    """Send every due alert once (SMTP, Telegram, Slack), with retries left for later runs."""
    from hub.alerts.deliver import deliver_pending, transports_from_settings
    from hub.ingest.mail_watch import retry_policy

    settings = load_settings()
    transports = transports_from_settings(settings.mail)
    if not transports:
        raise click.UsageError("no alert channel is configured: set HUB_MAIL__SMTP_HOST or a chat channel")
    stats = deliver_pending(settings.database_url, transports, retry_policy(settings.mail))
    click.echo(json.dumps({**stats.as_dict(), "errors": stats.errors[:10]}, ensure_ascii=False))


@click.command("receipt")
@click.argument("eml_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def inspect_receipt(eml_file: Path) -> None:
    """Print the receipt parsed from FILE.eml as JSON: kind, disposition (and whether it was read
    from the report or, the report being missing or malformed, the subject), original Message-ID,
    reader, decoded subject, the Message-IDs it is matched on, and why it would be quarantined."""
    from connectors.receipts import NotAReceipt, parse_receipt
    from hub.ingest.mail import receipt_candidates
    from hub.store.quarantine import describe_error

    raw = eml_file.read_bytes()
    try:
        receipt = parse_receipt(raw)
    except NotAReceipt as exc:
        click.echo(json.dumps({"receipt": False, "ignored": str(exc)}, ensure_ascii=False))
        return
    except Exception as exc:
        click.echo(json.dumps({"receipt": False, "quarantine": describe_error(exc)}, ensure_ascii=False))
        return
    out = {
        "receipt": True,
        "kind": receipt.variant,
        "disposition": receipt.disposition,
        # "subject" when the report part is missing or malformed: the open counts less surely.
        "disposition_from": receipt.disposition_source,
        "opened": receipt.opened,
        "original_message_id": receipt.original_message_id,
        "references": receipt.references,
        "in_reply_to": receipt.in_reply_to,
        "headers_message_id": receipt.headers_message_id,
        "reader": receipt.reader,
        "subject": receipt.subject,
        "original_subject": receipt.original_subject,
        "received_at": receipt.received_at.isoformat() if receipt.received_at else None,
        "quarantine": receipt.problem,
        # What the hub looks the sent email up by, most certain first (then subject + reader).
        "match_on": receipt_candidates(receipt),
    }
    click.echo(json.dumps(out, ensure_ascii=False, indent=2))
