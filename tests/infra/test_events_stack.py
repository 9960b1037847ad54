"""The events stack, from the synthesized template: the bus and its archive, the emitter's stream
mappings, the webhook rule and queues, dead-letter queues with alarms."""

from __future__ import annotations

from typing import Any

from infra.constructs.tables import pascal_case
from tests.infra.infra_synth import Synth
from tests.infra.test_infra_app import ROUTE_TABLE, by_path, get_att_targets, statements, walk


def resources(synth: Synth, type_: str) -> dict[str, tuple[str, dict[str, Any]]]:
    return by_path(synth.events, type_)


def function_id(synth: Synth, function: str) -> str:
    return resources(synth, "AWS::Lambda::Function")[f"{pascal_case(function)}/Function/Resource"][0]


def test_the_bus_is_archived_and_its_webhook_rule_feeds_the_events_queue(synth: Synth) -> None:
    (bus_id, bus) = resources(synth, "AWS::Events::EventBus")["Bus/Resource"]
    assert bus["Properties"]["Name"] == f"parley-{synth.stage}"
    (_, archive) = resources(synth, "AWS::Events::Archive")["Bus/Archive/Archive"]
    assert archive["Properties"]["RetentionDays"] == 30
    assert archive["Properties"]["EventPattern"] == {"source": ["parley"]}
    (_, rule) = resources(synth, "AWS::Events::Rule")["Webhooks/Resource"]
    assert rule["Properties"]["EventPattern"] == {"source": ["parley"]}
    queue_id = resources(synth, "AWS::SQS::Queue")["EventsQueue/Resource"][0]
    assert get_att_targets(rule["Properties"]["Targets"]) == {queue_id}
    assert bus_id in get_att_targets(rule["Properties"]["EventBusName"]) | {
        v["Ref"] for v in walk(rule["Properties"]["EventBusName"]) if isinstance(v, dict) and "Ref" in v
    }


def test_the_emitter_reads_both_streams_in_order_with_partial_failures_bisect_and_a_destination(synth: Synth) -> None:
    emitter = function_id(synth, "events_emit")
    mappings = [
        m
        for _, m in resources(synth, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": emitter}
    ]
    assert len(mappings) == 2  # conversations, messages
    consumer = next(c for c in ROUTE_TABLE.consumers if c.function == "events_emit")
    dlq = resources(synth, "AWS::SQS::Queue")["EventsDeadLetters/Resource"][0]
    for mapping in mappings:
        properties = mapping["Properties"]
        assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert properties["BisectBatchOnFunctionError"] is True
        assert properties["MaximumRetryAttempts"] == consumer.max_attempts
        assert properties["ParallelizationFactor"] == 1
        assert properties["StartingPosition"] == "TRIM_HORIZON"
        assert get_att_targets(properties["DestinationConfig"]) == {dlq}


def test_the_emitter_knows_its_source_tables_names(synth: Synth) -> None:
    """services.events tells a record's table by the name in its eventSourceARN."""
    (_, function) = resources(synth, "AWS::Lambda::Function")["EventsEmit/Function/Resource"]
    variables = function["Properties"]["Environment"]["Variables"]
    assert {"PARLEY_TABLE_CONVERSATIONS", "PARLEY_TABLE_MESSAGES", "PARLEY_EVENT_BUS"} <= variables.keys()


def test_the_emitter_may_put_events_on_its_bus_only(synth: Synth) -> None:
    policies = resources(synth, "AWS::IAM::Policy")
    (_, policy) = policies["EventsEmit/Role/DefaultPolicy/Resource"]
    puts = [s for s in statements(policy) if "events:PutEvents" in str(s["Action"])]
    bus_id = resources(synth, "AWS::Events::EventBus")["Bus/Resource"][0]
    assert len(puts) == 1 and get_att_targets(puts[0]["Resource"]) == {bus_id}
    actions = {a for s in statements(policy) for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert not {
        a
        for a in actions
        if a.startswith("dynamodb:")
        and not a.startswith(
            ("dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:DescribeStream", "dynamodb:ListStreams")
        )
    }


def test_every_dead_letter_queue_has_an_alarm_on_its_depth(synth: Synth) -> None:
    queues = resources(synth, "AWS::SQS::Queue")
    dead = {logical for path, (logical, _) in queues.items() if "DeadLetters" in path}
    assert len(dead) == 3  # events_queue's, deliveries_queue's, the emitter's destination
    alarms = [a for _, a in resources(synth, "AWS::CloudWatch::Alarm").values()]
    watched = {
        d["Value"]["Fn::GetAtt"][0]
        for a in alarms
        for d in a["Properties"]["Dimensions"]
        if isinstance(d.get("Value"), dict) and "Fn::GetAtt" in d["Value"]
    }
    assert dead <= watched
    assert all(a["Properties"]["Threshold"] == 0 for a in alarms)


# what a consumer resource sends to, and the setting that names the queue
SENDS = {"deliveries": ("DeliveriesQueue/Resource", "PARLEY_DELIVERIES_QUEUE")}
SOURCE_SETTINGS = {"events_queue": "PARLEY_EVENTS_QUEUE", "deliveries_queue": "PARLEY_DELIVERIES_QUEUE"}


def test_each_webhook_queue_consumer_reads_its_queue_with_partial_failures_and_sends_where_it_says(
    synth: Synth,
) -> None:
    queues = resources(synth, "AWS::SQS::Queue")
    mappings = [m for _, m in resources(synth, "AWS::Lambda::EventSourceMapping").values()]
    policies = resources(synth, "AWS::IAM::Policy")
    consumers = [c for c in ROUTE_TABLE.consumers if c.kind == "queue" and set(c.sources) <= set(SOURCE_SETTINGS)]
    assert {c.function for c in consumers} == {"webhooks_fanout", "webhooks_deliver"}
    for consumer in consumers:
        function = function_id(synth, consumer.function)
        (mapping,) = [m for m in mappings if m["Properties"]["FunctionName"] == {"Ref": function}]
        properties = mapping["Properties"]
        assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert properties["BatchSize"] == consumer.batch_size
        (source,) = consumer.sources
        assert get_att_targets(properties["EventSourceArn"]) == {queues[f"{pascal_case(source)}/Resource"][0]}
        (_, policy) = policies[f"{pascal_case(consumer.function)}/Role/DefaultPolicy/Resource"]
        sends = [s for s in statements(policy) if "sqs:SendMessage" in str(s["Action"])]
        expected = {queues[SENDS[r][0]][0] for r in consumer.resources if r in SENDS}
        assert get_att_targets([s["Resource"] for s in sends]) == expected
        variables = resources(synth, "AWS::Lambda::Function")[f"{pascal_case(consumer.function)}/Function/Resource"][1][
            "Properties"
        ]["Environment"]["Variables"]
        assert SOURCE_SETTINGS[source] in variables
        assert {SENDS[r][1] for r in consumer.resources if r in SENDS} <= variables.keys()
    # a message is tried 5 times, then waits in the queue's dead-letter queue
    for logical in ("EventsQueue", "DeliveriesQueue"):
        redrive = queues[f"{logical}/Resource"][1]["Properties"]["RedrivePolicy"]
        assert redrive["maxReceiveCount"] == 5
        assert get_att_targets(redrive["deadLetterTargetArn"]) == {queues[f"{logical}DeadLetters/Resource"][0]}


def test_each_queue_is_visible_six_times_as_long_as_its_consumers_run(synth: Synth) -> None:
    queues = resources(synth, "AWS::SQS::Queue")
    for logical in ("events_queue", "deliveries_queue"):
        longest = max(c.timeout_seconds for c in ROUTE_TABLE.consumers if logical in c.sources)
        assert queues[f"{pascal_case(logical)}/Resource"][1]["Properties"]["VisibilityTimeout"] >= 6 * longest
