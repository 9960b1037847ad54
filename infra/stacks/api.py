"""The api stack: the REST API, one method per route, integrated with the route functions of the
functions stack (with API Gateway's permission to invoke them), and the authorizer.

From the stage (infra.stages.Stage): the throttles, the access logs' retention, the authorizer's
cache TTL (the route table's unless the stage overrides it, within 0..60 s), and two options:

- a custom domain (`domain_name`): a regional API Gateway domain with TLS 1.2, its certificate
  from `certificate_arn` or, with `hosted_zone_id` and `hosted_zone_name`, a DNS-validated one
  created in that zone, which also gets the alias record; the base path maps to the stage.
- a WAF web ACL on the stage: an existing regional ACL (`waf_web_acl_arn`), or one of AWS managed
  rule groups and a per-IP rate limit created here (`waf_managed_rules`).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as route53_targets
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra.constructs.api import ParleyApi
from infra.constructs.functions import RouteFunctions
from infra.stages import Stage
from parley.api.cors import CorsConfig
from parley.api.routing import RouteTable

# AWS managed rule groups of the created web ACL (no charge beyond WAF's own per rule group).
MANAGED_RULE_GROUPS = (
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesAmazonIpReputationList",
)
# Requests per 5 minutes from one IP address before WAF blocks it (the stage throttles as a whole too).
WAF_RATE_LIMIT = 2000


class ApiStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: Stage,
        route_table: RouteTable,
        functions: RouteFunctions,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.functions = functions
        # Browser origins allowed to call the API (context cors_allow_origins, comma-separated or a
        # list; none by default: no preflight is answered). The local server reads the same config.
        origins = self.node.try_get_context("cors_allow_origins")
        waf = bool(stage.waf_web_acl_arn or stage.waf_managed_rules)
        self.api = ParleyApi(
            self,
            "Api",
            stage=stage.name,
            route_table=route_table,
            functions=functions,
            access_log_retention=stage.log_retention,
            access_log_removal=stage.removal_policy,
            throttle_rate=stage.throttle_rate,
            throttle_burst=stage.throttle_burst,
            cors=CorsConfig.from_origins(origins) if origins else None,
            authorizer_cache_seconds=stage.authorizer_cache_seconds,
            waf=waf,
        )
        CfnOutput(self, "ApiUrl", value=self.api.rest_api.url, description="Base URL of the Parley API stage")
        self.domain: apigw.DomainName | None = None
        if stage.domain_name:
            self.domain = self._domain(stage)
        self.web_acl: wafv2.CfnWebACL | None = None
        if waf:
            self._waf(stage)

    def _domain(self, stage: Stage) -> apigw.DomainName:
        assert stage.domain_name is not None
        zone = None
        if stage.hosted_zone_id and stage.hosted_zone_name:
            zone = route53.HostedZone.from_hosted_zone_attributes(
                self, "Zone", hosted_zone_id=stage.hosted_zone_id, zone_name=stage.hosted_zone_name
            )
        if stage.certificate_arn:
            certificate: acm.ICertificate = acm.Certificate.from_certificate_arn(
                self, "Certificate", stage.certificate_arn
            )
        else:
            assert zone is not None  # Stage.check: a domain has a certificate ARN or a zone
            certificate = acm.Certificate(
                self,
                "Certificate",
                domain_name=stage.domain_name,
                validation=acm.CertificateValidation.from_dns(zone),
            )
        domain = apigw.DomainName(
            self,
            "Domain",
            domain_name=stage.domain_name,
            certificate=certificate,
            endpoint_type=apigw.EndpointType.REGIONAL,
            security_policy=apigw.SecurityPolicy.TLS_1_2,
        )
        domain.add_base_path_mapping(self.api.rest_api, stage=self.api.rest_api.deployment_stage)
        if zone is not None:
            route53.ARecord(
                self,
                "DomainRecord",
                zone=zone,
                record_name=stage.domain_name,
                target=route53.RecordTarget.from_alias(route53_targets.ApiGatewayDomain(domain)),
            )
        CfnOutput(
            self, "CustomDomainUrl", value=f"https://{stage.domain_name}/", description="The API on its own domain"
        )
        return domain

    def _waf(self, stage: Stage) -> None:
        acl_arn = stage.waf_web_acl_arn
        if stage.waf_managed_rules:
            rules = [
                wafv2.CfnWebACL.RuleProperty(
                    name=group,
                    priority=priority,
                    statement=wafv2.CfnWebACL.StatementProperty(
                        managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                            vendor_name="AWS", name=group
                        )
                    ),
                    override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                    visibility_config=_visibility(f"parley-{stage.name}-{group}"),
                )
                for priority, group in enumerate(MANAGED_RULE_GROUPS)
            ]
            rules.append(
                wafv2.CfnWebACL.RuleProperty(
                    name="RateLimitPerIp",
                    priority=len(rules),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            limit=WAF_RATE_LIMIT, aggregate_key_type="IP"
                        )
                    ),
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    visibility_config=_visibility(f"parley-{stage.name}-rate-limit"),
                )
            )
            self.web_acl = wafv2.CfnWebACL(
                self,
                "WebAcl",
                name=f"parley-{stage.name}",
                scope="REGIONAL",
                description=f"Parley {stage.name}: AWS managed rules and a per-IP rate limit",
                default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
                rules=rules,
                visibility_config=_visibility(f"parley-{stage.name}"),
            )
            acl_arn = self.web_acl.attr_arn
        assert acl_arn is not None
        wafv2.CfnWebACLAssociation(
            self, "WebAclAssociation", resource_arn=self.api.rest_api.deployment_stage.stage_arn, web_acl_arn=acl_arn
        )


def _visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
    )
