"""Domain errors. Each carries the HTTP status and error type of the API's error model
(DESIGN.md section 3), so every layer raises them and one place renders them."""

from __future__ import annotations


class ParleyError(Exception):
    status = 500
    type = "api_error"
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.headers = headers or {}


class InvalidRequest(ParleyError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class AuthenticationFailed(ParleyError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(ParleyError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class NotFound(ParleyError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class Conflict(ParleyError):
    status = 409
    type = "conflict_error"
    code = "conflict"


class PayloadTooLarge(ParleyError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UnsupportedMediaType(ParleyError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class RateLimited(ParleyError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None, quota: object = None) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after
        self.quota = quota  # a parley.domain.keys.Quota: the api layer adds OpenAI's x-ratelimit-* headers


class Unavailable(ParleyError):
    """Parley's own storage is over its throughput right now (DynamoDB throttled): retry after a pause.
    Nothing of the request was stored."""

    status = 503
    type = "api_error"
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: int = 1, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class SearchUnavailable(Unavailable):
    """The search engine (OpenSearch, or the local engine) could not be reached or refused a request."""

    code = "search_unavailable"


class ProviderError(ParleyError):
    """A model provider failed. `retryable` errors may be retried while no token was sent."""

    status = 502
    type = "provider_error"
    code = "provider_error"
    retryable_default = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        upstream_status: int | None = None,
    ) -> None:
        headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else None
        super().__init__(message, code=code, headers=headers)
        self.retryable = self.retryable_default if retryable is None else retryable
        self.retry_after = retry_after
        self.upstream_status = upstream_status


class ProviderTimeout(ProviderError):
    status = 504
    type = "provider_timeout"
    code = "provider_timeout"
    retryable_default = True


class ProviderRateLimited(ProviderError):
    """The provider said 429 (and kept saying it through our retries)."""

    status = 429
    type = "rate_limit_error"
    code = "provider_rate_limited"
    retryable_default = True


class ProviderRejected(ProviderError):
    """The provider refused the request itself (its 400/404/422): the caller can fix it."""

    status = 400
    type = "invalid_request_error"
    code = "provider_rejected_request"


# Marks a response answered from an earlier request with the same Idempotency-Key.
REPLAYED_HEADER = "Idempotent-Replayed"


def stored_error(status: int, type_: str, code: str, message: str, *, replayed: bool = True) -> ParleyError:
    """An error rebuilt from what was stored or reported (an idempotent retry answers it again)."""
    error = ParleyError(message, code=code, headers={REPLAYED_HEADER: "true"} if replayed else None)
    error.status = status
    error.type = type_
    return error
