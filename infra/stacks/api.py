"""The api stack: layers, one function per route function, the authorizer and the REST API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Aspects, CfnOutput, Stack
from constructs import Construct

from infra.constructs.api import ParleyApi
from infra.constructs.function import InlineRolePolicies, ParleyLayers
from infra.constructs.functions import RouteFunctions
from infra.constructs.queues import ParleyQueues
from infra.constructs.tables import ParleyTables
from parley.api.cors import CorsConfig
from parley.api.routing import RouteTable


class ApiStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        route_table: RouteTable,
        tables: ParleyTables,
        queues: ParleyQueues,
        layers_dir: Path,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.layers = ParleyLayers(self, "Layers", layers_dir=layers_dir)
        self.functions = RouteFunctions(
            self,
            "Functions",
            stage=stage,
            route_table=route_table,
            tables=tables,
            queues=queues,
            layers=self.layers,
        )
        # Stage throttling (cdk.json context throttle_rate / throttle_burst; defaults 100 rps, burst 200).
        rate = float(self.node.try_get_context("throttle_rate") or 100)
        burst = int(self.node.try_get_context("throttle_burst") or 200)
        # Browser origins allowed to call the API (context cors_allow_origins, comma-separated or a
        # list; none by default: no preflight is answered). The local server reads the same config.
        origins = self.node.try_get_context("cors_allow_origins")
        self.api = ParleyApi(
            self,
            "Api",
            stage=stage,
            route_table=route_table,
            functions=self.functions,
            throttle_rate=rate,
            throttle_burst=burst,
            cors=CorsConfig.from_origins(origins) if origins else None,
        )
        # CloudFormation allows 500 resources a stack: the functions' grants go inline in their roles
        Aspects.of(self).add(InlineRolePolicies())
        CfnOutput(self, "ApiUrl", value=self.api.rest_api.url, description="Base URL of the Parley API stage")
