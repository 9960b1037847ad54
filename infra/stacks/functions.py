"""The functions stack: the layers and one function per function directory of the route table, the
scheduled jobs and the authorizer (infra.constructs.functions.RouteFunctions), with their roles, log
groups and the data access policy of those that use the search collection.

It is apart from the api stack (the REST API, its methods and the invoke permissions) because one
stack holds at most 500 resources, and a route function takes four (function, role, policy, log
group). The api stack imports the functions by ARN; nothing here refers to the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Aspects, Stack
from constructs import Construct

from infra.constructs.function import InlineRolePolicies, ParleyLayers
from infra.constructs.functions import RouteFunctions
from infra.constructs.queues import ParleyQueues
from infra.constructs.search import ParleySearch
from infra.constructs.tables import ParleyTables
from infra.stages import Stage
from parley.api.routing import RouteTable


class FunctionsStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: Stage,
        route_table: RouteTable,
        tables: ParleyTables,
        queues: ParleyQueues,
        search: ParleySearch,
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
            search=search,
            layers=self.layers,
        )
        # CloudFormation allows 500 resources a stack: the functions' grants go inline in their roles
        Aspects.of(self).add(InlineRolePolicies())
