"""GET /v1/agents/{agent_id}/versions: the agent's stored versions, newest first, cursor-paginated.
Reading an agent's history is reading the agent: the permission is agents:GetAgent, as for
GET /v1/agents/{agent_id}?version=N."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.cursors import position
from parley.api.lists import DEFAULT_LIMIT, MAX_LIMIT, Page, page
from parley.domain.agents import Agent
from parley.services import agents

app = make_app()
AgentRef = Annotated[str, Path(description="The agent's id (agt_...) or its name (support_agent).")]


@app.get("/v1/agents/<agent_id>/versions")
@requires("agents:GetAgent")
def list_agent_versions(
    agent_id: AgentRef,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(min_length=1)] = None,
) -> Page[Agent]:
    data, after = agents.list_versions(principal(app), agent_id, limit, position(cursor, agents.VERSION_PAGES))
    return page(data, after, agents.VERSION_PAGES)


lambda_handler = build_handler(app)
