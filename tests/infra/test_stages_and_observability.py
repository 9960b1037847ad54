"""The two stages' templates side by side (prod: retains, protects, alarms; dev: tears down, cheaper),
the observability stack's dashboard, alarms and topic, and the stage options (custom domain, WAF,
reserved concurrency, authorizer TTL). Synths: the session's prod and dev (conftest)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.constructs.alarms import topic_name
from infra.constructs.tables import EPHEMERAL, pascal_case
from infra.stacks.observability import ALARM_MATH_METRICS
from infra.stages import PROD_PROFILE, Stage
from parley.storage.schema import TABLES
from tests.infra.conftest import ALARM_EMAIL, ALARM_URL, WEB_ACL_ARN
from tests.infra.infra_synth import Synth

pytestmark = pytest.mark.infra

DATA_TABLES = [spec.logical for spec in TABLES if spec.logical not in EPHEMERAL]


def resources(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def all_resources(synth: Synth, type_: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for template in synth.templates.values():
        found |= resources(template, type_)
    return found


def table(synth: Synth, logical: str) -> dict[str, Any]:
    for resource in resources(synth.data, "AWS::DynamoDB::Table").values():
        if resource["Metadata"]["aws:cdk:path"].endswith(f"/Tables/{pascal_case(logical)}/Resource"):
            return resource
    raise KeyError(logical)


def alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    """Every alarm of the app, by construct id (the last part of its path but "Resource")."""
    return {
        r["Metadata"]["aws:cdk:path"].split("/")[-2]: r["Properties"]
        for r in all_resources(synth, "AWS::CloudWatch::Alarm").values()
    }


def metric_names(alarm: dict[str, Any]) -> set[str]:
    if "MetricName" in alarm:
        return {alarm["MetricName"]}
    return {q["MetricStat"]["Metric"]["MetricName"] for q in alarm["Metrics"] if "MetricStat" in q}


def dashboard_body(synth: Synth) -> dict[str, Any]:
    (dashboard,) = resources(synth.observability, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    # The body is a Fn::Join of strings and references: the references become placeholders.
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    text = "".join(p if isinstance(p, str) else '"REF"' for p in parts)
    return dict(json.loads(text.replace('""REF""', '"REF"')))


# --- stage differences ---------------------------------------------------------------------------


@pytest.mark.parametrize("logical", DATA_TABLES)
def test_prod_data_tables_are_retained_protected_and_recoverable_and_devs_are_not(
    synth: Synth, dev_synth: Synth, logical: str
) -> None:
    prod, dev = table(synth, logical), table(dev_synth, logical)
    assert (prod["DeletionPolicy"], prod["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert prod["Properties"]["DeletionProtectionEnabled"] is True
    assert prod["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert (dev["DeletionPolicy"], dev["UpdateReplacePolicy"]) == ("Delete", "Delete")
    assert dev["Properties"]["DeletionProtectionEnabled"] is False
    assert dev["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": False}


def test_prod_keeps_the_documents_bucket_and_dev_empties_and_deletes_it(synth: Synth, dev_synth: Synth) -> None:
    (prod,) = resources(synth.data, "AWS::S3::Bucket").values()
    (dev,) = resources(dev_synth.data, "AWS::S3::Bucket").values()
    assert prod["DeletionPolicy"] == "Retain"
    assert dev["DeletionPolicy"] == "Delete"
    assert resources(synth.data, "Custom::S3AutoDeleteObjects") == {}
    assert len(resources(dev_synth.data, "Custom::S3AutoDeleteObjects")) == 1


def test_the_search_collection_is_retained_with_standby_replicas_in_prod_only(synth: Synth, dev_synth: Synth) -> None:
    (prod,) = resources(synth.search, "AWS::OpenSearchServerless::Collection").values()
    (dev,) = resources(dev_synth.search, "AWS::OpenSearchServerless::Collection").values()
    assert (prod["DeletionPolicy"], prod["Properties"]["StandbyReplicas"]) == ("Retain", "ENABLED")
    assert prod["Properties"]["DeletionProtection"] == "ENABLED"
    assert (dev["DeletionPolicy"], dev["Properties"]["StandbyReplicas"]) == ("Delete", "DISABLED")
    assert dev["Properties"]["DeletionProtection"] == "DISABLED"


def test_logs_are_kept_90_days_in_prod_and_7_in_dev(synth: Synth, dev_synth: Synth) -> None:
    for stage_synth, days in ((synth, 90), (dev_synth, 7)):
        groups = all_resources(stage_synth, "AWS::Logs::LogGroup")
        assert groups, stage_synth.stage
        assert {g["Properties"]["RetentionInDays"] for g in groups.values()} == {days}, stage_synth.stage


def test_dev_throttles_lower_than_prod(synth: Synth, dev_synth: Synth) -> None:
    def throttles(stage_synth: Synth) -> tuple[float, int]:
        (stage,) = resources(stage_synth.api, "AWS::ApiGateway::Stage").values()
        (settings,) = stage["Properties"]["MethodSettings"]
        return settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]

    assert throttles(synth) == (100, 200)
    assert throttles(dev_synth) == (10, 20)


def test_alarms_and_their_topic_exist_in_prod_and_not_in_dev(synth: Synth, dev_synth: Synth) -> None:
    assert alarms(dev_synth) == {}
    assert all_resources(dev_synth, "AWS::SNS::Topic") == {}
    assert len(alarms(synth)) > 20
    # and dev still has its dashboard
    assert len(resources(dev_synth.observability, "AWS::CloudWatch::Dashboard")) == 1


# --- alarms ----------------------------------------------------------------------------------------


def test_every_alarm_notifies_the_stages_topic_on_alarm_and_ok(synth: Synth) -> None:
    (topic_id, topic), *_ = resources(synth.observability, "AWS::SNS::Topic").items()
    assert topic["Properties"]["TopicName"] == topic_name("prod")
    for construct, alarm in alarms(synth).items():
        actions = json.dumps([alarm["AlarmActions"], alarm["OKActions"]])
        assert topic_id in actions or topic_name("prod") in actions, construct


def test_the_topics_subscribers_come_from_context(synth: Synth) -> None:
    subscriptions = {
        (s["Properties"]["Protocol"], s["Properties"]["Endpoint"])
        for s in resources(synth.observability, "AWS::SNS::Subscription").values()
    }
    assert subscriptions == {("email", ALARM_EMAIL), ("https", ALARM_URL)}


def test_the_5xx_rate_alarm_divides_5xx_by_requests_of_the_stages_api(synth: Synth) -> None:
    alarm = alarms(synth)["Api5xxRateAlarm"]
    assert alarm["Threshold"] == PROD_PROFILE["api_5xx_rate_percent"]
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert metric_names(alarm) == {"5XXError", "Count"}
    (expression,) = [q["Expression"] for q in alarm["Metrics"] if "Expression" in q]
    assert "errors / requests" in expression
    for query in alarm["Metrics"]:
        if "MetricStat" in query:
            dims = {d["Name"]: d["Value"] for d in query["MetricStat"]["Metric"]["Dimensions"]}
            assert dims == {"ApiName": "parley-prod", "Stage": "prod"}


def test_every_function_is_in_exactly_one_errors_and_one_throttles_alarm_of_at_most_ten(synth: Synth) -> None:
    functions = {
        k
        for name in ("functions", "events")
        for k, r in resources(synth.templates[f"parley-prod-{name}"], "AWS::Lambda::Function").items()
        if "/Function/Resource" in r["Metadata"]["aws:cdk:path"]
    }
    for kind in ("Errors", "Throttles"):
        covered: list[str] = []
        for construct, alarm in alarms(synth).items():
            if not construct.startswith(f"Lambda{kind}"):
                continue
            assert metric_names(alarm) == {kind}
            stats = [q for q in alarm["Metrics"] if "MetricStat" in q]
            assert 1 <= len(stats) <= ALARM_MATH_METRICS
            assert alarm["Threshold"] == 0
            for query in stats:
                (dim,) = query["MetricStat"]["Metric"]["Dimensions"]
                covered.append(json.dumps(dim["Value"]))
        assert len(covered) == len(set(covered)) == len(functions), kind
        # each names its function through the ARN the api stack imports or the events stack exports
        assert all("Fn::ImportValue" in value for value in covered)


@pytest.mark.parametrize("logical", [spec.logical for spec in TABLES])
def test_each_table_has_a_throttle_and_a_system_errors_alarm(synth: Synth, logical: str) -> None:
    found = alarms(synth)
    throttles = found[f"{pascal_case(logical)}TableThrottlesAlarm"]
    errors = found[f"{pascal_case(logical)}TableSystemErrorsAlarm"]
    assert metric_names(throttles) == {"ReadThrottleEvents", "WriteThrottleEvents"}
    assert metric_names(errors) == {"SystemErrors"}
    assert len([q for q in errors["Metrics"] if "MetricStat" in q]) <= ALARM_MATH_METRICS
    assert throttles["Threshold"] == errors["Threshold"] == 0


def test_every_dead_letter_queue_and_the_metering_queue_alarm_on_depth_above_zero(synth: Synth) -> None:
    found = alarms(synth)
    for construct in (
        "MeteringDeadLettersAlarm",
        "MeteringParkedAlarm",
        "IngestQueueDeadLettersAlarm",
        "EventsQueueDeadLettersAlarm",
        "DeliveriesQueueDeadLettersAlarm",
        "EventsDlqDeadLettersAlarm",
    ):
        alarm = found[construct]
        assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible", construct
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold"), construct
    # no queue alarm twice
    depth = [a for a in found.values() if a.get("MetricName") == "ApproximateNumberOfMessagesVisible"]
    assert len(depth) == 6


def test_ttft_p95_and_webhook_disabled_alarms_read_parleys_metrics(synth: Synth) -> None:
    found = alarms(synth)
    ttft = found["TimeToFirstTokenAlarm"]
    assert (ttft["Namespace"], ttft["MetricName"], ttft["ExtendedStatistic"]) == ("Parley", "TimeToFirstToken", "p95")
    assert ttft["Threshold"] == PROD_PROFILE["ttft_p95_threshold_ms"]
    assert ttft["Dimensions"] == [{"Name": "service", "Value": "parley"}]
    disabled = found["WebhookDisabledAlarm"]
    assert (disabled["Namespace"], disabled["MetricName"], disabled["Statistic"]) == (
        "Parley",
        "WebhookDisabled",
        "Sum",
    )
    assert disabled["Threshold"] == 0


def test_the_ttft_threshold_is_configurable() -> None:
    context = {"stage": "prod", "ttft_p95_threshold_ms": "2500"}
    assert Stage.from_context(context.get).ttft_p95_threshold_ms == 2500


# --- the dashboard ---------------------------------------------------------------------------------


def test_the_dashboard_has_its_widgets(synth: Synth) -> None:
    body = dashboard_body(synth)
    titles = {w["properties"].get("title") for w in body["widgets"]}
    assert {
        "Requests by route",
        "4xx by route",
        "5xx by route",
        "API latency (ms)",
        "Time to first token (ms)",
        "Time to first token p95 by provider (ms)",
        "Model calls by provider",
        "Tokens by provider",
        "Lambda errors by group",
        "Lambda throttles by group",
        "DynamoDB throttles and system errors",
        "Dead-letter queue depths",
        "Metering: parked records",
        "Webhook deliveries",
        "Alarms",
    } <= titles
    searches = [
        m[0]["expression"]
        for w in body["widgets"]
        for m in w["properties"].get("metrics", [])
        if isinstance(m[0], dict) and "expression" in m[0]
    ]
    route_searches = [e for e in searches if e.startswith("SEARCH('{AWS/ApiGateway,ApiName,Method,Resource,Stage}")]
    assert len(route_searches) == 3
    assert all('ApiName="parley-prod" Stage="prod"' in e for e in route_searches)
    assert {e.split('MetricName="')[1].split('"')[0] for e in route_searches} == {"Count", "4XXError", "5XXError"}
    provider_searches = {e.split('MetricName="')[1].split('"')[0] for e in searches if "{Parley,provider,service}" in e}
    assert provider_searches == {
        "TimeToFirstToken",
        "ModelCalls",
        "ModelCallsFailed",
        "PromptTokens",
        "CompletionTokens",
    }
    text = json.dumps(body)
    for name in ("TimeToFirstToken", "WebhookAttemptSucceeded", "WebhookDisabled", "MeteringParked", "SystemErrors"):
        assert name in text, name


# --- options -----------------------------------------------------------------------------------------


def test_an_existing_web_acl_is_associated_with_the_prod_api_stage(synth: Synth) -> None:
    (association,) = resources(synth.api, "AWS::WAFv2::WebACLAssociation").values()
    assert association["Properties"]["WebACLArn"] == WEB_ACL_ARN
    assert "prod" in json.dumps(association["Properties"]["ResourceArn"])
    assert resources(synth.api, "AWS::WAFv2::WebACL") == {}


def test_a_managed_rules_web_acl_is_created_and_associated_in_dev(dev_synth: Synth) -> None:
    ((acl_id, acl),) = resources(dev_synth.api, "AWS::WAFv2::WebACL").items()
    groups = {r["Statement"].get("ManagedRuleGroupStatement", {}).get("Name") for r in acl["Properties"]["Rules"]}
    assert "AWSManagedRulesCommonRuleSet" in groups
    assert any("RateBasedStatement" in r["Statement"] for r in acl["Properties"]["Rules"])
    (association,) = resources(dev_synth.api, "AWS::WAFv2::WebACLAssociation").values()
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}


def test_a_custom_domain_gets_a_dns_validated_certificate_a_mapping_and_an_alias(dev_synth: Synth) -> None:
    template = Template.from_json(dev_synth.api)
    template.has_resource_properties(
        "AWS::CertificateManager::Certificate", {"DomainName": "api.dev.example.com", "ValidationMethod": "DNS"}
    )
    template.has_resource_properties(
        "AWS::ApiGateway::DomainName",
        {
            "DomainName": "api.dev.example.com",
            "SecurityPolicy": "TLS_1_2",
            "EndpointConfiguration": {"Types": ["REGIONAL"]},
        },
    )
    template.resource_count_is("AWS::ApiGateway::BasePathMapping", 1)
    template.has_resource_properties(
        "AWS::Route53::RecordSet",
        {"Name": "api.dev.example.com.", "Type": "A", "HostedZoneId": "Z0123456789ABCDEFGHIJ"},
    )
    assert "CustomDomainUrl" in dev_synth.api["Outputs"]


def test_prod_without_a_domain_has_none(synth: Synth) -> None:
    assert resources(synth.api, "AWS::ApiGateway::DomainName") == {}


def test_reserved_concurrency_applies_to_its_groups_only(synth: Synth, dev_synth: Synth) -> None:
    prod = all_resources(synth, "AWS::Lambda::Function")
    assert all("ReservedConcurrentExecutions" not in f["Properties"] for f in prod.values())
    reserved: dict[int, int] = {}
    for function in all_resources(dev_synth, "AWS::Lambda::Function").values():
        value = function["Properties"].get("ReservedConcurrentExecutions")
        if value is not None:
            reserved[value] = reserved.get(value, 0) + 1
    functions = all_resources(dev_synth, "AWS::Lambda::Function").values()
    streamed = sum(
        1 for f in functions if "AWS_LAMBDA_EXEC_WRAPPER" in f["Properties"].get("Environment", {}).get("Variables", {})
    )
    consumers = sum(
        1
        for f in resources(dev_synth.events, "AWS::Lambda::Function").values()
        if "/Function/Resource" in f["Metadata"]["aws:cdk:path"]
    )
    assert streamed > 0 and consumers > 0
    assert reserved == {5: streamed, 2: consumers}


def test_the_authorizer_cache_ttl_is_the_route_tables_unless_the_stage_says(synth: Synth) -> None:
    (authorizer,) = resources(synth.api, "AWS::ApiGateway::Authorizer").values()
    assert authorizer["Properties"]["AuthorizerResultTtlInSeconds"] == 30
    assert Stage.from_context({"stage": "dev", "authorizer_cache_seconds": "0"}.get).authorizer_cache_seconds == 0
    with pytest.raises(ValueError, match=r"0\.\.60"):
        Stage.from_context({"stage": "dev", "authorizer_cache_seconds": "61"}.get)


# --- reading the stage (no synth) ------------------------------------------------------------------


def test_a_stages_block_in_context_applies_to_that_stage_and_flat_keys_override_it() -> None:
    context = {"stage": "dev", "stages": {"dev": {"log_retention_days": 14, "throttle_rate": 5}}, "throttle_rate": "7"}
    stage = Stage.from_context(context.get)
    assert (stage.log_retention_days, stage.throttle_rate, stage.alarms) == (14, 7.0, False)


def test_any_other_stage_gets_the_dev_profile_unless_it_says_production() -> None:
    assert Stage.from_context({"stage": "staging"}.get).retain is False
    staging = Stage.from_context({"stage": "staging", "production": "true"}.get)
    assert (staging.retain, staging.deletion_protection, staging.alarms) == (True, True, True)


@pytest.mark.parametrize(
    "context",
    [
        {"stage": "dev", "stages": {"dev": {"alarm": True}}},  # unknown key
        {"stage": "dev", "log_retention_days": "8"},  # not a CloudWatch retention
        {"stage": "dev", "alarm_emails": "ops@example.com"},  # subscribers with alarms off
        {"stage": "prod", "alarm_https_endpoints": "http://insecure.example.com"},
        {"stage": "prod", "domain_name": "api.example.com"},  # no certificate, no zone
        {"stage": "prod", "waf_web_acl_arn": "arn:x", "waf_managed_rules": "true"},
        {"stage": "prod", "reserved_concurrency": '{"everything": 5}'},
        {"stage": "Prod"},
    ],
)
def test_a_stage_setting_that_cannot_work_is_refused_at_synth(context: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Stage.from_context(context.get)
