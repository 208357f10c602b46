"""The hub's settings: one pydantic model read from environment variables (HUB_...,
nested with "__", e.g. HUB_SITE__BASE_URL) over an optional YAML file (HUB_CONFIG)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from hub.channels import ChannelRules

PROJECT_DIR = Path(__file__).resolve().parent.parent


class SettingsError(RuntimeError):
    """The hub is misconfigured; the message names each bad setting and its variable."""


class SiteSettings(BaseModel):
    """The website's leads: its JSON API, the signed webhook, and CSV exports."""

    base_url: str = Field("", description="Site leads API, e.g. https://example.ru; empty: API not polled")
    # Secret: from HUB_SITE__API_TOKEN only.
    api_token: str = Field("", repr=False)
    # Secret: the HMAC key shared with the site for the webhook (HUB_SITE__WEBHOOK_SECRET).
    webhook_secret: str = Field("", repr=False)
    webhook_max_body_bytes: int = Field(64 * 1024, gt=0)
    webhook_replay_window_s: int = Field(300, gt=0)
    csv_dir: str = ""
    page_size: int = Field(100, gt=0, le=1000)
    timeout_s: float = Field(30.0, gt=0)
    verify_tls: bool = True
    snapshot_file: str = Field("", description="Recorded API pages replayed instead of the API (demo)")


class RoutingSettings(BaseModel):
    lead_weight: float = Field(1.0, ge=0)
    deal_weight: float = Field(0.5, ge=0)
    # A repeated submission by the same contact within this window is a duplicate lead.
    duplicate_window_hours: int = Field(24, ge=0)
    require_shift: bool = True


class AnalyticsSettings(BaseModel):
    """Attribution, channel report, funnel and plan (hub/attribution, hub/funnel)."""

    channels: ChannelRules = ChannelRules()
    lookback_days: int = Field(
        90, gt=0, description="Touches older than this before a conversion are ignored"
    )
    half_life_days: float = Field(
        7.0, gt=0, description="Time-decay model: a touch this much older weighs half"
    )
    report_model: str = Field(
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
    analytics: AnalyticsSettings = AnalyticsSettings()

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


def _env_name(loc: tuple[Any, ...]) -> str:
    return "HUB_" + "__".join(str(p).upper() for p in loc)


def load_settings(**overrides: Any) -> HubSettings:
    """Read settings; on a bad value raise SettingsError naming each variable and what is wrong."""
    config_file = os.environ.get("HUB_CONFIG")
    if config_file and not Path(config_file).is_file():
        raise SettingsError(f"HUB_CONFIG points to {config_file!r}, which is not a file")
    try:
        return HubSettings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = _env_name(err["loc"])
            if config_file:
                where += f" (or {'.'.join(map(str, err['loc']))} in {config_file})"
            lines.append(f"  {where}: {err['msg']}")
        raise SettingsError("The hub is misconfigured:\n" + "\n".join(lines)) from None
