"""POST /v1/agents/{agent_id}/rotate-secret: a new signing secret (shown once); the previous one
stops signing at once.

Each call rotates (a retry after a lost answer rotates again): the HTTP-level idempotency store
is not used, since it would keep the secret."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path

from parley.api.app import build_handler, idempotent_in_service, make_app, principal, requires
from parley.domain.agents import AgentWithSecret
from parley.services import agents

app = make_app()
AgentRef = Annotated[str, Path(description="The agent's id (agt_...) or its name (support_agent).")]

ROTATED = {
    200: {
        "description": "The agent, with its new signing secret (shown once).",
        "content": {"application/json": {"model": AgentWithSecret}},
    }
}


@app.post("/v1/agents/<agent_id>/rotate-secret", responses=ROTATED)
@requires("agents:RotateAgentSecret")
@idempotent_in_service
def rotate_agent_secret(agent_id: AgentRef) -> Response[str]:
    rotated = agents.rotate_secret(principal(app), agent_id)
    return Response(200, "application/json", rotated.model_dump_json(), headers={"Cache-Control": "no-store"})


lambda_handler = build_handler(app)
