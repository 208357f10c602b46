"""What a head of sales checks every morning (open deals without a task, overdue tasks, deals stuck
in a stage beyond its norm, load per rep) and deals that moved back to an earlier stage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.frames import lookup
from hub.funnel.report import SECONDS_PER_DAY, FunnelData, stage_order
from hub.store.models import Deal, Lead, Rep, Task


@dataclass
class MorningChecks:
    deals_without_task: pd.DataFrame  # deal_id, title, rep_id, stage
    overdue_tasks: pd.DataFrame  # task_id, title, rep_id, deal_id, due_at, days_overdue
    stuck_deals: pd.DataFrame  # deal_id, title, rep_id, stage, days_in_stage, norm_days
    rep_load: pd.DataFrame  # rep_id, rep, open_deals, open_leads, open_tasks, overdue_tasks, ...


def backward_moves(data: FunnelData, pipelines: dict[str, list[str]]) -> pd.DataFrame:
    """Stage entries that went back to an earlier stage than one the deal had already reached:
    deal_id, pipeline, from_stage (the furthest reached), to_stage, moved_at."""
    columns = ["deal_id", "pipeline", "from_stage", "to_stage", "moved_at"]
    found = []
    for pipeline, deals in data.deals.groupby("pipeline"):
        history = data.history[data.history["deal_id"].isin(deals["deal_id"])]
        if history.empty:
            continue
        stages = stage_order(str(pipeline), history, pipelines)
        rank = history["stage"].map({stage: index for index, stage in enumerate(stages)})
        hist = history.assign(rank=rank).sort_values(["deal_id", "entered_at"], kind="stable")
        reached = hist.groupby("deal_id")["rank"].cummax()
        previous_max = reached.groupby(hist["deal_id"]).shift(1)
        back = hist[hist["rank"] < previous_max]
        for row, furthest in zip(back.itertuples(index=False), previous_max[back.index], strict=True):
            found.append((row.deal_id, pipeline, stages[int(furthest)], row.stage, row.entered_at))
    return pd.DataFrame(found, columns=columns)


def morning_checks(
    session: Session,
    data: FunnelData,
    now: datetime,
    stage_norm_days: dict[str, float],
    default_norm_days: float,
) -> MorningChecks:
    deals = pd.DataFrame(
        session.execute(
            select(Deal.id, Deal.title, Deal.rep_id, Deal.stage, Deal.stage_changed_at, Deal.opened_at).where(
                Deal.status == "open"
            )
        ).all(),
        columns=["deal_id", "title", "rep_id", "stage", "stage_changed_at", "opened_at"],
    )
    tasks = pd.DataFrame(
        session.execute(
            select(Task.id, Task.title, Task.rep_id, Task.deal_id, Task.due_at).where(Task.done.is_(False))
        ).all(),
        columns=["task_id", "title", "rep_id", "deal_id", "due_at"],
    )
    tasks["due_at"] = pd.to_datetime(tasks["due_at"], utc=True)
    now_ts = pd.Timestamp(now).tz_convert("UTC")

    without_task = deals.loc[
        ~deals["deal_id"].isin(tasks["deal_id"].dropna()), ["deal_id", "title", "rep_id", "stage"]
    ]
    overdue = tasks[tasks["due_at"].notna() & (tasks["due_at"] < now_ts)].copy()
    overdue["days_overdue"] = ((now_ts - overdue["due_at"]).dt.total_seconds() / SECONDS_PER_DAY).round(1)

    # When the deal entered its current stage: the latest history entry of that stage, else the
    # deal's own stage_changed_at, else when it was opened.
    entered = (
        data.history.merge(deals[["deal_id", "stage"]], on=["deal_id", "stage"])
        .groupby("deal_id")["entered_at"]
        .max()
    )
    since = lookup(deals["deal_id"], entered)
    since = since.fillna(pd.to_datetime(deals["stage_changed_at"], utc=True)).fillna(
        pd.to_datetime(deals["opened_at"], utc=True)
    )
    deals["days_in_stage"] = ((now_ts - since).dt.total_seconds() / SECONDS_PER_DAY).round(1)
    deals["norm_days"] = deals["stage"].map(stage_norm_days).fillna(default_norm_days).astype(float)
    stuck = deals.loc[
        deals["days_in_stage"] > deals["norm_days"],
        ["deal_id", "title", "rep_id", "stage", "days_in_stage", "norm_days"],
    ].sort_values("days_in_stage", ascending=False)

    return MorningChecks(
        deals_without_task=without_task.reset_index(drop=True),
        overdue_tasks=overdue.sort_values("days_overdue", ascending=False).reset_index(drop=True),
        stuck_deals=stuck.reset_index(drop=True),
        rep_load=rep_load(session, deals, tasks, overdue, without_task, stuck),
    )


def rep_load(
    session: Session,
    open_deals: pd.DataFrame,
    open_tasks: pd.DataFrame,
    overdue: pd.DataFrame,
    without_task: pd.DataFrame,
    stuck: pd.DataFrame,
) -> pd.DataFrame:
    """Per active rep: open deals, open leads, open and overdue tasks, deals without a task, stuck deals."""
    reps = pd.DataFrame(
        session.execute(
            select(Rep.id, Rep.name, Rep.capacity).where(Rep.active.is_(True)).order_by(Rep.id)
        ).all(),
        columns=["rep_id", "rep", "capacity"],
    )
    leads = pd.DataFrame(
        session.execute(
            select(Lead.assigned_rep_id).where(
                Lead.status.in_(("new", "open")), Lead.assigned_rep_id.is_not(None)
            )
        ).all(),
        columns=["rep_id"],
    )

    def per_rep(frame: pd.DataFrame) -> pd.Series:
        return lookup(reps["rep_id"], frame["rep_id"].value_counts()).fillna(0).astype(int)

    return reps.assign(
        open_deals=per_rep(open_deals),
        open_leads=per_rep(leads),
        open_tasks=per_rep(open_tasks),
        overdue_tasks=per_rep(overdue),
        deals_without_task=per_rep(without_task),
        stuck_deals=per_rep(stuck),
    )
