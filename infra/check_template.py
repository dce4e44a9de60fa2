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
- a role missing an action its code calls (REQUIRED_ACTIONS, read from infra/iam-calls.json: what
  each role's function and event source mappings called in the rehearsal, as
  `./scripts/rehearse --record-calls` writes it; a missing or malformed file is a problem too); any
  wildcard IAM resource beyond the two allowed suffixes (a log group's streams, and
  `POST /@connections/*` on this API's stage), a stand-alone IAM policy, any action but Query or
  Scan on an index;
- a hard-coded `amazonaws.com` in an endpoint the stack builds: a function's environment or an
  output (AWS::URLSuffix differs in the China partitions); the identity provider's URLs passed in
  as parameters (a Cognito JWKS URL or issuer) are the user's, not the stack's;
- a stage without throttling, a $default throttled more loosely than the stage, full request
  logging (DataTraceEnabled), or an access log format that could write the token;
- two functions uploaded under one S3 key (each would run the other's code);
- with --artifacts: a zip (read from serverless-state.json beside the template, its path from
  infra/, wherever the package directory is) whose `bootstrap` is missing, not executable, or built
  for another architecture than its function's;
- monitoring: a function without METRICS_NAMESPACE (or functions with different ones), a function
  without an alarm on its Errors and on its Throttles, no alarm on API Gateway's IntegrationError
  and ExecutionError, none on the posts that failed or were throttled or on authorizer denials in
  the functions' namespace or on the recipients given up on (DeliveryGivenUp), an alarm whose
  AlarmActions and OKActions differ, no dashboard;
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
- queued delivery, on every queue an event source mapping reads (the backend queue and the
  service's own): no SQS queue, a queue without encryption, a queue neither read by a mapping nor
  a dead-letter queue, a mapping without ReportBatchItemFailures or MaximumConcurrency or with
  batches above 10, a mapping whose function's role may not ReceiveMessage, DeleteMessage and
  GetQueueAttributes on its queue, a queue whose visibility timeout is under six times its
  function's timeout, no redrive to a dead-letter queue or no alarm on that queue's messages;
- the trust boundary between the two: a mapped queue no role may send to is where backends
  publish (at least one must exist, and the stack outputs its URL and ARN); a mapped queue some
  role sends to is the service's own, and needs an AWS::SQS::QueuePolicy that denies
  sqs:SendMessage (that action only) to Principal "*" unless aws:PrincipalArn (ArnNotEquals or
  ArnNotLike) is one of exactly the roles that send to it (Fn::GetAtt [Role, Arn]);
- queue variables: a function that may send to a mapped queue, or reads the service's own, without
  INTERNAL_QUEUE_URL naming it; one that may send to a dead-letter queue without
  DEAD_LETTER_QUEUE_URL naming it; either variable naming a queue the function's role may not send
  to, or INTERNAL_QUEUE_URL naming the backend queue (backends' jobs read as the service's);
- deadlines: FUNCTION_TIMEOUT_SECONDS other than the function's own Timeout, missing on a function
  that runs delivery jobs (may send to a mapped queue, or reads one), and a JOB_SAFETY_MARGIN_MS
  (5000 ms when unset) not below that timeout: the function would refuse to start;
- with --expect-production: a function without reserved concurrency (or with less than the sum
  of its SQS event source mappings' MaximumConcurrency), a stage without an access log, or a
  $default no stricter than the stage;
- with --account-concurrency N (the account's Lambda concurrency quota in the region:
  `aws lambda get-account-settings --query AccountLimit.ConcurrentExecutions`): reserved
  concurrency that leaves less unreserved than Lambda's minimum (100, or the whole quota when it
  is 100 or less: new accounts may have 10), and SQS event source mappings on a function without
  reserved concurrency whose MaximumConcurrency, one or all of them together, is more than half of
  what they share with the WebSocket routes.

    python3 check_template.py TEMPLATE.json [--artifacts] [--expect-authorizer] [--expect-production]
                              [--account-concurrency N]
"""
import fnmatch
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
    re.compile(r"^arn:\$\{AWS::Partition\}:execute-api:\$\{AWS::Region\}:\$\{AWS::AccountId\}:\$\{WebsocketsApi\}/[A-Za-z0-9_-]+/(POST|DELETE)/@connections/\*$"),
]


def statements_of(template):
    for name, role in resources(template, "AWS::IAM::Role").items():
        for policy in role.get("Properties", {}).get("Policies", []):
            for statement in policy.get("PolicyDocument", {}).get("Statement", []):
                yield name, statement


# What each role's code calls, so a grant the code needs cannot go missing (the other checks only
# keep grants from growing): infra/iam-calls.json, written from the rehearsal's record by
# `./scripts/rehearse --record-calls` (each role's function's calls, and the event source
# mappings' with its role; the Lambda service's log calls are not in it), never by hand.
CALLS_FILE = Path(__file__).resolve().parent / "iam-calls.json"


def read_required_actions(path=CALLS_FILE):
    """({role: {action}}, problem or None) from the calls file."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        return {}, f"{path}: {e}: the grants the code needs are unknown (./scripts/rehearse --record-calls)"
    malformed = f"{path}: not {{role: [action, ...]}} (./scripts/rehearse --record-calls writes it)"
    if not isinstance(data, dict):
        return {}, malformed
    roles = {role: actions for role, actions in data.items() if not role.startswith("//")}
    for actions in roles.values():
        if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
            return {}, malformed
    return {role: set(actions) for role, actions in roles.items()}, None


REQUIRED_ACTIONS, CALLS_FILE_PROBLEM = read_required_actions()


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
    problems = [CALLS_FILE_PROBLEM] if CALLS_FILE_PROBLEM else []
    return problems + [f"{name}: missing {sorted(needed - granted.get(name, set()))}: the code calls them"
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


# A resource Fn::Sub names: ${Name} or ${Name.Attribute} (not ${!Literal}).
SUB_NAME = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}")


def referenced(value, candidates):
    """The logical ids among `candidates` that `value` names through Ref, Fn::GetAtt (either form)
    or Fn::Sub."""
    found = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and inner in candidates:
                found.add(inner)
            elif key == "Fn::GetAtt" and isinstance(inner, list) and inner and inner[0] in candidates:
                found.add(inner[0])
            elif key == "Fn::GetAtt" and isinstance(inner, str) and inner.split(".")[0] in candidates:
                found.add(inner.split(".")[0])
            elif key == "Fn::Sub":
                text, names = (inner, {}) if isinstance(inner, str) else (inner + ["", {}])[:2]
                found |= {n for n in SUB_NAME.findall(text if isinstance(text, str) else "")
                          if n in candidates and n not in names}
                found |= referenced(names, candidates)
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
# DeliveryGivenUp: recipients handed over MAX_ATTEMPTS times who never got their message.
WATCHED_METRICS = ("PostsFailed", "PostsThrottled", "AuthorizerDecisions", "DeliveryGivenUp")
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


def allows(actions, action):
    """Whether an IAM Action value (a string or a list; `sqs:*`-style wildcards count) covers
    `action`. IAM action names are case-insensitive."""
    return any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in as_list(actions) if isinstance(a, str))


def queue_grants(template, queues, action):
    """Each role's queues (among `queues`, named by Ref, Fn::GetAtt or Fn::Sub) on which an Allow
    statement grants `action`."""
    grants = {}
    for role, statement in statements_of(template):
        if statement.get("Effect") == "Allow" and allows(statement.get("Action", []), action):
            grants.setdefault(role, set()).update(referenced(statement.get("Resource", []), queues))
    return grants


def senders_by_queue(sends):
    """queue -> the roles that may sqs:SendMessage to it, from role -> queues."""
    senders = {}
    for role, targets in sends.items():
        for queue in targets:
            senders.setdefault(queue, set()).add(role)
    return senders


# What an event source mapping calls on its queue with its function's role; Lambda refuses to create
# (or run) one whose role lacks any of them on the queue. ChangeMessageVisibility is required through
# REQUIRED_ACTIONS only: the rehearsal saw it, the local gateway's mapping making failed records
# visible again at once with the function's role.
MAPPING_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


def queue_problems(template, functions, expect_production):
    """The delivery queues: backends publish to a queue no function writes (DeliveryQueue), the
    service hands its own jobs over through a queue only its roles may write (InternalQueue), and
    both are read by event source mappings and redrive to the dead letters."""
    queues = resources(template, "AWS::SQS::Queue")
    if not queues:
        return ["no SQS delivery queue"]
    roles = resources(template, "AWS::IAM::Role")
    problems = [f"{name}: server-side encryption is off (SqsManagedSseEnabled or KmsMasterKeyId)"
                for name, queue in queues.items()
                if not (queue.get("Properties", {}).get("SqsManagedSseEnabled") is True
                        or queue.get("Properties", {}).get("KmsMasterKeyId"))]
    mappings = {name: m for name, m in resources(template, "AWS::Lambda::EventSourceMapping").items()
                if referenced(m.get("Properties", {}).get("EventSourceArn"), queues)}
    if not mappings:
        problems.append("no event source mapping on an SQS queue: nothing would run the delivery jobs")
    seen = watched(resources(template, "AWS::CloudWatch::Alarm"))
    grants = {action: queue_grants(template, queues, action)
              for action in MAPPING_ACTIONS + ("sqs:SendMessage",)}
    sends = grants["sqs:SendMessage"]
    mapped, reads = set(), {}
    for name, mapping in sorted(mappings.items()):
        props = mapping.get("Properties", {})
        if "ReportBatchItemFailures" not in props.get("FunctionResponseTypes", []):
            problems.append(f"{name}: no ReportBatchItemFailures: one failed job would send its whole batch back")
        if number(props.get("ScalingConfig", {}).get("MaximumConcurrency")) is None:
            problems.append(f"{name}: no ScalingConfig.MaximumConcurrency: the queue could take the account's whole concurrency")
        batch = number(props.get("BatchSize"))
        if batch is None or batch > SQS_BATCH_LIMIT:
            problems.append(f"{name}: BatchSize {props.get('BatchSize')!r}, expected at most {SQS_BATCH_LIMIT}")
        for queue_name in sorted(referenced(props.get("EventSourceArn"), queues)):
            mapped.add(queue_name)
            for function_name in sorted(referenced(props.get("FunctionName"), functions)):
                reads.setdefault(function_name, set()).add(queue_name)
                function = functions[function_name]
                problems += visibility_problems(queue_name, queues[queue_name], function_name, function)
                for role in sorted(referenced(function.get("Properties", {}).get("Role"), roles)):
                    missing = [a for a in MAPPING_ACTIONS if queue_name not in grants[a].get(role, set())]
                    if missing:
                        problems.append(f"{name}: {role} may not {missing} on {queue_name}: Lambda cannot read "
                                        f"the queue with {function_name}'s role (the mapping is refused)")
    dead_letters = set()
    for queue_name in sorted(mapped):
        redrive_problems, targets = redrive_of(queue_name, queues)
        problems += redrive_problems
        dead_letters |= targets
    problems += [f"{dlq}: no alarm on ApproximateNumberOfMessagesVisible (dead letters would go unnoticed)"
                 for dlq in sorted(dead_letters)
                 if (json.dumps("AWS/SQS"), "ApproximateNumberOfMessagesVisible",
                     json.dumps({"Fn::GetAtt": [dlq, "QueueName"]}, sort_keys=True)) not in seen]
    for queue_name in sorted(set(queues) - mapped - dead_letters):
        problems.append(f"{queue_name}: no event source mapping reads it and no queue dead-letters to it: "
                        f"its jobs would wait unread until they expire")
    senders = senders_by_queue(sends)
    problems += backend_queue_problems(template, mapped, senders)
    problems += queue_policy_problems(template, mapped, senders, roles)
    problems += queue_url_problems(functions, queues, roles, mapped, dead_letters, sends, reads)
    problems += deadline_problems(functions, roles, mapped, sends, reads)
    if expect_production:
        problems += reservation_problems(functions, mappings)
    return problems


def redrive_of(queue_name, queues):
    """A mapped queue's redrive to a dead-letter queue of the stack: its problem, and the queues it
    names."""
    redrive = queues[queue_name].get("Properties", {}).get("RedrivePolicy", {})
    dead_letters = referenced(redrive.get("deadLetterTargetArn"), queues)
    if not dead_letters or number(redrive.get("maxReceiveCount")) is None:
        return [f"{queue_name}: no redrive policy to a dead-letter queue in this stack"], dead_letters
    return [], dead_letters


def visibility_problems(queue_name, queue, function_name, function):
    timeout = number(function.get("Properties", {}).get("Timeout", DEFAULT_TIMEOUT))
    visibility = number(queue.get("Properties", {}).get("VisibilityTimeout", 30))
    if timeout is None or visibility is None or visibility < VISIBILITY_PER_TIMEOUT * timeout:
        return [f"{queue_name}: VisibilityTimeout {visibility} is under {VISIBILITY_PER_TIMEOUT} x "
                f"{function_name}'s Timeout {timeout}"]
    return []


def mapping_maxima(functions, mappings):
    """function -> {mapping: MaximumConcurrency} of the SQS mappings that invoke it."""
    maxima = {}
    for name, mapping in mappings.items():
        props = mapping.get("Properties", {})
        maximum = number(props.get("ScalingConfig", {}).get("MaximumConcurrency"))
        for function_name in referenced(props.get("FunctionName"), functions):
            if maximum is not None:
                maxima.setdefault(function_name, {})[name] = maximum
    return maxima


def listing(values):
    return ", ".join(f"{name} {value:g}" for name, value in sorted(values.items()))


def reservation_problems(functions, mappings):
    """A function's reservation caps every mapping on it at once: below their sum, Lambda throttles
    the mappings (AWS: reserved concurrency at least the total MaximumConcurrency of the function's
    SQS event sources)."""
    problems = []
    for function_name, maxima in sorted(mapping_maxima(functions, mappings).items()):
        reserved = number(functions[function_name].get("Properties", {}).get("ReservedConcurrentExecutions"))
        total = sum(maxima.values())
        if reserved is None or reserved >= total:
            continue
        if len(maxima) == 1:
            [(mapping_name, maximum)] = maxima.items()
            problems.append(f"{function_name}: reserved concurrency {reserved:g} under {mapping_name}'s "
                            f"MaximumConcurrency {maximum:g}: the mapping would be throttled")
        else:
            problems.append(f"{function_name}: reserved concurrency {reserved:g} under its SQS mappings' "
                            f"MaximumConcurrency, {total:g} in all ({listing(maxima)}): the mappings would be "
                            f"throttled (reserve at least their sum)")
    return problems


def backend_queue_problems(template, mapped, senders):
    """The mapped queues no role of the stack may send to are where backends publish: there must be
    one, and the stack outputs its URL and ARN. The service's own queue needs neither."""
    problems = []
    backend = sorted(queue for queue in mapped if not senders.get(queue))
    if mapped and not backend:
        writers = "; ".join(f"{queue} by {', '.join(sorted(senders[queue]))}" for queue in sorted(mapped))
        problems.append(f"no backend queue: every mapped queue may be written by a function's role ({writers}); "
                        f"backends need one that no function sends to, read as a backend's (it cannot speak as a user)")
    outputs = [o.get("Value") for o in template.get("Outputs", {}).values()]
    for queue_name in backend:
        for value, what in (({"Ref": queue_name}, "URL"), ({"Fn::GetAtt": [queue_name, "Arn"]}, "ARN")):
            if value not in outputs:
                problems.append(f"no stack output with {queue_name}'s {what} (backends publish there)")
    return problems


# A Deny's exception may name its principals only by ARN.
PRINCIPAL_ARN_OPERATORS = ("ArnNotEquals", "ArnNotLike")
# The one principal besides the senders a Deny may except: the operator's role for moving dead
# letters back (SQS's redrive sends as its caller), a stack parameter that is empty by default.
REDRIVE_ROLE_PARAMETER = "RedriveRoleArn"


def exception_branches(values):
    """The lists of values an aws:PrincipalArn exception can be: one, or each branch of an Fn::If
    (each must except exactly the senders)."""
    if isinstance(values, dict) and "Fn::If" in values and len(values["Fn::If"]) == 3:
        return [branch for value in values["Fn::If"][1:] for branch in exception_branches(value)]
    return [as_list(values)]


def queue_policy_problems(template, mapped, senders, roles):
    """A mapped queue some role sends to is the service's own: its jobs may carry a sender and
    recipients, so its policy denies sqs:SendMessage to every principal but exactly those roles (a
    backend with sqs:SendMessage on every queue of the account must still not write there)."""
    problems = []
    policies = resources(template, "AWS::SQS::QueuePolicy")
    for queue_name in sorted(mapped):
        writers = senders.get(queue_name, set())
        if not writers:
            continue
        attached = sorted(name for name, policy in policies.items()
                          if queue_name in referenced(policy.get("Properties", {}).get("Queues"), {queue_name}))
        if not attached:
            problems.append(f"{queue_name}: no AWS::SQS::QueuePolicy denying sqs:SendMessage to all but "
                            f"{sorted(writers)}: any principal allowed sqs:SendMessage (a backend's broad grant) "
                            f"could write a job that speaks as a user")
        elif len(attached) > 1:
            problems.append(f"{queue_name}: {attached} each set its policy; SQS keeps one, the last applied")
        for policy_name in attached:
            problems += deny_problems(policy_name, policies[policy_name], queue_name, writers, roles)
    return problems


def deny_problems(policy_name, policy, queue_name, writers, roles):
    document = policy.get("Properties", {}).get("PolicyDocument", {})
    statements = [s for s in as_list(document.get("Statement", [])) if isinstance(s, dict)
                  and allows(s.get("Action", []), "sqs:SendMessage")
                  and (queue_name in referenced(s.get("Resource"), {queue_name}) or "*" in as_list(s.get("Resource")))]
    denies = [s for s in statements if s.get("Effect") == "Deny"]
    if not denies:
        allowed = " (an Allow grants; it keeps no one out)" if statements else ""
        return [f"{policy_name}: no Deny of sqs:SendMessage on {queue_name} to Principal \"*\"{allowed}: any "
                f"principal allowed sqs:SendMessage could write a job that speaks as a user"]
    judged = [(statement_problems(policy_name, s, queue_name, writers, roles), s) for s in denies]
    if any(not found for found, _ in judged):
        return []
    # The problems of the Deny that tries to except the senders (others, like a TLS-only Deny, are
    # not this one).
    trying = [found for found, s in judged if "aws:principalarn" in json.dumps(s.get("Condition", {})).lower()]
    return (trying or [judged[0][0]])[0]


def statement_problems(policy_name, statement, queue_name, writers, roles):
    problems = []
    if statement.get("Principal") not in ("*", {"AWS": "*"}) or "NotPrincipal" in statement:
        problems.append(f"{policy_name}: the Deny on {queue_name} applies to "
                        f"{statement.get('Principal', statement.get('NotPrincipal'))!r}, expected Principal \"*\"")
    actions = [a for a in as_list(statement.get("Action", [])) if isinstance(a, str)]
    if [a.lower() for a in actions] != ["sqs:sendmessage"]:
        problems.append(f"{policy_name}: the Deny on {queue_name} covers {actions}: to every principal but the "
                        f"senders, CloudFormation could no longer change or delete the queue; deny sqs:SendMessage only")
    condition = statement.get("Condition", {})
    if not condition:
        return problems + [f"{policy_name}: the Deny on {queue_name} has no exception: it refuses "
                           f"{sorted(writers)} too (ArnNotEquals on aws:PrincipalArn)"]
    branches, others = [], []
    for operator, keys in condition.items():
        for key, values in (keys.items() if isinstance(keys, dict) else [(str(keys), None)]):
            if operator not in PRINCIPAL_ARN_OPERATORS or key.lower() != "aws:principalarn":
                others.append(f"{operator} {key}")
                continue
            branches += exception_branches(values)
    if others:
        problems.append(f"{policy_name}: the Deny on {queue_name} also tests {others}: every condition must hold "
                        f"for a Deny, so each narrows it; except the senders by aws:PrincipalArn only "
                        f"({' or '.join(PRINCIPAL_ARN_OPERATORS)})")
    for branch in branches or [[]]:
        named = set()
        for value in branch:
            if value == {"Ref": REDRIVE_ROLE_PARAMETER}:
                continue
            role = referenced(value, roles) if isinstance(value, dict) and "Fn::GetAtt" in value else set()
            if not role:
                problems.append(f"{policy_name}: aws:PrincipalArn {value!r} is not Fn::GetAtt [Role, Arn] "
                                f"of a role of this stack")
            named |= role
        if writers - named:
            problems.append(f"{policy_name}: denies sqs:SendMessage on {queue_name} to {sorted(writers - named)}, "
                            f"which send to it: their jobs would be refused")
        if named - writers:
            problems.append(f"{policy_name}: excepts {sorted(named - writers)} from the Deny on {queue_name}, but "
                            f"no grant lets them send to it: except exactly the senders {sorted(writers)}")
    return problems


def queue_url_problems(functions, queues, roles, mapped, dead_letters, sends, reads):
    """Every function finds the queues it sends to in its environment: INTERNAL_QUEUE_URL the
    service's own (which also tells `fanout` the service's jobs from backends'), and
    DEAD_LETTER_QUEUE_URL the dead letters. Backends find theirs in the stack outputs."""
    problems = []
    internal = {queue for queue in mapped if any(queue in targets for targets in sends.values())}
    for name, fn in sorted(functions.items()):
        props = fn.get("Properties", {})
        variables = props.get("Environment", {}).get("Variables", {})
        may_send = set().union(*(sends.get(role, set()) for role in referenced(props.get("Role"), roles)))
        needed = [("INTERNAL_QUEUE_URL", queue, "may send to") for queue in sorted(may_send & mapped)]
        needed += [("INTERNAL_QUEUE_URL", queue, "reads the service's own queue")
                   for queue in sorted((reads.get(name, set()) & internal) - may_send)]
        needed += [("DEAD_LETTER_QUEUE_URL", queue, "may send to") for queue in sorted(may_send & dead_letters)]
        for variable, queue, why in needed:
            if variables.get(variable) != {"Ref": queue}:
                problems.append(f"{name}: {why} {queue} but {variable} does not name it")
        for variable, kind in (("INTERNAL_QUEUE_URL", mapped), ("DEAD_LETTER_QUEUE_URL", dead_letters)):
            if variable not in variables:
                continue
            named = referenced(variables[variable], queues) if isinstance(variables[variable], dict) else set()
            if not named:
                problems.append(f"{name}: {variable} {variables[variable]!r} is not a Ref to a queue of this stack")
            for queue in sorted(named):
                if variable == "INTERNAL_QUEUE_URL" and queue in mapped - internal:
                    problems.append(f"{name}: INTERNAL_QUEUE_URL names {queue}, where backends publish: their "
                                    f"jobs would be read as the service's (a backend could speak as a user)")
                elif queue not in kind:
                    what = "a mapped queue" if variable == "INTERNAL_QUEUE_URL" else "a mapped queue's dead-letter queue"
                    problems.append(f"{name}: {variable} names {queue}, which is not {what}")
                elif queue not in may_send:
                    problems.append(f"{name}: {variable} names {queue}, but its role may not sqs:SendMessage "
                                    f"there: every send would be refused")
    return problems


# The worker's JOB_SAFETY_MARGIN_MS when unset (adapters/src/settings.rs).
DEFAULT_JOB_SAFETY_MARGIN_MS = 5000


def deadline_problems(functions, roles, mapped, sends, reads):
    """FUNCTION_TIMEOUT_SECONDS is what the function knows of its own timeout (Lambda does not say):
    it must be that timeout, on every function that runs delivery jobs, and JOB_SAFETY_MARGIN_MS must
    leave time under it, or the function refuses to start (adapters/src/config.rs)."""
    problems = []
    for name, fn in sorted(functions.items()):
        props = fn.get("Properties", {})
        variables = props.get("Environment", {}).get("Variables", {})
        timeout_value = props.get("Timeout", DEFAULT_TIMEOUT)
        timeout = number(timeout_value)
        declared = variables.get("FUNCTION_TIMEOUT_SECONDS")
        may_send = set().union(*(sends.get(role, set()) for role in referenced(props.get("Role"), roles)))
        runs_jobs = bool(may_send & mapped or reads.get(name))
        if declared is None:
            if runs_jobs:
                problems.append(f"{name}: runs delivery jobs but has no FUNCTION_TIMEOUT_SECONDS: JOB_SAFETY_MARGIN_MS "
                                f"would be held to 900 s, not to its Timeout {timeout_value!r}")
        elif not (declared == timeout_value or (number(declared) is not None and number(declared) == timeout)):
            problems.append(f"{name}: FUNCTION_TIMEOUT_SECONDS {declared!r} is not its Timeout {timeout_value!r}")
        if declared is None and "JOB_SAFETY_MARGIN_MS" not in variables and not runs_jobs:
            continue
        margin = number(variables.get("JOB_SAFETY_MARGIN_MS", DEFAULT_JOB_SAFETY_MARGIN_MS))
        if margin is not None and timeout is not None and margin >= timeout * 1000:
            unset = "" if "JOB_SAFETY_MARGIN_MS" in variables else " (unset: the default)"
            problems.append(f"{name}: JOB_SAFETY_MARGIN_MS {margin:g} ms{unset} is not below its Timeout of "
                            f"{timeout:g} s: the function would refuse to start")
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
    allowed = int(QUEUE_SHARE * pool)
    mappings = resources(template, "AWS::Lambda::EventSourceMapping")
    for function_name, maxima in sorted(mapping_maxima(functions, mappings).items()):
        if function_name in reserved:
            continue  # no cap is refused by queue_problems; a reservation caps the mappings itself
        # One parameter sets every mapping on the function (serverless.yml): its share is split.
        each = allowed // len(maxima)
        shared = f" (its {len(maxima)} mappings each take it)" if len(maxima) > 1 else ""
        fix = (f"set fanoutMaximumConcurrency to at most {each}{shared}" if each >= MAPPING_MINIMUM
               else f"the mapping takes no less than {MAPPING_MINIMUM}{shared}: raise the quota")
        over = {name: maximum for name, maximum in maxima.items() if maximum > QUEUE_SHARE * pool}
        for name, maximum in sorted(over.items()):
            problems.append(f"{name}: MaximumConcurrency {maximum:g} could take more than half of the {pool:g} "
                            f"concurrent executions it shares with the WebSocket routes (the account's quota "
                            f"{quota} less {total:g} reserved); {fix}")
        # Each within its share, together perhaps not: the mappings invoke the function at once.
        if not over and sum(maxima.values()) > QUEUE_SHARE * pool:
            problems.append(f"{function_name}: its SQS mappings' MaximumConcurrency, {sum(maxima.values()):g} in all "
                            f"({listing(maxima)}), could take more than half of the {pool:g} concurrent executions "
                            f"they share with the WebSocket routes (the account's quota {quota} less {total:g} "
                            f"reserved); {fix}")
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
        # serverless resolves artifact paths from the service directory: infra/, where
        # serverless.yml and this checker live, wherever the package directory is (--package).
        problems += artifact_problems(template_path, template, Path(__file__).resolve().parent)
    for p in problems:
        print(f"check_template: {p}")
    if problems:
        return 1
    print(f"check_template: {argv[1]} is fine")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
