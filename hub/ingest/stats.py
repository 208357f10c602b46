"""What one ingest run did, for the asset's metadata and the CLI summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class IngestStats:
    rows_in: int = 0
    written: int = 0
    unchanged: int = 0
    quarantined: int = 0
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    preview: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    PREVIEW_ROWS = 10
    MAX_WARNINGS = 50

    def add_preview(self, row: dict[str, Any]) -> None:
        if len(self.preview) < self.PREVIEW_ROWS:
            self.preview.append(row)

    def note_quarantined(self, reason: str) -> None:
        self.quarantined += 1
        # Group reasons by their first clause so the metadata stays short.
        self.quarantine_reasons[reason.split(":")[0][:80]] += 1

    def merge(self, other: IngestStats) -> IngestStats:
        self.rows_in += other.rows_in
        self.written += other.written
        self.unchanged += other.unchanged
        self.quarantined += other.quarantined
        self.quarantine_reasons.update(other.quarantine_reasons)
        for row in other.preview:
            self.add_preview(row)
        for key, value in other.extra.items():
            if isinstance(value, list):
                self.extra[key] = [*self.extra.get(key, []), *value][: self.MAX_WARNINGS]
            elif isinstance(value, int):
                self.extra[key] = self.extra.get(key, 0) + value
            else:
                self.extra[key] = value
        return self

    def warn(self, message: str) -> None:
        """Something a person should know about the run that quarantined nothing (a file cut short,
        an ИНН failing its checksum): listed under "warnings" in the metadata and CLI summary."""
        warnings = self.extra.setdefault("warnings", [])
        if len(warnings) < self.MAX_WARNINGS:
            warnings.append(message)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows_in": self.rows_in,
            "written": self.written,
            "unchanged": self.unchanged,
            "quarantined": self.quarantined,
            "quarantine_reasons": dict(self.quarantine_reasons),
            **self.extra,
        }


def note_http_usage(stats: IngestStats, source: object) -> None:
    """Report the retry budget (throttling, 5xx, timeouts, cut bodies) and the requests a sync's
    HttpClient spent, under the names every HTTP source uses; a source without one adds nothing."""
    http = getattr(source, "http", None)
    if http is not None:
        stats.extra["http_retries"] = http.retries_used
        stats.extra["http_requests"] = http.requests_made
