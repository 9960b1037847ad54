"""The synthesized CDK app against its sources of truth: the route table, the table specs, the
gateway errors; plus cdk-nag and cfn-lint over the result. One synth per session (conftest)."""

from __future__ import annotations

import json
import shlex
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Aws
from aws_cdk.assertions import Match, Template

from infra.application import _STAGE
from infra.constructs.documents import LONGEST_REGION, documents_bucket_name
from infra.constructs.functions import BEDROCK, BEDROCK_ACTIONS, plan_functions, strongest
from infra.constructs.tables import ACCESS_ACTIONS, EPHEMERAL, READ_ONLY_ACTIONS, pascal_case, table_access
from infra.layers import build_core_layer, build_deps_layer, requirement_name, runtime_requirements
from infra.paths import CDK_JSON, REPO_ROOT, ROUTES_FILE
from infra.stacks.data import DOCUMENTS_BUCKET_OUTPUT, table_output
from parley.api.errors import GATEWAY_ERRORS
from parley.api.routing import Route, RouteTable, load_route_table
from parley.storage.schema import TABLES, TableSpec, create_table_request
from tests.infra.infra_synth import Synth

pytestmark = pytest.mark.infra

ROUTE_TABLE = load_route_table(ROUTES_FILE)
PLANS = {plan.name: plan for plan in plan_functions(ROUTE_TABLE)}
TABLE_NAMES = {spec.logical for spec in TABLES}


def table_grants(function: str) -> dict[str, str]:
    """Table -> access ("", ":update", ":read"), for the tables a function's routes name."""
    return dict(access for r in PLANS[function].resources if (access := table_access(r, TABLE_NAMES)))


def plan_tables(function: str) -> set[str]:
    return set(table_grants(function))


def only_get(function: str) -> bool:
    return {route.method for route in PLANS[function].routes} == {"GET"}


# --- reading the templates ------------------------------------------------------------------------


def by_path(template: dict[str, Any], type_: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Resources of a type by construct path (without the stack): path -> (logical id, resource)."""
    found = {}
    for logical, resource in template["Resources"].items():
        if resource["Type"] == type_:
            path = resource["Metadata"]["aws:cdk:path"].split("/", 1)[1]
            found[path] = (logical, resource)
    return found


def table_ids(synth: Synth) -> dict[str, str]:
    """Table logical name (keys, messages, ...) -> logical id in the data stack."""
    paths = by_path(synth.data, "AWS::DynamoDB::Table")
    return {spec.logical: paths[f"Tables/{pascal_case(spec.logical)}/Resource"][0] for spec in TABLES}


def lambda_function(synth: Synth, function: str) -> tuple[str, dict[str, Any]]:
    return by_path(synth.functions, "AWS::Lambda::Function")[f"Functions/{pascal_case(function)}/Function/Resource"]


def role_policy(synth: Synth, function: str) -> dict[str, Any]:
    """A function's grants: its role's one inline policy (infra.constructs.function.InlineRolePolicies)."""
    role = by_path(synth.functions, "AWS::IAM::Role")[f"Functions/{pascal_case(function)}/Role/Resource"][1]
    (policy,) = role["Properties"]["Policies"]
    return {"Properties": {"PolicyDocument": policy["PolicyDocument"]}}


def statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def actions_of(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def dynamodb_actions(policy: dict[str, Any]) -> set[str]:
    return {a for s in statements(policy) for a in actions_of(s) if a.startswith("dynamodb:")}


def walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def tables_mentioned(synth: Synth, value: Any) -> set[str]:
    """The tables a piece of the api template refers to (through the data stack's exports)."""
    imports = [v["Fn::ImportValue"] for v in walk(value) if isinstance(v, dict) and "Fn::ImportValue" in v]
    ids = table_ids(synth)
    return {logical for logical, table_id in ids.items() for name in imports if table_id in name}


def resource_path(api: dict[str, Any], ref: dict[str, Any]) -> str:
    if "Fn::GetAtt" in ref:  # the RestApi's RootResourceId
        return ""
    properties = api["Resources"][ref["Ref"]]["Properties"]
    return f"{resource_path(api, properties['ParentId'])}/{properties['PathPart']}"


def methods(synth: Synth) -> dict[tuple[str, str], dict[str, Any]]:
    """(HTTP method, path) -> the method's properties."""
    found = {}
    for resource in synth.api["Resources"].values():
        if resource["Type"] == "AWS::ApiGateway::Method":
            properties = resource["Properties"]
            found[(properties["HttpMethod"], resource_path(synth.api, properties["ResourceId"]))] = properties
    return found


def get_att_targets(value: Any) -> set[str]:
    return {v["Fn::GetAtt"][0] for v in walk(value) if isinstance(v, dict) and "Fn::GetAtt" in v}


def imported_functions(synth: Synth, value: Any) -> set[str]:
    """The functions stack's Lambda functions (logical ids) that a piece of another template imports."""
    prefix = f"parley-{synth.stage}-functions:"
    imports = [v["Fn::ImportValue"] for v in walk(value) if isinstance(v, dict) and "Fn::ImportValue" in v]
    functions = [k for k, r in synth.functions["Resources"].items() if r["Type"] == "AWS::Lambda::Function"]
    return {f for f in functions for name in imports if name.startswith(prefix) and f in name}


def all_functions() -> list[str]:
    return [*PLANS, ROUTE_TABLE.authorizer]


def route_id(route: Route) -> str:
    return f"{route.method} {route.path}"


# --- tables ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", TABLES, ids=lambda s: s.logical)
def test_given_a_table_spec_when_synthesized_then_its_table_has_the_same_keys_indexes_stream_and_ttl(
    synth: Synth, spec: TableSpec
) -> None:
    # Given the request moto and the local server create the table with
    request = create_table_request(spec, "unused")
    # When
    table = synth.data["Resources"][table_ids(synth)[spec.logical]]["Properties"]
    # Then
    assert table["KeySchema"] == request["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == request["AttributeDefinitions"]
    assert table.get("GlobalSecondaryIndexes", []) == request.get("GlobalSecondaryIndexes", [])
    if spec.stream:
        assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    else:
        assert "StreamSpecification" not in table
    if spec.ttl_attribute:
        assert table["TimeToLiveSpecification"] == {"AttributeName": spec.ttl_attribute, "Enabled": True}
    else:
        assert "TimeToLiveSpecification" not in table


def test_given_the_table_specs_when_synthesized_then_every_table_is_on_demand_encrypted_and_recoverable(
    synth: Synth,
) -> None:
    template = Template.from_json(synth.data)
    template.resource_count_is("AWS::DynamoDB::Table", len(TABLES))
    template.all_resources_properties(
        "AWS::DynamoDB::Table",
        {
            "BillingMode": "PAY_PER_REQUEST",
            "SSESpecification": {"SSEEnabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        },
    )


def test_given_data_and_ephemeral_tables_when_synthesized_then_only_data_tables_are_protected_and_retained(
    synth: Synth,
) -> None:
    for logical, table_id in table_ids(synth).items():
        table = synth.data["Resources"][table_id]
        keep = logical not in EPHEMERAL
        assert table["Properties"]["DeletionProtectionEnabled"] is keep, logical
        assert table["DeletionPolicy"] == ("Retain" if keep else "Delete"), logical
        assert table["UpdateReplacePolicy"] == ("Retain" if keep else "Delete"), logical


# --- functions ------------------------------------------------------------------------------------


def test_given_the_route_table_when_synthesized_then_one_function_per_route_function_plus_the_authorizer(
    synth: Synth,
) -> None:
    template = Template.from_json(synth.functions)
    scheduled = len(ROUTE_TABLE.scheduled)
    template.resource_count_is("AWS::Lambda::Function", len(ROUTE_TABLE.functions()) + 1 + scheduled)
    Template.from_json(synth.api).resource_count_is("AWS::Lambda::Function", 0)
    layers = by_path(synth.functions, "AWS::Lambda::LayerVersion")
    core, deps = layers["Layers/Core/Resource"][0], layers["Layers/Deps/Resource"][0]
    for function in all_functions():
        _, resource = lambda_function(synth, function)
        properties = resource["Properties"]
        assert properties["Runtime"] == "python3.13", function
        assert properties["Architectures"] == ["arm64"], function
        assert properties["Handler"] == "handler.lambda_handler", function
        assert properties["Layers"] == [{"Ref": core}, {"Ref": deps}], function
        assert properties["TracingConfig"] == {"Mode": "Active"}, function
    template.all_resources_properties(
        "AWS::Lambda::LayerVersion",
        {"CompatibleArchitectures": ["arm64"], "CompatibleRuntimes": ["python3.13"]},
    )


@pytest.mark.parametrize("function", sorted(PLANS))
def test_given_a_route_function_when_synthesized_then_memory_timeout_and_environment_follow_its_routes(
    synth: Synth, function: str
) -> None:
    plan = PLANS[function]
    _, resource = lambda_function(synth, function)
    properties = resource["Properties"]
    variables = properties["Environment"]["Variables"]
    assert properties["MemorySize"] == plan.memory_mb
    assert properties["Timeout"] == plan.timeout_seconds
    assert variables["PARLEY_STAGE"] == synth.stage
    assert variables["POWERTOOLS_SERVICE_NAME"] == "parley"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "Parley"
    assert variables["POWERTOOLS_LOG_LEVEL"] == "INFO"
    table_vars = {name for name in variables if name.startswith("PARLEY_TABLE_")}
    assert table_vars == {f"PARLEY_TABLE_{r.upper()}" for r in plan_tables(function)}
    for resource_name in plan_tables(function):
        assert tables_mentioned(synth, variables[f"PARLEY_TABLE_{resource_name.upper()}"]) == {resource_name}
    if plan.streaming:
        assert variables["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/parley-stream"
        assert properties["Timeout"] == 900
    else:
        assert "AWS_LAMBDA_EXEC_WRAPPER" not in variables
        assert properties["Timeout"] <= 29


def test_given_the_functions_when_synthesized_then_each_has_its_own_role_and_its_own_log_group(
    synth: Synth,
) -> None:
    roles, log_groups = set(), set()
    for function in all_functions():
        _, resource = lambda_function(synth, function)
        roles |= get_att_targets(resource["Properties"]["Role"])
        log_groups.add(resource["Properties"]["LoggingConfig"]["LogGroup"]["Ref"])
        assert (
            synth.functions["Resources"][resource["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"][
                "RetentionInDays"
            ]
            > 0
        )
    assert len(roles) == len(log_groups) == len(all_functions())
    for logical in roles:  # no managed policies: each writes to its own log group only
        assert "ManagedPolicyArns" not in synth.functions["Resources"][logical]["Properties"]


@pytest.mark.parametrize("function", sorted(PLANS))
def test_given_a_route_function_when_synthesized_then_its_policy_reaches_only_the_tables_of_its_routes(
    synth: Synth, function: str
) -> None:
    policy = role_policy(synth, function)
    assert tables_mentioned(synth, policy) == plan_tables(function)
    actions = dynamodb_actions(policy)
    assert "dynamodb:Scan" not in actions
    if not plan_tables(function):
        assert actions == set()


@pytest.mark.parametrize("function", sorted(PLANS))
def test_given_a_route_function_when_synthesized_then_each_table_gets_exactly_the_actions_of_its_kind(
    synth: Synth, function: str
) -> None:
    grants = table_grants(function)
    seen: set[str] = set()
    for statement in statements(role_policy(synth, function)):
        actions = {a for a in actions_of(statement) if a.startswith("dynamodb:")}
        if not actions:
            continue
        mentioned = tables_mentioned(synth, statement["Resource"])
        assert mentioned
        seen |= mentioned
        kinds = {grants[t] for t in mentioned}
        assert len(kinds) == 1, statement
        assert actions == set(ACCESS_ACTIONS[kinds.pop()]), statement
    assert seen == set(grants)


# GET routes that write back replies left pending by a dead invocation (UpdateItem on messages).
SETTLING = {"conversations_get", "messages_list", "responses_get"}  # write back replies a dead invocation left


@pytest.mark.parametrize("function", sorted(f for f in PLANS if only_get(f)))
def test_given_a_function_serving_only_get_routes_when_synthesized_then_its_role_reads_and_puts_or_deletes_nothing(
    synth: Synth, function: str
) -> None:
    # Given the route table's resource kinds for GET routes: read kinds, and messages:update where
    # a read settles stale replies
    expected = {t: (":update" if function in SETTLING and t == "messages" else ":read") for t in table_grants(function)}
    assert table_grants(function) == expected
    # Then the role reads (GetItem, BatchGetItem, Query, s3:GetObject), at most updates messages,
    # and never puts, deletes or writes in batches
    actions = {a for s in statements(role_policy(synth, function)) for a in actions_of(s)}
    dynamodb = {a for a in actions if a.startswith("dynamodb:")}
    assert dynamodb <= {*READ_ONLY_ACTIONS, "dynamodb:UpdateItem"}
    assert ("dynamodb:UpdateItem" in dynamodb) is (function in SETTLING)
    # (list routes read the stage's cursor-signing key)
    assert not {a for a in actions if a.startswith(("s3:", "secretsmanager:", "bedrock:"))} - {
        "s3:GetObject",
        "secretsmanager:GetSecretValue",
    }


def test_given_kinds_naming_one_resource_when_combined_then_the_one_granting_most_stays() -> None:
    assert strongest({"messages:read", "messages:update"}) == ("messages:update",)
    assert strongest({"messages", "messages:read", "chats:read"}) == ("chats:read", "messages")
    assert strongest({"secrets", "secrets:read", "bedrock"}) == ("bedrock", "secrets")
    assert strongest({"documents:read", "usage:read"}) == ("documents:read", "usage:read")


# model calls, and the index routes that embed (a Bedrock embedding model is a model call too)
MODEL_CALLING = {
    "completions_create",
    "chats_complete",
    "messages_create",
    "responses_create",
    "embeddings_create",
    "index_query",
    "indexes_create",
    "index_documents_create",
}


def test_given_the_route_table_when_planned_then_exactly_the_model_calling_functions_name_bedrock() -> None:
    assert {name for name, plan in PLANS.items() if BEDROCK in plan.resources} == MODEL_CALLING


@pytest.mark.parametrize("function", sorted(PLANS))
def test_given_a_route_function_when_synthesized_then_only_model_calling_ones_may_invoke_bedrock_models(
    synth: Synth, function: str
) -> None:
    found = [
        s for s in statements(role_policy(synth, function)) if any(a.startswith("bedrock:") for a in actions_of(s))
    ]
    if function not in MODEL_CALLING:
        assert found == []
        return
    (statement,) = found
    assert (
        actions_of(statement)
        == set(BEDROCK_ACTIONS)
        == {
            "bedrock:InvokeModel",
            "bedrock:InvokeModelWithResponseStream",
        }
    )
    resources = [json.dumps(r) for r in statement["Resource"]]
    assert len(resources) == 3
    joined = " ".join(resources)
    assert ":bedrock:*::foundation-model/*" in joined
    for kind in ("inference-profile", "application-inference-profile"):
        (arn,) = [r for r in resources if f":{kind}/*" in r]
        assert ':bedrock:*:"' in arn and "AWS::AccountId" in arn, arn


@pytest.mark.parametrize("function", sorted(PLANS))
def test_given_a_route_function_when_synthesized_then_only_secrets_users_reach_the_stages_provider_secrets(
    synth: Synth, function: str
) -> None:
    policy = role_policy(synth, function)
    found = [
        s
        for s in statements(policy)
        if any(a.startswith("secretsmanager:") for a in actions_of(s)) and "cursor-key" not in json.dumps(s)
    ]
    resources = PLANS[function].resources
    if "secrets" not in resources and "secrets:read" not in resources:
        assert found == []
        return
    (statement,) = found
    assert json.dumps(statement["Resource"]).endswith(f':secret:parley/{synth.stage}/*"]]}}')
    actions = set(actions_of(statement))
    if "secrets" in resources:
        assert {
            "secretsmanager:CreateSecret",
            "secretsmanager:GetSecretValue",
            "secretsmanager:PutSecretValue",
            "secretsmanager:DeleteSecret",
        } <= actions
    else:  # model calls only read keys
        assert actions == {"secretsmanager:GetSecretValue"}


@pytest.mark.parametrize("function", sorted(PLANS))
def test_given_a_route_function_when_synthesized_then_only_list_routes_read_the_cursor_key(
    synth: Synth, function: str
) -> None:
    found = [s for s in statements(role_policy(synth, function)) if "cursor-key" in json.dumps(s)]
    variables = lambda_function(synth, function)[1]["Properties"]["Environment"]["Variables"]
    if "cursors" not in PLANS[function].resources:
        assert found == []
        assert "PARLEY_CURSOR_SECRET" not in variables
        return
    (statement,) = found
    assert set(actions_of(statement)) == {"secretsmanager:GetSecretValue"}
    assert json.dumps(statement["Resource"]).endswith(f':secret:parley-internal/{synth.stage}/cursor-key-??????"]]}}')
    assert variables["PARLEY_CURSOR_SECRET"] == f"parley-internal/{synth.stage}/cursor-key"


def test_given_the_data_stack_when_synthesized_then_it_holds_a_generated_cursor_key(synth: Synth) -> None:
    (secret,) = [r for r in synth.data["Resources"].values() if r["Type"] == "AWS::SecretsManager::Secret"]
    assert secret["Properties"]["Name"] == f"parley-internal/{synth.stage}/cursor-key"
    assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] == 64
    assert "SecretString" not in secret["Properties"]


def test_given_the_authorizer_when_synthesized_then_it_reads_keys_and_projects_and_writes_only_last_used(
    synth: Synth,
) -> None:
    policy = role_policy(synth, ROUTE_TABLE.authorizer)
    _, function = lambda_function(synth, ROUTE_TABLE.authorizer)
    variables = function["Properties"]["Environment"]["Variables"]
    assert tables_mentioned(synth, policy) == {"keys", "chats"}
    assert {n for n in variables if n.startswith("PARLEY_TABLE_")} == {"PARLEY_TABLE_KEYS", "PARLEY_TABLE_CHATS"}
    # reads the key and its project; UpdateItem (last_used_at) on the chats table only
    assert dynamodb_actions(policy) == {*READ_ONLY_ACTIONS, "dynamodb:UpdateItem"}
    for statement in statements(policy):
        if "dynamodb:UpdateItem" in actions_of(statement):
            assert tables_mentioned(synth, statement) == {"chats"}


# --- API ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTE_TABLE.routes, ids=route_id)
def test_given_a_route_when_synthesized_then_its_method_is_on_its_path_and_integrated_with_its_function(
    synth: Synth, route: Route
) -> None:
    method = methods(synth)[(route.method, route.path)]
    function_id, _ = lambda_function(synth, route.function)
    integration = method["Integration"]
    assert integration["Type"] == "AWS_PROXY"
    assert imported_functions(synth, integration["Uri"]) == {function_id}
    for name in route.params:
        assert method["RequestParameters"][f"method.request.path.{name}"] is True
    if route.streaming:
        assert integration["ResponseTransferMode"] == "STREAM"
        assert integration["TimeoutInMillis"] == 900_000
        assert "/response-streaming-invocations" in json.dumps(integration["Uri"])
    else:
        assert integration.get("ResponseTransferMode", "BUFFERED") == "BUFFERED"
        assert integration.get("TimeoutInMillis", 29_000) <= 29_000


def test_given_the_route_table_when_synthesized_then_the_api_has_exactly_its_methods(synth: Synth) -> None:
    assert set(methods(synth)) == {(r.method, r.path) for r in ROUTE_TABLE.routes}


@pytest.mark.parametrize("route", ROUTE_TABLE.routes, ids=route_id)
def test_given_a_route_when_synthesized_then_only_routes_without_permission_skip_the_authorizer(
    synth: Synth, route: Route
) -> None:
    method = methods(synth)[(route.method, route.path)]
    authorizer_id = next(iter(by_path(synth.api, "AWS::ApiGateway::Authorizer").values()))[0]
    if route.permission is None:
        assert method["AuthorizationType"] == "NONE"
        assert "AuthorizerId" not in method
    else:
        assert method["AuthorizationType"] == "CUSTOM"
        assert method["AuthorizerId"] == {"Ref": authorizer_id}


def test_given_the_api_when_synthesized_then_the_authorizer_checks_the_authorization_header_cached_30_s(
    synth: Synth,
) -> None:
    authorizer_function, _ = lambda_function(synth, ROUTE_TABLE.authorizer)
    authorizers = by_path(synth.api, "AWS::ApiGateway::Authorizer")
    assert len(authorizers) == 1
    ((_, authorizer),) = authorizers.values()
    assert authorizer["Properties"]["Type"] == "REQUEST"
    assert authorizer["Properties"]["IdentitySource"] == "method.request.header.Authorization"
    assert authorizer["Properties"]["AuthorizerResultTtlInSeconds"] == ROUTE_TABLE.authorizer_cache_seconds == 30
    assert imported_functions(synth, authorizer["Properties"]["AuthorizerUri"]) == {authorizer_function}


@pytest.mark.parametrize("error", GATEWAY_ERRORS, ids=lambda e: e.response_type)
def test_given_a_gateway_error_when_synthesized_then_api_gateway_answers_it_in_parleys_error_model(
    synth: Synth, error: Any
) -> None:
    Template.from_json(synth.api).has_resource_properties(
        "AWS::ApiGateway::GatewayResponse",
        {
            "ResponseType": error.response_type,
            "StatusCode": str(error.status),
            "ResponseTemplates": {"application/json": error.template()},
        },
    )


def test_given_the_api_when_synthesized_then_it_is_regional_logged_traced_validated_and_outputs_its_url(
    synth: Synth,
) -> None:
    template = Template.from_json(synth.api)
    template.has_resource_properties("AWS::ApiGateway::RestApi", {"EndpointConfiguration": {"Types": ["REGIONAL"]}})
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "StageName": synth.stage,
            "TracingEnabled": True,
            "AccessLogSetting": {"DestinationArn": Match.any_value(), "Format": Match.any_value()},
            "MethodSettings": [
                Match.object_like(
                    {
                        "HttpMethod": "*",
                        "ResourcePath": "/*",
                        "LoggingLevel": "INFO",
                        "MetricsEnabled": True,
                        "DataTraceEnabled": False,
                    }
                )
            ],
        },
    )
    template.has_resource_properties(
        "AWS::ApiGateway::RequestValidator", {"ValidateRequestBody": True, "ValidateRequestParameters": True}
    )
    ((stage_id, stage),) = by_path(synth.api, "AWS::ApiGateway::Stage").values()
    access_log = json.loads(
        stage["Properties"]["AccessLogSetting"]["Format"].replace(
            "$context.error.messageString", '"quoted by API Gateway"'
        )
    )
    assert access_log["requestId"] == "$context.requestId"
    (method_settings,) = stage["Properties"]["MethodSettings"]
    assert (method_settings["ThrottlingRateLimit"], method_settings["ThrottlingBurstLimit"]) == (100, 200)
    assert set(synth.api["Outputs"]) == {"ApiUrl"}
    api_url = json.dumps(synth.api["Outputs"]["ApiUrl"]["Value"])
    ((rest_api_id, _),) = by_path(synth.api, "AWS::ApiGateway::RestApi").values()
    assert rest_api_id in api_url
    assert json.dumps({"Ref": stage_id}) in api_url


def test_given_the_data_stack_when_synthesized_then_it_outputs_every_table_name_and_the_bucket_name(
    synth: Synth,
) -> None:
    outputs = synth.data["Outputs"]
    ids = table_ids(synth)
    for spec in TABLES:
        assert outputs[table_output(spec.logical)]["Value"] == {"Ref": ids[spec.logical]}, spec.logical
    assert "KeysTableName" in outputs  # what the README's parley-admin step reads
    ((bucket_id, _),) = by_path(synth.data, "AWS::S3::Bucket").values()
    assert outputs[DOCUMENTS_BUCKET_OUTPUT]["Value"] == {"Ref": bucket_id}
    named = {table_output(spec.logical) for spec in TABLES} | {DOCUMENTS_BUCKET_OUTPUT}
    assert {name for name in outputs if not name.startswith("ExportsOutput")} == named


def test_given_the_longest_stage_when_the_bucket_is_named_then_it_fits_63_characters_in_every_region() -> None:
    longest_stage = "s" * 20
    assert _STAGE.fullmatch(longest_stage)
    assert not _STAGE.fullmatch(longest_stage + "s")
    for stage in ("prod", "s" * 17, "s" * 18, longest_stage):
        name = documents_bucket_name(stage).replace(Aws.ACCOUNT_ID, "1" * 12).replace(Aws.REGION, "r" * LONGEST_REGION)
        assert len(name) <= 63, name
    # and the stages whose name always fitted keep it
    assert documents_bucket_name("prod").startswith("parley-prod-documents-")
    assert documents_bucket_name("s" * 17).startswith(f"parley-{'s' * 17}-documents-")


def test_given_the_synthesized_bucket_when_read_then_its_name_is_the_one_the_functions_get(synth: Synth) -> None:
    ((_, bucket),) = by_path(synth.data, "AWS::S3::Bucket").values()
    name = json.dumps(bucket["Properties"]["BucketName"])
    assert f"parley-{synth.stage}-documents-" in name
    _, function = lambda_function(synth, "documents_get")
    assert json.dumps(function["Properties"]["Environment"]["Variables"]["PARLEY_DOCUMENTS_BUCKET"]) == name


def test_given_cdk_json_when_the_cli_runs_its_commands_then_they_use_the_projects_virtualenv() -> None:
    # Given the commands the CDK CLI runs (from the repository root, where cdk.json is)
    settings = json.loads(CDK_JSON.read_text())
    app, build = shlex.split(settings["app"]), shlex.split(settings["build"])
    # Then both run the virtualenv's python (PATH's may lack aws_cdk), on files that exist
    assert app == [".venv/bin/python", "infra/app.py"]
    assert build == [".venv/bin/python", "-m", "infra.layers"]
    assert (REPO_ROOT / app[1]).is_file()
    # and that python has the CDK and cdk-nag the app imports
    done = subprocess.run(
        [app[0], "-c", "import aws_cdk, cdk_nag, infra.application"],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]


# --- checks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage_synth", ["synth", "dev_synth"])
def test_given_the_app_when_synthesized_then_cdk_nag_leaves_no_unacknowledged_finding(
    request: pytest.FixtureRequest, stage_synth: str
) -> None:
    synth: Synth = request.getfixturevalue(stage_synth)  # prod and dev, each with its options
    # Given cdk-nag registered as a validation plugin (its findings fail the synth)
    assert "AwsSolutions" in synth.plugins
    # When CDK ran it during the synth, Then nothing is left: every finding is acknowledged
    findings = [
        f"{report['pluginName']} {violation['severity']} {violation['ruleName']} at "
        + ", ".join(c["constructPath"] for c in violation["violatingConstructs"])
        for report in synth.report["pluginReports"]
        for violation in report["violations"]
    ]
    assert findings == []


# Warnings cfn-lint may report, each with the reason it is acceptable.
CFN_LINT_ACCEPTED = {
    "W3005": "CDK's Function adds DependsOn on its role, which Role: Fn::GetAtt already implies; harmless",
}


@pytest.mark.parametrize("stage_synth", ["synth", "dev_synth"])
def test_given_the_synthesized_templates_when_cfn_lint_runs_then_it_reports_no_errors(
    request: pytest.FixtureRequest, stage_synth: str
) -> None:
    from cfnlint.api import ManualArgs, lint_by_config

    synth: Synth = request.getfixturevalue(stage_synth)
    templates = [str(p) for p in sorted(synth.outdir.glob("*.template.json"))]
    assert len(templates) == 6  # data, search, functions, api, events, observability
    matches = lint_by_config(ManualArgs(templates=templates, regions=["us-east-1"]))
    problems = [
        f"{m.rule.id} {Path(m.filename).name}:{m.linenumber} {m.message}"
        for m in matches
        if m.rule.id not in CFN_LINT_ACCEPTED
    ]
    assert problems == []


# --- planning and layers (no synth) ---------------------------------------------------------------


def test_given_the_sweep_when_synthesized_then_it_runs_every_5_minutes_and_consumes_the_metering_queue(
    synth: Synth,
) -> None:
    queues = by_path(synth.data, "AWS::SQS::Queue")
    metering = queues["Queues/Metering/Resource"]
    assert metering[1]["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 20
    rules = by_path(synth.functions, "AWS::Events::Rule")
    (_, rule) = rules["Functions/SweepSchedule/Resource"]
    assert rule["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    sweep_id, sweep = lambda_function(synth, "sweep")
    assert get_att_targets(rule["Properties"]["Targets"]) == {sweep_id}
    assert "PARLEY_METERING_QUEUE" in sweep["Properties"]["Environment"]["Variables"]
    sqs = {a for st in statements(role_policy(synth, "sweep")) for a in actions_of(st) if a.startswith("sqs:")}
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage"} <= sqs
    assert "sqs:SendMessage" not in sqs
    assert dynamodb_actions(role_policy(synth, "sweep")) >= {"dynamodb:Query", "dynamodb:UpdateItem"}
    assert "dynamodb:Scan" not in dynamodb_actions(role_policy(synth, "sweep"))


@pytest.mark.parametrize("function", sorted(PLANS))
def test_given_a_route_function_when_synthesized_then_only_model_callers_may_park_usage_records(
    synth: Synth, function: str
) -> None:
    sqs = {a for st in statements(role_policy(synth, function)) for a in actions_of(st) if a.startswith("sqs:")}
    variables = lambda_function(synth, function)[1]["Properties"]["Environment"]["Variables"]
    if "metering" in PLANS[function].resources:
        assert sqs == {"sqs:SendMessage", "sqs:GetQueueUrl"}, function
        assert "PARLEY_METERING_QUEUE" in variables
    else:
        assert sqs == set(), function
        assert "PARLEY_METERING_QUEUE" not in variables


def _table(*routes: Route) -> RouteTable:
    return RouteTable(routes=routes, authorizer="authorizer", root=Path("/nonexistent"))


def test_given_routes_sharing_a_function_when_planned_then_they_get_one_function_with_their_union() -> None:
    table = _table(
        Route("GET", "/v1/things", "things", "things:ListThings", resources=("chats",)),
        Route("GET", "/v1/things/{thing_id}", "things", "things:GetThing", resources=("keys",), memory_mb=1024),
    )
    (plan,) = plan_functions(table)
    assert plan.name == "things"
    assert plan.resources == ("chats", "keys")
    assert plan.memory_mb == 1024
    assert not plan.streaming


def test_given_a_function_mixing_streamed_and_buffered_routes_when_planned_then_it_is_refused() -> None:
    table = _table(
        Route("POST", "/v1/a", "mixed", "a:Create", streaming=True, timeout_seconds=900),
        Route("GET", "/v1/a", "mixed", "a:List"),
    )
    with pytest.raises(ValueError, match="streamed and buffered"):
        plan_functions(table)


def test_given_a_buffered_route_over_29_seconds_when_planned_then_it_is_refused() -> None:
    with pytest.raises(ValueError, match=r"1\.\.29"):
        plan_functions(_table(Route("GET", "/v1/slow", "slow", "a:Get", timeout_seconds=60)))


def test_given_the_core_sources_when_the_core_layer_is_built_then_it_holds_the_package_and_the_wrapper(
    tmp_path: Path,
) -> None:
    out = build_core_layer(tmp_path / "core")
    wrapper = out / "parley-stream"
    assert (out / "python" / "parley" / "__init__.py").is_file()
    assert wrapper.stat().st_mode & stat.S_IXUSR
    assert sorted(p.name for p in out.iterdir()) == ["parley-stream", "python"]
    assert not [p for p in out.rglob("*") if p.name == "__pycache__" or p.suffix == ".pyc"]


def test_given_a_current_stamp_when_the_deps_layer_is_built_again_then_pip_is_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr("infra.layers.subprocess.run", lambda command, check: calls.append(command))
    out = tmp_path / "deps"
    assert build_deps_layer(out, ["pydantic>=2"]) is True
    assert build_deps_layer(out, ["pydantic>=2"]) is False
    assert build_deps_layer(out, ["pydantic>=2", "httpx"]) is True
    assert len(calls) == 2
    command = calls[0]
    assert command[command.index("--platform") + 1] == "manylinux2014_aarch64"
    assert command[command.index("--python-version") + 1] == "3.13"
    assert "--only-binary=:all:" in command
    assert command[command.index("--target") + 1] == str(out / "python")
    assert [p.name for p in out.iterdir()] == ["python"]  # the stamp stays out of the zipped asset


def test_given_pyproject_dependencies_when_read_then_boto3_is_left_to_the_lambda_runtime() -> None:
    names = [requirement_name(r) for r in runtime_requirements()]
    assert "boto3" not in names
    assert {"aws-lambda-powertools", "pydantic", "httpx"} <= set(names)
    assert requirement_name("Foo_Bar[x]>=1; python_version>'3'") == "foo-bar"


def test_the_api_stack_stays_under_cloudformations_500_resources_with_grants_inline(synth: Synth) -> None:
    resources = synth.api["Resources"]
    assert len(resources) <= 500, f"{len(resources)} resources: CloudFormation refuses a stack over 500"
    # every function's grants are its role's inline policy (InlineRolePolicies), none a resource of its own
    assert [k for k, r in resources.items() if r["Type"] == "AWS::IAM::Policy"] == []
    for function in all_functions():
        assert role_policy(synth, function)["Properties"]["PolicyDocument"]["Statement"], function
    # and nothing depends on a resource the template no longer has
    depends = {
        d
        for r in resources.values()
        for d in ([r["DependsOn"]] if isinstance(r.get("DependsOn"), str) else r.get("DependsOn", []))
    }
    assert depends <= resources.keys()
