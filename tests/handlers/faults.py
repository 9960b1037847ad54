"""A DynamoDB client that fails the way real DynamoDB does and moto does not, on cue.

moto applies every write it is given, one thread at a time by luck, and never throttles, never
cancels a transaction for a conflict, never loses a response and ignores ClientRequestToken.
`Faults` wraps the moto client: it serialises calls (moto is not thread-safe), keeps
TransactWriteItems idempotent per ClientRequestToken as DynamoDB does (the same token and the
same request within 10 minutes is answered from the first commit), and injects scripted faults
into chosen calls.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError, ReadTimeoutError

from parley.aws import clients

Action = Callable[["Faults", str, dict[str, Any]], Any]


def client_error(code: str, message: str = "", **extra: Any) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message or code}, **extra}, "Operation")


def cancelled(*reasons: str) -> Action:
    """TransactionCanceledException with these CancellationReasons codes (one per item)."""
    message = f"Transaction cancelled, please refer cancellation reasons for specific reasons [{', '.join(reasons)}]"

    def act(faults: Faults, operation: str, request: dict[str, Any]) -> Any:
        raise client_error("TransactionCanceledException", message, CancellationReasons=[{"Code": r} for r in reasons])

    return act


def error(code: str, message: str = "") -> Action:
    def act(faults: Faults, operation: str, request: dict[str, Any]) -> Any:
        raise client_error(code, message)

    return act


def commit_then_lose_response(sdk_retries: bool, tokens_honoured: bool = True) -> Action:
    """The write commits but its response never arrives: the SDK retries the same request (same
    ClientRequestToken), or (sdk_retries=False) gives up with a read timeout. With
    tokens_honoured=False the retry is applied again as a new request, as moto's server does."""

    def act(faults: Faults, operation: str, request: dict[str, Any]) -> Any:
        faults.forward(operation, request)
        if sdk_retries:
            if not tokens_honoured:
                return getattr(faults.real, operation)(**request)
            return faults.forward(operation, request)
        raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

    return act


def run_first(before: Callable[[], Any]) -> Action:
    """Run `before` (e.g. a competing request) just before this call goes through."""

    def act(faults: Faults, operation: str, request: dict[str, Any]) -> Any:
        faults.lock.release()
        try:
            before()
        finally:
            faults.lock.acquire()
        return faults.forward(operation, request)

    return act


@dataclass
class Rule:
    operation: str
    action: Action
    times: int
    when: Callable[[dict[str, Any]], bool]
    fired: int = 0


class Faults:
    def __init__(self, real: Any) -> None:
        self.real = real
        self.lock = threading.RLock()
        self.rules: list[Rule] = []
        self.calls: list[str] = []
        self._tokens: dict[str, str] = {}

    def inject(
        self, operation: str, action: Action, *, times: int = 1, when: Callable[[dict[str, Any]], bool] | None = None
    ) -> Rule:
        rule = Rule(operation, action, times, when or (lambda request: True))
        self.rules.append(rule)
        return rule

    def forget_tokens(self) -> None:
        """As DynamoDB does 10 minutes after a token's first use."""
        self._tokens.clear()

    def forward(self, operation: str, request: dict[str, Any]) -> Any:
        """The call as DynamoDB would answer it, without faults."""
        token = request.get("ClientRequestToken") if operation == "transact_write_items" else None
        if token is not None:
            shape = json.dumps({k: v for k, v in request.items() if k != "ClientRequestToken"}, sort_keys=True)
            seen = self._tokens.get(token)
            if seen is not None:
                if seen != shape:
                    raise client_error("IdempotentParameterMismatchException")
                return {}
            answer = getattr(self.real, operation)(**request)
            self._tokens[token] = shape
            return answer
        return getattr(self.real, operation)(**request)

    def __getattr__(self, operation: str) -> Any:
        target = getattr(self.real, operation)
        if not callable(target) or operation.startswith("_") or operation in ("meta", "exceptions"):
            return target

        def call(**request: Any) -> Any:
            with self.lock:
                self.calls.append(operation)
                for rule in self.rules:
                    if rule.operation == operation and rule.fired < rule.times and rule.when(request):
                        rule.fired += 1
                        return rule.action(self, operation, request)
                return self.forward(operation, request)

        return call


@contextmanager
def faulty_dynamodb() -> Iterator[Faults]:
    """Put a Faults wrapper in front of the process's DynamoDB client (inside `aws`)."""
    holder = clients()
    real = holder.dynamodb
    faults = Faults(real)
    holder.__dict__["dynamodb"] = faults
    try:
        yield faults
    finally:
        holder.__dict__["dynamodb"] = real


def on_table(name: str) -> Callable[[dict[str, Any]], bool]:
    """Match a single-item request on a table, or a transaction that touches it."""

    def match(request: dict[str, Any]) -> bool:
        if request.get("TableName", "").endswith(name):
            return True
        for item in request.get("TransactItems", []):
            for op in item.values():
                if str(op.get("TableName", "")).endswith(name):
                    return True
        return False

    return match
