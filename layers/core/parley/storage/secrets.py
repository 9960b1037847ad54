"""Provider credentials in AWS Secrets Manager: one secret per provider, reads cached per process.

A provider's secret holds its API key and the values of its extra headers, as a JSON document
(`ProviderSecret`). Secrets written before headers moved there hold the bare API key; they
still read as a secret with that key and no headers.

Secret values never reach a log line or an error message: failures are reported by the
secret's name and the AWS error code only.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from parley.aws import clients
from parley.domain.errors import ParleyError, ProviderError
from parley.settings import get_settings
from parley.storage.base import error_code

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

CACHE_SECONDS = 300.0
# botocore logs request parameters and response bodies at DEBUG: a SecretString would land in
# the logs of anyone who turns debug logging on. These loggers get a redacting filter.
_WIRE_LOGGERS = ("botocore.endpoint", "botocore.parsers", "botocore.hooks", "botocore.auth")
# The value is JSON inside a request body that may itself be logged as a repr, so its escapes
# come in runs of backslashes: any run, with the character after it, belongs to the value
# (this over-redacts a value ending in a backslash, never under-redacts).
_SECRET_FIELD = re.compile(r"""(['"]SecretString['"]\s*:\s*)(['"])(?:\\+.|(?!\2).)*\2""", re.DOTALL)


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "SecretString" in message:
            record.msg, record.args = _SECRET_FIELD.sub(r"\1\2[REDACTED]\2", message), None
        return True


_redactor = RedactSecrets()


def install_redaction() -> None:
    """Idempotent: attach the filter to botocore's wire loggers."""
    for name in _WIRE_LOGGERS:
        logger = logging.getLogger(name)
        if _redactor not in logger.filters:
            logger.addFilter(_redactor)


_FORMAT = "parley.provider-secret/1"


@dataclass(frozen=True)
class ProviderSecret:
    """What a provider's secret holds. Its repr shows no value."""

    api_key: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def empty(self) -> bool:
        return self.api_key is None and not self.headers

    def encode(self) -> str:
        return json.dumps({"format": _FORMAT, "api_key": self.api_key, "headers": dict(self.headers)})

    @classmethod
    def decode(cls, value: str) -> ProviderSecret:
        """A stored value: the JSON document, or (written before headers were kept here) a bare key."""
        try:
            document = json.loads(value) if value.startswith("{") else None
        except ValueError:
            document = None
        if not isinstance(document, dict) or document.get("format") != _FORMAT:
            return cls(api_key=value)
        key, headers = document.get("api_key"), document.get("headers")
        if (key is not None and not isinstance(key, str)) or not isinstance(headers, dict):
            raise ProviderError("The provider's secret is not in a form Parley reads.", code="provider_key_unavailable")
        return cls(api_key=key, headers={str(k): str(v) for k, v in headers.items()})


class SecretStore:
    def __init__(self, client: SecretsManagerClient | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._clock = clock
        self._cache: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        install_redaction()

    @property
    def client(self) -> SecretsManagerClient:
        return self._client or clients().secretsmanager

    @staticmethod
    def name_for(project_id: str, provider_id: str) -> str:
        return f"parley/{get_settings().stage}/{project_id}/providers/{provider_id}"

    def create(
        self, name: str, value: str, project_id: str, description: str = "Parley AI provider API key and header values"
    ) -> None:
        """Store a new secret. One deleted before (still in its recovery window: a provider's
        key removed and set again) is restored and given the value as a new version."""
        try:
            self.client.create_secret(
                Name=name,
                SecretString=value,
                Description=description,
                Tags=[{"Key": "parley:project", "Value": project_id}],
            )
        except ClientError as error:
            if error_code(error) != "ResourceExistsException":
                raise ParleyError(f"Could not store the API key ({error_code(error) or 'unknown error'}).") from None
            self._restore(name)
            self.put(name, value)
            return
        self._remember(name, value)

    def _restore(self, name: str) -> None:
        try:
            self.client.restore_secret(SecretId=name)
        except ClientError as error:
            # InvalidRequestException: it was not scheduled for deletion; the put overwrites it.
            if error_code(error) != "InvalidRequestException":
                raise ParleyError(f"Could not store the API key ({error_code(error) or 'unknown error'}).") from None

    def put(self, name: str, value: str) -> None:
        try:
            self.client.put_secret_value(SecretId=name, SecretString=value)
        except ClientError as error:
            raise ParleyError(f"Could not store the API key ({error_code(error) or 'unknown error'}).") from None
        self._remember(name, value)

    def get(self, name: str, *, fresh: bool = False) -> str:
        """The value, from this process's cache unless `fresh` (or older than CACHE_SECONDS)."""
        now = self._clock()
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None and cached[0] > now and not fresh:
            return cached[1]
        try:
            value = self.client.get_secret_value(SecretId=name)["SecretString"]
        except ClientError as error:
            raise ProviderError(
                f"The provider's API key could not be read ({error_code(error) or 'unknown error'}).",
                code="provider_key_unavailable",
            ) from None
        self._remember(name, value)
        return value

    def delete(self, name: str) -> None:
        with self._lock:
            self._cache.pop(name, None)
        try:
            self.client.delete_secret(SecretId=name, RecoveryWindowInDays=7)
        except ClientError as error:
            if error_code(error) != "ResourceNotFoundException":
                raise ParleyError(f"Could not delete the API key ({error_code(error) or 'unknown error'}).") from None

    def _remember(self, name: str, value: str) -> None:
        with self._lock:
            self._cache[name] = (self._clock() + CACHE_SECONDS, value)


_store: SecretStore | None = None


def secrets() -> SecretStore:
    global _store
    if _store is None:
        _store = SecretStore()
    return _store


def set_secrets(store: SecretStore | None) -> None:
    global _store
    _store = store
