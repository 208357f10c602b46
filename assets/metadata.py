"""Metadata every asset returns: counts, quarantine reasons, a masked preview as markdown."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import MetadataValue

from hub.ingest.stats import IngestStats


def markdown_table(rows: Sequence[Mapping[str, Any]], empty: str = "_nothing_") -> MetadataValue:
    if not rows:
        return MetadataValue.md(empty)
    columns = list(rows[0].keys())
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [_cell(row.get(c, "")) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return MetadataValue.md("\n".join(lines))


def _cell(value: Any) -> str:
    """A value as one markdown cell: shown, never interpreted (no HTML, links or new rows)."""
    text = html.escape(str(value)[:120], quote=False)
    return (
        text.replace("|", "\\|")
        .replace("\n", " ")
        .replace("\r", " ")
        .replace("javascript:", "javascript&#58;")
    )


def ingest_metadata(stats: IngestStats, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "rows_in": stats.rows_in,
        "written": stats.written,
        "unchanged": stats.unchanged,
        "quarantined": stats.quarantined,
        "preview": markdown_table(stats.preview),
    }
    if stats.quarantine_reasons:
        meta["quarantine_reasons"] = markdown_table(
            [{"reason": r, "count": c} for r, c in stats.quarantine_reasons.most_common()]
        )
    for key, value in {**stats.extra, **extra}.items():
        if isinstance(value, list):
            # Warnings and other lists of sentences: one bullet each, shown as text.
            value = MetadataValue.md("\n".join(f"- {_cell(item)}" for item in value) or "_none_")
        meta[key] = value
    return meta
