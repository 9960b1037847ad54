"""POST /v1/projects: a project of the caller's organization (org administrators)."""

from aws_lambda_powertools.event_handler import Response

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.keys import ProjectCreate
from parley.services import keys

app = make_app()


@app.post("/v1/projects")
@requires("projects:CreateProject")
def create_project(body: ProjectCreate) -> Response[str]:
    return Response(201, "application/json", keys.create_project(principal(app), body).model_dump_json())


lambda_handler = build_handler(app)
