"""AWS clients, built lazily on first use, cached per process, and injectable.

Services and repositories call `clients().dynamodb` and never build their own, so a test or
the local server can swap them all with `set_clients(...)`.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

from parley.settings import get_settings

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

# total_max_attempts counts the first try too (max_attempts would count only retries).
_RETRIES = {"retries": {"mode": "standard", "total_max_attempts": 3}, "connect_timeout": 3, "read_timeout": 10}
_BEDROCK = {"retries": {"mode": "standard", "total_max_attempts": 1}, "connect_timeout": 5, "read_timeout": 120}


class Clients:
    def __init__(
        self, session: boto3.session.Session | None = None, region: str | None = None, read_timeout: int | None = None
    ) -> None:
        self._session = session
        self._region = region
        # The local server's emulation serves one request at a time: a call waiting its turn is
        # slow, not lost, and resending it after 10 s only adds to the queue.
        self._read_timeout = read_timeout

    def _client(self, service: str, options: dict[str, Any] = _RETRIES) -> Any:
        # boto3 is imported on the first client, not with this module: routes that never call AWS
        # (and cold starts generally) do not pay for it up front.
        import boto3  # noqa: PLC0415
        from botocore.config import Config  # noqa: PLC0415

        session = self._session or boto3.session.Session()
        if self._read_timeout is not None and options is _RETRIES:
            options = {**options, "read_timeout": self._read_timeout}
        return session.client(service, region_name=self._region or get_settings().region, config=Config(**options))  # type: ignore[call-overload]

    @cached_property
    def dynamodb(self) -> DynamoDBClient:
        client: DynamoDBClient = self._client("dynamodb")
        return client

    @cached_property
    def bedrock_runtime(self) -> BedrockRuntimeClient:
        # Model calls are long: a generous read timeout, and retries are Parley's (before the first token).
        client: BedrockRuntimeClient = self._client("bedrock-runtime", _BEDROCK)
        return client

    @cached_property
    def s3(self) -> S3Client:
        client: S3Client = self._client("s3")
        return client

    @cached_property
    def sqs(self) -> SQSClient:
        client: SQSClient = self._client("sqs")
        return client

    @cached_property
    def events(self) -> EventBridgeClient:
        client: EventBridgeClient = self._client("events")
        return client

    @cached_property
    def dynamodbstreams(self) -> DynamoDBStreamsClient:
        # only the local server reads streams (Lambda's event source mappings do it in AWS); the
        # regional endpoint, not the account-based one, is the one emulations answer
        client: DynamoDBStreamsClient = self._client(
            "dynamodbstreams", {**_RETRIES, "account_id_endpoint_mode": "disabled"}
        )
        return client

    @cached_property
    def secretsmanager(self) -> SecretsManagerClient:
        client: SecretsManagerClient = self._client("secretsmanager")
        return client


_clients: Clients | None = None
_lock = threading.Lock()


def clients() -> Clients:
    global _clients
    if _clients is None:
        with _lock:
            if _clients is None:
                _clients = Clients()
    return _clients


def set_clients(value: Clients | None) -> None:
    global _clients
    _clients = value
