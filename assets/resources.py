"""Dagster resources, built in one place from the hub's settings. Secrets are passed as
EnvVar so that the UI shows the variable's name, never its value."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster import ConfigurableResource, EnvVar
from pydantic import Field
from sqlalchemy.orm import Session

from connectors.onec_odata import AccountingSource, OneCOData, OneCSnapshot
from connectors.site import LeadsSource, SiteLeadsApi, SiteLeadsSnapshot
from hub.ops.alerts import OpsChannels
from hub.settings import HubSettings, MailSettings, TelephonySettings, load_settings
from hub.store.db import session_scope


class StoreResource(ConfigurableResource):
    """The CRM store and the hub's own tables."""

    database_url: str

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_scope(self.database_url) as session:
            yield session


class HubSettingsResource(ConfigurableResource):
    """Non-secret settings (regions, routing weights, time zone), read from the environment and
    HUB_CONFIG when a run starts."""

    config_file: str = ""

    def load(self) -> HubSettings:
        if self.config_file:
            os.environ.setdefault("HUB_CONFIG", self.config_file)
        return load_settings()


class SiteResource(ConfigurableResource):
    """The website: leads API (or a recording of it), webhook inbox, CSV export folder."""

    base_url: str = ""
    api_token: str = ""
    snapshot_file: str = ""
    csv_dir: str = ""
    page_size: int = 100
    timeout_s: float = 30.0
    verify_tls: bool = True

    def leads_source(self) -> LeadsSource | None:
        if self.snapshot_file:
            return SiteLeadsSnapshot(self.snapshot_file)
        if self.base_url:
            return SiteLeadsApi(
                self.base_url,
                self.api_token,
                page_size=self.page_size,
                timeout_s=self.timeout_s,
                verify_tls=self.verify_tls,
            )
        return None


class OpsAlertsResource(ConfigurableResource):
    """Where run-failure and check-failure alerts for ops go: SMTP and/or a Slack/Telegram webhook."""

    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_timeout_s: float = 30.0
    mail_from: str = "dagster@localhost"
    mail_to: list[str] = Field(default_factory=list)
    slack_webhook_url: str = ""
    telegram_bot_token: str = ""
    telegram_api_url: str = "https://api.telegram.org"
    telegram_chat_id: str = ""
    max_attempts: int = 5
    dagster_ui_url: str = "http://127.0.0.1:3000"

    def channels(self) -> OpsChannels:
        return OpsChannels(
            smtp_host=self.smtp_host,
            smtp_port=self.smtp_port,
            smtp_security=self.smtp_security,
            smtp_user=self.smtp_user,
            smtp_password=self.smtp_password,
            smtp_timeout_s=self.smtp_timeout_s,
            mail_from=self.mail_from,
            mail_to=tuple(self.mail_to),
            slack_webhook_url=self.slack_webhook_url,
            telegram_bot_token=self.telegram_bot_token,
            telegram_api_url=self.telegram_api_url,
            telegram_chat_id=self.telegram_chat_id,
            max_attempts=self.max_attempts,
        )

    def run_url(self, run_id: str) -> str:
        return f"{self.dagster_ui_url.rstrip('/')}/runs/{run_id}"


class TelephonyResource(ConfigurableResource):
    """Telephony providers' connection settings (secrets by EnvVar); the rest of the telephony
    settings (lookback, tracking numbers, time zones) come from the hub's settings at run time."""

    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_snapshot_file: str = ""
    zadarma_api_key: str = ""
    zadarma_api_secret: str = ""
    cdr_dir: str = ""
    cdr_file_glob: str = "*.csv"

    def effective(self, settings: TelephonySettings) -> TelephonySettings:
        return settings.model_copy(
            update={
                "twilio": settings.twilio.model_copy(
                    update={
                        "account_sid": self.twilio_account_sid,
                        "auth_token": self.twilio_auth_token,
                        "snapshot_file": self.twilio_snapshot_file,
                    }
                ),
                "zadarma": settings.zadarma.model_copy(
                    update={"api_key": self.zadarma_api_key, "api_secret": self.zadarma_api_secret}
                ),
                "asterisk": settings.asterisk.model_copy(
                    update={"cdr_dir": self.cdr_dir, "file_glob": self.cdr_file_glob}
                ),
            }
        )


class AccountingResource(ConfigurableResource):
    """Accounting: the 1C base over OData (or a recording of it), the watched statements folder
    and the payments CSV folder."""

    odata_url: str = ""
    odata_user: str = ""
    odata_password: str = ""
    odata_snapshot_file: str = ""
    odata_page_size: int = 500
    invoice_due_field: str = "СрокОплаты"
    default_payment_terms_days: int = 5
    statements_dir: str = ""
    payments_csv_dir: str = ""
    timeout_s: float = 60.0
    verify_tls: bool = True

    def odata_source(self, timezone: str) -> AccountingSource | None:
        options: dict[str, Any] = {
            "timezone": timezone,
            "page_size": self.odata_page_size,
            "due_field": self.invoice_due_field,
            "default_terms_days": self.default_payment_terms_days,
        }
        if self.odata_snapshot_file:
            return OneCSnapshot(self.odata_snapshot_file, **options)
        if self.odata_url:
            return OneCOData(
                self.odata_url,
                self.odata_user,
                self.odata_password,
                timeout_s=self.timeout_s,
                verify_tls=self.verify_tls,
                **options,
            )
        return None


class MailResource(ConfigurableResource):
    """The mail source's secrets (IMAP and SMTP passwords, chat credentials) passed by EnvVar;
    every other mail setting comes from the hub's settings when a run starts."""

    imap_password: str = ""
    smtp_password: str = ""
    telegram_bot_token: str = ""
    slack_webhook_url: str = ""

    def effective(self, settings: MailSettings) -> MailSettings:
        return settings.model_copy(
            update={
                "imap_password": self.imap_password,
                "smtp_password": self.smtp_password,
                "telegram_bot_token": self.telegram_bot_token,
                "slack_webhook_url": self.slack_webhook_url,
            }
        )


def secret(env_name: str, fallback: str = "") -> Any:
    """EnvVar when the variable is set (the UI shows only its name); else an empty value,
    which the resource reads as "not configured"."""
    return EnvVar(env_name) if os.environ.get(env_name) else fallback


def build_resources(settings: HubSettings | None = None) -> dict[str, Any]:
    settings = settings or load_settings()
    return {
        # A PostgreSQL URL carries a password: pass it by name when it comes from the environment.
        "store": StoreResource(database_url=secret("HUB_DATABASE_URL", settings.database_url)),
        "hub_settings": HubSettingsResource(config_file=os.environ.get("HUB_CONFIG", "")),
        "site": SiteResource(
            base_url=settings.site.base_url,
            api_token=secret("HUB_SITE__API_TOKEN"),
            snapshot_file=settings.site.snapshot_file,
            csv_dir=settings.site.csv_dir,
            page_size=settings.site.page_size,
            timeout_s=settings.site.timeout_s,
            verify_tls=settings.site.verify_tls,
        ),
        "ops_alerts": OpsAlertsResource(
            smtp_host=settings.ops.smtp_host,
            smtp_port=settings.ops.smtp_port,
            smtp_security=settings.ops.smtp_security,
            smtp_user=settings.ops.smtp_user,
            smtp_password=secret("HUB_OPS__SMTP_PASSWORD"),
            smtp_timeout_s=settings.ops.smtp_timeout_s,
            mail_from=settings.ops.mail_from,
            mail_to=settings.ops.mail_to,
            slack_webhook_url=secret("HUB_OPS__SLACK_WEBHOOK_URL"),
            telegram_bot_token=secret("HUB_OPS__TELEGRAM_BOT_TOKEN"),
            telegram_api_url=settings.ops.telegram_api_url,
            telegram_chat_id=settings.ops.telegram_chat_id,
            max_attempts=settings.ops.max_delivery_attempts,
            dagster_ui_url=settings.dagster_ui_url,
        ),
        "mail": MailResource(
            imap_password=secret("HUB_MAIL__IMAP_PASSWORD"),
            smtp_password=secret("HUB_MAIL__SMTP_PASSWORD"),
            telegram_bot_token=secret("HUB_MAIL__TELEGRAM_BOT_TOKEN"),
            slack_webhook_url=secret("HUB_MAIL__SLACK_WEBHOOK_URL"),
        ),
        "telephony": TelephonyResource(
            twilio_account_sid=settings.telephony.twilio.account_sid,
            twilio_auth_token=secret("HUB_TELEPHONY__TWILIO__AUTH_TOKEN"),
            twilio_snapshot_file=settings.telephony.twilio.snapshot_file,
            zadarma_api_key=settings.telephony.zadarma.api_key,
            zadarma_api_secret=secret("HUB_TELEPHONY__ZADARMA__API_SECRET"),
            cdr_dir=settings.telephony.asterisk.cdr_dir,
            cdr_file_glob=settings.telephony.asterisk.file_glob,
        ),
        "accounting": AccountingResource(
            odata_url=settings.accounting.odata_url,
            odata_user=settings.accounting.odata_user,
            odata_password=secret("HUB_ACCOUNTING__ODATA_PASSWORD"),
            odata_snapshot_file=settings.accounting.odata_snapshot_file,
            odata_page_size=settings.accounting.odata_page_size,
            invoice_due_field=settings.accounting.invoice_due_field,
            default_payment_terms_days=settings.accounting.default_payment_terms_days,
            statements_dir=settings.accounting.statements_dir,
            payments_csv_dir=settings.accounting.payments_csv_dir,
            timeout_s=settings.accounting.timeout_s,
            verify_tls=settings.accounting.verify_tls,
        ),
    }
