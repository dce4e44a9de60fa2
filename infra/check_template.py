#!/usr/bin/env python3
"""Checks the CloudFormation template `serverless package` generated, and the zips it deploys.

Fails (exit 1, one line per problem) on:
- a function not on provided.al2023 or whose handler is not `bootstrap`;
- a missing WebSocket route, an authorizer on a route other than $connect, (with
  --expect-authorizer) a $connect without one, and behind an authorized $connect a Lambda that
  does not refuse an event with no principal (REQUIRE_PRINCIPAL);
- an SSM secret reference in a stack that does not use it (auth off, or a JWKS URL);
- a table without TTL on `ttl`, point-in-time recovery, encryption, on-demand billing, or
  `Retain` on replacement and `Retain` or `RetainExceptOnCreate` on deletion; a log group without
  retention;
- any wildcard IAM resource beyond the two allowed suffixes (a log group's streams, and
  `POST /@connections/*` on this API's stage), a stand-alone IAM policy, any action but Query or
  Scan on an index;
- a hard-coded `amazonaws.com` in an endpoint the stack builds: a function's environment or an
  output (AWS::URLSuffix differs in the China partitions); the identity provider's URLs passed in
  as parameters (a Cognito JWKS URL or issuer) are the user's, not the stack's;
- a stage without throttling, a $default throttled more loosely than the stage, full request
  logging (DataTraceEnabled), or an access log format that could write the token;
- two functions uploaded under one S3 key (each would run the other's code);
- with --artifacts: a zip (read from serverless-state.json beside the template) whose `bootstrap`
  is missing, not executable, or built for another architecture than its function's;
- monitoring: a function without METRICS_NAMESPACE (or functions with different ones), a function
  without an alarm on its Errors and on its Throttles, no alarm on API Gateway's IntegrationError
  and ExecutionError, none on the posts that failed or were throttled or on authorizer denials in
  the functions' namespace, an alarm whose AlarmActions and OKActions differ, no dashboard;
- a dashboard body CloudWatch would refuse at deploy time, rolling the stack back (cloudwatch.py):
  not JSON once its ${...} are substituted, a widget without its type, place, size or properties or
  off the grid, a metric widget without its region or a `metrics` array, an entry of `metrics`
  that is not an array, a malformed metric array, an id used twice in a widget or not starting
  with a lower-case letter, a SEARCH whose schema leaves a namespace like ws-chat/dev unquoted;
- alarm metric math PutMetricAlarm would refuse (cloudwatch.py): query ids not unique or not
  starting with a lower-case letter, a query with both or neither of Expression and MetricStat, an
  expression reading an id no query defines, other than exactly one query returning data (or, with
  a ThresholdMetricId, exactly the ANOMALY_DETECTION_BAND it names and the metric it bands), a
  band operator without a band or a threshold operator with one, a single-metric field beside
  Metrics;
- queued delivery: no SQS queue, a queue without encryption, no event source mapping on it, a
  mapping without ReportBatchItemFailures or MaximumConcurrency or with batches above 10, a queue
  whose visibility timeout is under six times its function's timeout, no redrive to a dead-letter
  queue or no alarm on that queue's messages, a function allowed to send to the queue without
  DELIVERY_QUEUE_URL naming it, no stack outputs with the queue's URL and ARN;
- with --expect-production: a function without reserved concurrency (or with less than its event
  source mapping's MaximumConcurrency), a stage without an access log, or a $default no stricter
  than the stage;
- with --account-concurrency N (the account's Lambda concurrency quota in the region:
  `aws lambda get-account-settings --query AccountLimit.ConcurrentExecutions`): reserved
  concurrency that leaves less unreserved than Lambda's minimum (100, or the whole quota when it
  is 100 or less: new accounts may have 10), and an SQS event source mapping on a function without
  reserved concurrency whose MaximumConcurrency is more than half of what it shares with the
  WebSocket routes.

    python3 check_template.py TEMPLATE.json [--artifacts] [--expect-authorizer] [--expect-production]
                              [--account-concurrency N]
"""
import json
import re
import sys
from pathlib import Path

import artifacts
import cloudwatch

REQUIRED_ROUTES = {"$connect", "$disconnect", "$default"}
RUNTIME = "provided.al2023"
INDEX_ACTIONS = {"dynamodb:Query", "dynamodb:Scan"}
# What an access log must never contain: the token rides in $connect's query string.
LEAKY_LOG_VARIABLES = ("querystring", "requestoverride", "token", "$input", "$request", "$method")
SSM_REFERENCE = "{{resolve:ssm"
# The table outlives the stack and any replacement. RetainExceptOnCreate keeps it too, except when
# the operation that created it rolls back: a failed first deploy holds no data, and Retain would
# leave one orphaned table per failed attempt. UpdateReplacePolicy has no such value.
TABLE_POLICIES = {"DeletionPolicy": ("RetainExceptOnCreate", "Retain"), "UpdateReplacePolicy": ("Retain",)}


def resources(template, kind):
    return {k: v for k, v in template.get("Resources", {}).items() if v.get("Type") == kind}


def strings_in(value):
    """Every literal string an IAM Resource value can produce, intrinsic functions included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)
    elif isinstance(value, dict):
        if "Fn::Sub" in value:
            sub = value["Fn::Sub"]
            yield sub if isinstance(sub, str) else sub[0]
        elif "Fn::Join" in value:
            sep, parts = value["Fn::Join"]
            yield sep.join(p if isinstance(p, str) else "{ref}" for p in parts)
        # Ref and Fn::GetAtt name one resource: nothing wild about them.


def all_strings(value):
    """Every literal string anywhere inside `value` (for text searches, not for IAM)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from all_strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from all_strings(item)


def as_list(value):
    return value if isinstance(value, list) else [value]


ALLOWED_WILDCARD = [
    re.compile(r"^arn:\$\{AWS::Partition\}:execute-api:\$\{AWS::Region\}:\$\{AWS::AccountId\}:\$\{WebsocketsApi\}/[A-Za-z0-9_-]+/POST/@connections/\*$"),
]


def statements_of(template):
    for name, role in resources(template, "AWS::IAM::Role").items():
        for policy in role.get("Properties", {}).get("Policies", []):
            for statement in policy.get("PolicyDocument", {}).get("Statement", []):
                yield name, statement


# What each role's code calls, so a grant the code needs cannot go missing (the other checks only
# keep grants from growing). `$disconnect` announces departures: it reads the rooms' members and
# posts `presence` frames.
REQUIRED_ACTIONS = {
    "ConnectRole": {"dynamodb:UpdateItem"},
    "DisconnectRole": {
        "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "dynamodb:Query",
        "execute-api:ManageConnections",
    },
    "DefaultRole": {
        "dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:PutItem",
        "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "execute-api:ManageConnections",
        "sqs:SendMessage",
    },
    # The event source mapping's calls, and the worker's: pages, posts, prunes (an orphan
    # membership's is `leave`: a transaction with an UpdateItem), continuations.
    "FanoutRole": {
        "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
        "sqs:ChangeMessageVisibility", "sqs:SendMessage", "dynamodb:Query",
        "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem", "execute-api:ManageConnections",
    },
}


def granted_actions(template):
    """Each role's allowed actions."""
    granted = {}
    for name, statement in statements_of(template):
        if statement.get("Effect") == "Allow":
            granted.setdefault(name, set()).update(as_list(statement.get("Action", [])))
    return granted


def missing_grant_problems(template):
    granted = granted_actions(template)
    roles = resources(template, "AWS::IAM::Role")
    return [f"{name}: missing {sorted(needed - granted.get(name, set()))}: the code calls them"
            for name, needed in REQUIRED_ACTIONS.items()
            if name in roles and needed - granted.get(name, set())]


def iam_problems(template):
    problems = missing_grant_problems(template)
    for name, statement in statements_of(template):
        targets = list(strings_in(statement.get("Resource", [])))
        for text in targets:
            if "*" in text and not any(p.match(text) for p in ALLOWED_WILDCARD):
                problems.append(f"{name}: wildcard IAM resource {text!r}")
        if "NotResource" in statement:
            problems.append(f"{name}: NotResource grants everything else")
        # An index is read-only: a write action there is a grant no call can use.
        if any("/index/" in text for text in targets):
            extra = sorted(set(as_list(statement.get("Action", []))) - INDEX_ACTIONS)
            if extra:
                problems.append(f"{name}: {extra} on an index ARN (an index is only queried)")
    for name in resources(template, "AWS::IAM::Policy"):
        problems.append(f"{name}: a stand-alone IAM policy; grant through the function roles")
    return problems


def function_problems(functions):
    problems = []
    if not functions:
        problems.append("no Lambda functions in the template")
    keys = {}
    for name, fn in functions.items():
        props = fn.get("Properties", {})
        if props.get("Runtime") != RUNTIME:
            problems.append(f"{name}: runtime {props.get('Runtime')!r}, expected {RUNTIME!r}")
        if props.get("Handler") != "bootstrap":
            problems.append(f"{name}: handler {props.get('Handler')!r}, expected 'bootstrap'")
        key = props.get("Code", {}).get("S3Key")
        if key is not None:
            keys.setdefault(json.dumps(key), []).append(name)
    for key, names in keys.items():
        if len(names) > 1:
            problems.append(f"{sorted(names)} share the S3 key {key}: each would run the other's code")
    return problems


# The identity provider's, passed in as parameters (jwksUrl, jwtIssuer, jwtAudience, jwtClientId):
# a Cognito JWKS URL or issuer is https://cognito-idp.<region>.amazonaws.com/..., given by the user
# as a literal, not built by the stack.
IDENTITY_PROVIDER_VARIABLES = ("JWKS_URL", "JWT_ISSUER", "JWT_AUDIENCE", "JWT_CLIENT_ID")


def hard_coded_suffix_problems(template, functions):
    """The endpoints the stack builds for itself (MANAGEMENT_ENDPOINT, the outputs) must use
    AWS::URLSuffix; a literal in an identity provider variable is the user's URL, not one of them."""
    places = {}
    for name, fn in functions.items():
        variables = fn.get("Properties", {}).get("Environment", {}).get("Variables", {})
        for key, value in variables.items():
            if not (key in IDENTITY_PROVIDER_VARIABLES and isinstance(value, str)):
                places[f"{name} environment {key}"] = value
    places.update({f"output {name}": output for name, output in template.get("Outputs", {}).items()})
    return [f"{place}: hard-coded 'amazonaws.com'; use ${{AWS::URLSuffix}} (amazonaws.com.cn in China)"
            for place, value in places.items()
            if any("amazonaws.com" in text for text in all_strings(value))]


def route_problems(template, functions, expect_authorizer):
    problems = []
    route_resources = resources(template, "AWS::ApiGatewayV2::Route").values()
    routes = {r["Properties"].get("RouteKey") for r in route_resources}
    for missing in sorted(REQUIRED_ROUTES - routes):
        problems.append(f"missing WebSocket route {missing}")
    # API Gateway authorizes a WebSocket once, at $connect: an authorizer elsewhere never runs.
    authorized = {r["Properties"].get("RouteKey") for r in route_resources
                  if r["Properties"].get("AuthorizationType", "NONE") != "NONE"}
    if authorized - {"$connect"}:
        problems.append(f"authorizer on {sorted(authorized - {'$connect'})}: only $connect can be authorized")
    if expect_authorizer and "$connect" not in authorized:
        problems.append("$connect has no authorizer (auth is on by default)")
    if "$connect" in authorized:
        for name in connect_functions(template):
            variables = functions.get(name, {}).get("Properties", {}).get("Environment", {}).get("Variables", {})
            if variables.get("REQUIRE_PRINCIPAL") != "true":
                problems.append(f"{name}: REQUIRE_PRINCIPAL is not 'true' behind an authorized $connect")
    problems += secret_problems(functions, "$connect" in authorized)
    return problems


def connect_functions(template):
    """The functions the $connect route invokes: route -> integration -> function."""
    integrations = resources(template, "AWS::ApiGatewayV2::Integration")
    names = set()
    for route in resources(template, "AWS::ApiGatewayV2::Route").values():
        if route["Properties"].get("RouteKey") != "$connect":
            continue
        for integration in referenced(route["Properties"].get("Target"), integrations):
            names |= referenced(integrations[integration]["Properties"].get("IntegrationUri"),
                                resources(template, "AWS::Lambda::Function"))
    return names


def referenced(value, candidates):
    """The logical ids among `candidates` that `value` names through Ref or Fn::GetAtt."""
    found = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and inner in candidates:
                found.add(inner)
            elif key == "Fn::GetAtt" and isinstance(inner, list) and inner and inner[0] in candidates:
                found.add(inner[0])
            else:
                found |= referenced(inner, candidates)
    elif isinstance(value, list):
        for item in value:
            found |= referenced(item, candidates)
    return found


def secret_problems(functions, connect_authorized):
    """The SSM secret must be referenced only when it is used: without the parameter, a deploy
    that does not need it would fail."""
    problems = []
    for name, fn in functions.items():
        variables = fn.get("Properties", {}).get("Environment", {}).get("Variables", {})
        if not any(SSM_REFERENCE in text for text in all_strings(variables)):
            continue
        if not connect_authorized:
            problems.append(f"{name}: references the SSM secret, but $connect has no authorizer")
        if variables.get("JWKS_URL"):
            problems.append(f"{name}: references the SSM secret, but verifies with a JWKS URL")
    return problems


def table_problems(template):
    problems = []
    tables = resources(template, "AWS::DynamoDB::Table")
    if not tables:
        problems.append("no DynamoDB table")
    for name, table in tables.items():
        props = table.get("Properties", {})
        ttl = props.get("TimeToLiveSpecification", {})
        if not (ttl.get("Enabled") is True and ttl.get("AttributeName") == "ttl"):
            problems.append(f"{name}: TTL must be enabled on the 'ttl' attribute")
        if not props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
            problems.append(f"{name}: point-in-time recovery is off")
        if not props.get("SSESpecification", {}).get("SSEEnabled"):
            problems.append(f"{name}: server-side encryption is off")
        if props.get("BillingMode") != "PAY_PER_REQUEST":
            problems.append(f"{name}: not on-demand")
        for policy, kept in TABLE_POLICIES.items():
            if table.get(policy) not in kept:
                problems.append(f"{name}: {policy} is {table.get(policy)!r}, expected "
                                f"{' or '.join(repr(k) for k in kept)}")
    for name, group in resources(template, "AWS::Logs::LogGroup").items():
        if "RetentionInDays" not in group.get("Properties", {}):
            problems.append(f"{name}: no log retention")
    return problems


def number(value):
    """A throttling limit as a number; None when absent or not a literal number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def limits(settings):
    return number(settings.get("ThrottlingRateLimit")), number(settings.get("ThrottlingBurstLimit"))


def stage_problems(template, expect_production):
    problems = []
    stages = resources(template, "AWS::ApiGatewayV2::Stage")
    if not stages:
        problems.append("no API Gateway stage")
    for name, stage in stages.items():
        props = stage.get("Properties", {})
        stage_limits = limits(props.get("DefaultRouteSettings", {}))
        default_limits = limits(props.get("RouteSettings", {}).get("$default", {}))
        if None in stage_limits or None in default_limits:
            problems.append(f"{name}: throttling (rate and burst, as numbers) must be set on the stage and on $default")
        else:
            pairs = list(zip(default_limits, stage_limits))
            if any(route > stage_limit for route, stage_limit in pairs):
                problems.append(f"{name}: $default throttled at {default_limits}, looser than the stage's {stage_limits}")
            elif expect_production and not any(route < stage_limit for route, stage_limit in pairs):
                problems.append(f"{name}: $default is no stricter than the stage ({default_limits})")
        for route, settings in [("stage", props.get("DefaultRouteSettings", {}))] + list(props.get("RouteSettings", {}).items()):
            if settings.get("DataTraceEnabled"):
                problems.append(f"{name}: DataTraceEnabled on {route} logs whole requests, token included")
        access_log = props.get("AccessLogSettings")
        if access_log is None:
            if expect_production:
                problems.append(f"{name}: no access log")
            continue
        log_format = str(access_log.get("Format", ""))
        leaks = [v for v in LEAKY_LOG_VARIABLES if v in log_format.lower()]
        if leaks:
            problems.append(f"{name}: the access log format names {leaks}, which could write the token")
    return problems


def production_function_problems(functions):
    return [f"{name}: no reserved concurrency" for name, fn in functions.items()
            if "ReservedConcurrentExecutions" not in fn.get("Properties", {})]


def artifact_problems(template_path, template, service_dir):
    """Checks the zips `serverless deploy --package` would upload against their functions."""
    state_path = Path(template_path).parent / "serverless-state.json"
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError) as e:
        return [f"{state_path}: cannot read the packaged service ({e})"]
    by_function_name = {fn.get("Properties", {}).get("FunctionName"): fn
                        for fn in resources(template, "AWS::Lambda::Function").values()}
    problems = []
    for name, function in state.get("service", {}).get("functions", {}).items():
        artifact = function.get("package", {}).get("artifact")
        resource = by_function_name.get(function.get("name"))
        if not artifact or resource is None:
            problems.append(f"function {name}: no artifact or no resource in the template")
            continue
        # Lambda's default when Architectures is absent.
        architecture = resource.get("Properties", {}).get("Architectures", ["x86_64"])[0]
        path = Path(service_dir) / artifact
        if not path.is_file():
            problems.append(f"{path}: missing (scripts/deploy builds and stages it)")
        else:
            problems += artifacts.architecture_problems(path, architecture)
    return problems


# The service's own metrics that must be watched (names from adapters/src/metrics.rs).
WATCHED_METRICS = ("PostsFailed", "PostsThrottled", "AuthorizerDecisions")
WATCHED_API_METRICS = ("IntegrationError", "ExecutionError")


def alarm_metrics(alarm):
    """(namespace, metric name, dimensions) of each metric an alarm reads, plain or metric math."""
    props = alarm.get("Properties", {})
    if "MetricName" in props:
        yield props.get("Namespace"), props["MetricName"], props.get("Dimensions", [])
    for query in props.get("Metrics", []):
        metric = query.get("MetricStat", {}).get("Metric")
        if metric:
            yield metric.get("Namespace"), metric.get("MetricName"), metric.get("Dimensions", [])


def watched(alarms):
    """Every (namespace, metric name, dimension value) some alarm reads; a Ref counts as its name."""
    seen = set()
    for alarm in alarms.values():
        for namespace, metric, dimensions in alarm_metrics(alarm):
            values = [json.dumps(d.get("Value"), sort_keys=True) for d in dimensions] or [None]
            seen |= {(json.dumps(namespace, sort_keys=True), metric, v) for v in values}
    return seen


def monitoring_problems(template, functions):
    problems = []
    namespaces = {}
    for name, fn in functions.items():
        variables = fn.get("Properties", {}).get("Environment", {}).get("Variables", {})
        namespace = variables.get("METRICS_NAMESPACE")
        if not namespace:
            problems.append(f"{name}: no METRICS_NAMESPACE (its metrics would be dropped)")
        else:
            namespaces.setdefault(json.dumps(namespace, sort_keys=True), []).append(name)
    if len(namespaces) > 1:
        problems.append(f"functions write metrics to different namespaces: {sorted(namespaces)}")
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    seen = watched(alarms)
    lambda_ns = json.dumps("AWS/Lambda")
    for name in functions:
        for metric in ("Errors", "Throttles"):
            if (lambda_ns, metric, json.dumps({"Ref": name})) not in seen:
                problems.append(f"{name}: no alarm on its {metric}")
    api = json.dumps({"Ref": "WebsocketsApi"})
    for metric in WATCHED_API_METRICS:
        if (json.dumps("AWS/ApiGateway"), metric, api) not in seen:
            problems.append(f"no alarm on API Gateway's {metric}")
    for namespace in namespaces:
        for metric in WATCHED_METRICS:
            if not any(s[0] == namespace and s[1] == metric for s in seen):
                problems.append(f"no alarm on {metric} in the namespace {namespace}")
    for name, alarm in alarms.items():
        props = alarm.get("Properties", {})
        if props.get("AlarmActions") != props.get("OKActions"):
            problems.append(f"{name}: AlarmActions and OKActions differ (a recovery nobody hears of)")
        problems += cloudwatch.alarm_problems(name, alarm)
    dashboards = resources(template, "AWS::CloudWatch::Dashboard")
    if not dashboards:
        problems.append("no CloudWatch dashboard")
    for name, dashboard in dashboards.items():
        problems += cloudwatch.dashboard_problems(name, dashboard)
    return problems


# AWS's advice for a queue an event source mapping reads: a job is never handed to a second
# worker while the first may still be running it.
VISIBILITY_PER_TIMEOUT = 6
# Lambda's default timeout when a function sets none.
DEFAULT_TIMEOUT = 3
SQS_BATCH_LIMIT = 10


def queue_problems(template, functions, expect_production):
    queues = resources(template, "AWS::SQS::Queue")
    if not queues:
        return ["no SQS delivery queue"]
    problems = [f"{name}: server-side encryption is off (SqsManagedSseEnabled or KmsMasterKeyId)"
                for name, queue in queues.items()
                if not (queue.get("Properties", {}).get("SqsManagedSseEnabled") is True
                        or queue.get("Properties", {}).get("KmsMasterKeyId"))]
    mappings = {name: m for name, m in resources(template, "AWS::Lambda::EventSourceMapping").items()
                if referenced(m.get("Properties", {}).get("EventSourceArn"), queues)}
    if not mappings:
        problems.append("no event source mapping on an SQS queue: nothing would run the delivery jobs")
    seen = watched(resources(template, "AWS::CloudWatch::Alarm"))
    for name, mapping in mappings.items():
        props = mapping.get("Properties", {})
        if "ReportBatchItemFailures" not in props.get("FunctionResponseTypes", []):
            problems.append(f"{name}: no ReportBatchItemFailures: one failed job would send its whole batch back")
        if number(props.get("ScalingConfig", {}).get("MaximumConcurrency")) is None:
            problems.append(f"{name}: no ScalingConfig.MaximumConcurrency: the queue could take the account's whole concurrency")
        batch = number(props.get("BatchSize"))
        if batch is None or batch > SQS_BATCH_LIMIT:
            problems.append(f"{name}: BatchSize {props.get('BatchSize')!r}, expected at most {SQS_BATCH_LIMIT}")
        for queue_name in referenced(props.get("EventSourceArn"), queues):
            problems += mapped_queue_problems(queue_name, queues, seen)
            for function_name in referenced(props.get("FunctionName"), functions):
                problems += mapped_function_problems(
                    name, props, queue_name, queues[queue_name], function_name,
                    functions[function_name], expect_production)
            problems += queue_url_problems(template, functions, queue_name)
    return problems


def mapped_queue_problems(queue_name, queues, seen):
    redrive = queues[queue_name].get("Properties", {}).get("RedrivePolicy", {})
    dead_letters = referenced(redrive.get("deadLetterTargetArn"), queues)
    if not dead_letters or number(redrive.get("maxReceiveCount")) is None:
        return [f"{queue_name}: no redrive policy to a dead-letter queue in this stack"]
    return [f"{dlq}: no alarm on ApproximateNumberOfMessagesVisible (dead letters would go unnoticed)"
            for dlq in sorted(dead_letters)
            if (json.dumps("AWS/SQS"), "ApproximateNumberOfMessagesVisible",
                json.dumps({"Fn::GetAtt": [dlq, "QueueName"]}, sort_keys=True)) not in seen]


def mapped_function_problems(mapping_name, props, queue_name, queue, function_name, function,
                             expect_production):
    problems = []
    timeout = number(function.get("Properties", {}).get("Timeout", DEFAULT_TIMEOUT))
    visibility = number(queue.get("Properties", {}).get("VisibilityTimeout", 30))
    if timeout is None or visibility is None or visibility < VISIBILITY_PER_TIMEOUT * timeout:
        problems.append(f"{queue_name}: VisibilityTimeout {visibility} is under {VISIBILITY_PER_TIMEOUT} x "
                        f"{function_name}'s Timeout {timeout}")
    reserved = number(function.get("Properties", {}).get("ReservedConcurrentExecutions"))
    maximum = number(props.get("ScalingConfig", {}).get("MaximumConcurrency"))
    if expect_production and reserved is not None and maximum is not None and reserved < maximum:
        problems.append(f"{function_name}: reserved concurrency {reserved:g} under {mapping_name}'s "
                        f"MaximumConcurrency {maximum:g}: the mapping would be throttled")
    return problems


def queue_url_problems(template, functions, queue_name):
    """Every function allowed to send to the queue finds it in DELIVERY_QUEUE_URL; backends find it
    in the stack outputs."""
    problems = []
    granted = granted_actions(template)
    roles = resources(template, "AWS::IAM::Role")
    for name, fn in sorted(functions.items()):
        props = fn.get("Properties", {})
        sends = any("sqs:SendMessage" in granted.get(role, set())
                    for role in referenced(props.get("Role"), roles))
        url = props.get("Environment", {}).get("Variables", {}).get("DELIVERY_QUEUE_URL")
        if sends and url != {"Ref": queue_name}:
            problems.append(f"{name}: may send to {queue_name} but DELIVERY_QUEUE_URL does not name it")
    outputs = [o.get("Value") for o in template.get("Outputs", {}).values()]
    for value, what in (({"Ref": queue_name}, "URL"), ({"Fn::GetAtt": [queue_name, "Arn"]}, "ARN")):
        if value not in outputs:
            problems.append(f"no stack output with {queue_name}'s {what} (backends publish there)")
    return problems


# Lambda refuses reserved concurrency that would leave fewer unreserved executions than this for the
# functions without a reservation (UnreservedConcurrentExecutions); on an account whose quota is
# this or less (new accounts: as low as 10), the minimum it reports is the quota itself, so nothing
# can be reserved there at all.
UNRESERVED_MINIMUM = 100
# An SQS event source mapping on a function without a reservation draws from the pool the WebSocket
# routes' Lambdas share: it may take at most this share of it, or a backlog of delivery jobs would
# throttle every connect, message and disconnect.
QUEUE_SHARE = 0.5
# The lowest MaximumConcurrency an SQS event source mapping takes.
MAPPING_MINIMUM = 2


def account_concurrency_problems(template, functions, quota):
    """The template against the account's Lambda concurrency quota, as the deploy would meet it."""
    problems = []
    reserved = {}
    for name, fn in functions.items():
        props = fn.get("Properties", {})
        if "ReservedConcurrentExecutions" in props:
            value = number(props["ReservedConcurrentExecutions"])
            if value is None:
                problems.append(f"{name}: ReservedConcurrentExecutions {props['ReservedConcurrentExecutions']!r} "
                                f"is not a number: cannot be checked against the quota")
            else:
                reserved[name] = value
    total = sum(reserved.values())
    minimum = min(UNRESERVED_MINIMUM, quota)
    if reserved and quota - total < minimum:
        listed = ", ".join(f"{name} {value:g}" for name, value in sorted(reserved.items()))
        problems.append(f"reserved concurrency {total:g} in all ({listed}) against the account's quota of "
                        f"{quota}: Lambda keeps at least {minimum} unreserved (UnreservedConcurrentExecutions), "
                        f"so at most {max(quota - minimum, 0)} can be reserved; reserve less or raise the quota")
        return problems  # the deploy fails there: what the queue would share is moot
    pool = quota - total
    for name, mapping in resources(template, "AWS::Lambda::EventSourceMapping").items():
        props = mapping.get("Properties", {})
        maximum = number(props.get("ScalingConfig", {}).get("MaximumConcurrency"))
        targets = referenced(props.get("FunctionName"), functions)
        if maximum is None or any(target in reserved for target in targets):
            continue  # no cap is refused by queue_problems; a reservation caps the mapping itself
        if maximum > QUEUE_SHARE * pool:
            allowed = int(QUEUE_SHARE * pool)
            fix = (f"set fanoutMaximumConcurrency to at most {allowed}" if allowed >= MAPPING_MINIMUM
                   else f"the mapping takes no less than {MAPPING_MINIMUM}: raise the quota")
            problems.append(f"{name}: MaximumConcurrency {maximum:g} could take more than half of the {pool:g} "
                            f"concurrent executions it shares with the WebSocket routes (the account's quota "
                            f"{quota} less {total:g} reserved); {fix}")
    return problems


def check(template, expect_authorizer=False, expect_production=False, account_concurrency=None):
    functions = resources(template, "AWS::Lambda::Function")
    problems = function_problems(functions)
    problems += route_problems(template, functions, expect_authorizer)
    problems += table_problems(template)
    problems += iam_problems(template)
    problems += hard_coded_suffix_problems(template, functions)
    problems += stage_problems(template, expect_production)
    problems += monitoring_problems(template, functions)
    problems += queue_problems(template, functions, expect_production)
    if expect_production:
        problems += production_function_problems(functions)
    if account_concurrency is not None:
        problems += account_concurrency_problems(template, functions, account_concurrency)
    return problems


def option_value(argv, name):
    """The value of `name VALUE` or `name=VALUE` in argv; None when absent."""
    for index, arg in enumerate(argv):
        if arg == name:
            return argv[index + 1] if index + 1 < len(argv) else ""
        if arg.startswith(name + "="):
            return arg[len(name) + 1:]
    return None


def main(argv):
    if len(argv) < 2 or argv[1].startswith("-"):
        print(__doc__)
        return 2
    quota = option_value(argv, "--account-concurrency")
    if quota is not None and not quota.isdigit():
        print(f"check_template: --account-concurrency takes the account's Lambda concurrency quota, a "
              f"whole number; got {quota!r}")
        return 2
    template_path = Path(argv[1])
    template = json.loads(template_path.read_text())
    problems = check(template, expect_authorizer="--expect-authorizer" in argv,
                     expect_production="--expect-production" in argv,
                     account_concurrency=None if quota is None else int(quota))
    if "--artifacts" in argv:
        # serverless resolves artifact paths from the service directory: infra/, where the
        # package directory (.serverless by default) lives.
        problems += artifact_problems(template_path, template, template_path.resolve().parent.parent)
    for p in problems:
        print(f"check_template: {p}")
    if problems:
        return 1
    print(f"check_template: {argv[1]} is fine")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
