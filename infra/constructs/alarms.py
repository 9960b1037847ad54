"""The stage's alarm topic, by name: the observability stack creates it (`parley-<stage>-alarms`), and
an alarm in any stack notifies it through an ARN derived from that name (`notify`), so no stack
needs a cross-stack reference to it (and none blocks replacing another)."""

from __future__ import annotations

from typing import cast

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns


def topic_name(stage: str) -> str:
    return f"parley-{stage}-alarms"


def topic_arn(stack: Stack, stage: str) -> str:
    return stack.format_arn(service="sns", resource=topic_name(stage), arn_format=ArnFormat.NO_RESOURCE_NAME)


def alarm_topic(stack: Stack, stage: str) -> sns.ITopic:
    """The stage's alarm topic as seen from `stack` (one import per stack)."""
    existing = stack.node.try_find_child("AlarmTopicRef")
    if existing is not None:
        return cast(sns.ITopic, existing)
    return sns.Topic.from_topic_arn(stack, "AlarmTopicRef", topic_arn(stack, stage))


def notify(alarm: cloudwatch.Alarm, stage: str, topic: sns.ITopic | None = None) -> cloudwatch.Alarm:
    """The alarm notifies the stage's alarm topic when it goes into ALARM and back to OK."""
    target = topic if topic is not None else alarm_topic(Stack.of(alarm), stage)
    action = actions.SnsAction(target)
    alarm.add_alarm_action(action)
    alarm.add_ok_action(action)
    return alarm
