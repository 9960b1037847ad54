"""The observability stack: the stage's CloudWatch dashboard, its alarms and their SNS topic.

Dashboard `parley-<stage>`: API requests, 4xx and 5xx by route (API Gateway's per-method metrics,
which the stage turns on for every method) and latency p50/p95/p99; time to first token p50/p95/p99
and by provider; model calls, failures and tokens by provider; Lambda errors and throttles by
function group; DynamoDB throttles and system errors; the depths of every dead-letter queue and of
the metering queue; webhook deliveries by outcome and endpoints disabled. Parley's own metrics are
Powertools EMF metrics in the `Parley` namespace (parley.metrics), dimension `service`, and
`provider` (echo, openai, anthropic, bedrock) where they are by provider.

Alarms (when the stage's `alarms` is on; production by default), each notifying the stage's topic
(`parley-<stage>-alarms`, subscribers from the stage's alarm_emails and alarm_https_endpoints) on
ALARM and on OK: the API's 5xx rate over `api_5xx_rate_percent`; Lambda errors and throttles (one
alarm per group of at most ten functions: an alarm's metric math takes ten metrics); DynamoDB
throttles and system errors per table; time to first token p95 over `ttft_p95_threshold_ms`; a
webhook endpoint disabled. The dead-letter and metering queue alarms live next to their queues (the
data, search and events stacks) and notify the same topic by its name.

The API and Parley's metrics are named by the stage alone; the functions by their ARNs, which the
api stack imports already (the same exports), and the tables by their names (the same exports the
functions use).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from aws_cdk import CfnOutput, Duration, Fn, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.alarms import notify, topic_name
from infra.constructs.function import ParleyFunction, acknowledge
from infra.constructs.tables import ParleyTables, pascal_case
from infra.stages import FUNCTION_GROUPS, Stage

NAMESPACE = "Parley"  # parley.metrics
SERVICE = "parley"  # POWERTOOLS_SERVICE_NAME (infra.constructs.functions.base_environment)
PERIOD = Duration.minutes(5)
ALARM_MATH_METRICS = 10  # CloudWatch: a metric math alarm takes at most ten metrics
# The operations Parley's functions call (no Scan): DynamoDB reports SystemErrors per operation.
TABLE_OPERATIONS = (
    "GetItem",
    "BatchGetItem",
    "Query",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
    "TransactGetItems",
)
# Parley metrics (parley.metrics, parley.providers.resilient, parley.services.metering, webhooks)
TTFT = "TimeToFirstToken"
MODEL_CALLS, MODEL_CALLS_FAILED = "ModelCalls", "ModelCallsFailed"
PROMPT_TOKENS, COMPLETION_TOKENS = "PromptTokens", "CompletionTokens"
WEBHOOK_OUTCOMES = ("WebhookAttemptSucceeded", "WebhookAttemptFailed", "WebhookAttemptGone", "WebhookAttemptSkipped")
WEBHOOK_DISABLED = "WebhookDisabled"
PARKED = "MeteringParked"


def parley_metric(name: str, statistic: str = "Sum", **dimensions: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=name,
        dimensions_map={"service": SERVICE, **dimensions},
        statistic=statistic,
        period=PERIOD,
    )


def function_name(function: ParleyFunction) -> str:
    """The function's name from its ARN (arn:aws:lambda:region:account:function:NAME): the ARN is
    what the api stack imports already, so naming it here adds no export."""
    return Fn.select(6, Fn.split(":", function.function.function_arn))


def _metric_id(text: str) -> str:
    """A metric math id from a name: lower-case letters and digits (ids start with a letter)."""
    return "".join(c for c in text.lower() if c.isalnum())


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class ObservabilityStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: Stage,
        functions: Iterable[ParleyFunction],
        tables: ParleyTables,
        queues: dict[str, sqs.IQueue],
        dead_letters: dict[str, sqs.IQueue],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.stage = stage
        self.api_name = f"parley-{stage.name}"  # infra.constructs.api: rest_api_name
        self.groups: dict[str, list[ParleyFunction]] = {group: [] for group in FUNCTION_GROUPS}
        for function in functions:
            self.groups[function.group].append(function)
        self.tables = tables
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        self.topic: sns.Topic | None = None
        if stage.alarms:
            self.topic = self._topic()
            self._api_alarm()
            self._lambda_alarms()
            self._table_alarms()
            self._metric_alarms()
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"parley-{stage.name}", default_interval=Duration.hours(6)
        )
        self._widgets(queues, dead_letters)
        CfnOutput(
            self,
            "DashboardName",
            value=self.dashboard.dashboard_name,
            description="The stage's CloudWatch dashboard",
        )

    # --- the topic ---------------------------------------------------------------------------------

    def _topic(self) -> sns.Topic:
        topic = sns.Topic(
            self,
            "AlarmTopic",
            topic_name=topic_name(self.stage.name),
            display_name=f"Parley {self.stage.name} alarms",
            enforce_ssl=True,
        )
        acknowledge(
            topic,
            "AwsSolutions-SNS2",
            "CloudWatch alarms cannot publish to a topic encrypted with the AWS managed SNS key, and "
            "alarm notifications carry no customer data (alarm name, state, metric); a customer managed "
            "key would be a key to run for nothing secret.",
        )
        for email in self.stage.alarm_emails:
            topic.add_subscription(subscriptions.EmailSubscription(email))
        for url in self.stage.alarm_https_endpoints:
            topic.add_subscription(subscriptions.UrlSubscription(url, protocol=sns.SubscriptionProtocol.HTTPS))
        CfnOutput(self, "AlarmTopicArn", value=topic.topic_arn, description="SNS topic of the stage's alarms")
        return topic

    def _alarm(self, construct_id: str, **props: Any) -> cloudwatch.Alarm:
        props.setdefault("comparison_operator", cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD)
        props.setdefault("evaluation_periods", 1)
        props.setdefault("treat_missing_data", cloudwatch.TreatMissingData.NOT_BREACHING)
        alarm = cloudwatch.Alarm(self, construct_id, **props)
        self.alarms[construct_id] = notify(alarm, self.stage.name, self.topic)
        return alarm

    # --- metrics -----------------------------------------------------------------------------------

    def api_metric(self, name: str, statistic: str = "Sum") -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/ApiGateway",
            metric_name=name,
            dimensions_map={"ApiName": self.api_name, "Stage": self.stage.name},
            statistic=statistic,
            period=PERIOD,
        )

    def by_route(self, name: str, statistic: str = "Sum") -> cloudwatch.MathExpression:
        """One line per method and resource (API Gateway's detailed metrics)."""
        query = (
            "{AWS/ApiGateway,ApiName,Method,Resource,Stage} "
            f'ApiName="{self.api_name}" Stage="{self.stage.name}" MetricName="{name}"'
        )
        return cloudwatch.MathExpression(
            expression=f"SEARCH('{query}', '{statistic}', {int(PERIOD.to_seconds())})",
            using_metrics={},
            label=name,
            period=PERIOD,
        )

    def by_provider(self, name: str, statistic: str = "Sum") -> cloudwatch.MathExpression:
        query = f'{{{NAMESPACE},provider,service}} service="{SERVICE}" MetricName="{name}"'
        return cloudwatch.MathExpression(
            expression=f"SEARCH('{query}', '{statistic}', {int(PERIOD.to_seconds())})",
            using_metrics={},
            label=name,
            period=PERIOD,
        )

    @staticmethod
    def lambda_metric(function: ParleyFunction, name: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/Lambda",
            metric_name=name,
            dimensions_map={"FunctionName": function_name(function)},
            statistic="Sum",
            period=PERIOD,
        )

    def lambda_sum(self, functions: Sequence[ParleyFunction], name: str, label: str) -> cloudwatch.MathExpression:
        # metric ids are unique within a graph or alarm: named for the metric and the label
        prefix = "".join(c for c in f"{name}{label}".lower() if c.isalnum())
        metrics = {f"{prefix}{i}": self.lambda_metric(function, name) for i, function in enumerate(functions)}
        return cloudwatch.MathExpression(
            expression=f"SUM([{','.join(metrics)}])", using_metrics=metrics, label=label, period=PERIOD
        )

    def table_throttles(self, table: dynamodb.ITable) -> cloudwatch.MathExpression:
        prefix = _metric_id(table.node.id)
        metrics = {
            f"{prefix}read": table.metric("ReadThrottleEvents", statistic="Sum", period=PERIOD),
            f"{prefix}write": table.metric("WriteThrottleEvents", statistic="Sum", period=PERIOD),
        }
        return cloudwatch.MathExpression(
            expression=f"SUM([{','.join(metrics)}])", using_metrics=metrics, label="throttled", period=PERIOD
        )

    def table_system_errors(self, table: dynamodb.ITable) -> cloudwatch.MathExpression:
        """SystemErrors summed over the operations Parley calls (DynamoDB reports them per operation)."""
        prefix = _metric_id(table.node.id)
        metrics = {
            f"{prefix}{_metric_id(op)}": table.metric(
                "SystemErrors",
                dimensions_map={"TableName": table.table_name, "Operation": op},
                statistic="Sum",
                period=PERIOD,
            )
            for op in TABLE_OPERATIONS
        }
        return cloudwatch.MathExpression(
            expression=f"SUM([{','.join(metrics)}])", using_metrics=metrics, label="system errors", period=PERIOD
        )

    # --- alarms ------------------------------------------------------------------------------------

    def _api_alarm(self) -> None:
        rate = cloudwatch.MathExpression(
            expression="IF(requests > 0, 100 * errors / requests, 0)",
            using_metrics={"errors": self.api_metric("5XXError"), "requests": self.api_metric("Count")},
            label="5xx rate (%)",
            period=PERIOD,
        )
        self._alarm(
            "Api5xxRateAlarm",
            alarm_description=f"Parley {self.stage.name}: more than {self.stage.api_5xx_rate_percent}% of API "
            "requests answered 5xx over 5 minutes (any route; the dashboard shows which)",
            metric=rate,
            threshold=self.stage.api_5xx_rate_percent,
            evaluation_periods=2,
            datapoints_to_alarm=2,
        )

    def _lambda_alarms(self) -> None:
        for group, functions in self.groups.items():
            for n, part in enumerate(chunks(sorted(functions, key=lambda f: f.node.path), ALARM_MATH_METRICS), 1):
                names = ", ".join(f.node.id for f in part)
                suffix = f"{pascal_case(group)}{n}"
                self._alarm(
                    f"LambdaErrors{suffix}Alarm",
                    alarm_description=f"Parley {self.stage.name}: Lambda errors in {group} functions ({names})",
                    metric=self.lambda_sum(part, "Errors", f"{group} errors"),
                    threshold=0,
                )
                self._alarm(
                    f"LambdaThrottles{suffix}Alarm",
                    alarm_description=f"Parley {self.stage.name}: Lambda throttles in {group} functions ({names})",
                    metric=self.lambda_sum(part, "Throttles", f"{group} throttles"),
                    threshold=0,
                )

    def _table_alarms(self) -> None:
        for logical, table in self.tables.tables.items():
            self._alarm(
                f"{pascal_case(logical)}TableThrottlesAlarm",
                alarm_description=f"Parley {self.stage.name}: requests to the {logical} table were throttled",
                metric=self.table_throttles(table),
                threshold=0,
            )
            self._alarm(
                f"{pascal_case(logical)}TableSystemErrorsAlarm",
                alarm_description=f"Parley {self.stage.name}: DynamoDB answered the {logical} table's requests "
                "with system errors (500)",
                metric=self.table_system_errors(table),
                threshold=0,
            )

    def _metric_alarms(self) -> None:
        self._alarm(
            "TimeToFirstTokenAlarm",
            alarm_description=f"Parley {self.stage.name}: time to first token p95 over "
            f"{self.stage.ttft_p95_threshold_ms} ms (3 of the last 3 five-minute periods)",
            metric=parley_metric(TTFT, "p95"),
            threshold=self.stage.ttft_p95_threshold_ms,
            evaluation_periods=3,
            datapoints_to_alarm=3,
        )
        self._alarm(
            "WebhookDisabledAlarm",
            alarm_description=f"Parley {self.stage.name}: a webhook endpoint was disabled (5 days of failed "
            "deliveries, or 410 Gone); its project got a webhook.endpoint_disabled event",
            metric=parley_metric(WEBHOOK_DISABLED),
            threshold=0,
        )

    # --- the dashboard -----------------------------------------------------------------------------

    def _widgets(self, queues: dict[str, sqs.IQueue], dead_letters: dict[str, sqs.IQueue]) -> None:
        width = 8
        latency = [self.api_metric("Latency", stat) for stat in ("p50", "p95", "p99")]
        ttft = [parley_metric(TTFT, stat) for stat in ("p50", "p95", "p99")]
        rows: list[list[cloudwatch.IWidget]] = [
            [
                cloudwatch.TextWidget(
                    markdown=f"# Parley {self.stage.name}\nAPI `{self.api_name}`; Parley's metrics: namespace "
                    f"`{NAMESPACE}`, service `{SERVICE}`. Alarms "
                    + (
                        "notify `" + topic_name(self.stage.name) + "`."
                        if self.stage.alarms
                        else "are off for this stage."
                    ),
                    width=24,
                    height=2,
                )
            ],
            [
                self._graph("Requests by route", [self.by_route("Count")], width),
                self._graph("4xx by route", [self.by_route("4XXError")], width),
                self._graph("5xx by route", [self.by_route("5XXError")], width),
            ],
            [
                self._graph("API latency (ms)", latency, width),
                self._graph("Time to first token (ms)", ttft, width),
                self._graph("Time to first token p95 by provider (ms)", [self.by_provider(TTFT, "p95")], width),
            ],
            [
                self._graph(
                    "Model calls by provider",
                    [self.by_provider(MODEL_CALLS), self.by_provider(MODEL_CALLS_FAILED)],
                    width,
                ),
                self._graph(
                    "Tokens by provider", [self.by_provider(PROMPT_TOKENS), self.by_provider(COMPLETION_TOKENS)], width
                ),
                self._graph(
                    "Requests refused: rate limits and budgets (429)",
                    [
                        parley_metric("RateLimited").with_(label="rate limited"),
                        parley_metric("BudgetExceeded").with_(label="budget exceeded"),
                    ],
                    width,
                ),
            ],
            [
                self._graph(
                    "Lambda errors by group",
                    [self.lambda_sum(f, "Errors", g) for g, f in self.groups.items() if f],
                    width,
                ),
                self._graph(
                    "Lambda throttles by group",
                    [self.lambda_sum(f, "Throttles", g) for g, f in self.groups.items() if f],
                    width,
                ),
                self._graph(
                    "DynamoDB throttles and system errors",
                    [
                        metric
                        for logical, table in self.tables.tables.items()
                        for metric in (
                            self.table_throttles(table).with_(label=f"{logical} throttled"),
                            self.table_system_errors(table).with_(label=f"{logical} system errors"),
                        )
                    ],
                    width,
                ),
            ],
            [
                self._graph(
                    "Dead-letter queue depths",
                    [
                        q.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum", label=name)
                        for name, q in dead_letters.items()
                    ],
                    width,
                ),
                self._graph(
                    "Metering: parked records",
                    [
                        queues["metering"].metric_approximate_number_of_messages_visible(
                            period=PERIOD, statistic="Maximum", label="waiting on the metering queue"
                        ),
                        parley_metric(PARKED).with_(label="parked"),
                        parley_metric("UsageFolded").with_(label="folded in by the sweep"),
                    ],
                    width,
                ),
                self._graph(
                    "Webhook deliveries",
                    [
                        parley_metric(name).with_(label=name.removeprefix("WebhookAttempt").lower())
                        for name in WEBHOOK_OUTCOMES
                    ]
                    + [parley_metric(WEBHOOK_DISABLED).with_(label="endpoints disabled")],
                    width,
                ),
            ],
        ]
        if self.alarms:
            rows.append(
                [cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=24, height=6)]
            )
        for row in rows:
            self.dashboard.add_widgets(*row)

    @staticmethod
    def _graph(title: str, metrics: Sequence[cloudwatch.IMetric], width: int) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(title=title, left=list(metrics), width=width, height=6)
