"""ParleyApi: the regional REST API, its API key authorizer, one method per route of the route table
(integrated with that route's function) and gateway responses in Parley's error model."""

from __future__ import annotations

import json

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.constructs.function import ParleyFunction, acknowledge
from infra.constructs.functions import RouteFunctions
from infra.constructs.tables import pascal_case
from parley.api.cors import CorsConfig
from parley.api.errors import GATEWAY_ERRORS
from parley.api.routing import Route, RouteTable

STREAM_TIMEOUT = Duration.minutes(15)

# One JSON object per request. Request and response bodies are never logged (they carry API keys
# and conversation content): execution logging runs with data tracing off.
_ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "requestTime": "$context.requestTimeEpoch",
    "ip": "$context.identity.sourceIp",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "path": "$context.path",
    "protocol": "$context.protocol",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationStatus": "$context.integration.status",
    "integrationLatency": "$context.integration.latency",
    "principalId": "$context.authorizer.principalId",
    "authorizerStatus": "$context.authorizer.status",
    "errorType": "$context.error.responseType",
    "xrayTraceId": "$context.xrayTraceId",
}
# $context.error.messageString arrives already quoted (and escaped), so it goes in unquoted.
ACCESS_LOG_FORMAT = json.dumps(_ACCESS_LOG_FIELDS, separators=(",", ":"))[:-1] + (
    ',"errorMessage":$context.error.messageString}'
)


def preflight_options(cors: CorsConfig | None) -> apigw.CorsOptions | None:
    """API Gateway's CORS preflight (an OPTIONS method on every resource) from the same
    configuration the local server answers preflights with; None when no origin is allowed."""
    if cors is None or not cors.enabled:
        return None
    return apigw.CorsOptions(
        allow_origins=list(cors.allow_origins),
        allow_methods=list(cors.allow_methods),
        allow_headers=list(cors.allow_headers),
        expose_headers=list(cors.expose_headers),
        max_age=Duration.seconds(cors.max_age_seconds),
    )


def gateway_cors_headers(cors: CorsConfig | None) -> dict[str, str] | None:
    """The CORS headers of API Gateway's own answers (its 4xx/5xx gateway responses: a refused
    key, throttling, a timeout), so a browser can read them: the one allowed origin (or "*") as it
    is; with several, the request's Origin echoed (a gateway response carries no caller data)."""
    if cors is None or not cors.enabled:
        return None
    several = len(cors.allow_origins) > 1 and "*" not in cors.allow_origins
    if several:
        origin = "method.request.header.Origin"
    else:
        origin = "'*'" if "*" in cors.allow_origins else f"'{cors.allow_origins[0]}'"
    headers = {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": "'" + ",".join(cors.expose_headers) + "'",
    }
    if origin != "'*'":
        headers["Vary"] = "'Origin'"
    return headers


class ParleyApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        route_table: RouteTable,
        functions: RouteFunctions,
        access_log_retention: logs.RetentionDays = logs.RetentionDays.THREE_MONTHS,
        access_log_removal: RemovalPolicy = RemovalPolicy.RETAIN,
        throttle_rate: float = 100,
        throttle_burst: int = 200,
        cors: CorsConfig | None = None,
        authorizer_cache_seconds: int | None = None,
        waf: bool = False,
    ) -> None:
        """`authorizer_cache_seconds`: None keeps the route table's; `waf`: the caller associates a
        web ACL with the stage (else cdk-nag's APIG3 is acknowledged here)."""
        super().__init__(scope, construct_id)
        preflight = preflight_options(cors)
        cache_seconds = (
            route_table.authorizer_cache_seconds if authorizer_cache_seconds is None else authorizer_cache_seconds
        )
        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=access_log_retention, removal_policy=access_log_removal
        )
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            rest_api_name=f"parley-{stage}",
            description="Parley conversation API",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            default_cors_preflight_options=preflight,
            # Execution logging needs the account-level CloudWatch role; this API brings it.
            cloud_watch_role=True,
            deploy_options=apigw.StageOptions(
                stage_name=stage,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.custom(ACCESS_LOG_FORMAT),
                logging_level=apigw.MethodLoggingLevel.INFO,
                data_trace_enabled=False,
                tracing_enabled=True,
                metrics_enabled=True,
                # A ceiling for the whole stage (requests per second and burst): every model call
                # costs money, so a runaway client is throttled (429 in Parley's error model).
                throttling_rate_limit=throttle_rate,
                throttling_burst_limit=throttle_burst,
            ),
        )
        # RestApi adds an unnamed "Endpoint" output; the api stack exports the URL as ApiUrl instead.
        self.rest_api.node.try_remove_child("Endpoint")
        self.validator = self.rest_api.add_request_validator(
            "RequestValidator", validate_request_body=True, validate_request_parameters=True
        )
        for error in GATEWAY_ERRORS:
            self.rest_api.add_gateway_response(
                f"Gateway{pascal_case(error.response_type.lower())}",
                type=apigw.ResponseType.of(error.response_type),
                status_code=str(error.status),
                templates={"application/json": error.template()},
                response_headers=gateway_cors_headers(cors),
            )
        # The functions live in the functions stack; their imports here (one per function) give
        # API Gateway's invoke permissions to this stack, next to the API they name, so the
        # functions stack needs nothing from this one (no reference cycle).
        self.handlers: dict[str, lambda_.IFunction] = {}
        self.authorizer = apigw.RequestAuthorizer(
            self,
            "ApiKeyAuthorizer",
            handler=self._handler(route_table.authorizer, functions.authorizer),
            identity_sources=[apigw.IdentitySource.header("Authorization")],
            results_cache_ttl=Duration.seconds(cache_seconds),
            authorizer_name=f"parley-{stage}-api-key",
        )
        self.methods: dict[tuple[str, str], apigw.Method] = {}
        for route in route_table.routes:
            self.methods[(route.method, route.path)] = self._add_route(route, functions)
        for method in self.rest_api.methods:
            if method.http_method == "OPTIONS":  # CORS preflights: a mock integration, no caller data
                for rule in ("AwsSolutions-APIG4", "AwsSolutions-COG4"):
                    acknowledge(method, rule, "CORS preflight (OPTIONS): browsers send it without credentials.")

        acknowledge(
            self.rest_api,
            "AwsSolutions-COG4",
            "Callers are API keys, not Cognito users: Parley's Lambda REQUEST authorizer verifies the "
            "key (DESIGN.md section 1); routes without it are acknowledged one by one (APIG4).",
        )
        acknowledge(
            self.rest_api,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "The account-level role API Gateway uses for execution logs; the AWS managed policy is "
            "the documented one for exactly this service role.",
        )
        if not waf:
            acknowledge(
                self.rest_api.deployment_stage,
                "AwsSolutions-APIG3",
                "WAF is the operator's choice (rules and cost depend on the deployment): the stage context "
                "waf_web_acl_arn or waf_managed_rules associates one. Throttling and the authorizer guard "
                "the API meanwhile.",
            )

    def _handler(self, name: str, function: ParleyFunction) -> lambda_.IFunction:
        if name not in self.handlers:
            self.handlers[name] = lambda_.Function.from_function_attributes(
                self,
                f"{pascal_case(name)}Handler",
                function_arn=function.function.function_arn,
                same_environment=True,  # lets this stack add the invoke permissions
            )
        return self.handlers[name]

    def _add_route(self, route: Route, functions: RouteFunctions) -> apigw.Method:
        function = self._handler(route.function, functions.for_route(route))
        if route.streaming:
            integration = apigw.LambdaIntegration(
                function,
                allow_test_invoke=False,
                response_transfer_mode=apigw.ResponseTransferMode.STREAM,
                timeout=STREAM_TIMEOUT,
            )
        else:
            integration = apigw.LambdaIntegration(function, allow_test_invoke=False)
        resource = self.rest_api.root.resource_for_path(route.path)
        parameters = {f"method.request.path.{name}": True for name in route.params}
        if route.permission is None:
            method = resource.add_method(
                route.method,
                integration,
                authorization_type=apigw.AuthorizationType.NONE,
                request_validator=self.validator,
                request_parameters=parameters or None,
            )
            acknowledge(
                method,
                "AwsSolutions-APIG4",
                f"{route.method} {route.path} is public by design (the route table gives it no "
                "permission): it needs no API key.",
            )
            return method
        return resource.add_method(
            route.method,
            integration,
            authorizer=self.authorizer,
            authorization_type=apigw.AuthorizationType.CUSTOM,
            request_validator=self.validator,
            request_parameters=parameters or None,
        )
