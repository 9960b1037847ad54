"""GET /v1/agents/{agent_id}: the agent (by id or name) at its latest version, or at `version`
(never its secret)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.agents import Agent
from parley.services import agents

app = make_app()
AgentRef = Annotated[str, Path(description="The agent's id (agt_...) or its name (support_agent).")]


@app.get("/v1/agents/<agent_id>")
@requires("agents:GetAgent")
def get_agent(agent_id: AgentRef, version: Annotated[int | None, Query(ge=1)] = None) -> Agent:
    return agents.get(principal(app), agent_id, version)


lambda_handler = build_handler(app)
