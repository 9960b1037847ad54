"""API Gateway REST proxy and REQUEST-authorizer events, as API Gateway builds them.

The local server builds its events here, so handlers see locally exactly the fields they see
on AWS (https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html).
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

ACCOUNT = "000000000000"
API_ID = "local"
STAGE = "local"
REGION = "us-east-1"


def _multi(values: Mapping[str, list[str]] | None) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    if not values:
        return None, None
    return {k: v[-1] for k, v in values.items()}, {k: list(v) for k, v in values.items()}


def method_arn(method: str, path: str) -> str:
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/{STAGE}/{method}{path}"


def proxy_event(
    method: str,
    path: str,
    resource: str,
    *,
    path_parameters: Mapping[str, str] | None = None,
    query: Mapping[str, list[str]] | None = None,
    headers: Mapping[str, list[str]] | None = None,
    body: bytes | None = None,
    authorizer: Mapping[str, Any] | None = None,
    request_id: str | None = None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    single_headers, multi_headers = _multi(headers)
    single_query, multi_query = _multi(query)
    now = time.time()
    text: str | None = None
    is_base64 = False
    if body:
        try:
            text = body.decode()
        except UnicodeDecodeError:
            text, is_base64 = base64.b64encode(body).decode(), True
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": single_headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": single_query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": API_ID,
            "authorizer": dict(authorizer) if authorizer is not None else None,
            "domainName": "localhost",
            "extendedRequestId": request_id or str(uuid.uuid4()),
            "httpMethod": method,
            "identity": {
                "sourceIp": source_ip,
                "userAgent": (single_headers or {}).get("user-agent") or (single_headers or {}).get("User-Agent"),
            },
            "path": f"/{STAGE}{path}",
            "protocol": "HTTP/1.1",
            "requestId": request_id or str(uuid.uuid4()),
            "requestTime": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now * 1000),
            "resourcePath": resource,
            "stage": STAGE,
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }


def authorizer_event(
    method: str,
    path: str,
    resource: str,
    *,
    headers: Mapping[str, list[str]] | None = None,
    query: Mapping[str, list[str]] | None = None,
    path_parameters: Mapping[str, str] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    event = proxy_event(
        method, path, resource, headers=headers, query=query, path_parameters=path_parameters, request_id=request_id
    )
    for unused in ("body", "isBase64Encoded", "multiValueHeaders", "multiValueQueryStringParameters"):
        event.pop(unused, None)
    event["requestContext"].pop("authorizer", None)
    return {"type": "REQUEST", "methodArn": method_arn(method, path), **event}
