"""GET /v1/agents: the project's agents at their latest versions (never their secrets), cursor-paginated."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.cursors import position
from parley.api.lists import DEFAULT_LIMIT, MAX_LIMIT, Page, page
from parley.domain.agents import Agent
from parley.services import agents

app = make_app()


@app.get("/v1/agents")
@requires("agents:ListAgents")
def list_agents(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(min_length=1)] = None,
) -> Page[Agent]:
    data, after = agents.list_agents(principal(app), limit, position(cursor, agents.AGENT_PAGES))
    return page(data, after, agents.AGENT_PAGES)


lambda_handler = build_handler(app)
