"""Commands of the mail source: `hub watch-mail` (IMAP IDLE -> parse -> correlate -> record ->
deliver, in one process), `hub alerts deliver`, and `hub inspect receipt FILE.eml`."""

from __future__ import annotations

import json
import logging
import signal
import threading
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
    """Hold IMAP IDLE on every configured mailbox (one connection each) and alert reps within
    seconds of a client opening their email. Each mailbox reconnects on its own, from its own
    saved cursor; alerts are sent by this process right after they are recorded."""
    from hub.alerts.deliver import DeliveryStats, close_transports, transports_from_settings
    from hub.ingest.mail_watch import MailWatcher, imap_mailboxes, run_mail_pass
    from hub.ops.alerts import ops_channels
    from hub.settings import SettingsError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    mail = settings.mail
    try:
        accounts = imap_mailboxes(mail)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    transports = transports_from_settings(mail)
    if not transports:
        click.echo(
            "WARNING: no alert channel is configured (HUB_MAIL__SMTP_HOST, HUB_MAIL__ALERT_EML_DIR, "
            "telegram, slack): opens are recorded but no rep is alerted",
            err=True,
        )
    reporter = None
    if report_to_dagster:
        # The CLI is the entry point: reporting to Dagster lives in assets/.
        from assets.mail import watcher_reporter

        reporter = watcher_reporter()
    if once or not accounts:
        if not accounts and not once:
            click.echo("no IMAP mailbox is configured: nothing to watch; running one pass over the files")
        started = time.monotonic()
        try:
            result = run_mail_pass(settings.database_url, mail, accounts, transports)
        finally:
            for account in accounts:
                account.close()
            close_transports(transports)
        if reporter is not None:
            reporter(result, timedelta(seconds=time.monotonic() - started))
        click.echo(json.dumps(result.as_dict(), ensure_ascii=False, default=str))
        return

    last = [time.monotonic()]
    # Alerts are sent by the dispatcher thread; each pass reported to Dagster carries those sent since.
    delivered = DeliveryStats()
    delivered_lock = threading.Lock()

    def on_pass(result: Any) -> None:
        elapsed = timedelta(seconds=time.monotonic() - last[0])
        last[0] = time.monotonic()
        with delivered_lock:
            result.delivery = DeliveryStats(delivered.sent, delivered.retried, delivered.failed)
            delivered.sent = delivered.retried = delivered.failed = 0
        summary = result.as_dict()
        click.echo(json.dumps({"mailbox": summary["mailbox"], "pass": summary["receipts"]}, default=str))
        if reporter is not None:
            reporter(result, elapsed)

    def on_delivery(stats: Any) -> None:
        with delivered_lock:
            delivered.sent += stats.sent
            delivered.retried += stats.retried
            delivered.failed += stats.failed
        click.echo(json.dumps({"alerts": stats.as_dict(), "errors": stats.errors[:3]}, ensure_ascii=False))

    watcher = MailWatcher(
        settings.database_url,
        mail,
        transports,
        on_pass=on_pass,
        on_delivery=on_delivery,
        ops=ops_channels(settings.ops),
    )

    def stop(_signum: int, _frame: Any) -> None:
        watcher.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    names = ", ".join(w.label for w in watcher.watchers)
    click.echo(
        f"watching {len(accounts)} mailbox(es) on IDLE ({mail.receipts_folder}): {names}; Ctrl-C to stop"
    )
    watcher.run()


@click.group()
def alerts() -> None:
    """Alerts to reps from the outbox."""


@alerts.command("deliver")
def alerts_deliver() -> None:
    """Send every due alert once (SMTP, Telegram, Slack), with retries left for later runs."""
    from hub.alerts.deliver import close_transports, deliver_pending, transports_from_settings
    from hub.ingest.mail_watch import retry_policy

    settings = load_settings()
    transports = transports_from_settings(settings.mail)
    if not transports:
        raise click.UsageError(
            "no alert channel is configured: set HUB_MAIL__SMTP_HOST (or HUB_MAIL__ALERT_EML_DIR) or a chat channel"
        )
    try:
        stats = deliver_pending(settings.database_url, transports, retry_policy(settings.mail))
    finally:
        close_transports(transports)
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
