"""PATCH /v1/agents/{agent_id}: the fields given change, as a new version of the agent."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.agents import Agent, AgentUpdate
from parley.services import agents

app = make_app()
AgentRef = Annotated[str, Path(description="The agent's id (agt_...) or its name (support_agent).")]


@app.patch("/v1/agents/<agent_id>")
@requires("agents:UpdateAgent")
def update_agent(agent_id: AgentRef, body: AgentUpdate) -> Agent:
    return agents.update(principal(app), agent_id, body)


lambda_handler = build_handler(app)
