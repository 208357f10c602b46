"""Pictures a person would rather look at than read: the funnel and the channels' revenue and ROI,
rendered by matplotlib (Agg, no display) to PNG and embedded in markdown as a data URI."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # headless: assets and the CLI run without a display

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

# Small images: the UI stores metadata with every materialization.
DPI = 80


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown that the Dagster UI shows as the image itself (MetadataValue.md renders data URIs)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def funnel_chart(stages: pd.DataFrame, title: str) -> bytes:
    """Horizontal bars of deals entering each stage, widest first, labelled with the conversion."""
    figure, axis = plt.subplots(figsize=(7, 0.6 * max(len(stages), 2) + 1))
    labels = stages["stage"].tolist()[::-1]
    counts = stages["entered"].astype(float).tolist()[::-1]
    conversions = stages["conversion"].tolist()[::-1]
    widest = max(counts, default=0) or 1
    lefts = [(widest - count) / 2 for count in counts]
    axis.barh(labels, counts, left=lefts, color="#4C78A8")
    for index, (count, conversion) in enumerate(zip(counts, conversions, strict=True)):
        note = f"{int(count)}" + (
            f"  → {conversion:.0%}" if conversion is not None and pd.notna(conversion) else ""
        )
        axis.text(widest / 2, index, note, ha="center", va="center", color="white", fontweight="bold")
    axis.set_xticks([])
    axis.set_title(title)
    for side in ("top", "right", "bottom"):
        axis.spines[side].set_visible(False)
    return png_bytes(figure)


def channel_chart(report: pd.DataFrame, title: str, top: int = 10) -> bytes:
    """Revenue per channel as bars, ROI (where cost is known) as points on a second axis."""
    rows = report.head(top)
    figure, revenue_axis = plt.subplots(figsize=(8, 4))
    positions = range(len(rows))
    revenue_axis.bar(positions, rows["revenue"].astype(float), color="#59A14F", label="revenue (paid)")
    revenue_axis.set_ylabel("revenue, paid")
    revenue_axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    revenue_axis.set_xticks(list(positions))
    revenue_axis.set_xticklabels(rows["channel"].tolist(), rotation=30, ha="right")
    roi_axis = revenue_axis.twinx()
    roi = rows["roi"].astype(float)
    roi_axis.plot(positions, roi * 100, "o", color="#E15759", label="ROI, %")
    roi_axis.axhline(0, color="#E15759", linewidth=0.5, linestyle="--")
    roi_axis.set_ylabel("ROI, %")
    revenue_axis.set_title(title)
    handles = revenue_axis.get_legend_handles_labels()
    more = roi_axis.get_legend_handles_labels()
    revenue_axis.legend(handles[0] + more[0], handles[1] + more[1], loc="upper right")
    return png_bytes(figure)
