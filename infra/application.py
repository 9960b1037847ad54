"""Builds Parley's CDK app: the data, search, functions, api, events and observability stacks, tagged,
checked by cdk-nag.

Context (cdk.json or `cdk -c key=value`):
    stage       deployment stage, part of every stack and API name (default "prod")
    layers_dir  where `python -m infra.layers` built the layers (default build/layers; relative
                paths are taken from the repository root)
    stages      per-stage settings, and the flat keys that override them: infra.stages
"""

from __future__ import annotations

import json
import os
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
from infra.stacks.observability import ObservabilityStack
from infra.stacks.search import SearchStack
from infra.stages import PRODUCTION_STAGE, STAGE_NAME, Stage
from parley.api.routing import RouteTable, load_route_table

DEFAULT_STAGE = PRODUCTION_STAGE
_STAGE = STAGE_NAME


@dataclass(frozen=True)
class ParleyApp:
    app: App
    stage: str
    config: Stage
    data: DataStack
    search: SearchStack
    functions: FunctionsStack
    api: ApiStack
    events: EventsStack
    observability: ObservabilityStack


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
    config = Stage.from_context(app.node.try_get_context, DEFAULT_STAGE)
    stage = config.name
    layers_dir = Path(str(app.node.try_get_context("layers_dir") or DEFAULT_LAYERS_DIR))
    layers_dir = layers_dir if layers_dir.is_absolute() else REPO_ROOT / layers_dir
    route_table = route_table if route_table is not None else load_route_table(ROUTES_FILE)

    # No env: the templates are account- and region-agnostic and synth needs no AWS lookups.
    data = DataStack(app, f"parley-{stage}-data", stage=config, description=f"Parley {stage}: tables and documents")
    search = SearchStack(
        app,
        f"parley-{stage}-search",
        description=f"Parley {stage}: search collection (OpenSearch Serverless) and ingest queue",
        stage=config,
        route_table=route_table,
    )
    functions = FunctionsStack(
        app,
        f"parley-{stage}-functions",
        description=f"Parley {stage}: route functions, scheduled jobs and the authorizer",
        stage=config,
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
        stage=config,
        route_table=route_table,
        functions=functions.functions,
    )
    events = EventsStack(
        app,
        f"parley-{stage}-events",
        description=f"Parley {stage}: event bus, stream emitter, webhook queues and consumers",
        stage=config,
        route_table=route_table,
        tables=data.tables,
        queues=data.queues,
        search=search.search,
        layers_dir=layers_dir,
    )
    route_functions = functions.functions
    observability = ObservabilityStack(
        app,
        f"parley-{stage}-observability",
        description=f"Parley {stage}: dashboard, alarms and their SNS topic",
        stage=config,
        functions=[
            *route_functions.functions.values(),
            *route_functions.scheduled.values(),
            route_functions.authorizer,
            *events.functions.values(),
        ],
        tables=data.tables,
        queues={"metering": data.queues.metering},
        dead_letters={
            "metering": data.queues.metering_dlq,
            "ingest_queue": search.search.ingest_dlq,
            **events.dead_letters,
        },
    )
    Tags.of(app).add("project", "parley")
    Tags.of(app).add("parley:stage", stage)
    # cdk-nag 3 is a policy validation plugin; findings fail the synth unless acknowledged with
    # Validations.of(construct).acknowledge(...) next to the resource they concern.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return ParleyApp(
        app=app,
        stage=stage,
        config=config,
        data=data,
        search=search,
        functions=functions,
        api=api,
        events=events,
        observability=observability,
    )


def main() -> None:
    # Under the CDK CLI, CDK_OUTDIR names the output; run directly (`make synth`), write cdk.out
    # at the repository root instead of the temporary directory App() would pick.
    outdir = None if os.environ.get("CDK_OUTDIR") else str(REPO_ROOT / "cdk.out")
    build_app(App(context=cdk_json_context(), outdir=outdir)).app.synth()
