"""pandas helpers the analytics modules share, written once so that a pandas release that
changes a dtype rule is fixed in one place."""

from __future__ import annotations

import pandas as pd


def lookup(keys: pd.Series, table: pd.Series) -> pd.Series:
    """table's value for each key (missing keys: NA), aligned with keys and of table's dtype.

    `keys.map(table)` does the same until table is empty: pandas 3 then casts the result to
    float64, which fails for datetimes ("Cannot cast DatetimeArray to dtype float64")."""
    return table.reindex(keys.to_numpy()).set_axis(keys.index).rename(keys.name)
