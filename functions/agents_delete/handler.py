"""DELETE /v1/agents/{agent_id}: the agent, its name, its signing secret and its versions."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.schemas import Deleted
from parley.services import agents

app = make_app()
AgentRef = Annotated[str, Path(description="The agent's id (agt_...) or its name (support_agent).")]


@app.delete("/v1/agents/<agent_id>")
@requires("agents:DeleteAgent")
def delete_agent(agent_id: AgentRef) -> Deleted:
    return Deleted(id=agents.delete(principal(app), agent_id), object="agent")


lambda_handler = build_handler(app)
