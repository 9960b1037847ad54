"""The emulation's parts in process: moto's transactions without whole-table copies, snapshots
(consistent, atomic, version-tagged), and which requests count as writes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from parley.aws import clients
from parley.runtime import emulation, moto_speedups

TABLE = "tx-test"


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = clients().dynamodb
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "N"},
            ],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        yield client


@pytest.fixture
def patched() -> Iterator[None]:
    moto_speedups.install()
    yield
    moto_speedups.uninstall()


def put(pk: str, sk: int, value: str) -> dict[str, Any]:
    return {"Put": {"TableName": TABLE, "Item": {"pk": {"S": pk}, "sk": {"N": str(sk)}, "v": {"S": value}}}}


def items(client: Any) -> list[tuple[str, str, str]]:
    found = client.scan(TableName=TABLE)["Items"]
    return sorted((i["pk"]["S"], i["sk"]["N"], i["v"]["S"]) for i in found)


def stream_records() -> int:
    from moto.dynamodb.models import dynamodb_backends

    return len(dynamodb_backends["123456789012"]["us-east-1"].tables[TABLE].stream_shard.items)


def test_a_cancelled_transaction_leaves_items_and_stream_as_they_were(dynamodb: Any, patched: None) -> None:
    dynamodb.transact_write_items(TransactItems=[put("a", 1, "old"), put("a", 2, "old")])
    before, records = items(dynamodb), stream_records()
    update = {
        "Update": {
            "TableName": TABLE,
            "Key": {"pk": {"S": "a"}, "sk": {"N": "1"}},
            "UpdateExpression": "SET v = :v",
            "ExpressionAttributeValues": {":v": {"S": "new"}},
        }
    }
    refused = {**put("a", 2, "new")["Put"], "ConditionExpression": "attribute_not_exists(pk)"}
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(TransactItems=[update, put("b", 1, "new"), {"Put": refused}])
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [r["Code"] for r in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "ConditionalCheckFailed"]
    assert items(dynamodb) == before  # the update and the new item were undone
    assert stream_records() == records  # and emitted no stream records
    dynamodb.transact_write_items(TransactItems=[update, put("b", 1, "new")])
    assert items(dynamodb) == [("a", "1", "new"), ("a", "2", "old"), ("b", "1", "new")]
    assert stream_records() == records + 2


def test_transactions_no_longer_copy_the_whole_table(dynamodb: Any, patched: None) -> None:
    for start in range(0, 3000, 25):
        dynamodb.batch_write_item(
            RequestItems={
                TABLE: [
                    {"PutRequest": {"Item": {"pk": {"S": "bulk"}, "sk": {"N": str(i)}, "v": {"S": "x" * 200}}}}
                    for i in range(start, start + 25)
                ]
            }
        )

    def one_transaction_ms() -> float:
        started = time.perf_counter()
        dynamodb.transact_write_items(TransactItems=[put("t", int(time.time_ns() % 10**9), "x")])
        return (time.perf_counter() - started) * 1000

    patched_ms = min(one_transaction_ms() for _ in range(5))
    moto_speedups.uninstall()
    original_ms = min(one_transaction_ms() for _ in range(3))
    moto_speedups.install()
    print(f"\ntransaction on a 3000-item table: {original_ms:.1f} ms in moto, {patched_ms:.1f} ms patched")
    assert patched_ms * 5 < original_ms


def test_writes_are_told_from_reads() -> None:
    target = "HTTP_X_AMZ_TARGET"
    assert emulation.is_write({target: "DynamoDB_20120810.TransactWriteItems"})
    assert emulation.is_write({target: "secretsmanager.PutSecretValue"})
    assert not emulation.is_write({target: "DynamoDB_20120810.Query"})
    assert not emulation.is_write({target: "DynamoDB_20120810.BatchGetItem"})
    assert not emulation.is_write({target: "secretsmanager.GetSecretValue"})
    assert emulation.is_write({"REQUEST_METHOD": "PUT"})  # S3 PutObject
    assert not emulation.is_write({"REQUEST_METHOD": "GET"})


def test_a_snapshot_is_consistent_atomic_and_refused_by_another_version(
    dynamodb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dynamodb.transact_write_items(TransactItems=[put("a", 1, "kept")])
    queue = clients().sqs.create_queue(QueueName="kept")["QueueUrl"]  # SQS queues hold locks: they pickle too
    clients().sqs.send_message(QueueUrl=queue, MessageBody="parked")
    store = emulation.Emulation(tmp_path)
    store._load()  # writes the version tag
    store.snapshot()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [emulation.STATE_FILE, emulation.VERSION_FILE]
    )  # no temp left
    dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": "a"}, "sk": {"N": "1"}})
    assert items(dynamodb) == []
    clients().sqs.purge_queue(QueueUrl=queue)
    emulation.apply((tmp_path / emulation.STATE_FILE).read_bytes())
    assert items(dynamodb) == [("a", "1", "kept")]
    received = clients().sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)
    assert [m["Body"] for m in received["Messages"]] == ["parked"]

    (tmp_path / emulation.VERSION_FILE).write_text(json.dumps({"format": 0, "moto": "4.0"}))
    with pytest.raises(emulation.IncompatibleState, match="format"):
        emulation.Emulation(tmp_path)._load()
    monkeypatch.setattr(emulation, "version_tag", lambda: {"format": 99, "moto": "9.9"})
    with pytest.raises(emulation.IncompatibleState):
        emulation.apply((tmp_path / emulation.STATE_FILE).read_bytes())


def test_queries_answer_as_moto_does_without_reading_the_whole_table(dynamodb: Any) -> None:
    dynamodb.update_table(
        TableName=TABLE,
        AttributeDefinitions=[
            {"AttributeName": "v", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        GlobalSecondaryIndexUpdates=[
            {
                "Create": {
                    "IndexName": "by_v",
                    "KeySchema": [
                        {"AttributeName": "v", "KeyType": "HASH"},
                        {"AttributeName": "sk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            }
        ],
    )
    for p in range(40):
        dynamodb.batch_write_item(
            RequestItems={
                TABLE: [
                    {"PutRequest": {"Item": {"pk": {"S": f"p{p}"}, "sk": {"N": str(i)}, "v": {"S": f"v{i % 3}"}}}}
                    for i in range(25)
                ]
            }
        )
    requests: list[dict[str, Any]] = [
        {"KeyConditionExpression": "pk = :h", "ExpressionAttributeValues": {":h": {"S": "p7"}}},
        {
            "KeyConditionExpression": "pk = :h",
            "ExpressionAttributeValues": {":h": {"S": "p7"}},
            "ScanIndexForward": False,
            "Limit": 5,
        },
        {
            "KeyConditionExpression": "pk = :h AND sk BETWEEN :a AND :b",
            "ExpressionAttributeValues": {":h": {"S": "p3"}, ":a": {"N": "4"}, ":b": {"N": "9"}},
        },
        {"KeyConditionExpression": "pk = :h", "ExpressionAttributeValues": {":h": {"S": "nobody"}}},
        {
            "IndexName": "by_v",
            "KeyConditionExpression": "v = :h",
            "ExpressionAttributeValues": {":h": {"S": "v1"}},
            "Limit": 30,
        },
    ]

    def answers() -> list[Any]:
        out = []
        for request in requests:
            page = dynamodb.query(TableName=TABLE, **request)
            pages = [page["Items"]]
            if "LastEvaluatedKey" in page and "IndexName" not in request:
                pages.append(
                    dynamodb.query(TableName=TABLE, ExclusiveStartKey=page["LastEvaluatedKey"], **request)["Items"]
                )
            out.append((pages, page.get("LastEvaluatedKey")))
        return out

    expected = answers()
    moto_speedups.install()
    try:
        assert answers() == expected
    finally:
        moto_speedups.uninstall()
    assert [i["sk"]["N"] for i in expected[1][0][0]] == ["24", "23", "22", "21", "20"]
