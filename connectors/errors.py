"""Errors a connector raises; each says what to fix. Permanent ones must not be retried."""

from __future__ import annotations

from pydantic import ValidationError


class ConnectorError(RuntimeError):
    """A source could not be read."""


class PermanentSourceError(ConnectorError):
    """Retrying will not help: bad credentials, a removed entity, a wrong URL."""


class CredentialError(PermanentSourceError):
    """The source refused our credentials."""


class TransientSourceError(ConnectorError):
    """The source failed in a way that a later retry may fix (5xx, timeouts after retries)."""


class IncompleteBodyError(TransientSourceError):
    """The connection broke while the answer's body was read: fetching it again may succeed."""


def describe_error(error: Exception | str) -> str:
    """A one-line reason a person can act on; pydantic errors name each field. (The quarantine
    stores it; connectors use it to add a hint to a record's reason.)"""
    if isinstance(error, ValidationError):
        parts = []
        for err in error.errors():
            field = ".".join(str(p) for p in err["loc"]) or "record"
            parts.append(f"{field}: {err['msg']}")
        return "; ".join(parts)
    return str(error)
