"""POST /v1/projects: a project of the caller's organization (org administrators)."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.keys import Project, ProjectCreate
from parley.services import keys

app = make_app()


@app.post("/v1/projects", status_code=201)
@requires("projects:CreateProject")
def create_project(body: ProjectCreate) -> Project:
    return keys.create_project(principal(app), body)


lambda_handler = build_handler(app)
