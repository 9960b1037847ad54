"""GET /v1/openapi.json: the API's OpenAPI 3.1 document, no API key. It is generated at build time
(`make openapi`, parley.api.openapi_gen) into the core package: this function imports no other handler."""

from aws_lambda_powertools.event_handler import Response

from parley.api.app import build_handler, make_app, public
from parley.api.openapi import OpenAPIDocument, document_text

app = make_app()
RESPONSES = {
    200: {"description": "The OpenAPI 3.1 document.", "content": {"application/json": {"model": OpenAPIDocument}}}
}


@app.get("/v1/openapi.json", responses=RESPONSES)
@public
def get_openapi() -> Response[str]:
    return Response(200, "application/json", document_text(), headers={"Cache-Control": "public, max-age=300"})


lambda_handler = build_handler(app)
