"""Imported once by the local server's fork server (never in Lambda), so every execution
environment starts with the heavy libraries in memory (parley.runtime.environments), and with
one boto3 session whose loader already holds the service models Parley uses: building a
client from it costs ~20 ms instead of ~250 ms of JSON loading, which matters when dozens of
environments start at once on a laptop. No client is built and no connection opened here,
so forking afterwards is safe."""

from __future__ import annotations

import boto3
import botocore.session
import httpx  # noqa: F401
import pydantic  # noqa: F401
from aws_lambda_powertools.event_handler import APIGatewayRestResolver  # noqa: F401

import parley.api.app
import parley.api.routing
import parley.api.streaming
import parley.services.completions
import parley.services.conversations  # noqa: F401

SERVICES = ("dynamodb", "s3", "secretsmanager", "sqs", "events")


def _warm_session() -> boto3.session.Session:
    core = botocore.session.Session()
    loader = core.get_component("data_loader")
    for service in SERVICES:
        for kind in ("service-2", "endpoint-rule-set-1", "paginators-1", "waiters-2"):
            try:
                loader.load_service_model(service, kind)
            except botocore.exceptions.DataNotFoundError:
                continue  # not every service ships every kind
    loader.load_data("endpoints")
    loader.load_data("partitions")
    return boto3.session.Session(botocore_session=core)


SESSION = _warm_session()
