"""bench/cost_per_turn.py at N=5: the table prints, every counted part is positive where it must be,
and two runs count exactly the same units (the Lambda durations are measured, so not compared).
Also: the item-size rules and the bench's authorizer memory against the CDK construct's."""

from __future__ import annotations

import pytest

from bench import cost_per_turn as bench

COUNTED = ("dynamodb_rru", "dynamodb_wru", "apigw_request", "eventbridge_event", "sqs_request", "response_bytes")


def counted(run: bench.Run) -> dict[str, float]:
    keys = (*COUNTED, "secrets_call", "log_bytes")
    invocations = {k: v for k, v in run.meter.counts.items() if k.startswith("invocations.")}
    return {**{k: run.meter.counts[k] for k in keys if k != "log_bytes"}, **invocations}


def test_the_bench_prints_its_table_and_counts_the_same_units_twice(capsys: pytest.CaptureFixture[str]) -> None:
    first = bench.main(["--turns", "5"])
    table = capsys.readouterr().out
    for label in (
        "Lambda messages_create (512 MB): duration",
        "DynamoDB writes",
        "EventBridge events",
        "total (AWS, model tokens excluded)",
        "gpt-4o-mini (OpenAI)",
        "Claude 3.5 Haiku (Bedrock)",
        "OpenSearch Serverless",
        "dynamodb_wru",
    ):
        assert label in table, label
    for key in COUNTED:
        assert first.meter.counts[key] > 0, key
    assert first.meter.counts["apigw_request"] == 5
    assert first.meter.counts["invocations.messages_create"] == 5
    assert first.meter.counts["invocations.authorizer"] == 5
    assert first.meter.counts["invocations.events_emit"] >= 5  # at least one batch per turn
    assert first.stream_records > 0
    assert all(ms >= 1 for durations in first.meter.durations.values() for ms in durations)

    second = bench.main(["--turns", "5"])
    capsys.readouterr()
    assert counted(second) == counted(first)


def test_the_authorizer_every_n_turns_is_invoked_that_often(capsys: pytest.CaptureFixture[str]) -> None:
    run = bench.main(["--turns", "4", "--auth-every", "2"])
    capsys.readouterr()
    assert run.meter.counts["invocations.authorizer"] == 2


def test_item_sizes_and_units_follow_dynamodbs_rules() -> None:
    assert bench.item_size({"pk": {"S": "ab"}, "n": {"N": "12345"}}) == 2 + 2 + 1 + 4
    assert bench.item_size({"m": {"M": {"a": {"BOOL": True}}}}) == 1 + 3 + 1 + 1 + 1
    assert bench.read_units(4096, consistent=True) == 1
    assert bench.read_units(4097, consistent=True) == 2
    assert bench.read_units(100, consistent=False) == 0.5
    assert bench.read_units(0, consistent=True) == 1  # a read that finds nothing still costs one unit
    assert bench.write_units(1024) == 1
    assert bench.write_units(1025) == 2


def test_the_authorizer_memory_is_the_deployed_one() -> None:
    from infra.constructs.functions import AUTHORIZER_MEMORY_MB

    assert bench.AUTHORIZER_MEMORY_MB == AUTHORIZER_MEMORY_MB
