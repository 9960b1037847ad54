"""The Lambda REQUEST authorizer: `Authorization: Bearer <api key>` -> principal.

API Gateway answers 401 when the authorizer raises `Exception("Unauthorized")` (the exact
message it looks for), and caches the returned policy per Authorization header, so the
policy allows the whole API: each route checks its own permission (parley.api.app).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parley.services.keys import authenticate


class Unauthorized(Exception):
    def __init__(self) -> None:
        super().__init__("Unauthorized")


def bearer_token(headers: Mapping[str, str] | None) -> str:
    for name, value in (headers or {}).items():
        if name.lower() == "authorization" and value:
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return ""


def api_wide_resource(method_arn: str) -> str:
    """arn:aws:execute-api:region:account:api/stage/METHOD/path -> .../api/stage/*"""
    parts = method_arn.split("/")
    return "/".join(parts[:2]) + "/*" if len(parts) >= 2 else method_arn


def authorize(event: Mapping[str, Any]) -> dict[str, Any]:
    principal = authenticate(bearer_token(event.get("headers")))
    if principal is None:
        raise Unauthorized()
    return {
        "principalId": principal.key_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": api_wide_resource(str(event.get("methodArn", ""))),
                }
            ],
        },
        "context": principal.to_context(),
    }
