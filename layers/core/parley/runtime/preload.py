"""Imported once by the local server's fork server, so every execution environment starts with
the heavy libraries in memory (parley.runtime.environments). Imports only: nothing here reads
the environment or builds a client."""

from __future__ import annotations

import boto3  # noqa: F401
import botocore.session  # noqa: F401
import httpx  # noqa: F401
import pydantic  # noqa: F401
from aws_lambda_powertools.event_handler import APIGatewayRestResolver  # noqa: F401

import parley.api.app
import parley.api.routing
import parley.api.streaming
import parley.services.completions
import parley.services.conversations  # noqa: F401
