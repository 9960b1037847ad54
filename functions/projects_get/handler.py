"""GET /v1/projects/{project_id}: a project of the caller's organization, with its limits."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.keys import Project
from parley.services import keys

app = make_app()


@app.get("/v1/projects/<project_id>")
@requires("projects:GetProject")
def get_project(project_id: str) -> Project:
    return keys.get_project(principal(app), project_id)


lambda_handler = build_handler(app)
