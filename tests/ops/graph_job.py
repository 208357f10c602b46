"""The hub's main job as a reconstructable target: the multiprocess executor re-imports it in
each step's process (with the environment the test set)."""

from __future__ import annotations

from dagster import JobDefinition


def hub_main_job() -> JobDefinition:
    from assets.definitions import defs

    return defs.resolve_job_def("hub_main_job")
