"""Dagster assets of the mail source: `mail_receipts` (sent mail and read receipts into the CRM,
opens, call-now tasks, outbox rows), `mail_alerts` (delivery), a sensor for alerts that fell due,
and the observations `hub watch-mail` reports so its in-process work shows in the UI."""

import os
from collections.abc import Callable
from datetime import timedelta

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    DagsterInstance,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    asset,
    asset_check,
    sensor,
)
from sqlalchemy import func, or_, select

from assets.metadata import ingest_metadata, markdown_table
from assets.resources import HubSettingsResource, MailResource, StoreResource
from assets.retries import TRANSIENT_RETRY_POLICY, fail_fast_on_permanent_errors
from hub.alerts.deliver import MAIL_ALERT_KINDS, close_transports, deliver_pending, transports_from_settings
from hub.alerts.health import delivery_verdict
from hub.ingest.mail_watch import MailPassResult, imap_mailboxes, retry_policy, run_mail_pass
from hub.masking import mask_email, mask_text
from hub.store.models import AlertOutbox, MailReceipt
from hub.timeutil import utcnow

MAIL_RECEIPTS = AssetKey("mail_receipts")


@asset(
    group_name="mail",
    owners=["team:sales-ops"],
    kinds={"python", "sql", "email"},
    tags={"source": "mail"},
    retry_policy=TRANSIENT_RETRY_POLICY,
    description="Sent emails (Sent folder) recorded as email_sent activities and read receipts (RFC 8098, "
    "Thunderbird, Outlook in any language, plain text) correlated to them: one email_opened activity per "
    "sent email, a call-now task and an outbox alert on the first open. Catches up whatever `hub "
    "watch-mail` missed, from the same cursors. Uncorrelated receipts wait in hub_mail_receipts.",
)
@fail_fast_on_permanent_errors
def mail_receipts(
    context: AssetExecutionContext,
    store: StoreResource,
    mail: MailResource,
    hub_settings: HubSettingsResource,
) -> MaterializeResult:
    settings = mail.effective(hub_settings.load().mail)
    accounts = imap_mailboxes(settings)
    try:
        # The scheduled run also retries the queue against mail recorded by other means.
        result = run_mail_pass(store.database_url, settings, accounts, transports=None, retry_queue=True)
    finally:
        for account in accounts:
            account.close()
    if not accounts and not settings.maildir:
        context.log.info("no mailbox is configured (docs/mail.md)")
    with store.session() as session:
        queue = session.scalar(
            select(func.count()).select_from(MailReceipt).where(MailReceipt.status == "uncorrelated")
        )
        waiting = session.scalars(
            select(MailReceipt)
            .where(MailReceipt.status == "uncorrelated")
            .order_by(MailReceipt.id.desc())
            .limit(20)
        ).all()
        # The queue people work through: receipts no sent email could be found for.
        queue_preview = markdown_table(
            [
                {
                    "received": f"{r.received_at:%Y-%m-%d %H:%M}" if r.received_at else "",
                    "reader": mask_email(r.reader),
                    "subject": mask_text(r.subject),
                    "original_message_id": r.original_message_id or "",
                }
                for r in waiting
            ],
            empty="_no receipt is waiting_",
        )
    return MaterializeResult(
        metadata=pass_metadata(
            result, uncorrelated_queue=int(queue or 0), uncorrelated_receipts=queue_preview
        )
    )


def pass_metadata(result: MailPassResult, **extra: object) -> dict[str, object]:
    receipts = result.receipts
    return ingest_metadata(
        receipts,
        sent_emails_read=result.sent.rows_in,
        sent_emails_written=result.sent.written,
        opened=int(receipts.extra.get("opened", 0)) + int(result.queue.extra.get("opened", 0)),
        not_read=int(receipts.extra.get("not_read", 0)),
        correlated_from_queue=result.queue.written,
        uidvalidity_rescan=result.rescanned,
        **extra,
    )


@asset(
    group_name="mail",
    owners=["team:sales-ops"],
    kinds={"python", "email"},
    deps=[MAIL_RECEIPTS],
    description="Alerts to reps ('client opened your email — call now') sent from hub_alert_outbox by SMTP, "
    "Telegram or Slack exactly once, with retries and backoff; quiet hours postpone them.",
)
def mail_alerts(
    context: AssetExecutionContext,
    store: StoreResource,
    mail: MailResource,
    hub_settings: HubSettingsResource,
) -> MaterializeResult:
    settings = mail.effective(hub_settings.load().mail)
    transports = transports_from_settings(settings)
    try:
        stats = deliver_pending(store.database_url, transports, retry_policy(settings))
    finally:
        close_transports(transports)
    for error in stats.errors[:5]:
        context.log.warning("alert not delivered: %s", error)
    with store.session() as session:
        by_status = dict(
            session.execute(
                select(AlertOutbox.status, func.count())
                .where(AlertOutbox.kind.in_(MAIL_ALERT_KINDS))
                .group_by(AlertOutbox.status)
            ).all()
        )
    return MaterializeResult(
        metadata={
            "sent": stats.sent,
            "retried": stats.retried,
            "failed": stats.failed,
            "outbox_by_status": markdown_table(
                [{"status": k, "alerts": v} for k, v in sorted(by_status.items())]
            ),
        }
    )


@sensor(
    target=[AssetKey("mail_alerts")],
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Delivers alerts that fell due without a watcher to send them: quiet hours ended, a "
    "retry's backoff passed, or `hub watch-mail` is not running. One run per set of due alerts.",
)
def mail_alerts_due_sensor(
    context: SensorEvaluationContext,
    store: StoreResource,
    mail: MailResource,
    hub_settings: HubSettingsResource,
) -> RunRequest | SkipReason:
    channels = list(transports_from_settings(mail.effective(hub_settings.load().mail)))
    if not channels:
        return SkipReason("no alert channel is configured (HUB_MAIL__SMTP_HOST, telegram, slack)")
    now = utcnow()
    with store.session() as session:
        due = session.execute(
            select(func.count(), func.max(AlertOutbox.id)).where(
                AlertOutbox.kind.in_(MAIL_ALERT_KINDS),
                AlertOutbox.channel.in_(channels),
                AlertOutbox.status == "pending",
                or_(AlertOutbox.next_attempt_at.is_(None), AlertOutbox.next_attempt_at <= now),
            )
        ).one()
    count, newest = int(due[0] or 0), due[1]
    if not count:
        return SkipReason("no mail alert is due")
    # The same due set in the same minute asks once; the outbox makes a repeat harmless anyway.
    return RunRequest(run_key=f"alerts-{newest}-{count}-{now:%Y%m%d%H%M}")


@asset_check(
    asset=mail_alerts,
    description="Reps' alerts reach them: a channel is configured, no alert waits for a channel without "
    "transport, no channel is failing (retries, failures in 24 h), every open found a rep to alert.",
)
def alerts_reach_reps(
    store: StoreResource, mail: MailResource, hub_settings: HubSettingsResource
) -> AssetCheckResult:
    configured = list(transports_from_settings(mail.effective(hub_settings.load().mail)))
    with store.session() as session:
        verdict = delivery_verdict(session, configured)
    return AssetCheckResult(
        passed=verdict.passed,
        severity=AssetCheckSeverity.ERROR,
        description=verdict.description,
        metadata=dict(verdict.metadata),
    )


MAIL_CHECKS = [alerts_reach_reps]
MAIL_SENSORS = [mail_alerts_due_sensor]


def watcher_reporter() -> Callable[[MailPassResult, timedelta], None] | None:
    """A function reporting each `hub watch-mail` pass to the Dagster instance, or None when no
    DAGSTER_HOME is set (no instance to report to)."""
    if not os.environ.get("DAGSTER_HOME"):
        return None
    instance = DagsterInstance.get()

    def report(result: MailPassResult, elapsed: timedelta) -> None:
        report_watcher_pass(instance, result, elapsed)

    return report


def report_watcher_pass(instance: DagsterInstance, result: MailPassResult, elapsed: timedelta) -> None:
    """Show a `hub watch-mail` pass in the UI as an observation of the receipts asset (the watcher
    runs outside Dagster runs, so it observes rather than materializes)."""
    metadata = {
        key: value
        for key, value in pass_metadata(result).items()
        if isinstance(value, (int, float, bool, str, MetadataValue))
    }
    metadata["alerts_sent"] = result.delivery.sent
    metadata["alerts_retried"] = result.delivery.retried
    metadata["pass_seconds"] = MetadataValue.float(round(elapsed.total_seconds(), 3))
    metadata["reported_by"] = "hub watch-mail"
    instance.report_runless_asset_event(AssetObservation(asset_key=MAIL_RECEIPTS, metadata=metadata))
