"""Logger, tracer and metrics: built on first use (never at import), the same for every function."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools import Logger, Metrics, Tracer

from parley.settings import get_settings


@cache
def logger() -> Logger:
    return Logger(service=get_settings().service_name)


@cache
def metrics() -> Metrics:
    return Metrics(namespace="Parley", service=get_settings().service_name)


@cache
def tracer() -> Tracer:
    return Tracer(service=get_settings().service_name)
