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


class RateLimited(ParleyError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class ProviderError(ParleyError):
    status = 502
    type = "provider_error"
    code = "provider_error"


class ProviderTimeout(ParleyError):
    status = 504
    type = "provider_timeout"
    code = "provider_timeout"
