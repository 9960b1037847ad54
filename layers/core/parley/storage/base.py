"""What every DynamoDB repository has: the client and its table, resolved lazily and injectable."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from parley.aws import clients
from parley.domain.errors import PayloadTooLarge, Unavailable
from parley.settings import get_settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class TableRepository:
    logical_table: ClassVar[str]  # which of Settings.tables this repository uses

    def __init__(self, client: DynamoDBClient | None = None, table: str | None = None) -> None:
        self._client = client
        self._table = table

    @property
    def client(self) -> DynamoDBClient:
        return self._client or clients().dynamodb

    @property
    def table(self) -> str:
        return self._table or get_settings().table(self.logical_table)


def error_code(error: ClientError) -> str:
    """The AWS error code of a ClientError ("" when it has none)."""
    return str(error.response.get("Error", {}).get("Code", ""))


# What real DynamoDB says when a write cannot go through now, and what each means for Parley.
THROTTLE_CODES = frozenset(
    {"ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded", "ThrottlingError"}
)
# TransactionCanceledException's CancellationReasons[i].Code values (one per item of the transaction).
REASON_NONE = "None"
REASON_CONDITION = "ConditionalCheckFailed"
REASON_CONFLICT = "TransactionConflict"
REASON_THROTTLED = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"})
REASON_VALIDATION = "ValidationError"
T = TypeVar("T")


def cancellation_reasons(error: ClientError) -> list[str]:
    """The CancellationReasons codes of a TransactionCanceledException, one per transaction item
    (botocore puts them in the response; the message repeats them as `[None, ConditionalCheckFailed]`)."""
    if error_code(error) != "TransactionCanceledException":
        return []
    reasons = error.response.get("CancellationReasons")
    if reasons:
        return [str(r.get("Code", REASON_NONE)) for r in reasons]
    message = str(error.response.get("Error", {}).get("Message", ""))
    if "[" in message and "]" in message:
        inside = message[message.index("[") + 1 : message.rindex("]")]
        return [part.strip() for part in inside.split(",")]
    return []


def unavailable(what: str) -> Unavailable:
    return Unavailable(
        f"Parley's storage is busy ({what} was throttled); nothing was stored. Retry after a pause.",
        retry_after=1,
        code="storage_throttled",
    )


def too_large(what: str) -> PayloadTooLarge:
    return PayloadTooLarge(f"{what} is too large to store (DynamoDB items stop at 400 KB).", code="item_too_large")


def write_with_retry(
    call: Callable[[], T], *, what: str, tries: int = 6, sleep: Callable[[float], None] = time.sleep
) -> T:
    """Run a write, retrying what real DynamoDB answers when it meets an ongoing transaction
    (TransactionConflictException on a single-item write; a transaction cancelled only for
    TransactionConflict), with jittered backoff; throttling that botocore's own retries did not
    clear becomes a 503 with Retry-After, an item over 400 KB a 413. Condition failures are the
    caller's to handle (re-raised as they are)."""
    for attempt in range(tries):
        try:
            return call()
        except ClientError as error:
            code, reasons = error_code(error), cancellation_reasons(error)
            conflict = code == "TransactionConflictException" or (
                code == "TransactionCanceledException"
                and REASON_CONFLICT in reasons
                and REASON_CONDITION not in reasons
                and not any(r in REASON_THROTTLED for r in reasons)
            )
            if conflict and attempt < tries - 1:
                sleep(backoff(attempt))
                continue
            if code in THROTTLE_CODES or any(r in REASON_THROTTLED for r in reasons) or conflict:
                raise unavailable(what) from error
            if (code == "ValidationException" and "size" in str(error).lower()) or REASON_VALIDATION in reasons:
                raise too_large(what) from error
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def backoff(attempt: int, *, base: float = 0.01, cap: float = 0.5) -> float:
    """Full-jitter exponential backoff."""
    return random.uniform(0, min(cap, base * 2**attempt))  # noqa: S311 - jitter, not security


def transact_exactly_once(client: DynamoDBClient, request: dict[str, Any], *, tries: int = 3) -> None:
    """TransactWriteItems, sent again as it is when its outcome is unknown (the connection broke
    or timed out after botocore's own retries): with the same ClientRequestToken, DynamoDB answers
    a committed transaction from its record instead of applying it twice. Without a token it is
    never resent. A ClientError (a cancellation, throttling) is the caller's to classify."""
    for attempt in range(tries):
        try:
            client.transact_write_items(**request)
            return
        except (HTTPClientError, BotoConnectionError):
            if attempt == tries - 1 or "ClientRequestToken" not in request:
                raise
            time.sleep(backoff(attempt))
