"""The search stack and the functions that use it, from the synthesized templates: the collection
and its policies, the data access policies' principals against the route table, the ingest queue
and who may send to it, the ingest worker's and the message indexer's event source mappings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.constructs.functions import strongest
from infra.constructs.search import INDEX_PERMISSIONS, policy_name
from infra.constructs.tables import pascal_case
from infra.stacks.search import context_flag
from tests.infra.infra_synth import Synth
from tests.infra.test_infra_app import PLANS, ROUTE_TABLE, by_path, get_att_targets, statements, walk

pytestmark = pytest.mark.infra

ROUTE_SEARCH = {name for name, plan in PLANS.items() if "search" in plan.resources}
CONSUMER_SEARCH = {c.function for c in ROUTE_TABLE.consumers if "search" in c.resources}
ROUTE_INGEST = {name for name, plan in PLANS.items() if "ingest" in plan.resources}
CONSUMER_INGEST = {c.function for c in ROUTE_TABLE.consumers if "ingest" in strongest(set(c.resources))}


def collection(synth: Synth) -> tuple[str, dict[str, Any]]:
    ((logical, resource),) = by_path(synth.search, "AWS::OpenSearchServerless::Collection").values()
    return logical, resource


def export_of(synth: Synth, logical: str, attribute: str) -> str:
    """The export name under which the search stack exports a resource's attribute."""
    (name,) = [
        output["Export"]["Name"]
        for output in synth.search["Outputs"].values()
        if "Export" in output and output["Value"] == {"Fn::GetAtt": [logical, attribute]}
    ]
    return str(name)


def imports(value: Any) -> set[str]:
    return {v["Fn::ImportValue"] for v in walk(value) if isinstance(v, dict) and "Fn::ImportValue" in v}


def functions_of(template: dict[str, Any], prefix: str = "") -> dict[str, tuple[str, dict[str, Any]]]:
    """Lambda functions of a template by function directory name (from the construct path)."""
    found = {}
    for path, (logical, resource) in by_path(template, "AWS::Lambda::Function").items():
        if path.startswith(prefix) and path.endswith("/Function/Resource"):
            found[path.removeprefix(prefix).split("/")[0]] = (logical, resource)
    return found


def role_ids(template: dict[str, Any], prefix: str) -> dict[str, str]:
    """Function directory (PascalCase) -> the logical id of its role."""
    return {
        path.removeprefix(prefix).split("/")[0]: logical
        for path, (logical, _) in by_path(template, "AWS::IAM::Role").items()
        if path.startswith(prefix) and path.endswith("/Role/Resource")
    }


def access_policy(template: dict[str, Any]) -> tuple[list[dict[str, Any]], set[str]]:
    """The data access policy of a template: its document (tokens as placeholders) and the role ids
    its principals name."""
    ((_, policy),) = by_path(template, "AWS::OpenSearchServerless::AccessPolicy").values()
    assert policy["Properties"]["Type"] == "data"
    joined = policy["Properties"]["Policy"]["Fn::Join"][1]
    roles = {part["Fn::GetAtt"][0] for part in joined if isinstance(part, dict)}
    assert all(part["Fn::GetAtt"][1] == "Arn" for part in joined if isinstance(part, dict))
    text = "".join(part if isinstance(part, str) else "ROLE" for part in joined)
    return json.loads(text), roles


# --- the collection and its security policies -----------------------------------------------------


def test_the_collection_is_a_vector_search_collection_named_for_the_stage_after_its_policies(synth: Synth) -> None:
    _, resource = collection(synth)
    properties = resource["Properties"]
    assert properties["Name"] == f"parley-{synth.stage}"
    assert properties["Type"] == "VECTORSEARCH"  # k-NN and BM25 in one index
    # prod: standby replicas in another AZ, kept (and protected) when the stack goes
    assert properties["StandbyReplicas"] == "ENABLED"
    assert properties["DeletionProtection"] == "ENABLED"
    assert resource["DeletionPolicy"] == "Retain"
    policies = by_path(synth.search, "AWS::OpenSearchServerless::SecurityPolicy")
    assert set(resource["DependsOn"]) == {policies["Search/EncryptionPolicy"][0], policies["Search/NetworkPolicy"][0]}


def test_the_encryption_policy_covers_the_collection_with_an_aws_owned_key(synth: Synth) -> None:
    (_, policy) = by_path(synth.search, "AWS::OpenSearchServerless::SecurityPolicy")["Search/EncryptionPolicy"]
    assert policy["Properties"]["Type"] == "encryption"
    assert policy["Properties"]["Name"] == f"parley-{synth.stage}-enc"
    document = json.loads(policy["Properties"]["Policy"])
    assert document == {
        "Rules": [{"ResourceType": "collection", "Resource": [f"collection/parley-{synth.stage}"]}],
        "AWSOwnedKey": True,
    }


def test_the_network_policy_opens_the_collection_endpoint_only_never_dashboards(synth: Synth) -> None:
    (_, policy) = by_path(synth.search, "AWS::OpenSearchServerless::SecurityPolicy")["Search/NetworkPolicy"]
    assert policy["Properties"]["Type"] == "network"
    (rule_set,) = json.loads(policy["Properties"]["Policy"])
    assert rule_set["AllowFromPublic"] is True
    assert rule_set["Rules"] == [{"ResourceType": "collection", "Resource": [f"collection/parley-{synth.stage}"]}]
    assert "dashboard" not in json.dumps(rule_set).lower()


def test_policy_names_fit_opensearch_serverless_limits_for_the_longest_stage() -> None:
    assert len(policy_name("s" * 20, "enc")) <= 32
    with pytest.raises(ValueError, match="longer than 32"):
        policy_name("s" * 20, "toolong")


@pytest.mark.parametrize(
    ("value", "expected"), [(None, True), (True, True), ("false", False), ("0", False), ("yes", True), (False, False)]
)
def test_context_flags_take_booleans_and_the_clis_strings(value: object, expected: bool) -> None:
    assert context_flag(value, True) is expected


def test_a_context_flag_that_is_no_boolean_is_refused() -> None:
    with pytest.raises(ValueError, match="boolean"):
        context_flag("maybe", True)


# --- data access: exactly the roles of the functions naming "search" ------------------------------


def test_the_functions_stacks_data_access_policy_names_exactly_the_route_functions_with_search(synth: Synth) -> None:
    assert {"search_messages", "index_query", "completions_create"} <= ROUTE_SEARCH
    document, roles = access_policy(synth.functions)
    expected = role_ids(synth.functions, "Functions/")
    assert roles == {expected[pascal_case(name)] for name in ROUTE_SEARCH}
    (statement,) = document
    assert statement["Rules"] == [
        {
            "ResourceType": "index",
            "Resource": [f"index/parley-{synth.stage}/*"],
            "Permission": list(INDEX_PERMISSIONS),
        }
    ]
    assert set(INDEX_PERMISSIONS) == {
        "aoss:CreateIndex",
        "aoss:DescribeIndex",
        "aoss:UpdateIndex",
        "aoss:ReadDocument",
        "aoss:WriteDocument",
    }
    assert statement["Principal"] == ["ROLE"] * len(ROUTE_SEARCH)


def test_the_events_stacks_data_access_policy_names_exactly_the_consumers_with_search(synth: Synth) -> None:
    assert {"search_index", "index_ingest"} == CONSUMER_SEARCH
    document, roles = access_policy(synth.events)
    expected = role_ids(synth.events, "")
    assert roles == {expected[pascal_case(name)] for name in CONSUMER_SEARCH}
    (statement,) = document
    assert statement["Rules"][0]["Resource"] == [f"index/parley-{synth.stage}/*"]


def test_no_other_template_grants_data_access_to_the_collection(synth: Synth) -> None:
    for name in ("data", "search", "api"):
        template = getattr(synth, name)
        assert not by_path(template, "AWS::OpenSearchServerless::AccessPolicy"), name


def _aoss_statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in statements(policy) if any(a.startswith("aoss:") for a in _actions(s))]


def _actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


@pytest.mark.parametrize("template_name", ["functions", "events"])
def test_exactly_the_functions_with_search_may_call_the_collection_and_know_its_endpoint(
    synth: Synth, template_name: str
) -> None:
    template = getattr(synth, template_name)
    prefix = "Functions/" if template_name == "functions" else ""
    users = {pascal_case(n) for n in (ROUTE_SEARCH if template_name == "functions" else CONSUMER_SEARCH)}
    logical, _ = collection(synth)
    arn_export = export_of(synth, logical, "Arn")
    endpoint_export = export_of(synth, logical, "CollectionEndpoint")
    functions = functions_of(template, prefix)
    assert users <= functions.keys()
    for name, (_, function) in functions.items():
        variables = function["Properties"]["Environment"]["Variables"]
        policy = grant_policy(template, prefix, name)
        found = _aoss_statements(policy) if policy else []
        if name not in users:
            assert "PARLEY_SEARCH_ENDPOINT" not in variables, name
            assert found == [], name
            continue
        assert imports(variables["PARLEY_SEARCH_ENDPOINT"]) == {endpoint_export}, name
        (statement,) = found
        assert _actions(statement) == {"aoss:APIAccessAll"}, name
        assert imports(statement["Resource"]) == {arn_export}, name


def grant_policy(template: dict[str, Any], prefix: str, name: str) -> dict[str, Any] | None:
    """A function's grants, as a policy resource: its role's DefaultPolicy, or (the functions stack,
    infra.constructs.function.InlineRolePolicies) the role's inline policies."""
    found = by_path(template, "AWS::IAM::Policy").get(f"{prefix}{name}/Role/DefaultPolicy/Resource")
    if found:
        return dict(found[1])
    role = by_path(template, "AWS::IAM::Role").get(f"{prefix}{name}/Role/Resource")
    inline = (role[1]["Properties"].get("Policies") if role else None) or []
    if not inline:
        return None
    merged = [statement for policy in inline for statement in policy["PolicyDocument"]["Statement"]]
    return {"Properties": {"PolicyDocument": {"Statement": merged}}}


# --- the ingest queue -----------------------------------------------------------------------------


def test_the_ingest_queue_has_a_dead_letter_queue_with_an_alarm_and_outlasts_its_worker(synth: Synth) -> None:
    queues = by_path(synth.search, "AWS::SQS::Queue")
    (queue_id, queue) = queues["Search/IngestQueue/Resource"]
    (dlq_id, _) = queues["Search/IngestDeadLetters/Resource"]
    properties = queue["Properties"]
    assert properties["RedrivePolicy"]["maxReceiveCount"] == 5
    assert get_att_targets(properties["RedrivePolicy"]["deadLetterTargetArn"]) == {dlq_id}
    assert properties["SqsManagedSseEnabled"] is True
    worker = next(c for c in ROUTE_TABLE.consumers if c.function == "index_ingest")
    assert properties["VisibilityTimeout"] >= 6 * worker.timeout_seconds
    alarms = [a for _, a in by_path(synth.search, "AWS::CloudWatch::Alarm").values()]
    (alarm,) = [a for a in alarms if get_att_targets(a["Properties"]["Dimensions"]) == {dlq_id}]
    assert alarm["Properties"]["Threshold"] == 0
    assert alarm["Properties"]["ComparisonOperator"] == "GreaterThanThreshold"
    assert queue_id != dlq_id


@pytest.mark.parametrize("template_name", ["functions", "events"])
def test_exactly_the_functions_with_ingest_may_send_to_the_ingest_queue(synth: Synth, template_name: str) -> None:
    template = getattr(synth, template_name)
    prefix = "Functions/" if template_name == "functions" else ""
    senders = {pascal_case(n) for n in (ROUTE_INGEST if template_name == "functions" else CONSUMER_INGEST)}
    assert senders  # index_documents_create, indexes_create; index_ingest
    queue_id = by_path(synth.search, "AWS::SQS::Queue")["Search/IngestQueue/Resource"][0]
    arn_export = export_of(synth, queue_id, "Arn")
    functions = functions_of(template, prefix)
    for name, (_, function) in functions.items():
        variables = function["Properties"]["Environment"]["Variables"]
        policy = grant_policy(template, prefix, name)
        reaching = [s for s in (statements(policy) if policy else []) if arn_export in imports(s["Resource"])]
        sends = [s for s in reaching if "sqs:SendMessage" in _actions(s)]
        if name in senders:
            assert sends, name
            # the ingest worker also consumes the queue (CDK merges its statements into one)
            consumes = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"}
            consumes |= {"sqs:GetQueueAttributes", "sqs:GetQueueUrl"}
            allowed = {"sqs:SendMessage"} | (consumes if name == "IndexIngest" else set())
            assert {a for st in reaching for a in _actions(st)} <= allowed, name
            assert "PARLEY_INGEST_QUEUE" in variables, name
        else:
            assert sends == [], name
    # and no statement elsewhere sends to it
    for other in ("api", "data"):
        assert arn_export not in json.dumps(getattr(synth, other)), other


def test_index_ingest_reads_the_ingest_queue_one_document_at_a_time_with_partial_failures(synth: Synth) -> None:
    queue_id = by_path(synth.search, "AWS::SQS::Queue")["Search/IngestQueue/Resource"][0]
    arn_export = export_of(synth, queue_id, "Arn")
    (function_id, function) = functions_of(synth.events)["IndexIngest"]
    mappings = [
        m
        for _, m in by_path(synth.events, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    (mapping,) = mappings
    assert mapping["Properties"]["BatchSize"] == 1
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert imports(mapping["Properties"]["EventSourceArn"]) == {arn_export}
    policy = by_path(synth.events, "AWS::IAM::Policy")["IndexIngest/Role/DefaultPolicy/Resource"][1]
    consume = {a for s in statements(policy) if arn_export in imports(s["Resource"]) for a in _actions(s)}
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"} <= consume
    variables = function["Properties"]["Environment"]["Variables"]
    assert "PARLEY_INGEST_QUEUE" in variables
    # what the worker needs besides: model calls (Bedrock), documents, secrets, metering
    assert {"PARLEY_DOCUMENTS_BUCKET", "PARLEY_METERING_QUEUE", "PARLEY_TABLE_CHATS"} <= variables.keys()
    assert any(a.startswith("bedrock:") for s in statements(policy) for a in _actions(s))
    assert function["Properties"]["Timeout"] == 300


# --- the message indexer --------------------------------------------------------------------------


def test_search_index_reads_both_streams_like_the_emitter(synth: Synth) -> None:
    consumer = next(c for c in ROUTE_TABLE.consumers if c.function == "search_index")
    (function_id, function) = functions_of(synth.events)["SearchIndex"]
    mappings = [
        m
        for _, m in by_path(synth.events, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    assert len(mappings) == len(consumer.sources) == 2
    dlq = by_path(synth.events, "AWS::SQS::Queue")["EventsDeadLetters/Resource"][0]
    streams = set()
    for mapping in mappings:
        properties = mapping["Properties"]
        assert properties["BisectBatchOnFunctionError"] is True
        assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert properties["MaximumRetryAttempts"] == consumer.max_attempts
        assert properties["ParallelizationFactor"] == 1
        assert properties["StartingPosition"] == "TRIM_HORIZON"
        assert get_att_targets(properties["DestinationConfig"]) == {dlq}
        streams |= imports(properties["EventSourceArn"])
    assert len(streams) == 2
    assert all("StreamArn" in s for s in streams)
    assert any("Conversations" in s for s in streams) and any("Messages" in s for s in streams)
    variables = function["Properties"]["Environment"]["Variables"]
    assert {"PARLEY_TABLE_CONVERSATIONS", "PARLEY_TABLE_MESSAGES", "PARLEY_EVENTS_DLQ"} <= variables.keys()
