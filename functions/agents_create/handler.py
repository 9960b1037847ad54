"""POST /v1/agents: a new agent (version 1); its signing secret is in this response only.

The HTTP-level idempotency store is not used (it would keep the secret): with an
Idempotency-Key the service makes sure a retry never creates a second agent."""

from aws_lambda_powertools.event_handler import Response

from parley.api.app import build_handler, idempotency_key, idempotent_in_service, make_app, principal, requires
from parley.domain.agents import AgentCreate, AgentWithSecret
from parley.services import agents

app = make_app()

CREATED = {
    201: {
        "description": "The agent, with its signing secret (shown once).",
        "content": {"application/json": {"model": AgentWithSecret}},
    }
}


@app.post("/v1/agents", responses=CREATED)
@requires("agents:CreateAgent")
@idempotent_in_service
def create_agent(body: AgentCreate) -> Response[str]:
    created = agents.create(principal(app), body, idempotency_key(app))
    return Response(201, "application/json", created.model_dump_json(), headers={"Cache-Control": "no-store"})


lambda_handler = build_handler(app)
