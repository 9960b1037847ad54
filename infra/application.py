"""Builds Parley's CDK app: the data, search, functions, api and events stacks, tagged, checked by cdk-nag.

Context (cdk.json or `cdk -c key=value`):
    stage       deployment stage, part of every stack and API name (default "prod")
    layers_dir  where `python -m infra.layers` built the layers (default build/layers; relative
                paths are taken from the repository root)
    search_standby_replicas, search_retain   see infra.stacks.search (default: on for prod only)
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import App, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from infra.paths import CDK_JSON, DEFAULT_LAYERS_DIR, REPO_ROOT, ROUTES_FILE
from infra.stacks.api import ApiStack
from infra.stacks.data import DataStack
from infra.stacks.events import EventsStack
from infra.stacks.functions import FunctionsStack
from infra.stacks.search import SearchStack
from parley.api.routing import RouteTable, load_route_table

DEFAULT_STAGE = "prod"
_STAGE = re.compile(r"[a-z][a-z0-9-]{0,19}")


@dataclass(frozen=True)
class ParleyApp:
    app: App
    stage: str
    data: DataStack
    search: SearchStack
    functions: FunctionsStack
    api: ApiStack
    events: EventsStack


def cdk_json_context(path: Path = CDK_JSON) -> dict[str, Any]:
    """cdk.json's context (feature flags and defaults). The CDK CLI passes it to the app itself;
    reading it here gives `python infra/app.py` and the tests the same flags."""
    if not path.is_file():
        return {}
    context: dict[str, Any] = json.loads(path.read_text()).get("context", {})
    return context


def build_app(app: App | None = None, *, route_table: RouteTable | None = None) -> ParleyApp:
    # Context given to App(context=...) yields to the CLI's (-c, cdk.json, CDK_CONTEXT_JSON).
    app = app if app is not None else App(context=cdk_json_context())
    stage = str(app.node.try_get_context("stage") or DEFAULT_STAGE)
    if not _STAGE.fullmatch(stage):
        raise ValueError(f"stage {stage!r}: lower-case letters, digits and '-', starting with a letter")
    layers_dir = Path(str(app.node.try_get_context("layers_dir") or DEFAULT_LAYERS_DIR))
    layers_dir = layers_dir if layers_dir.is_absolute() else REPO_ROOT / layers_dir
    route_table = route_table if route_table is not None else load_route_table(ROUTES_FILE)

    # No env: the templates are account- and region-agnostic and synth needs no AWS lookups.
    data = DataStack(app, f"parley-{stage}-data", stage=stage, description=f"Parley {stage}: tables and documents")
    search = SearchStack(
        app,
        f"parley-{stage}-search",
        description=f"Parley {stage}: search collection (OpenSearch Serverless) and ingest queue",
        stage=stage,
        route_table=route_table,
    )
    functions = FunctionsStack(
        app,
        f"parley-{stage}-functions",
        description=f"Parley {stage}: route functions, scheduled jobs and the authorizer",
        stage=stage,
        route_table=route_table,
        tables=data.tables,
        queues=data.queues,
        search=search.search,
        layers_dir=layers_dir,
    )
    api = ApiStack(
        app,
        f"parley-{stage}-api",
        description=f"Parley {stage}: REST API and authorizer",
        stage=stage,
        route_table=route_table,
        functions=functions.functions,
    )
    events = EventsStack(
        app,
        f"parley-{stage}-events",
        description=f"Parley {stage}: event bus, stream emitter, webhook queues and consumers",
        stage=stage,
        route_table=route_table,
        tables=data.tables,
        queues=data.queues,
        search=search.search,
        layers_dir=layers_dir,
    )
    Tags.of(app).add("project", "parley")
    Tags.of(app).add("parley:stage", stage)
    # cdk-nag 3 is a policy validation plugin; findings fail the synth unless acknowledged with
    # Validations.of(construct).acknowledge(...) next to the resource they concern.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return ParleyApp(app=app, stage=stage, data=data, search=search, functions=functions, api=api, events=events)


def main() -> None:
    # Under the CDK CLI, CDK_OUTDIR names the output; run directly (`make synth`), write cdk.out
    # at the repository root instead of the temporary directory App() would pick.
    outdir = None if os.environ.get("CDK_OUTDIR") else str(REPO_ROOT / "cdk.out")
    build_app(App(context=cdk_json_context(), outdir=outdir)).app.synth()
