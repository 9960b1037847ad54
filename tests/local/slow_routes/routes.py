"""A route table for the gateway-limit tests: a buffered route that sleeps, a stream that trickles."""

from pathlib import Path

from parley.api.routing import Route, RouteTable

TABLE = RouteTable(
    routes=(
        Route("GET", "/v1/slow", "slow", None, description="Sleeps ?seconds= before answering."),
        Route("GET", "/v1/slow-stream", "slow_stream", None, streaming=True, timeout_seconds=900),
    ),
    authorizer="authorizer",  # no route needs a key
    root=Path(__file__).resolve().parent,
)
