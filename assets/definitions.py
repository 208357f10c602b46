"""The Dagster Definitions of the hub (workspace.yaml points here)."""

from __future__ import annotations

from dagster import Definitions, define_asset_job, load_assets_from_modules

from assets import leads, site
from assets.resources import build_resources

ASSET_MODULES = [site, leads]

all_assets = load_assets_from_modules(ASSET_MODULES)

# The main job: the whole asset graph, in dependency order.
hub_main_job = define_asset_job("hub_main_job", selection="*", description="Materialize the whole hub graph")

defs = Definitions(assets=all_assets, jobs=[hub_main_job], resources=build_resources())
