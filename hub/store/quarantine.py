"""Quarantine: every record that fails validation is kept with its raw form and a reason."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy.orm import Session

from connectors.errors import describe_error
from hub.store.models import QuarantineRecord
from hub.store.upsert import upsert
from hub.timeutil import utcnow

# Keep the store bounded against hostile input: a huge record is kept truncated.
MAX_RAW_CHARS = 100_000


def raw_text(raw: Any) -> str:
    if isinstance(raw, bytes):
        text = raw.decode("utf-8", errors="replace")
    elif isinstance(raw, str):
        text = raw
    else:
        text = json.dumps(raw, ensure_ascii=False, sort_keys=True, default=str)
    return storable(text)


def storable(text: str) -> str:
    """Text PostgreSQL can hold: a NUL (hostile or broken input) is kept visibly as \\x00."""
    return text.replace("\x00", "\\x00")


def quarantine(
    session: Session, source: str, raw: Any, error: Exception | str, source_ref: str | None = None
) -> None:
    """Stage a quarantine row; the same raw input from the same source is kept once."""
    text = raw_text(raw)
    fingerprint = hashlib.sha256(text.encode("utf-8", errors="replace")).hexdigest()
    row = {
        "source": source,
        "source_ref": storable(source_ref)[:300] if source_ref is not None else None,
        "fingerprint": fingerprint,
        "raw": text[:MAX_RAW_CHARS],
        "error": storable(describe_error(error))[:10_000],
        "created_at": utcnow(),
    }
    upsert(session, QuarantineRecord, [row], key=["source", "fingerprint"], update=["error"])
