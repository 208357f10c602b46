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
    """Stage a quarantine row; the same raw input from the same source is kept once. Bytes are
    kept exactly too (`raw_bytes`), and told apart by their own digest: two bodies in an
    unknown charset read the same once decoded with replacements, and neither may be lost."""
    text = raw_text(raw)
    exact = bytes(raw) if isinstance(raw, bytes | bytearray) else None
    digest_of = exact if exact is not None else text.encode("utf-8", errors="replace")
    row = {
        "source": source,
        "source_ref": storable(source_ref)[:300] if source_ref is not None else None,
        "fingerprint": hashlib.sha256(digest_of).hexdigest(),
        "raw": text[:MAX_RAW_CHARS],
        "raw_bytes": exact[:MAX_RAW_CHARS] if exact is not None else None,
        "error": storable(describe_error(error))[:10_000],
        "created_at": utcnow(),
    }
    upsert(session, QuarantineRecord, [row], key=["source", "fingerprint"], update=["error"])
