"""The template check must catch each fault it names: each test breaks a good template one way."""
import contextlib
import io
import json
import os
import struct
import sys
import tempfile
import unittest
import zipfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
import artifacts  # noqa: E402
import check_template  # noqa: E402

CONNECTIONS_ARN = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebsocketsApi}/dev/%s/@connections/*"
SSM_SECRET = "{{resolve:ssm:/ws-chat/dev/jwt-secret}}"
NAMESPACE = "ws-chat/dev"
ACTIONS = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
COGNITO = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example1"
SEARCH = "SEARCH('{\"ws-chat/dev\",Action} MetricName=\"Messages\"', 'Sum', 300)"


def dashboard_body():
    """A dashboard body as serverless.yml writes one (an Fn::Sub string, once parsed)."""
    return {"widgets": [
        {"type": "metric", "x": 0, "y": 0, "width": 12, "height": 6, "properties": {
            "title": "Traffic", "region": "${AWS::Region}", "stat": "Sum", "period": 300, "view": "timeSeries",
            "metrics": [
                ["AWS/ApiGateway", "ConnectCount", "ApiId", "${WebsocketsApi}"],
                [NAMESPACE, "ConnectionsOpened"],
                ["AWS/Lambda", "Duration", "FunctionName", "${ConnectLambdaFunction}", {"label": "connect", "id": "m1"}],
                ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "${DeliveryQueue.QueueName}"],
                [{"expression": SEARCH, "label": "Messages", "id": "emessagessum"}],
            ]}},
        {"type": "text", "x": 12, "y": 0, "width": 12, "height": 6, "properties": {"markdown": "Runbook: ${!NotSubstituted}"}},
    ]}


def alarm(namespace, metric, dimension=None, math=False, band=False):
    """An alarm on one metric: plain, read through metric math as the throttled share is, or
    against its anomaly band as the authorizer's denials are."""
    dimensions = [{"Name": "D", "Value": dimension}] if dimension else []
    stat = {"Id": "m", "MetricStat": {
        "Metric": {"Namespace": namespace, "MetricName": metric, "Dimensions": dimensions},
        "Period": 300, "Stat": "Sum"}}
    if band:
        props = {"Metrics": [{"Id": "band", "Expression": "ANOMALY_DETECTION_BAND(m, 3)"}, stat],
                 "ThresholdMetricId": "band", "ComparisonOperator": "GreaterThanUpperThreshold"}
    elif math:
        props = {"Metrics": [{"Id": "e", "Expression": "IF(m > 0, 100 * FILL(m, 0) / m, 0)"},
                             {**stat, "ReturnData": False}],
                 "Threshold": 5, "ComparisonOperator": "GreaterThanThreshold"}
    else:
        props = {"Namespace": namespace, "MetricName": metric, "Dimensions": dimensions}
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {**props, "AlarmActions": ACTIONS, "OKActions": ACTIONS}}


def monitoring():
    alarms = {f"{fn}{metric}Alarm": alarm("AWS/Lambda", metric, {"Ref": f"{fn}LambdaFunction"})
              for fn in ("Connect", "Authorizer", "Default") for metric in ("Errors", "Throttles")}
    alarms.update({f"Api{metric}Alarm": alarm("AWS/ApiGateway", metric, {"Ref": "WebsocketsApi"})
                   for metric in ("IntegrationError", "ExecutionError")})
    alarms["FailedAlarm"] = alarm(NAMESPACE, "PostsFailed")
    alarms["ThrottledAlarm"] = alarm(NAMESPACE, "PostsThrottled", math=True)
    alarms["DenialsAlarm"] = alarm(NAMESPACE, "AuthorizerDecisions", "deny", band=True)
    alarms["GivenUpAlarm"] = alarm(NAMESPACE, "DeliveryGivenUp")
    alarms["Dashboard"] = {"Type": "AWS::CloudWatch::Dashboard",
                           "Properties": {"DashboardBody": {"Fn::Sub": json.dumps(dashboard_body())}}}
    return alarms


QUEUE_ACTIONS = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]


def queue_arn(name):
    return {"Fn::GetAtt": [name, "Arn"]}


def role_arn(name):
    return {"Fn::GetAtt": [name, "Arn"]}


def delivery():
    """The two delivery queues as serverless.yml has them: DeliveryQueue, where backends publish (no
    function sends there), and InternalQueue, the service's own (DefaultRole and FanoutRole send
    there, and its policy denies everyone else); both redrive to the dead letters, and the fan-out
    function reads both and dead-letters jobs itself."""
    def queue():
        return {"Type": "AWS::SQS::Queue", "Properties": {
            "SqsManagedSseEnabled": True, "VisibilityTimeout": 360,
            "RedrivePolicy": {"deadLetterTargetArn": queue_arn("DeadLetters"), "maxReceiveCount": 3}}}

    def mapping(queue_name):
        return {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
            "EventSourceArn": queue_arn(queue_name),
            "FunctionName": {"Fn::GetAtt": ["FanoutLambdaFunction", "Arn"]}, "BatchSize": 10,
            "FunctionResponseTypes": ["ReportBatchItemFailures"], "ScalingConfig": {"MaximumConcurrency": 2}}}

    return {
        "DeliveryQueue": queue(),
        "InternalQueue": queue(),
        "InternalQueuePolicy": {"Type": "AWS::SQS::QueuePolicy", "Properties": {
            "Queues": [{"Ref": "InternalQueue"}],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Sid": "OnlyTheServiceWrites", "Effect": "Deny", "Principal": "*", "Action": "sqs:SendMessage",
                "Resource": queue_arn("InternalQueue"),
                "Condition": {"ArnNotEquals": {"aws:PrincipalArn": [role_arn("DefaultRole"), role_arn("FanoutRole")]}}}]}}},
        "DeadLetters": {"Type": "AWS::SQS::Queue", "Properties": {"SqsManagedSseEnabled": True}},
        "DeadLettersAlarm": alarm("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"Fn::GetAtt": ["DeadLetters", "QueueName"]}),
        "FanoutLambdaFunction": {"Type": "AWS::Lambda::Function", "Properties": {
            "Runtime": "provided.al2023", "Handler": "bootstrap", "FunctionName": "ws-chat-dev-fanout",
            "Architectures": ["arm64"], "Code": {"S3Key": "serverless/ws-chat/dev/1/fanout.zip"}, "Timeout": 60,
            "Role": role_arn("FanoutRole"),
            "Environment": {"Variables": {
                "METRICS_NAMESPACE": NAMESPACE, "INTERNAL_QUEUE_URL": {"Ref": "InternalQueue"},
                "DEAD_LETTER_QUEUE_URL": {"Ref": "DeadLetters"}, "FUNCTION_TIMEOUT_SECONDS": "60"}}}},
        **{f"Fanout{metric}Alarm": alarm("AWS/Lambda", metric, {"Ref": "FanoutLambdaFunction"})
           for metric in ("Errors", "Throttles")},
        "FanoutMapping": mapping("DeliveryQueue"),
        "FanoutInternalMapping": mapping("InternalQueue"),
        "FanoutRole": {"Type": "AWS::IAM::Role", "Properties": {"Policies": [{"PolicyDocument": {"Statement": [
            {"Effect": "Allow", "Action": list(QUEUE_ACTIONS),
             "Resource": [queue_arn("DeliveryQueue"), queue_arn("InternalQueue")]},
            {"Effect": "Allow", "Action": ["sqs:SendMessage"],
             "Resource": [queue_arn("InternalQueue"), queue_arn("DeadLetters")]},
            {"Effect": "Allow", "Action": [
                "dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:PutItem",
                "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"],
             "Resource": {"Fn::GetAtt": ["ConnectionsTable", "Arn"]}},
            {"Effect": "Allow", "Action": ["execute-api:ManageConnections"], "Resource": [
                {"Fn::Sub": CONNECTIONS_ARN % "POST"}]},
        ]}}]}},
        # `default`: hands the rest of large broadcasts over to the service's own queue.
        "DefaultLambdaFunction": {"Type": "AWS::Lambda::Function", "Properties": {
            "Runtime": "provided.al2023", "Handler": "bootstrap", "FunctionName": "ws-chat-dev-default",
            "Architectures": ["arm64"], "Code": {"S3Key": "serverless/ws-chat/dev/1/default.zip"}, "Timeout": 29,
            "Role": role_arn("DefaultRole"),
            "Environment": {"Variables": {
                "METRICS_NAMESPACE": NAMESPACE, "INTERNAL_QUEUE_URL": {"Ref": "InternalQueue"},
                "FUNCTION_TIMEOUT_SECONDS": "29"}}}},
    }


def minimal():
    return {
        "Resources": {
            "ConnectLambdaFunction": {"Type": "AWS::Lambda::Function", "Properties": {
                "Runtime": "provided.al2023", "Handler": "bootstrap", "FunctionName": "ws-chat-dev-connect",
                "Architectures": ["arm64"], "Code": {"S3Key": "serverless/ws-chat/dev/1/connect.zip"},
                "Environment": {"Variables": {
                    "REQUIRE_PRINCIPAL": "true", "METRICS_NAMESPACE": NAMESPACE,
                    "MANAGEMENT_ENDPOINT": {"Fn::Sub": "https://${WebsocketsApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/dev"}}}}},
            "AuthorizerLambdaFunction": {"Type": "AWS::Lambda::Function", "Properties": {
                "Runtime": "provided.al2023", "Handler": "bootstrap", "FunctionName": "ws-chat-dev-authorizer",
                "Architectures": ["arm64"], "Code": {"S3Key": "serverless/ws-chat/dev/1/authorizer.zip"},
                "Environment": {"Variables": {"JWKS_URL": "", "JWT_SECRET": SSM_SECRET, "METRICS_NAMESPACE": NAMESPACE}}}},
            "ConnectLogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 14}},
            "ConnectIntegration": {"Type": "AWS::ApiGatewayV2::Integration", "Properties": {
                "IntegrationUri": {"Fn::Join": ["", ["arn:", {"Fn::GetAtt": ["ConnectLambdaFunction", "Arn"]}, "/invocations"]]}}},
            "R1": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {
                "RouteKey": "$connect", "AuthorizationType": "CUSTOM", "AuthorizerId": {"Ref": "A"},
                "Target": {"Fn::Join": ["/", ["integrations", {"Ref": "ConnectIntegration"}]]}}},
            "R2": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {"RouteKey": "$disconnect"}},
            "R3": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {"RouteKey": "$default"}},
            "Stage": {"Type": "AWS::ApiGatewayV2::Stage", "Properties": {
                "DefaultRouteSettings": {"ThrottlingRateLimit": "500", "ThrottlingBurstLimit": "1000"},
                "RouteSettings": {"$default": {"ThrottlingRateLimit": "100", "ThrottlingBurstLimit": "200"}}}},
            "ConnectionsTable": {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "RetainExceptOnCreate",
                                 "UpdateReplacePolicy": "Retain", "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": True},
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "SSESpecification": {"SSEEnabled": True}}},
            **monitoring(),
            "DefaultRole": {"Type": "AWS::IAM::Role", "Properties": {"Policies": [{"PolicyDocument": {"Statement": [
                {"Effect": "Allow", "Action": ["logs:PutLogEvents"], "Resource": {"Fn::GetAtt": ["ConnectLogGroup", "Arn"]}},
                {"Effect": "Allow", "Action": ["dynamodb:Query"],
                 "Resource": {"Fn::Join": ["/", [{"Fn::GetAtt": ["ConnectionsTable", "Arn"]}, "index", "connections"]]}},
                {"Effect": "Allow", "Action": ["execute-api:ManageConnections"], "Resource": [
                    {"Fn::Sub": CONNECTIONS_ARN % "POST"}]},
                {"Effect": "Allow", "Action": [
                    "dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:PutItem",
                    "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"],
                 "Resource": {"Fn::GetAtt": ["ConnectionsTable", "Arn"]}},
                {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": queue_arn("InternalQueue")},
            ]}}]}},
            **delivery(),
            "DisconnectRole": {"Type": "AWS::IAM::Role", "Properties": {"Policies": [{"PolicyDocument": {"Statement": [
                {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
                                               "dynamodb:Query"],
                 "Resource": {"Fn::GetAtt": ["ConnectionsTable", "Arn"]}},
                {"Effect": "Allow", "Action": ["execute-api:ManageConnections"], "Resource": [
                    {"Fn::Sub": CONNECTIONS_ARN % "POST"}]},
            ]}}]}},
        },
        "Outputs": {"WebSocketUrl": {"Value": {"Fn::Sub": "wss://${WebsocketsApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/dev"}},
                    # The backend queue's only: the service's own queue is nobody else's business.
                    "QueueUrl": {"Value": {"Ref": "DeliveryQueue"}},
                    "QueueArn": {"Value": {"Fn::GetAtt": ["DeliveryQueue", "Arn"]}}},
    }


def resource(template, name):
    return template["Resources"][name]


def role_statements(template, role):
    return resource(template, role)["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


def statements(template):
    return role_statements(template, "DefaultRole")


def stage(template):
    return resource(template, "Stage")["Properties"]


def variables(template, function):
    return resource(template, function)["Properties"]["Environment"]["Variables"]


def with_dashboard(body):
    """A good template whose dashboard body is `body` (a dict to serialise, or the raw text)."""
    t = minimal()
    text = body if isinstance(body, str) else json.dumps(body)
    resource(t, "Dashboard")["Properties"]["DashboardBody"] = {"Fn::Sub": text}
    return t


def dashboard_problems(body):
    return [p for p in check_template.check(with_dashboard(body)) if p.startswith("Dashboard")]


def problems_mentioning(text, template, **options):
    return [p for p in check_template.check(template, **options) if text in p]


def elf_header(machine, elf_class=2):
    """The first bytes of a 64-bit little-endian ELF executable for `machine`."""
    return b"\x7fELF" + bytes([elf_class, 1, 1]) + bytes(9) + struct.pack("<HH", 2, machine) + bytes(44)


def write_zip(path, content, name="bootstrap", mode=0o755):
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        entry = zipfile.ZipInfo(name)
        entry.external_attr = mode << 16
        archive.writestr(entry, content)
    return path


def serverless_roles():
    """The AWS::IAM::Role resources infra/serverless.yml declares (its CloudFormation tags read as
    plain values)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    document = yaml.load((Path(check_template.__file__).resolve().parent / "serverless.yml").read_text(), Loader)
    declared = document["resources"]["Resources"]
    return {name for name, r in declared.items() if isinstance(r, dict) and r.get("Type") == "AWS::IAM::Role"}


def yaml_available():
    import importlib.util
    return importlib.util.find_spec("yaml") is not None


class CallsFile(unittest.TestCase):
    """infra/iam-calls.json, which REQUIRED_ACTIONS comes from (./scripts/rehearse --record-calls)."""

    @unittest.skipUnless(yaml_available(), "PyYAML is missing (the project's .venv has it, with moto)")
    def test_its_roles_are_the_templates_roles(self):
        self.assertEqual(sorted(check_template.REQUIRED_ACTIONS), sorted(serverless_roles()))

    def test_it_reads_as_the_rehearsal_writes_it(self):
        self.assertIsNone(check_template.CALLS_FILE_PROBLEM)
        data = json.loads(check_template.CALLS_FILE.read_text())
        keys = list(data)
        self.assertEqual(keys[0], "//")
        self.assertEqual(keys[1:], sorted(keys[1:]))
        for role in keys[1:]:
            self.assertEqual(data[role], sorted(set(data[role])), role)
            self.assertTrue(all(":" in action for action in data[role]), role)

    def test_a_missing_or_malformed_file_is_a_problem(self):
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in [("absent.json", None), ("broken.json", "{"), ("list.json", '["a"]'),
                               ("string.json", '{"DefaultRole": "sqs:SendMessage"}')]:
                with self.subTest(name):
                    path = Path(tmp) / name
                    if text is not None:
                        path.write_text(text)
                    required, problem = check_template.read_required_actions(path)
                    self.assertEqual(required, {})
                    self.assertIn(str(path), problem)
                    self.assertIn("--record-calls", problem)
            path = Path(tmp) / "good.json"
            path.write_text('{"//": "how", "ConnectRole": ["dynamodb:UpdateItem"], "AuthorizerRole": []}')
            self.assertEqual(check_template.read_required_actions(path),
                             ({"ConnectRole": {"dynamodb:UpdateItem"}, "AuthorizerRole": set()}, None))


class TemplateCheck(unittest.TestCase):
    def test_a_good_template_passes(self):
        self.assertEqual(check_template.check(minimal(), expect_authorizer=True), [])

    def test_a_wrong_runtime_fails(self):
        t = minimal()
        resource(t, "ConnectLambdaFunction")["Properties"]["Runtime"] = "provided.al2"
        self.assertTrue(problems_mentioning("runtime", t))

    def test_a_missing_route_fails(self):
        t = minimal()
        del t["Resources"]["R3"]
        self.assertIn("missing WebSocket route $default", check_template.check(t))

    def test_ttl_off_fails(self):
        t = minimal()
        resource(t, "ConnectionsTable")["Properties"]["TimeToLiveSpecification"]["Enabled"] = False
        self.assertTrue(problems_mentioning("TTL", t))

    def test_a_table_deleted_with_the_stack_or_on_replacement_fails(self):
        for policy, expected in (("DeletionPolicy", "'RetainExceptOnCreate' or 'Retain'"),
                                 ("UpdateReplacePolicy", "'Retain'")):
            for value in ("Delete", "Snapshot", None):
                t = minimal()
                resource(t, "ConnectionsTable")[policy] = value
                self.assertEqual(problems_mentioning(policy, t),
                                 [f"ConnectionsTable: {policy} is {value!r}, expected {expected}"], value)

    def test_a_table_not_kept_only_when_its_own_creation_rolls_back_passes(self):
        # What serverless.yml ships: a failed first deploy leaves no orphaned table behind.
        t = minimal()
        resource(t, "ConnectionsTable")["DeletionPolicy"] = "RetainExceptOnCreate"
        self.assertEqual(check_template.check(t), [])
        resource(t, "ConnectionsTable")["UpdateReplacePolicy"] = "RetainExceptOnCreate"
        self.assertEqual(problems_mentioning("UpdateReplacePolicy", t), [
            "ConnectionsTable: UpdateReplacePolicy is 'RetainExceptOnCreate', expected 'Retain'"])

    def test_a_bare_wildcard_resource_fails(self):
        t = minimal()
        statements(t).append({"Effect": "Allow", "Action": ["dynamodb:Scan"], "Resource": "*"})
        self.assertTrue(problems_mentioning("wildcard", t))

    def test_a_wildcard_inside_an_arn_fails(self):
        for arn in [
            "arn:aws:dynamodb:us-east-1:123:table/*",
            {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:*/@connections/*"},
            {"Fn::Join": ["", [{"Fn::GetAtt": ["ConnectionsTable", "Arn"]}, "/index/*"]]},
        ]:
            t = minimal()
            statements(t).append({"Effect": "Allow", "Action": ["dynamodb:Query"], "Resource": [arn]})
            self.assertTrue(problems_mentioning("wildcard", t), arn)

    def test_get_on_connections_fails_because_no_use_case_reads_a_connection(self):
        t = minimal()
        statements(t)[2]["Resource"].append({"Fn::Sub": CONNECTIONS_ARN % "GET"})
        self.assertEqual(len(problems_mentioning("/GET/@connections", t)), 1)

    def test_delete_on_connections_passes_because_closing_a_socket_needs_it(self):
        # A backend's disconnect or ban, and an expired token, close the socket (DELETE).
        t = minimal()
        statements(t)[2]["Resource"].append({"Fn::Sub": CONNECTIONS_ARN % "DELETE"})
        self.assertEqual(problems_mentioning("/DELETE/@connections", t), [])

    def test_a_role_missing_a_grant_its_code_calls_fails(self):
        t = minimal()
        disconnect = role_statements(t, "DisconnectRole")
        disconnect[0]["Action"] = ["dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"]
        self.assertEqual(problems_mentioning("missing", t),
                         ["DisconnectRole: missing ['dynamodb:Query']: the code calls them"])

    def test_a_disconnect_role_that_may_not_get_an_item_fails(self):
        # Its presence prune checks a member that answers 410: is its $connect still running?
        t = minimal()
        role_statements(t, "DisconnectRole")[0]["Action"].remove("dynamodb:GetItem")
        self.assertEqual(problems_mentioning("missing", t),
                         ["DisconnectRole: missing ['dynamodb:GetItem']: the code calls them"])

    def test_each_action_the_rehearsal_saw_a_role_call_is_required(self):
        # infra/iam-calls.json, whatever it holds today: take any one of its actions away from a
        # role of the good template, and exactly that is named.
        self.assertTrue(check_template.REQUIRED_ACTIONS, "infra/iam-calls.json names no role")
        planted = 0
        for role, actions in sorted(check_template.REQUIRED_ACTIONS.items()):
            if role not in minimal()["Resources"]:
                continue
            for action in sorted(actions):
                with self.subTest(role=role, action=action):
                    t = minimal()
                    for statement in role_statements(t, role):
                        if isinstance(statement["Action"], list) and action in statement["Action"]:
                            statement["Action"].remove(action)
                        elif statement["Action"] == action:
                            statement["Action"] = []
                    self.assertEqual(problems_mentioning("missing", t),
                                     [f"{role}: missing ['{action}']: the code calls them"])
                    planted += 1
        self.assertGreater(planted, 10)

    def test_a_write_action_on_an_index_arn_fails(self):
        t = minimal()
        statements(t)[1]["Action"] = ["dynamodb:Query", "dynamodb:PutItem"]
        self.assertEqual(problems_mentioning("index", t), ["DefaultRole: ['dynamodb:PutItem'] on an index ARN (an index is only queried)"])

    def test_a_hard_coded_amazonaws_com_in_the_endpoint_or_an_output_fails(self):
        t = minimal()
        variables(t, "ConnectLambdaFunction")["MANAGEMENT_ENDPOINT"] = {
            "Fn::Join": ["", ["https://", {"Ref": "WebsocketsApi"}, ".execute-api.", {"Ref": "AWS::Region"}, ".amazonaws.com/dev"]]}
        t["Outputs"]["WebSocketUrl"]["Value"] = {"Fn::Sub": "wss://${WebsocketsApi}.execute-api.${AWS::Region}.amazonaws.com/dev"}
        self.assertEqual(len(problems_mentioning("AWS::URLSuffix", t)), 2)

    def test_a_cognito_jwks_url_and_issuer_given_as_parameters_pass(self):
        # The production auth of docs/deploying.md, "Authentication": the identity provider's URLs
        # are the user's, not the stack's.
        t = minimal()
        variables(t, "AuthorizerLambdaFunction").update({
            "JWKS_URL": f"{COGNITO}/.well-known/jwks.json", "JWT_ISSUER": COGNITO,
            "JWT_CLIENT_ID": "1example23456789", "JWT_AUDIENCE": "", "JWT_SECRET": ""})
        self.assertEqual(check_template.check(t, expect_authorizer=True), [])

    def test_amazonaws_com_elsewhere_than_the_identity_provider_parameters_still_fails(self):
        # A literal endpoint of the stack's own, or an identity provider URL the stack builds.
        t = minimal()
        variables(t, "ConnectLambdaFunction")["MANAGEMENT_ENDPOINT"] = "https://abc123.execute-api.us-east-1.amazonaws.com/dev"
        variables(t, "AuthorizerLambdaFunction").update({"JWT_SECRET": "", "JWKS_URL": {
            "Fn::Sub": "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}/.well-known/jwks.json"}})
        self.assertEqual(sorted(problems_mentioning("AWS::URLSuffix", t)), [
            "AuthorizerLambdaFunction environment JWKS_URL: hard-coded 'amazonaws.com'; use ${AWS::URLSuffix} "
            "(amazonaws.com.cn in China)",
            "ConnectLambdaFunction environment MANAGEMENT_ENDPOINT: hard-coded 'amazonaws.com'; use "
            "${AWS::URLSuffix} (amazonaws.com.cn in China)"])

    def test_two_functions_under_one_s3_key_fail(self):
        t = minimal()
        for name in ("ConnectLambdaFunction", "AuthorizerLambdaFunction"):
            resource(t, name)["Properties"]["Code"]["S3Key"] = "serverless/ws-chat/dev/1/bootstrap.zip"
        self.assertTrue(problems_mentioning("share the S3 key", t))

    def test_an_authorizer_off_connect_fails_and_a_missing_one_fails_when_expected(self):
        t = minimal()
        self.assertEqual(check_template.check(t, expect_authorizer=True), [])
        resource(t, "R3")["Properties"]["AuthorizationType"] = "CUSTOM"
        self.assertTrue(problems_mentioning("only $connect", t))
        t = minimal()
        resource(t, "R1")["Properties"]["AuthorizationType"] = "NONE"
        self.assertIn("$connect has no authorizer (auth is on by default)", check_template.check(t, expect_authorizer=True))

    def test_an_authorized_connect_whose_lambda_does_not_require_a_principal_fails(self):
        t = minimal()
        del variables(t, "ConnectLambdaFunction")["REQUIRE_PRINCIPAL"]
        self.assertEqual(problems_mentioning("REQUIRE_PRINCIPAL", t),
                         ["ConnectLambdaFunction: REQUIRE_PRINCIPAL is not 'true' behind an authorized $connect"])

    def test_the_ssm_secret_referenced_without_an_authorizer_or_beside_a_jwks_url_fails(self):
        t = minimal()
        resource(t, "R1")["Properties"]["AuthorizationType"] = "NONE"
        self.assertTrue(problems_mentioning("SSM secret, but $connect has no authorizer", t))
        t = minimal()
        variables(t, "AuthorizerLambdaFunction")["JWKS_URL"] = "https://example.com/jwks.json"
        self.assertTrue(problems_mentioning("SSM secret, but verifies with a JWKS URL", t))

    def test_a_stage_without_throttling_or_with_a_looser_default_route_fails(self):
        t = minimal()
        del stage(t)["RouteSettings"]
        self.assertTrue(problems_mentioning("throttling (rate and burst, as numbers) must be set", t))
        t = minimal()
        stage(t)["DefaultRouteSettings"]["ThrottlingRateLimit"] = {"Ref": "SomeParameter"}
        self.assertTrue(problems_mentioning("as numbers", t))
        t = minimal()
        stage(t)["RouteSettings"]["$default"]["ThrottlingBurstLimit"] = "2000"
        self.assertTrue(problems_mentioning("looser than the stage", t))

    def test_full_request_logging_fails(self):
        t = minimal()
        stage(t)["DefaultRouteSettings"]["DataTraceEnabled"] = True
        self.assertTrue(problems_mentioning("DataTraceEnabled", t))

    def test_an_access_log_that_could_write_the_token_fails(self):
        for variable in ("$context.requestOverride.querystring.token", "$request.querystring.token", "$input.params('token')"):
            t = minimal()
            stage(t)["AccessLogSettings"] = {"DestinationArn": "arn", "Format": '{"id":"$context.requestId","t":"%s"}' % variable}
            self.assertTrue(problems_mentioning("could write the token", t), variable)

    def test_production_needs_an_access_log_reserved_concurrency_and_a_stricter_default_route(self):
        t = minimal()
        self.assertEqual(sorted(check_template.check(t, expect_production=True)), [
            "AuthorizerLambdaFunction: no reserved concurrency",
            "ConnectLambdaFunction: no reserved concurrency",
            "DefaultLambdaFunction: no reserved concurrency",
            "FanoutLambdaFunction: no reserved concurrency",
            "Stage: no access log",
        ])
        stage(t)["RouteSettings"]["$default"] = dict(stage(t)["DefaultRouteSettings"])
        self.assertTrue(problems_mentioning("no stricter than the stage", t, expect_production=True))
        t = minimal()
        stage(t)["AccessLogSettings"] = {"DestinationArn": "arn", "Format": '{"id":"$context.requestId"}'}
        for name in ("ConnectLambdaFunction", "AuthorizerLambdaFunction", "DefaultLambdaFunction", "FanoutLambdaFunction"):
            resource(t, name)["Properties"]["ReservedConcurrentExecutions"] = 10
        self.assertEqual(check_template.check(t, expect_production=True), [])
        del t["Resources"]["FanoutInternalMapping"]
        resource(t, "FanoutLambdaFunction")["Properties"]["ReservedConcurrentExecutions"] = 1
        self.assertEqual(problems_mentioning("throttled", t, expect_production=True), [
            "FanoutLambdaFunction: reserved concurrency 1 under FanoutMapping's MaximumConcurrency 2: the mapping would be throttled"])

    def test_a_reservation_under_the_sum_of_the_functions_mappings_fails(self):
        # Both queues' mappings invoke `fanout` at once: its reservation must cover them together
        # (AWS Lambda guide, "Configuring maximum concurrency for Amazon SQS event sources").
        t = minimal()
        stage(t)["AccessLogSettings"] = {"DestinationArn": "arn", "Format": '{"id":"$context.requestId"}'}
        reserve(t, Connect=10, Authorizer=10, Default=10, Fanout=4)
        self.assertEqual(check_template.check(t, expect_production=True), [])
        reserve(t, Fanout=3)
        self.assertEqual(check_template.check(t, expect_production=True), [
            "FanoutLambdaFunction: reserved concurrency 3 under its SQS mappings' MaximumConcurrency, 4 in all "
            "(FanoutInternalMapping 2, FanoutMapping 2): the mappings would be throttled (reserve at least their sum)"])


def reserve(template, **by_function):
    for function, value in by_function.items():
        resource(template, f"{function}LambdaFunction")["Properties"]["ReservedConcurrentExecutions"] = value
    return template


def maximum_concurrency(template, value):
    resource(template, "FanoutMapping")["Properties"]["ScalingConfig"]["MaximumConcurrency"] = value
    return template


class AccountConcurrency(unittest.TestCase):
    """--account-concurrency N: what Lambda refuses, or what starves the routes, on an account whose
    concurrency quota is N (new accounts: as low as 10)."""

    def test_the_defaults_fit_a_new_account_with_a_quota_of_10(self):
        self.assertEqual(check_template.check(minimal(), account_concurrency=10), [])

    def test_reservations_leaving_fewer_than_100_unreserved_fail(self):
        t = reserve(minimal(), Connect=10, Authorizer=10, Fanout=10)
        self.assertEqual(check_template.check(t, account_concurrency=130), [])
        self.assertEqual(check_template.check(t, account_concurrency=129), [
            "reserved concurrency 30 in all (AuthorizerLambdaFunction 10, ConnectLambdaFunction 10, "
            "FanoutLambdaFunction 10) against the account's quota of 129: Lambda keeps at least 100 unreserved "
            "(UnreservedConcurrentExecutions), so at most 29 can be reserved; reserve less or raise the quota"])

    def test_any_reservation_on_a_quota_of_100_or_less_fails(self):
        # The reservation docs/deploying.md, "Lambda quotas", sizes (defaultReservedConcurrency=100),
        # on a new account.
        t = reserve(minimal(), Connect=100)
        problems = check_template.check(t, account_concurrency=10)
        self.assertEqual(len(problems), 1)
        self.assertIn("against the account's quota of 10: Lambda keeps at least 10 unreserved", problems[0])
        self.assertIn("so at most 0 can be reserved", problems[0])
        # A reservation of 0 (a function switched off) takes nothing.
        self.assertEqual(check_template.check(reserve(minimal(), Connect=0), account_concurrency=10), [])

    def test_a_queue_that_could_take_more_than_half_of_the_shared_concurrency_fails(self):
        # The old default, fanoutMaximumConcurrency=10, on a new account's quota of 10.
        t = maximum_concurrency(minimal(), 10)
        self.assertEqual(check_template.check(t, account_concurrency=10), [
            "FanoutMapping: MaximumConcurrency 10 could take more than half of the 10 concurrent executions it "
            "shares with the WebSocket routes (the account's quota 10 less 0 reserved); set "
            "fanoutMaximumConcurrency to at most 2 (its 2 mappings each take it)"])
        # With the internal queue's 2, the backend queue's 3 makes half of 10.
        self.assertEqual(check_template.check(maximum_concurrency(minimal(), 3), account_concurrency=10), [])
        # Reservations elsewhere shrink what the queues share with the unreserved routes.
        t = reserve(maximum_concurrency(minimal(), 60), Connect=100)
        self.assertEqual(check_template.check(t, account_concurrency=224), [])
        self.assertEqual(len(check_template.check(t, account_concurrency=223)), 1)
        # A quota too small for the mapping's least: nothing to set, the quota must grow. (scripts/test
        # greps for the first line's words.)
        problems = check_template.check(minimal(), account_concurrency=3)
        self.assertEqual(len(problems), 2)
        for problem in problems:
            self.assertIn("MaximumConcurrency 2 could take more than half", problem)
            self.assertIn("the mapping takes no less than 2 (its 2 mappings each take it): raise the quota", problem)

    def test_mappings_each_within_the_share_but_not_together_fail(self):
        # Two queues' mappings on one function invoke it at once: 2 + 2 is more than half of 7.
        self.assertEqual(check_template.check(minimal(), account_concurrency=8), [])
        self.assertEqual(check_template.check(minimal(), account_concurrency=7), [
            "FanoutLambdaFunction: its SQS mappings' MaximumConcurrency, 4 in all (FanoutInternalMapping 2, "
            "FanoutMapping 2), could take more than half of the 7 concurrent executions they share with the "
            "WebSocket routes (the account's quota 7 less 0 reserved); the mapping takes no less than 2 (its 2 "
            "mappings each take it): raise the quota"])

    def test_a_queue_on_a_function_with_its_own_reservation_is_capped_by_it(self):
        t = reserve(maximum_concurrency(minimal(), 20), Fanout=20)
        self.assertEqual(check_template.check(t, account_concurrency=1000), [])

    def test_the_command_line_takes_the_quota_as_a_whole_number(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "template.json"
            path.write_text(json.dumps(maximum_concurrency(minimal(), 10)))
            for argv, code in (([], 0), (["--account-concurrency", "1000"], 0), (["--account-concurrency=10"], 1),
                               (["--account-concurrency", "10"], 1), (["--account-concurrency", "ten"], 2),
                               (["--account-concurrency"], 2)):
                with contextlib.redirect_stdout(io.StringIO()):
                    self.assertEqual(check_template.main(["check_template.py", str(path), *argv]), code, argv)


def policy_statement(template):
    return resource(template, "InternalQueuePolicy")["Properties"]["PolicyDocument"]["Statement"][0]


def excepted(template):
    return policy_statement(template)["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]


class DeliveryQueues(unittest.TestCase):
    """What held for the one delivery queue holds for both: the backend queue and the service's own."""

    MAPPINGS = {"DeliveryQueue": "FanoutMapping", "InternalQueue": "FanoutInternalMapping"}

    def test_a_queue_without_encryption_fails(self):
        for queue in ("DeliveryQueue", "InternalQueue", "DeadLetters"):
            t = minimal()
            del resource(t, queue)["Properties"]["SqsManagedSseEnabled"]
            self.assertEqual(problems_mentioning("encryption", t), [
                f"{queue}: server-side encryption is off (SqsManagedSseEnabled or KmsMasterKeyId)"])

    def test_no_queue_or_no_mapping_at_all_fails(self):
        t = minimal()
        for mapping in self.MAPPINGS.values():
            del t["Resources"][mapping]
        self.assertEqual(problems_mentioning("event source mapping on", t), [
            "no event source mapping on an SQS queue: nothing would run the delivery jobs"])
        t = {"Resources": {k: v for k, v in minimal()["Resources"].items() if v["Type"] != "AWS::SQS::Queue"}}
        self.assertIn("no SQS delivery queue", check_template.check(t))

    def test_a_queue_no_mapping_reads_fails(self):
        # The old check wanted a mapping on some queue: the other's jobs would have waited unread.
        for queue, mapping in self.MAPPINGS.items():
            t = minimal()
            del t["Resources"][mapping]
            self.assertEqual(problems_mentioning("no event source mapping reads it", t), [
                f"{queue}: no event source mapping reads it and no queue dead-letters to it: its jobs would "
                f"wait unread until they expire"], queue)

    def test_a_mapping_without_partial_batch_responses_a_concurrency_cap_or_with_big_batches_fails(self):
        for mapping in self.MAPPINGS.values():
            for key, value, text in (("FunctionResponseTypes", [], "ReportBatchItemFailures"),
                                     ("ScalingConfig", {}, "ScalingConfig.MaximumConcurrency"),
                                     ("BatchSize", 100, "BatchSize")):
                t = minimal()
                resource(t, mapping)["Properties"][key] = value
                problems = problems_mentioning(text, t)
                self.assertEqual(len(problems), 1, (mapping, key, problems))
                self.assertTrue(problems[0].startswith(f"{mapping}: "), problems)

    def test_a_mapping_whose_role_may_not_read_its_queue_fails(self):
        # FanoutRole kept its queue actions on the backend queue only: REQUIRED_ACTIONS is content
        # (the role has every action), but Lambda cannot read the service's queue.
        t = minimal()
        role_statements(t, "FanoutRole")[0]["Resource"] = [queue_arn("DeliveryQueue")]
        self.assertEqual(problems_mentioning("Lambda cannot read", t), [
            "FanoutInternalMapping: FanoutRole may not ['sqs:ReceiveMessage', 'sqs:DeleteMessage', "
            "'sqs:GetQueueAttributes'] on InternalQueue: Lambda cannot read the queue with FanoutLambdaFunction's "
            "role (the mapping is refused)"])

    def test_a_visibility_timeout_under_six_times_the_functions_timeout_fails(self):
        for queue in self.MAPPINGS:
            t = minimal()
            resource(t, queue)["Properties"]["VisibilityTimeout"] = 359
            self.assertEqual(problems_mentioning("VisibilityTimeout", t), [
                f"{queue}: VisibilityTimeout 359.0 is under 6 x FanoutLambdaFunction's Timeout 60.0"])

    def test_no_dead_letter_queue_or_no_alarm_on_it_fails(self):
        for queue in self.MAPPINGS:
            t = minimal()
            del resource(t, queue)["Properties"]["RedrivePolicy"]
            self.assertEqual(problems_mentioning("redrive", t), [
                f"{queue}: no redrive policy to a dead-letter queue in this stack"])
        t = minimal()
        del t["Resources"]["DeadLettersAlarm"]
        self.assertEqual(problems_mentioning("dead letters", t), [
            "DeadLetters: no alarm on ApproximateNumberOfMessagesVisible (dead letters would go unnoticed)"])

    def test_a_fanout_role_missing_a_queue_grant_fails(self):
        t = minimal()
        role_statements(t, "FanoutRole")[0]["Action"].remove("sqs:ChangeMessageVisibility")
        self.assertEqual(problems_mentioning("missing", t), [
            "FanoutRole: missing ['sqs:ChangeMessageVisibility']: the code calls them"])

    def test_no_alarm_on_recipients_given_up_on_fails(self):
        t = minimal()
        del t["Resources"]["GivenUpAlarm"]
        self.assertEqual(problems_mentioning("no alarm", t), [f'no alarm on DeliveryGivenUp in the namespace "{NAMESPACE}"'])


class BackendQueue(unittest.TestCase):
    """The mapped queue no function may send to is where backends publish."""

    def test_only_the_backend_queue_needs_stack_outputs(self):
        self.assertEqual(problems_mentioning("stack output", minimal()), [])

    def test_no_stack_output_with_the_backend_queues_url_or_arn_fails(self):
        for output, what in (("QueueUrl", "URL"), ("QueueArn", "ARN")):
            t = minimal()
            del t["Outputs"][output]
            self.assertEqual(problems_mentioning("stack output", t), [
                f"no stack output with DeliveryQueue's {what} (backends publish there)"])

    def test_a_function_that_may_send_to_the_backend_queue_fails(self):
        # FanoutRole's old grant left in place: no queue is left only to backends.
        t = minimal()
        role_statements(t, "FanoutRole")[1]["Resource"].append(queue_arn("DeliveryQueue"))
        self.assertEqual(problems_mentioning("no backend queue", t), [
            "no backend queue: every mapped queue may be written by a function's role (DeliveryQueue by FanoutRole; "
            "InternalQueue by DefaultRole, FanoutRole); backends need one that no function sends to, read as a "
            "backend's (it cannot speak as a user)"])
        # ... and the queue it writes is now one of the service's own, open to every principal.
        self.assertIn("DeliveryQueue: no AWS::SQS::QueuePolicy denying sqs:SendMessage to all but ['FanoutRole']: "
                      "any principal allowed sqs:SendMessage (a backend's broad grant) could write a job that "
                      "speaks as a user", check_template.check(t))

    def test_a_wildcard_sqs_grant_counts_as_sending(self):
        t = minimal()
        statements(t).append({"Effect": "Allow", "Action": ["sqs:Send*"], "Resource": queue_arn("DeliveryQueue")})
        self.assertEqual(len(problems_mentioning("no backend queue", t)), 1)


class InternalQueuePolicy(unittest.TestCase):
    """The service's own queue: nobody but the roles that send to it may write there."""

    def policy_problems(self, template):
        return [p for p in check_template.check(template) if p.startswith(("InternalQueue", "InternalQueuePolicy"))]

    def test_the_deny_to_all_but_the_senders_passes_in_its_equivalent_forms(self):
        for change in (
            lambda s: s["Condition"].update({"ArnNotLike": s["Condition"].pop("ArnNotEquals")}),
            lambda s: s.update({"Principal": {"AWS": "*"}, "Action": ["SQS:SendMessage"]}),
            lambda s: s["Condition"]["ArnNotEquals"].update({"aws:PrincipalArn": [
                {"Fn::GetAtt": "FanoutRole.Arn"}, role_arn("DefaultRole")]}),
            lambda s: s.update({"Resource": {"Fn::Sub": "${InternalQueue.Arn}"}}),
        ):
            t = minimal()
            change(policy_statement(t))
            self.assertEqual(check_template.check(t), [])
        # Another Deny beside it (TLS only) is not the one that keeps backends out.
        t = minimal()
        resource(t, "InternalQueuePolicy")["Properties"]["PolicyDocument"]["Statement"].append({
            "Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": queue_arn("InternalQueue"),
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
        self.assertEqual(check_template.check(t), [])

    def test_the_operators_redrive_role_may_be_excepted_too_and_nothing_else(self):
        senders = [role_arn("DefaultRole"), role_arn("FanoutRole")]
        t = minimal()
        policy_statement(t)["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] = {"Fn::If": [
            "HasRedriveRole", senders + [{"Ref": "RedriveRoleArn"}], senders]}
        self.assertEqual(check_template.check(t), [])
        policy_statement(t)["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] = {"Fn::If": [
            "HasRedriveRole", senders + [{"Ref": "SomeoneElse"}], senders]}
        self.assertEqual(self.policy_problems(t), [
            "InternalQueuePolicy: aws:PrincipalArn {'Ref': 'SomeoneElse'} is not Fn::GetAtt [Role, Arn] "
            "of a role of this stack"])
        policy_statement(t)["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] = {"Fn::If": [
            "HasRedriveRole", senders + [{"Ref": "RedriveRoleArn"}], senders[:1]]}
        self.assertEqual(self.policy_problems(t), [
            "InternalQueuePolicy: denies sqs:SendMessage on InternalQueue to ['FanoutRole'], which send to it: "
            "their jobs would be refused"])

    def test_no_queue_policy_fails(self):
        t = minimal()
        del t["Resources"]["InternalQueuePolicy"]
        self.assertEqual(self.policy_problems(t), [
            "InternalQueue: no AWS::SQS::QueuePolicy denying sqs:SendMessage to all but ['DefaultRole', "
            "'FanoutRole']: any principal allowed sqs:SendMessage (a backend's broad grant) could write a job "
            "that speaks as a user"])
        # A policy on the other queue is not one on this.
        t = minimal()
        resource(t, "InternalQueuePolicy")["Properties"]["Queues"] = [{"Ref": "DeliveryQueue"}]
        self.assertEqual(len(self.policy_problems(t)), 1)
        self.assertIn("InternalQueue: no AWS::SQS::QueuePolicy", self.policy_problems(t)[0])

    def test_an_allow_instead_of_a_deny_or_a_deny_on_another_queue_fails(self):
        t = minimal()
        policy_statement(t)["Effect"] = "Allow"
        self.assertEqual(self.policy_problems(t), [
            'InternalQueuePolicy: no Deny of sqs:SendMessage on InternalQueue to Principal "*" (an Allow grants; '
            'it keeps no one out): any principal allowed sqs:SendMessage could write a job that speaks as a user'])
        t = minimal()
        policy_statement(t)["Resource"] = queue_arn("DeliveryQueue")
        self.assertEqual(len(self.policy_problems(t)), 1)
        self.assertIn("InternalQueuePolicy: no Deny of sqs:SendMessage on InternalQueue", self.policy_problems(t)[0])

    def test_an_exception_missing_a_sender_fails(self):
        t = minimal()
        excepted(t).remove(role_arn("DefaultRole"))
        self.assertEqual(self.policy_problems(t), [
            "InternalQueuePolicy: denies sqs:SendMessage on InternalQueue to ['DefaultRole'], which send to it: "
            "their jobs would be refused"])

    def test_a_new_sender_the_exception_misses_fails(self):
        # Granted through Fn::Sub and a wildcard action: a sender all the same.
        t = minimal()
        role_statements(t, "DisconnectRole").append({"Effect": "Allow", "Action": "sqs:*",
                                                     "Resource": {"Fn::Sub": "${InternalQueue.Arn}"}})
        self.assertIn("InternalQueuePolicy: denies sqs:SendMessage on InternalQueue to ['DisconnectRole'], which "
                      "send to it: their jobs would be refused", check_template.check(t))

    def test_an_exception_for_a_role_that_does_not_send_fails(self):
        t = minimal()
        excepted(t).append(role_arn("DisconnectRole"))
        self.assertEqual(self.policy_problems(t), [
            "InternalQueuePolicy: excepts ['DisconnectRole'] from the Deny on InternalQueue, but no grant lets them "
            "send to it: except exactly the senders ['DefaultRole', 'FanoutRole']"])

    def test_an_exception_by_literal_or_wildcard_arn_fails(self):
        t = minimal()
        policy_statement(t)["Condition"] = {"ArnNotLike": {"aws:PrincipalArn": [
            "arn:aws:iam::*:role/*", role_arn("DefaultRole"), role_arn("FanoutRole")]}}
        self.assertEqual(self.policy_problems(t), [
            "InternalQueuePolicy: aws:PrincipalArn 'arn:aws:iam::*:role/*' is not Fn::GetAtt [Role, Arn] of a role "
            "of this stack"])

    def test_a_deny_on_another_principal_or_with_no_exception_or_a_narrowing_condition_fails(self):
        t = minimal()
        policy_statement(t)["Principal"] = {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
        self.assertEqual(len(self.policy_problems(t)), 1)
        self.assertIn('expected Principal "*"', self.policy_problems(t)[0])
        t = minimal()
        del policy_statement(t)["Condition"]
        self.assertEqual(self.policy_problems(t), [
            "InternalQueuePolicy: the Deny on InternalQueue has no exception: it refuses ['DefaultRole', "
            "'FanoutRole'] too (ArnNotEquals on aws:PrincipalArn)"])
        t = minimal()
        policy_statement(t)["Condition"]["StringEquals"] = {"aws:SourceVpc": "vpc-1"}
        self.assertEqual(self.policy_problems(t), [
            "InternalQueuePolicy: the Deny on InternalQueue also tests ['StringEquals aws:SourceVpc']: every "
            "condition must hold for a Deny, so each narrows it; except the senders by aws:PrincipalArn only "
            "(ArnNotEquals or ArnNotLike)"])
        t = minimal()
        policy_statement(t)["Condition"] = {"ArnNotEquals": {"aws:SourceArn": excepted(minimal())}}
        self.assertIn("InternalQueuePolicy: the Deny on InternalQueue also tests ['ArnNotEquals aws:SourceArn']",
                      self.policy_problems(t)[0])

    def test_a_deny_of_every_sqs_action_fails(self):
        # To everyone but the two Lambda roles: the deployer could no longer update or delete the queue.
        t = minimal()
        policy_statement(t)["Action"] = "sqs:*"
        self.assertEqual(self.policy_problems(t), [
            "InternalQueuePolicy: the Deny on InternalQueue covers ['sqs:*']: to every principal but the senders, "
            "CloudFormation could no longer change or delete the queue; deny sqs:SendMessage only"])

    def test_two_policies_on_the_queue_fail(self):
        t = minimal()
        t["Resources"]["OtherPolicy"] = json.loads(json.dumps(resource(t, "InternalQueuePolicy")))
        self.assertEqual(self.policy_problems(t), [
            "InternalQueue: ['InternalQueuePolicy', 'OtherPolicy'] each set its policy; SQS keeps one, the last applied"])


class QueueVariables(unittest.TestCase):
    """Each function finds the queues it writes in its environment, and only those."""

    def test_a_function_that_may_send_to_the_service_queue_without_its_url_fails(self):
        t = minimal()
        del variables(t, "DefaultLambdaFunction")["INTERNAL_QUEUE_URL"]
        self.assertEqual(problems_mentioning("QUEUE_URL", t), [
            "DefaultLambdaFunction: may send to InternalQueue but INTERNAL_QUEUE_URL does not name it"])

    def test_a_function_that_may_send_to_the_dead_letters_without_their_url_fails(self):
        t = minimal()
        del variables(t, "FanoutLambdaFunction")["DEAD_LETTER_QUEUE_URL"]
        self.assertEqual(problems_mentioning("QUEUE_URL", t), [
            "FanoutLambdaFunction: may send to DeadLetters but DEAD_LETTER_QUEUE_URL does not name it"])

    def test_a_function_reading_the_service_queue_without_its_url_fails(self):
        # Without it `fanout` would read the service's jobs as backends' (and dead-letter them).
        t = minimal()
        role_statements(t, "FanoutRole")[1]["Resource"] = [queue_arn("DeadLetters")]
        excepted(t).remove(role_arn("FanoutRole"))
        del variables(t, "FanoutLambdaFunction")["INTERNAL_QUEUE_URL"]
        self.assertEqual(problems_mentioning("QUEUE_URL", t), [
            "FanoutLambdaFunction: reads the service's own queue InternalQueue but INTERNAL_QUEUE_URL does not name it"])

    def test_the_internal_url_naming_the_backend_queue_fails(self):
        # The trust boundary undone: backends' jobs would be read as the service's.
        t = minimal()
        variables(t, "FanoutLambdaFunction")["INTERNAL_QUEUE_URL"] = {"Ref": "DeliveryQueue"}
        self.assertEqual(problems_mentioning("QUEUE_URL", t), [
            "FanoutLambdaFunction: may send to InternalQueue but INTERNAL_QUEUE_URL does not name it",
            "FanoutLambdaFunction: INTERNAL_QUEUE_URL names DeliveryQueue, where backends publish: their jobs would "
            "be read as the service's (a backend could speak as a user)"])

    def test_a_queue_url_naming_a_queue_the_role_may_not_send_to_fails(self):
        t = minimal()
        role_statements(t, "FanoutRole")[1]["Resource"] = [queue_arn("InternalQueue")]
        self.assertEqual(problems_mentioning("QUEUE_URL", t), [
            "FanoutLambdaFunction: DEAD_LETTER_QUEUE_URL names DeadLetters, but its role may not sqs:SendMessage "
            "there: every send would be refused"])
        t = minimal()
        variables(t, "ConnectLambdaFunction")["INTERNAL_QUEUE_URL"] = {"Ref": "InternalQueue"}
        self.assertEqual(problems_mentioning("QUEUE_URL", t), [
            "ConnectLambdaFunction: INTERNAL_QUEUE_URL names InternalQueue, but its role may not sqs:SendMessage "
            "there: every send would be refused"])

    def test_a_queue_url_naming_the_wrong_kind_of_queue_or_no_queue_fails(self):
        t = minimal()
        variables(t, "FanoutLambdaFunction")["DEAD_LETTER_QUEUE_URL"] = {"Ref": "InternalQueue"}
        self.assertEqual(problems_mentioning("QUEUE_URL", t), [
            "FanoutLambdaFunction: may send to DeadLetters but DEAD_LETTER_QUEUE_URL does not name it",
            "FanoutLambdaFunction: DEAD_LETTER_QUEUE_URL names InternalQueue, which is not a mapped queue's "
            "dead-letter queue"])
        t = minimal()
        variables(t, "DefaultLambdaFunction")["INTERNAL_QUEUE_URL"] = "https://sqs.us-east-1.example/1/internal"
        self.assertEqual(problems_mentioning("QUEUE_URL", t), [
            "DefaultLambdaFunction: may send to InternalQueue but INTERNAL_QUEUE_URL does not name it",
            "DefaultLambdaFunction: INTERNAL_QUEUE_URL 'https://sqs.us-east-1.example/1/internal' is not a Ref to a "
            "queue of this stack"])

    def test_the_old_variable_alone_fails(self):
        # A stack still on DELIVERY_QUEUE_URL: the functions would find no queue of their own.
        t = minimal()
        for function in ("DefaultLambdaFunction", "FanoutLambdaFunction"):
            variables(t, function)["DELIVERY_QUEUE_URL"] = variables(t, function).pop("INTERNAL_QUEUE_URL")
        self.assertEqual(problems_mentioning("INTERNAL_QUEUE_URL", t), [
            "DefaultLambdaFunction: may send to InternalQueue but INTERNAL_QUEUE_URL does not name it",
            "FanoutLambdaFunction: may send to InternalQueue but INTERNAL_QUEUE_URL does not name it"])


class Deadlines(unittest.TestCase):
    """FUNCTION_TIMEOUT_SECONDS tells a function its own timeout; JOB_SAFETY_MARGIN_MS must fit under it."""

    def test_the_timeout_as_a_number_a_string_or_the_same_reference_passes(self):
        for value in (29, "29", "29.0"):
            t = minimal()
            variables(t, "DefaultLambdaFunction")["FUNCTION_TIMEOUT_SECONDS"] = value
            self.assertEqual(check_template.check(t), [], value)
        t = minimal()
        resource(t, "DefaultLambdaFunction")["Properties"]["Timeout"] = {"Ref": "Timeout"}
        variables(t, "DefaultLambdaFunction")["FUNCTION_TIMEOUT_SECONDS"] = {"Ref": "Timeout"}
        self.assertEqual(check_template.check(t), [])

    def test_a_function_timeout_other_than_the_functions_own_fails(self):
        t = minimal()
        variables(t, "DefaultLambdaFunction")["FUNCTION_TIMEOUT_SECONDS"] = "60"
        self.assertEqual(problems_mentioning("FUNCTION_TIMEOUT_SECONDS", t), [
            "DefaultLambdaFunction: FUNCTION_TIMEOUT_SECONDS '60' is not its Timeout 29"])
        t = minimal()
        variables(t, "ConnectLambdaFunction")["FUNCTION_TIMEOUT_SECONDS"] = "29"
        self.assertEqual(problems_mentioning("FUNCTION_TIMEOUT_SECONDS", t), [
            "ConnectLambdaFunction: FUNCTION_TIMEOUT_SECONDS '29' is not its Timeout 3"])

    def test_a_function_running_jobs_without_its_timeout_fails(self):
        for function, timeout in (("DefaultLambdaFunction", 29), ("FanoutLambdaFunction", 60)):
            t = minimal()
            del variables(t, function)["FUNCTION_TIMEOUT_SECONDS"]
            self.assertEqual(problems_mentioning("FUNCTION_TIMEOUT_SECONDS", t), [
                f"{function}: runs delivery jobs but has no FUNCTION_TIMEOUT_SECONDS: JOB_SAFETY_MARGIN_MS would be "
                f"held to 900 s, not to its Timeout {timeout}"])

    def test_a_safety_margin_not_below_the_timeout_fails(self):
        t = minimal()
        variables(t, "DefaultLambdaFunction")["JOB_SAFETY_MARGIN_MS"] = "28999"
        self.assertEqual(check_template.check(t), [])
        variables(t, "DefaultLambdaFunction")["JOB_SAFETY_MARGIN_MS"] = "29000"
        self.assertEqual(problems_mentioning("JOB_SAFETY_MARGIN_MS", t), [
            "DefaultLambdaFunction: JOB_SAFETY_MARGIN_MS 29000 ms is not below its Timeout of 29 s: the function "
            "would refuse to start"])

    def test_the_default_margin_not_below_a_short_timeout_fails(self):
        t = minimal()
        resource(t, "DefaultLambdaFunction")["Properties"]["Timeout"] = 5
        variables(t, "DefaultLambdaFunction")["FUNCTION_TIMEOUT_SECONDS"] = "5"
        self.assertEqual(problems_mentioning("JOB_SAFETY_MARGIN_MS", t), [
            "DefaultLambdaFunction: JOB_SAFETY_MARGIN_MS 5000 ms (unset: the default) is not below its Timeout of "
            "5 s: the function would refuse to start"])


class Dashboard(unittest.TestCase):
    """What PutDashboard refuses at deploy time, rolling the whole stack back."""

    def traffic(self, body):
        return body["widgets"][0]["properties"]["metrics"]

    def test_the_good_body_passes_with_its_substitutions(self):
        self.assertEqual(dashboard_problems(dashboard_body()), [])

    def test_a_body_that_is_not_json_once_substituted_fails(self):
        text = json.dumps(dashboard_body())
        for broken in (text[:-1], text.replace('"width": 12', '"width": ${Width}', 1)):
            problems = dashboard_problems(broken)
            self.assertEqual(len(problems), 1, broken[-40:])
            self.assertIn("Dashboard: DashboardBody is not JSON once its ${...} are substituted", problems[0])
        self.assertEqual(dashboard_problems({"widget": []}), ["Dashboard: DashboardBody has no 'widgets' array"])

    def test_an_expression_listed_bare_under_metrics_fails(self):
        # The mistake that rolled every deploy back: {"expression": ...} instead of [{"expression": ...}].
        body = dashboard_body()
        self.traffic(body).append({"expression": SEARCH.replace("Messages", "Recipients"), "id": "erecipients"})
        self.assertEqual(dashboard_problems(body), [
            "Dashboard widget 0 ('Traffic') metrics[5]: every entry of 'metrics' must be an array "
            "(wrap it: [{\"expression\": ...}])"])
        body = dashboard_body()
        self.traffic(body)[4].append({"expression": "m1 * 2", "id": "e2"})
        self.assertEqual(len([p for p in dashboard_problems(body) if "exactly one object" in p]), 1)

    def test_an_id_used_twice_or_not_starting_lower_case_fails(self):
        body = dashboard_body()
        self.traffic(body).append([{"expression": "m1 * 2", "id": "emessagessum"}])
        self.assertEqual(dashboard_problems(body), [
            "Dashboard widget 0 ('Traffic'): id 'emessagessum' is used 2 times (ids are unique in a widget)"])
        for bad in ("Emessages", "1e", "e-1"):
            body = dashboard_body()
            self.traffic(body)[4][0]["id"] = bad
            self.assertEqual(dashboard_problems(body), [
                f"Dashboard widget 0 ('Traffic') metrics[4]: id {bad!r} must start with a lower-case letter "
                f"(then letters, digits, _)"], bad)

    def test_a_search_with_an_unquoted_namespace_fails(self):
        body = dashboard_body()
        self.traffic(body)[4][0]["expression"] = SEARCH.replace('"ws-chat/dev"', "ws-chat/dev")
        self.assertEqual(len(dashboard_problems(body)), 1)
        self.assertIn("SEARCH's schema names 'ws-chat/dev' unquoted", dashboard_problems(body)[0])
        # AWS's own namespaces go bare in AWS's examples; quoted dimension names are fine too.
        for fine in ("SEARCH('{AWS/EC2,InstanceId} MetricName=\"CPUUtilization\"', 'Average', 300)",
                     "SEARCH('{\"ws-chat/dev\",\"Error Code\"} MetricName=\"MessagesRefused\"', 'Sum', 300)"):
            body = dashboard_body()
            self.traffic(body)[4][0]["expression"] = fine
            self.assertEqual(dashboard_problems(body), [], fine)

    def test_a_widget_without_its_place_or_off_the_grid_fails(self):
        cases = {
            ("x", None): "no x (every widget sets its type, place, size and properties)",
            ("width", 25): "width 25, expected 1-24",
            ("x", 18): "x 18 + width 12 runs past the 24-column grid",
            ("height", 0): "height 0, expected 1-1000",
            ("y", "0"): "x, y, width and height must be integers",
            ("type", "graph"): "type 'graph', expected one of",
            ("properties", "metrics"): "properties must be an object",
        }
        for (key, value), message in cases.items():
            body = dashboard_body()
            if value is None:
                del body["widgets"][0][key]
            else:
                body["widgets"][0][key] = value
            problems = dashboard_problems(body)
            self.assertEqual(len(problems), 1, (key, value, problems))
            self.assertIn(message, problems[0])

    def test_a_metric_widget_without_its_region_a_metrics_array_or_with_an_unknown_view_fails(self):
        for key, value, message in (("region", None, "a metric widget needs its region"),
                                    ("metrics", {"a": 1}, "'metrics' must be an array of arrays"),
                                    ("view", "line", "view 'line', expected one of")):
            body = dashboard_body()
            properties = body["widgets"][0]["properties"]
            if value is None:
                del properties[key]
            else:
                properties[key] = value
            problems = dashboard_problems(body)
            self.assertEqual(len(problems), 1, key)
            self.assertIn(message, problems[0])

    def test_a_malformed_metric_array_fails(self):
        cases = [
            ([NAMESPACE], "a metric needs a namespace and a metric name"),
            ([NAMESPACE, "PostsFailed", "Action"], "dimension 'Action' has no value"),
            ([NAMESPACE, "PostsFailed", {"label": "x"}, "Action", "join"], "then at most one options object, last"),
            ([NAMESPACE, 7], "then at most one options object, last"),
        ]
        for entry, message in cases:
            body = dashboard_body()
            self.traffic(body).append(entry)
            problems = dashboard_problems(body)
            self.assertEqual(len(problems), 1, entry)
            self.assertIn("metrics[5]: ", problems[0])
            self.assertIn(message, problems[0])
        body = dashboard_body()
        self.traffic(body)[0][0] = "."
        self.assertIn("'.' repeats the previous metric's value, and this is the first metric", dashboard_problems(body)[0])
        body = dashboard_body()
        self.traffic(body).append([".", "MessageCount", ".", "${WebsocketsApi}"])
        self.assertEqual(dashboard_problems(body), [])


def metrics_of(template, name):
    return resource(template, name)["Properties"]["Metrics"]


def alarm_problems(template):
    return [p for p in check_template.check(template) if p.startswith(("ThrottledAlarm", "DenialsAlarm"))]


class AlarmMetricMath(unittest.TestCase):
    """What PutMetricAlarm refuses at deploy time (MetricDataQuery, PutMetricAlarm)."""

    def test_the_ratio_and_the_anomaly_band_alarms_pass(self):
        self.assertEqual(alarm_problems(minimal()), [])

    def test_an_id_used_twice_or_not_starting_lower_case_fails(self):
        t = minimal()
        metrics_of(t, "ThrottledAlarm").append({"Id": "m", "Expression": "m * 2", "ReturnData": False})
        self.assertEqual(alarm_problems(t), ["ThrottledAlarm: query Id 'm' is used 2 times"])
        for bad in ("M", "1m", "m-1"):
            t = minimal()
            metrics_of(t, "ThrottledAlarm")[1]["Id"] = bad
            metrics_of(t, "ThrottledAlarm")[0]["Expression"] = "100 * x"
            metrics_of(t, "ThrottledAlarm").append({"Id": "x", "Expression": "1", "ReturnData": False})
            self.assertEqual(alarm_problems(t), [
                f"ThrottledAlarm: query Id {bad!r} must start with a lower-case letter (then letters, digits, _)"], bad)

    def test_an_expression_reading_an_undefined_id_fails(self):
        t = minimal()
        metrics_of(t, "ThrottledAlarm")[0]["Expression"] = "IF(posts > 0, 100 * FILL(m, 0) / posts, 0)"
        self.assertEqual(alarm_problems(t), ["ThrottledAlarm: query 'e' reads 'posts', which no query defines"])
        t = minimal()
        metrics_of(t, "DenialsAlarm")[0]["Expression"] = "ANOMALY_DETECTION_BAND(denials, 3)"
        self.assertIn("DenialsAlarm: query 'band' reads 'denials', which no query defines", alarm_problems(t))

    def test_a_query_with_both_or_neither_of_expression_and_metric_stat_fails(self):
        t = minimal()
        metrics_of(t, "ThrottledAlarm")[1]["Expression"] = "1"
        self.assertEqual(alarm_problems(t), ["ThrottledAlarm: query 'm' needs exactly one of Expression and MetricStat"])

    def test_other_than_exactly_one_query_returning_data_fails(self):
        t = minimal()
        del metrics_of(t, "ThrottledAlarm")[1]["ReturnData"]  # absent means true
        self.assertEqual(alarm_problems(t), [
            "ThrottledAlarm: 2 queries return data (['e', 'm']); exactly one must (ReturnData: false on the "
            "others; absent means true)"])
        t = minimal()
        metrics_of(t, "ThrottledAlarm")[0]["ReturnData"] = False
        self.assertIn("ThrottledAlarm: 0 queries return data ([])", alarm_problems(t)[0])

    def test_a_threshold_metric_id_naming_no_band_or_a_band_alarm_returning_the_wrong_queries_fails(self):
        t = minimal()
        resource(t, "DenialsAlarm")["Properties"]["ThresholdMetricId"] = "bands"
        self.assertEqual(alarm_problems(t), ["DenialsAlarm: ThresholdMetricId 'bands' names no query"])
        t = minimal()
        resource(t, "DenialsAlarm")["Properties"]["ThresholdMetricId"] = "m"
        self.assertIn("DenialsAlarm: ThresholdMetricId 'm' is not an ANOMALY_DETECTION_BAND expression", alarm_problems(t))
        t = minimal()
        metrics_of(t, "DenialsAlarm")[1]["ReturnData"] = False
        self.assertEqual(alarm_problems(t), [
            "DenialsAlarm: with ThresholdMetricId, exactly the band 'band' and the one metric it bands return "
            "data; ['band'] do"])

    def test_band_and_threshold_settings_mixed_up_fail(self):
        t = minimal()
        resource(t, "DenialsAlarm")["Properties"]["ComparisonOperator"] = "GreaterThanThreshold"
        resource(t, "DenialsAlarm")["Properties"]["Threshold"] = 3
        self.assertEqual(alarm_problems(t), [
            "DenialsAlarm: ComparisonOperator 'GreaterThanThreshold' with a band; expected one of "
            "['GreaterThanUpperThreshold', 'LessThanLowerOrGreaterThanUpperThreshold', 'LessThanLowerThreshold']",
            "DenialsAlarm: Threshold beside ThresholdMetricId (the band is the threshold)"])
        t = minimal()
        resource(t, "ThrottledAlarm")["Properties"]["ComparisonOperator"] = "GreaterThanUpperThreshold"
        self.assertEqual(alarm_problems(t), [
            "ThrottledAlarm: GreaterThanUpperThreshold compares with a band, and no ThresholdMetricId names one"])

    def test_a_single_metric_field_beside_metrics_fails(self):
        # What a YAML merge of the single-metric alarm's properties would bring in.
        t = minimal()
        resource(t, "ThrottledAlarm")["Properties"].update({"Namespace": "AWS/Lambda", "Statistic": "Sum"})
        self.assertEqual(alarm_problems(t), [
            "ThrottledAlarm: Namespace beside Metrics (PutMetricAlarm takes one or the other)",
            "ThrottledAlarm: Statistic beside Metrics (PutMetricAlarm takes one or the other)"])


class Artifacts(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def zip_for(self, machine, file_name="connect.zip", **entry):
        return write_zip(self.dir / file_name, elf_header(machine), **entry)

    def test_a_function_without_a_metrics_namespace_or_with_another_one_fails(self):
        t = minimal()
        del variables(t, "ConnectLambdaFunction")["METRICS_NAMESPACE"]
        self.assertEqual(problems_mentioning("METRICS_NAMESPACE", t),
                         ["ConnectLambdaFunction: no METRICS_NAMESPACE (its metrics would be dropped)"])
        t = minimal()
        variables(t, "ConnectLambdaFunction")["METRICS_NAMESPACE"] = "other"
        self.assertTrue(problems_mentioning("different namespaces", t))

    def test_a_function_without_an_errors_or_throttles_alarm_fails(self):
        for metric in ("Errors", "Throttles"):
            t = minimal()
            del t["Resources"][f"Authorizer{metric}Alarm"]
            self.assertEqual(problems_mentioning("no alarm", t), [f"AuthorizerLambdaFunction: no alarm on its {metric}"])

    def test_no_alarm_on_api_gateway_errors_fails(self):
        for metric in ("IntegrationError", "ExecutionError"):
            t = minimal()
            del t["Resources"][f"Api{metric}Alarm"]
            self.assertEqual(problems_mentioning("no alarm", t), [f"no alarm on API Gateway's {metric}"])

    def test_no_alarm_on_failed_or_throttled_posts_or_denials_in_the_functions_namespace_fails(self):
        for name, metric in (("FailedAlarm", "PostsFailed"), ("ThrottledAlarm", "PostsThrottled"),
                             ("DenialsAlarm", "AuthorizerDecisions")):
            t = minimal()
            del t["Resources"][name]
            self.assertEqual(problems_mentioning("no alarm", t), [f'no alarm on {metric} in the namespace "{NAMESPACE}"'])
            t = minimal()
            for key, value in alarm("elsewhere", metric, math=True)["Properties"].items():
                resource(t, name)["Properties"][key] = value
            resource(t, name)["Properties"].pop("MetricName", None)
            self.assertEqual(len(problems_mentioning(metric, t)), 1, f"{metric} watched in another namespace")

    def test_an_alarm_that_notifies_on_alarm_but_not_on_recovery_fails(self):
        t = minimal()
        del resource(t, "FailedAlarm")["Properties"]["OKActions"]
        self.assertEqual(problems_mentioning("OKActions", t),
                         ["FailedAlarm: AlarmActions and OKActions differ (a recovery nobody hears of)"])

    def test_no_dashboard_fails(self):
        t = minimal()
        del t["Resources"]["Dashboard"]
        self.assertEqual(problems_mentioning("dashboard", t), ["no CloudWatch dashboard"])

    def test_a_zip_matching_its_architecture_passes(self):
        self.assertEqual(artifacts.architecture_problems(self.zip_for(183), "arm64"), [])
        self.assertEqual(artifacts.architecture_problems(self.zip_for(62), "x86_64"), [])

    def test_an_x86_64_binary_on_an_arm64_function_fails(self):
        path = self.zip_for(62)
        self.assertEqual(artifacts.architecture_problems(path, "arm64"),
                         [f"{path}: 'bootstrap' is built for x86_64, the function runs on arm64"])

    def test_an_arm64_binary_on_an_x86_64_function_fails(self):
        path = self.zip_for(183)
        self.assertEqual(artifacts.architecture_problems(path, "x86_64"),
                         [f"{path}: 'bootstrap' is built for arm64, the function runs on x86_64"])

    def test_a_zip_without_an_executable_elf_bootstrap_fails(self):
        cases = {
            "no 'bootstrap' at the root": self.zip_for(183, "a.zip", name="main"),
            "'bootstrap' is not executable": self.zip_for(183, "b.zip", mode=0o644),
            "is not an ELF binary": write_zip(self.dir / "c.zip", b"#!/bin/sh\n"),
            "not a 64-bit little-endian ELF": write_zip(self.dir / "d.zip", elf_header(183, elf_class=1)),
        }
        for reason, path in cases.items():
            problems = artifacts.architecture_problems(path, "arm64")
            self.assertEqual(len(problems), 1, reason)
            self.assertIn(reason, problems[0])

    def test_staging_refuses_the_wrong_architecture_and_copies_nothing(self):
        for function in artifacts.FUNCTIONS:
            write_zip(self.dir / "lambda" / function / "bootstrap.zip", elf_header(62))
        target = self.dir / "deploy" / "arm64"
        problems = artifacts.stage("arm64", self.dir / "lambda", target)
        self.assertEqual(len(problems), len(artifacts.FUNCTIONS))
        self.assertFalse(target.exists())
        self.assertEqual(artifacts.stage("x86_64", self.dir / "lambda", self.dir / "deploy" / "x86_64"), [])
        self.assertEqual(sorted(p.name for p in (self.dir / "deploy" / "x86_64").iterdir()),
                         sorted(f"{f}.zip" for f in artifacts.FUNCTIONS))

    def test_zipped_binaries_stage_for_their_own_architecture_only(self):
        for function in artifacts.FUNCTIONS:
            (self.dir / "bin").mkdir(exist_ok=True)
            (self.dir / "bin" / function).write_bytes(elf_header(62) + b"rest of the binary")
        self.assertEqual(artifacts.pack(self.dir / "bin", self.dir / "lambda"), [])
        zipped = self.dir / "lambda" / "connect" / "bootstrap.zip"
        with zipfile.ZipFile(zipped) as archive:
            self.assertEqual(archive.read("bootstrap"), elf_header(62) + b"rest of the binary")
        self.assertEqual(artifacts.stage("x86_64", self.dir / "lambda", self.dir / "deploy"), [])
        self.assertEqual(len(artifacts.stage("arm64", self.dir / "lambda", self.dir / "arm")),
                         len(artifacts.FUNCTIONS))

    def test_zipping_names_each_missing_binary_and_writes_nothing(self):
        (self.dir / "bin").mkdir()
        (self.dir / "bin" / "connect").write_bytes(elf_header(62))
        problems = artifacts.pack(self.dir / "bin", self.dir / "lambda")
        self.assertEqual(len(problems), len(artifacts.FUNCTIONS) - 1)
        self.assertFalse((self.dir / "lambda").exists())

    def test_the_template_check_reads_each_packaged_artifact_against_its_function(self):
        package = self.dir / "infra" / ".serverless"
        package.mkdir(parents=True)
        state = {"service": {"functions": {
            "connect": {"name": "ws-chat-dev-connect", "package": {"artifact": "../build/connect.zip"}},
            "authorizer": {"name": "ws-chat-dev-authorizer", "package": {"artifact": "../build/authorizer.zip"}},
        }}}
        (package / "serverless-state.json").write_text(json.dumps(state))
        write_zip(self.dir / "build" / "connect.zip", elf_header(183))
        write_zip(self.dir / "build" / "authorizer.zip", elf_header(62))
        template_path = package / "cloudformation-template-update-stack.json"
        problems = check_template.artifact_problems(template_path, minimal(), self.dir / "infra")
        self.assertEqual(problems, [f"{self.dir / 'infra' / '../build/authorizer.zip'}: 'bootstrap' is built for x86_64, the function runs on arm64"])

    def test_the_command_line_reads_artifact_paths_from_infra_wherever_the_package_is(self):
        # `serverless package --package /tmp/pkg`: serverless-state.json's paths are still infra/'s.
        package = self.dir / "pkg"
        package.mkdir()
        state = {"service": {"functions": {
            "connect": {"name": "ws-chat-dev-connect", "package": {"artifact": "check_template.py"}}}}}
        (package / "serverless-state.json").write_text(json.dumps(state))
        template_path = package / "cloudformation-template-update-stack.json"
        template_path.write_text(json.dumps(minimal()))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertEqual(check_template.main(["check_template.py", str(template_path), "--artifacts"]), 1)
        infra = Path(check_template.__file__).resolve().parent
        self.assertEqual(len(out.getvalue().splitlines()), 1, out.getvalue())
        self.assertIn(f"check_template: {infra / 'check_template.py'}: ", out.getvalue())
        self.assertNotIn("missing", out.getvalue())


if __name__ == "__main__":
    unittest.main()
