"""CDK's CORS preflight comes from parley.api.cors, the configuration the local server answers
preflights with (a small stack of its own: no full synth needed)."""

from __future__ import annotations

from aws_cdk import App, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk.assertions import Match, Template

from infra.constructs.api import gateway_cors_headers, preflight_options
from infra.constructs.functions import base_environment
from parley.api.cors import CorsConfig


def synth(cors: CorsConfig | None) -> Template:
    stack = Stack(App(), "Cors")
    api = apigw.RestApi(stack, "Api", default_cors_preflight_options=preflight_options(cors))
    api.root.add_resource("v1").add_method("GET", apigw.MockIntegration())
    return Template.from_stack(stack)


def test_given_allowed_origins_when_synthesized_then_preflights_answer_with_the_shared_configuration() -> None:
    cors = CorsConfig.from_origins("https://app.example")
    template = synth(cors)
    headers = {
        "method.response.header.Access-Control-Allow-Headers": "'" + ",".join(cors.allow_headers) + "'",
        "method.response.header.Access-Control-Allow-Methods": "'" + ",".join(cors.allow_methods) + "'",
        "method.response.header.Access-Control-Allow-Origin": "'https://app.example'",
        "method.response.header.Access-Control-Max-Age": f"'{cors.max_age_seconds}'",
    }
    template.has_resource_properties(
        "AWS::ApiGateway::Method",
        {
            "HttpMethod": "OPTIONS",
            "Integration": {
                "Type": "MOCK",
                "IntegrationResponses": [Match.object_like({"ResponseParameters": Match.object_like(headers)})],
            },
        },
    )
    assert len(template.find_resources("AWS::ApiGateway::Method", {"Properties": {"HttpMethod": "OPTIONS"}})) == 2


def test_given_no_origins_when_synthesized_then_no_preflight_is_answered() -> None:
    assert preflight_options(None) is None
    assert preflight_options(CorsConfig.from_origins("")) is None
    methods = synth(None).find_resources("AWS::ApiGateway::Method", {"Properties": {"HttpMethod": "OPTIONS"}})
    assert methods == {}


def test_given_origins_then_gateway_responses_and_the_functions_environment_carry_them() -> None:
    """API Gateway's own 4xx/5xx answers carry the CORS headers (a browser can read a 401 or a
    429), and the functions get the origins for their actual answers (parley.api.app)."""
    one = CorsConfig.from_origins("https://app.example")
    stack = Stack(App(), "Gateway")
    api = apigw.RestApi(stack, "Api")
    api.root.add_method("GET", apigw.MockIntegration())
    api.add_gateway_response(
        "Unauthorized", type=apigw.ResponseType.UNAUTHORIZED, response_headers=gateway_cors_headers(one)
    )
    Template.from_stack(stack).has_resource_properties(
        "AWS::ApiGateway::GatewayResponse",
        {
            "ResponseType": "UNAUTHORIZED",
            "ResponseParameters": {
                "gatewayresponse.header.Access-Control-Allow-Origin": "'https://app.example'",
                "gatewayresponse.header.Access-Control-Expose-Headers": "'" + ",".join(one.expose_headers) + "'",
                "gatewayresponse.header.Vary": "'Origin'",
            },
        },
    )
    several = gateway_cors_headers(CorsConfig.from_origins("https://a.example,https://b.example"))
    assert several is not None and several["Access-Control-Allow-Origin"] == "method.request.header.Origin"
    anyone = gateway_cors_headers(CorsConfig.from_origins("*"))
    assert anyone is not None and anyone["Access-Control-Allow-Origin"] == "'*'" and "Vary" not in anyone
    assert gateway_cors_headers(None) is None and gateway_cors_headers(CorsConfig.from_origins("")) is None

    assert base_environment("dev", cors=one)["PARLEY_CORS_ALLOW_ORIGINS"] == "https://app.example"
    assert "PARLEY_CORS_ALLOW_ORIGINS" not in base_environment("dev")
