"""A route table for the gateway-limit tests: one buffered route whose handler sleeps."""

from pathlib import Path

from parley.api.routing import Route, RouteTable

TABLE = RouteTable(
    routes=(Route("GET", "/v1/slow", "slow", None, description="Sleeps ?seconds= before answering."),),
    authorizer="authorizer",  # no route needs a key
    root=Path(__file__).resolve().parent,
)
