"""A lead from the website: a form submission as the site's API, webhook or CSV export sends it."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

_TEXT = 300


def _clean(value: object) -> object:
    if isinstance(value, str):
        # NUL is no character a person typed, and PostgreSQL text cannot hold it.
        value = value.replace("\x00", "").strip()
        return value or None
    return value


class WebLead(BaseModel):
    """One form submission. At least one way to reach the person (phone or email) is required."""

    model_config = ConfigDict(extra="ignore", str_max_length=20_000, populate_by_name=True)

    id: str = Field(validation_alias=AliasChoices("id", "lead_id"), min_length=1, max_length=200)
    name: str | None = Field(None, max_length=_TEXT)
    phone: str | None = Field(None, max_length=64)
    email: str | None = Field(None, max_length=320)
    company: str | None = Field(None, max_length=_TEXT)
    message: str | None = Field(None, max_length=10_000)
    form: str | None = Field(None, max_length=200)
    page_url: str | None = Field(None, max_length=4000, validation_alias=AliasChoices("page_url", "page"))
    referrer: str | None = Field(None, max_length=4000)
    utm_source: str | None = Field(None, max_length=200)
    utm_medium: str | None = Field(None, max_length=200)
    utm_campaign: str | None = Field(None, max_length=200)
    utm_term: str | None = Field(None, max_length=200)
    utm_content: str | None = Field(None, max_length=200)
    gclid: str | None = Field(None, max_length=300)
    yclid: str | None = Field(None, max_length=300)
    region: str | None = Field(None, max_length=64)
    language: str | None = Field(None, max_length=16)
    submitted_at: datetime

    @field_validator("*", mode="before")
    @classmethod
    def _strip(cls, value: object) -> object:
        return _clean(value)

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value

    @field_validator("submitted_at")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        # The site sends UTC; a time without zone is taken as UTC rather than guessed.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _reachable(self) -> WebLead:
        if not self.phone and not self.email:
            raise ValueError("a lead needs a phone or an email to reach the person")
        return self
