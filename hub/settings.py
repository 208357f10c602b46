"""The hub's settings: one pydantic model read from environment variables (HUB_...,
nested with "__", e.g. HUB_SITE__BASE_URL) over an optional YAML file (HUB_CONFIG)."""

from __future__ import annotations

import difflib
import json
import os
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pydantic_settings
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from connectors.asterisk_cdr import DEFAULT_INBOUND_CONTEXTS, DEFAULT_PBX_APPS, DEFAULT_TRUNK_PEERS
from hub.channels import ChannelRules

PROJECT_DIR = Path(__file__).resolve().parent.parent
# HUB_* variables the project reads that are not settings; any other unknown HUB_* name is a typo.
NON_SETTING_VARIABLES: Mapping[str, str] = {
    "HUB_CONFIG": "the YAML file of settings",
    "HUB_TEST_POSTGRES_URL": "the PostgreSQL server of the test suite",
    "HUB_CRASH_SEED": "the seed of the crash-and-resume tests",
}


class SettingsError(RuntimeError):
    """The hub is misconfigured; the message names each bad setting and its variable."""


class Section(BaseModel):
    """A settings section: an unknown key (a typo in the YAML file) is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


class SiteSettings(Section):
    """The website's leads: its JSON API, the signed webhook, and CSV exports."""

    base_url: str = Field("", description="Site leads API, e.g. https://example.ru; empty: API not polled")
    # Secret: from HUB_SITE__API_TOKEN only.
    api_token: str = Field("", repr=False)
    # Secret: the HMAC key shared with the site for the webhook (HUB_SITE__WEBHOOK_SECRET).
    webhook_secret: str = Field("", repr=False)
    webhook_max_body_bytes: int = Field(64 * 1024, gt=0)
    webhook_max_records: int = Field(
        100, gt=0, description="Leads one webhook post may carry; a post with more is refused (413)"
    )
    webhook_replay_window_s: int = Field(300, gt=0)
    csv_dir: str = ""
    page_size: int = Field(100, gt=0, le=1000)
    timeout_s: float = Field(30.0, gt=0)
    verify_tls: bool = True
    snapshot_file: str = Field("", description="Recorded API pages replayed instead of the API (demo)")


class RoutingSettings(Section):
    """Routing by load (hub/routing, docs/identity.md): load = weighted open work / capacity."""

    lead_weight: float = Field(1.0, ge=0, description="Load of one open lead")
    deal_weight: float = Field(0.5, ge=0, description="Load of one open deal")
    # Leads of one person from any source within this window are one lead with all its touches
    # (a form and a call the same day); a repeated form submission is not a new lead.
    duplicate_window_hours: int = Field(24, ge=0)
    # Reps on shift (in their own time zone) get new leads first; when no qualified rep is on
    # shift, a qualified rep off shift gets it (the reason says so) rather than it waiting.
    require_shift: bool = True
    # A returning contact goes to its owner while the owner is active and qualified, even
    # off shift (the owner calls back in the morning); False: the owner must be on shift too.
    sticky_owner_off_shift: bool = True
    # A deactivated rep's open leads, open deals and contacts are handed to the others.
    redistribute_inactive: bool = True


class IdentitySettings(Section):
    """Identity resolution (hub/identity, docs/identity.md): what counts as the same person."""

    name_compatible: float = Field(
        70.0, ge=0, le=100, description="Names at least this similar may be one person (0..100)"
    )
    fuzzy_link: float = Field(
        90.0, ge=0, le=100, description="A name this similar plus one corroborating field links"
    )
    name_probable: float = Field(
        80.0, ge=0, le=100, description="A name this similar links only with two corroborating fields"
    )
    shared_key_names: int = Field(
        2, ge=2, description="A phone/email used under this many different names is shared, not personal"
    )
    max_block: int = Field(100, ge=2, description="Blocks larger than this are split or skipped")
    fold_provider_aliases: bool = Field(False, description="Drop Gmail dots and +tags when comparing")
    max_name_candidates: int = Field(50, ge=1, description="Store contacts compared per name key")


class AnalyticsSettings(Section):
    """Attribution, channel report, funnel and plan (hub/attribution, hub/funnel)."""

    channels: ChannelRules = ChannelRules()
    lookback_days: int = Field(
        90, gt=0, description="Touches older than this before a conversion are ignored"
    )
    half_life_days: float = Field(
        7.0, gt=0, description="Time-decay model: a touch this much older weighs half"
    )
    report_model: Literal[
        "first_touch", "last_touch", "last_non_direct", "linear", "time_decay", "position_based"
    ] = Field(
        "last_non_direct",
        description="Attribution model the channel report splits leads, deals and revenue by",
    )
    report_days: int = Field(
        30, gt=0, description="Channel and funnel reports cover this many days up to today"
    )
    # Stage order per pipeline; a pipeline not listed is ordered by where its stages usually occur.
    pipelines: dict[str, list[str]] = Field(
        default_factory=lambda: {"sales": ["new", "qualified", "proposal", "negotiation", "invoice"]}
    )
    stage_norm_days: dict[str, float] = Field(
        default_factory=lambda: {"new": 2, "qualified": 5, "proposal": 7, "negotiation": 10, "invoice": 10},
        description="A deal in a stage longer than this is stuck; stages not listed use default_stage_norm_days",
    )
    default_stage_norm_days: float = Field(14.0, gt=0)
    plan_fact_days: int = Field(
        90, gt=0, description="The plan uses conversions and checks of this many days"
    )
    working_days_per_month: float = Field(21.0, gt=0)
    # Targets the sales_plan asset keeps current; `hub plan` takes them as options instead.
    plan_monthly_revenue: float = Field(0.0, ge=0, description="Monthly revenue target; 0: none")
    plan_monthly_profit: float = Field(
        0.0, ge=0, description="Monthly profit target (with plan_margin); 0: none"
    )
    plan_margin: float = Field(0.0, ge=0, description="Margin for a profit target: 25 or 0.25 both mean 25 %")


class OpsSettings(Section):
    """How the hub runs as a Dagster deployment: schedules per source, lateness, cross-asset
    checks and where ops alerts go (hub/ops, assets/ops.py)."""

    # Cron per source (the asset's "source" tag, else its group); a source not listed uses default_cron.
    schedules: dict[str, str] = Field(
        default_factory=lambda: {
            "site": "*/10 * * * *",
            "telephony": "*/10 * * * *",
            "mail": "*/5 * * * *",
            "accounting": "0 * * * *",
        }
    )
    default_cron: str = "0 * * * *"
    # A source asset not materialized within this many minutes shows as late (freshness policy).
    late_after_minutes: dict[str, int] = Field(default_factory=dict)
    default_late_after_minutes: int = Field(180, gt=0)
    unassigned_lead_max_minutes: int = Field(
        10, gt=0, description="An open lead unassigned longer fails a check"
    )
    row_count_history: int = Field(
        20, ge=3, description="Previous materializations a row count is compared with"
    )
    row_count_min_history: int = Field(5, ge=2, description="Fewer previous runs than this: no verdict")
    row_count_tolerance: float = Field(
        4.0, gt=0, description="Allowed distance from the median, in median absolute deviations"
    )
    row_count_min_change: int = Field(
        20, ge=0, description="A run differing from the median by fewer rows is never flagged"
    )
    quarantine_max_share: float = Field(0.25, gt=0, le=1, description="Of a run's input rows")
    quarantine_min_rows: int = Field(5, ge=1, description="Fewer quarantined rows never fail the check")
    # Ops alerts by SMTP (password: HUB_OPS__SMTP_PASSWORD), a Slack incoming webhook (the URL is
    # the secret: HUB_OPS__SLACK_WEBHOOK_URL) and/or Telegram (HUB_OPS__TELEGRAM_BOT_TOKEN + chat id).
    smtp_host: str = ""
    smtp_port: int = Field(587, gt=0, lt=65536)
    smtp_security: str = Field("starttls", pattern="^(ssl|starttls|plain)$")
    smtp_user: str = ""
    smtp_password: str = Field("", repr=False)
    smtp_timeout_s: float = Field(30.0, gt=0)
    mail_from: str = "dagster@localhost"
    mail_to: list[str] = Field(default_factory=list)
    slack_webhook_url: str = Field("", repr=False)
    telegram_bot_token: str = Field("", repr=False)
    telegram_api_url: str = "https://api.telegram.org"
    telegram_chat_id: str = Field("", description="Chat (or channel) the ops alerts go to")
    max_delivery_attempts: int = Field(5, ge=1)
    # The same file the workers start with (`dagster-celery worker start -y`), so the executor
    # and the workers cannot disagree on the broker, the queue or the acknowledgement rules.
    celery_config: str = Field(
        "",
        description="Celery executor YAML shared with the workers (deploy/celery.yaml); "
        "empty: steps run as processes on the run's host",
    )


ALERT_LANGUAGES = ("ru", "pl", "en")


class MailboxSettings(Section):
    """One more IMAP mailbox `hub watch-mail` holds IDLE on (a rep's own), beside or instead of
    imap_host/imap_username. Its password is read from the environment only:
    HUB_MAIL__MAILBOX_PASSWORDS__<NAME>."""

    name: str = Field(
        pattern=r"^[a-z0-9_]{1,40}$",
        description="Short id (a-z, 0-9, _): names the cursor, the log lines and the password variable",
    )
    username: str
    host: str = Field("", description="Empty: imap_host")
    port: int = Field(0, ge=0, lt=65536, description="0: imap_port")
    security: str = Field("", pattern="^(|ssl|starttls|plain)$", description="Empty: imap_security")

    @model_validator(mode="before")
    @classmethod
    def _no_password_here(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(k in data for k in ("password", "imap_password")):
            name = str(data.get("name", "<name>")).upper()
            raise ValueError(
                "a mailbox's password is read from the environment only: remove it here and set "
                f"HUB_MAIL__MAILBOX_PASSWORDS__{name}"
            )
        return data


class MailSettings(Section):
    """The sales mailbox (read receipts, sent mail), the open-tracking pixel and the alerts
    sent to reps when a client opens their email."""

    imap_host: str = Field("", description="IMAP server; empty: the mailbox is not polled")
    imap_port: int = Field(993, gt=0)
    # "ssl" (implicit TLS, port 993), "starttls" (port 143), or "plain" (tests and local only).
    imap_security: str = Field("ssl", pattern="^(ssl|starttls|plain)$")
    imap_username: str = ""
    # Secret: from HUB_MAIL__IMAP_PASSWORD only.
    imap_password: str = Field("", repr=False)
    imap_timeout_s: float = Field(30.0, gt=0)
    # More mailboxes (one per rep), each watched on its own connection; in YAML or as JSON in
    # HUB_MAIL__MAILBOXES, e.g. [{"name": "anna", "username": "anna@example.ru"}].
    mailboxes: list[MailboxSettings] = Field(
        default_factory=list,
        description="Reps' own mailboxes watched beside imap_username: [{name, username, host?, port?, security?}]",
    )
    # Secret: HUB_MAIL__MAILBOX_PASSWORDS__<NAME>=... for each entry of mailboxes (environment only).
    mailbox_passwords: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description="HUB_MAIL__MAILBOX_PASSWORDS__<NAME>: each listed mailbox's password (environment only)",
    )
    verify_tls: bool = True
    receipts_folder: str = "INBOX"
    sent_folder: str = Field("Sent", description="Sent mail read for Message-IDs; empty: not read")
    processed_folder: str = Field("", description="Move processed receipts here; empty: leave them")
    maildir: str = Field("", description="Offline source: a maildir (or mbox file) of receipts")
    sent_maildir: str = Field("", description="Offline source: a maildir (or mbox file) of sent mail")
    # Low-confidence correlation by subject + reader: the sent email must be this recent.
    subject_match_window_days: int = Field(30, ge=1)
    idle_renew_s: int = Field(600, gt=0, le=1500, description="Re-issue IDLE well inside 29 minutes")
    idle_check_s: float = Field(30.0, gt=0)
    reconnect_max_s: float = Field(60.0, gt=0)
    pixel_base_url: str = Field("", description="Public URL of `hub serve` for tracking pixels")
    # Pixel fetches this soon after sending are scanners or prefetchers, not people.
    pixel_min_seconds_after_send: int = Field(10, ge=0)
    alert_channels: list[str] = Field(default_factory=lambda: ["smtp"])
    alert_language: str = Field(
        "ru", pattern="^(ru|pl|en)$", description="Language of reps' alerts when crm_reps.locale is empty"
    )
    public_base_url: str = Field(
        "",
        description="Public URL of `hub serve` (https://hub.example.ru): alerts link to the contact's page",
    )
    alert_eml_dir: str = Field(
        "", description="Write email alerts as .eml files into this folder instead of SMTP (demo, trials)"
    )
    smtp_host: str = ""
    smtp_port: int = Field(587, gt=0)
    smtp_security: str = Field("starttls", pattern="^(ssl|starttls|plain)$")
    smtp_username: str = ""
    # Secret: from HUB_MAIL__SMTP_PASSWORD only.
    smtp_password: str = Field("", repr=False)
    smtp_from: str = "hub@localhost"
    smtp_timeout_s: float = Field(30.0, gt=0)
    # Secret: HUB_MAIL__TELEGRAM_BOT_TOKEN; reps' chat ids are crm_reps.chat_id.
    telegram_bot_token: str = Field("", repr=False)
    telegram_api_url: str = "https://api.telegram.org"
    # Secret: HUB_MAIL__SLACK_WEBHOOK_URL (the URL itself is the credential).
    slack_webhook_url: str = Field("", repr=False)
    alert_max_attempts: int = Field(8, ge=1)
    alert_backoff_s: float = Field(5.0, ge=0)
    alert_backoff_max_s: float = Field(900.0, ge=0)

    @model_validator(mode="after")
    def _mailboxes_unique(self) -> MailSettings:
        names = [m.name for m in self.mailboxes]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"mailbox names must be unique; repeated: {', '.join(repeated)}")
        if self.smtp_host and self.alert_eml_dir:
            raise ValueError(
                "set either smtp_host (send alerts) or alert_eml_dir (write them to files), not both"
            )
        return self


class TwilioSettings(Section):
    account_sid: str = Field("", description="Account SID (or API key SID); empty: Twilio not polled")
    # Secret: from HUB_TELEPHONY__TWILIO__AUTH_TOKEN only.
    auth_token: str = Field("", repr=False)
    base_url: str = "https://api.twilio.com"
    page_size: int = Field(100, gt=0, le=1000)
    fetch_recordings: bool = True
    snapshot_file: str = Field("", description="Recorded Calls pages replayed instead of the API (demo)")


class ZadarmaSettings(Section):
    api_key: str = Field("", description="API key; empty: Zadarma not polled")
    # Secret: from HUB_TELEPHONY__ZADARMA__API_SECRET only.
    api_secret: str = Field("", repr=False)
    base_url: str = "https://api.zadarma.com"
    timezone: str = Field("Europe/Moscow", description="The account's time zone: callstart is local")
    page_size: int = Field(1000, gt=0, le=1000)
    window_hours: int = Field(24, gt=0, le=672, description="Statistics read per request window")
    fetch_recordings: bool = True


class AsteriskSettings(Section):
    cdr_dir: str = Field("", description="Folder of Master.csv files; empty: no CDR import")
    file_glob: str = "*.csv"
    timezone: str = Field("", description="The PBX's local time zone; empty: the hub's timezone")
    recording_base_url: str = Field("", description="Prefix of recordings named in the userfield")
    cdr_columns: list[str] = Field(
        default_factory=list,
        description="Columns of a cdr_custom mapping in order (e.g. clid, src, dst, ...); empty: the "
        "stock cdr_csv / cdr_custom layouts are told from the rows",
    )
    inbound_contexts: list[str] = Field(
        default_factory=lambda: list(DEFAULT_INBOUND_CONTEXTS),
        description="Dialplan contexts (glob patterns) calls from the outside world enter",
    )
    trunk_peers: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TRUNK_PEERS),
        description="Peer names (glob patterns) of trunks: a call from one is inbound, to one outbound",
    )
    pbx_apps: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PBX_APPS),
        description="Applications with which the PBX answers itself: a caller who heard only them is missed",
    )


class TelephonySettings(Section):
    """Call logs: Twilio, Zadarma and Asterisk CDR files (docs/telephony.md)."""

    twilio: TwilioSettings = TwilioSettings()
    zadarma: ZadarmaSettings = ZadarmaSettings()
    asterisk: AsteriskSettings = AsteriskSettings()
    lookback_minutes: int = Field(30, ge=0, description="Each run re-reads this much before its cursor")
    initial_days: int = Field(7, gt=0, description="How far back the first run reads")
    extension_max_digits: int = Field(5, ge=1, le=8, description="Longer numbers are outside numbers")
    # Tracking number (any format) -> ad channel, e.g. {"+74951112233": "yandex / cpc"}; the
    # hub_tracking_numbers table adds to (and overrides) this.
    tracking_numbers: dict[str, str] = Field(default_factory=dict)
    call_back_within_minutes: int = Field(30, gt=0)
    timeout_s: float = Field(30.0, gt=0)
    verify_tls: bool = True


class AccountingSettings(Section):
    """Accounting: 1C OData, bank statements in a watched folder, CSV, and the matching rules."""

    odata_url: str = Field("", description="1C base's .../odata/standard.odata/; empty: 1C not read")
    odata_user: str = ""
    # Secret: from HUB_ACCOUNTING__ODATA_PASSWORD only.
    odata_password: str = Field("", repr=False)
    odata_snapshot_file: str = Field(
        "", description="Recorded 1C answers replayed instead of the base (demo)"
    )
    odata_since: str = Field("2024-01-01", description="First document date read from 1C (ISO date)")
    odata_page_size: int = Field(500, gt=0, le=5000)
    # Accountants post documents dated in the past: each run re-reads this many days before its cursor.
    odata_lookback_days: int = Field(7, ge=0)
    # 1C's invoice field holding the due date; an invoice without one is due after the default terms.
    invoice_due_field: str = "СрокОплаты"
    default_payment_terms_days: int = Field(5, ge=0)
    statements_dir: str = Field("", description="Folder watched for 1CClientBankExchange files")
    payments_csv_dir: str = Field("", description="Folder of payments CSV files from other sources")
    # Our settlement accounts: money into one of them is a client's payment. Empty: the accounts
    # each statement names as its own.
    our_accounts: list[str] = Field(default_factory=list)
    fifo: bool = Field(False, description="Settle a payer's oldest open invoices with unnamed payments")
    timeout_s: float = Field(60.0, gt=0)
    verify_tls: bool = True


class AmoCrmSettings(Section):
    """amoCRM / Kommo API v4 (hub/crm/amocrm.py, docs/crm.md)."""

    base_url: str = Field("", description="https://<subdomain>.amocrm.ru (or .kommo.com)")
    # Secret: a long-lived token of a private integration (HUB_CRM__AMOCRM__ACCESS_TOKEN), or
    # leave it empty and connect an OAuth integration with `hub crm connect amocrm`.
    access_token: str = Field("", repr=False)
    client_id: str = ""
    # Secret: HUB_CRM__AMOCRM__CLIENT_SECRET.
    client_secret: str = Field("", repr=False)
    redirect_uri: str = ""
    requests_per_second: float = Field(7.0, gt=0, le=7.0, description="amoCRM allows 7 per integration")
    timeout_s: float = Field(30.0, gt=0)
    verify_tls: bool = True


class Bitrix24Settings(Section):
    """Bitrix24 REST (hub/crm/bitrix24.py, docs/crm.md)."""

    # Secret: an inbound webhook URL https://<portal>/rest/<user>/<secret>/ (the URL is the
    # credential: HUB_CRM__BITRIX24__WEBHOOK_URL), or the portal and an OAuth application.
    webhook_url: str = Field("", repr=False)
    portal_url: str = Field("", description="https://<portal>.bitrix24.ru for OAuth")
    client_id: str = ""
    # Secret: HUB_CRM__BITRIX24__CLIENT_SECRET.
    client_secret: str = Field("", repr=False)
    requests_per_second: float = Field(2.0, gt=0, description="Leaky bucket drain rate (Enterprise: 5)")
    burst: int = Field(50, ge=1, description="Leaky bucket size (Enterprise: 250)")
    oauth_url: str = Field(
        "https://oauth.bitrix24.tech/oauth/token/",
        description="The OAuth server that issues and renews tokens",
    )
    operating_limit_s: float = Field(
        480.0, gt=0, description="Server time a method may use per 10 minutes (OPERATION_TIME_LIMIT)"
    )
    timeout_s: float = Field(30.0, gt=0)
    verify_tls: bool = True


class CrmSettings(Section):
    """The company's CRM: which backend the crm_* tables mirror and how the hub writes into it
    (hub/crm, docs/crm.md). "sql": no external CRM, the store is the CRM."""

    backend: str = Field("sql", description="sql | amocrm | bitrix24")
    amocrm: AmoCrmSettings = AmoCrmSettings()
    bitrix24: Bitrix24Settings = Bitrix24Settings()
    # Rows the hub had before the backend was connected are pushed only this far back.
    push_history_days: int = Field(0, ge=0)
    push_batch_size: int = Field(50, ge=1, le=50, description="Operations per backend batch")
    push_max_attempts: int = Field(8, ge=1)
    push_backoff_s: float = Field(30.0, ge=0)
    push_backoff_max_s: float = Field(3600.0, ge=0)
    # New leads go to this pipeline and stage; empty: the CRM's first pipeline, its first stage.
    lead_pipeline: str = ""
    lead_stage: str = ""
    lead_tags: list[str] = Field(default_factory=lambda: ["hub"])
    # A mirror not pulled within this many minutes fails its freshness check.
    mirror_max_age_minutes: int = Field(30, gt=0)
    outbox_max_age_minutes: int = Field(15, gt=0, description="An older pending push fails a check")

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from hub.crm.registry import BACKEND_NAMES

        if value not in BACKEND_NAMES:
            raise ValueError(f"{value!r} is not a CRM backend; one of: {', '.join(BACKEND_NAMES)}")
        return value


class HubSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HUB_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    data_dir: str = Field(str(PROJECT_DIR / "var"), description="Where the default SQLite store lives")
    database_url: str = Field("", description="SQLAlchemy URL; empty: SQLite file in data_dir")
    default_region: str = Field("RU", description="Region for phone numbers written without +country code")
    timezone: str = "Europe/Moscow"
    dagster_ui_url: str = "http://127.0.0.1:3000"
    site: SiteSettings = SiteSettings()
    routing: RoutingSettings = RoutingSettings()
    identity: IdentitySettings = IdentitySettings()
    mail: MailSettings = MailSettings()
    analytics: AnalyticsSettings = AnalyticsSettings()
    ops: OpsSettings = OpsSettings()
    telephony: TelephonySettings = TelephonySettings()
    accounting: AccountingSettings = AccountingSettings()
    crm: CrmSettings = CrmSettings()

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        if not value:
            return value
        try:
            backend = make_url(value).get_backend_name()
        except ArgumentError:
            raise ValueError(
                "is not a database URL such as postgresql+psycopg2://user:password@host:5432/hub "
                "or sqlite:////var/lib/hub/hub.db"
            ) from None
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"the hub's store is SQLite or PostgreSQL, not {backend!r}")
        return value

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        import phonenumbers

        if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a phone region code such as RU, PL, KZ")
        return value.upper()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Moscow") from exc
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("HUB_CONFIG")
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    def model_post_init(self, __context: Any) -> None:
        if not self.database_url:
            self.database_url = f"sqlite:///{Path(self.data_dir) / 'hub.db'}"


@dataclass(frozen=True)
class SettingField:
    """One field of the settings model and the environment variable that sets it."""

    env_name: str
    path: tuple[str, ...]
    info: FieldInfo
    section: bool  # a nested model: its fields have names of their own (HUB_<SECTION>__<FIELD>)
    from_json: bool  # the environment gives it as JSON (sections, lists, dicts)
    free_keys: bool  # a dict: HUB_<NAME>__<any key> sets one entry


def _plain(annotation: Any) -> Any:
    """`X | None` -> X."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def setting_fields(
    model: type[BaseModel] = HubSettings, prefix: str = "HUB_", path: tuple[str, ...] = ()
) -> Iterator[SettingField]:
    """Every field of the model, sections and the fields inside them, in declaration order."""
    for name, info in model.model_fields.items():
        annotation = _plain(info.annotation)
        env_name = prefix + name.upper()
        section = _is_section(annotation)
        container = get_origin(annotation) in (list, dict, set, frozenset, tuple)
        free_keys = get_origin(annotation) is dict
        yield SettingField(env_name, (*path, name), info, section, section or container, free_keys)
        if section:
            yield from setting_fields(annotation, env_name + "__", (*path, name))


def variable_of(*path: str) -> str:
    """The environment variable of the setting at `path` ("site", "webhook_max_records"), taken
    from the model: a message naming a setting cannot name one that does not exist."""
    for field in setting_fields():
        if field.path == path:
            return field.env_name
    raise KeyError(f"no setting {'.'.join(path)}")


def _json_problem(field: SettingField, variable: str, value: str) -> str | None:
    try:
        json.loads(value)
    except json.JSONDecodeError as exc:
        if field.section:
            how = f"a JSON object, or set its fields one by one as {variable}__<FIELD>"
        elif field.free_keys:
            how = f"a JSON object, or set one entry as {variable}__<KEY>"
        else:
            how = 'a JSON list such as ["a", "b"]'
        return f"{variable} is not JSON ({exc.msg} at column {exc.colno}): give {how}"
    return None


def environment_problems(environ: Mapping[str, str] | None = None) -> list[str]:
    """What is wrong with the HUB_* variables, one sentence each: names that are not settings
    (with the closest one that is) and JSON values that do not parse."""
    environ = os.environ if environ is None else environ
    fields = {f.env_name: f for f in setting_fields()}
    free = tuple(f.env_name + "__" for f in fields.values() if f.free_keys)
    problems = []
    for variable, value in sorted(environ.items()):
        # pydantic-settings reads names case-insensitively; so does this check.
        name = variable.upper()
        if not name.startswith("HUB_") or name in NON_SETTING_VARIABLES or name.startswith(free):
            continue
        field = fields.get(name)
        if field is None:
            close = difflib.get_close_matches(name, fields, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else "the settings are listed in docs/DEPLOYMENT.md"
            problems.append(f"{variable} is not a setting of the hub ({hint}); fix the name or unset it")
        elif field.from_json and (problem := _json_problem(field, variable, value)):
            problems.append(problem)
    return problems


def _env_name(loc: tuple[Any, ...]) -> str:
    return "HUB_" + "__".join(str(p).upper() for p in loc)


def _closest_field(loc: tuple[Any, ...]) -> str | None:
    """For a key that is not a field (a typo in the YAML file), the closest field beside it."""
    model: type[BaseModel] = HubSettings
    for part in loc[:-1]:
        info = model.model_fields.get(str(part))
        annotation = _plain(info.annotation) if info else None
        if not _is_section(annotation):
            return None
        model = annotation
    close = difflib.get_close_matches(str(loc[-1]), model.model_fields, n=1, cutoff=0.6)
    return ".".join([*map(str, loc[:-1]), close[0]]) if close else None


def _config_file_problem(config_file: str) -> str | None:
    """HUB_CONFIG must name a readable YAML mapping; the problem names the file and line."""
    path = Path(config_file)
    if not path.is_file():
        return f"HUB_CONFIG points to {config_file!r}, which is not a file"
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return f"HUB_CONFIG file {config_file} is not valid YAML{where}: {problem}; fix the file or unset HUB_CONFIG"
    except (OSError, UnicodeDecodeError) as exc:
        return f"HUB_CONFIG file {config_file} cannot be read: {exc}"
    if content is not None and not isinstance(content, dict):
        return f"HUB_CONFIG file {config_file} must hold a mapping of settings (site: ..., mail: ...), not a {type(content).__name__}"
    return None


def _misconfigured(problems: list[str]) -> SettingsError:
    if len(problems) == 1:
        return SettingsError(f"The hub is misconfigured: {problems[0]}")
    return SettingsError("The hub is misconfigured:\n" + "\n".join(f"  {p}" for p in problems))


def load_settings(**overrides: Any) -> HubSettings:
    """Read settings; on a bad value, an unknown HUB_* name or a broken HUB_CONFIG file raise
    SettingsError naming each variable (or file and line) and what to do."""
    config_file = os.environ.get("HUB_CONFIG")
    problems = environment_problems()
    if config_file and (problem := _config_file_problem(config_file)):
        problems.append(problem)
    if problems:
        raise _misconfigured(problems)
    try:
        return HubSettings(**overrides)
    except pydantic_settings.SettingsError as exc:
        raise _misconfigured([f"{exc}; check the HUB_* variables given as JSON"]) from None
    except ValidationError as exc:
        for err in exc.errors():
            where = _env_name(err["loc"])
            if config_file:
                where += f" (or {'.'.join(map(str, err['loc']))} in {config_file})"
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden" and (close := _closest_field(err["loc"])):
                message += f": did you mean {close}?"
            problems.append(f"{where}: {message}")
        raise _misconfigured(problems) from None
