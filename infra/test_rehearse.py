"""Self-tests of the rehearsal (infra/rehearse.py).

The pure parts (template -> resources, environment resolution, the deployment file, the proxy's
action and resource mapping, the IAM evaluation, the metrics against the alarms) run without the
local gateway, against the packaged template (infra/.serverless-rehearsal, packaged here with the
pinned osls when missing; REHEARSAL_TEMPLATE_DIR names another). The proxy in front of moto, and
the real `connect` binary through it, run when moto and the staged zips are there.

The planted mistakes need the local gateway's --deployment mode (the Rust half): each plants one
mistake in a COPY of the packaged template and asserts the rehearsal fails naming it. They are
skipped, saying so, only when the gateway binary lacks --deployment.

    .venv/bin/python infra/test_rehearse.py
    REHEARSAL_GATEWAY=... REHEARSAL_WSCTL=... REHEARSAL_TEMPLATE_DIR=... .venv/bin/python infra/test_rehearse.py
"""
import contextlib
import copy
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import zipfile
from contextlib import redirect_stdout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

INFRA = Path(__file__).resolve().parent
ROOT = INFRA.parent
sys.path.insert(0, str(INFRA))

import rehearse  # noqa: E402
from rehearsal import dataplane, deployment, emf, iam, proxy  # noqa: E402
from rehearsal.template import Stack, TemplateError, display_names, load, shown, stack_name_of  # noqa: E402

TEMPLATE_DIR = Path(os.environ.get("REHEARSAL_TEMPLATE_DIR", INFRA / ".serverless-rehearsal"))
GATEWAY = Path(os.environ.get("REHEARSAL_GATEWAY", ROOT / "target" / "debug" / "local-gateway"))
WSCTL = Path(os.environ.get("REHEARSAL_WSCTL", ROOT / "target" / "debug" / "wsctl"))
PROXY_URL = "http://127.0.0.1:9"
CA = "/etc/ssl/certs/ca-certificates.crt"
SECRET = "s3cr3t-from-ssm"
os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1",
                  AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
REHEARSAL_TIMEOUT = 600  # s for one whole rehearsal


def package_template():
    """The packaged template the tests read; packaged with the pinned osls when missing."""
    template = TEMPLATE_DIR / "cloudformation-template-update-stack.json"
    if template.is_file():
        return
    osls = INFRA / "node_modules" / ".bin" / "osls"
    if not osls.exists():
        raise unittest.SkipTest(f"no {template} and no osls in infra/node_modules (npm ci in infra/)")
    subprocess.run([str(osls), "package", "--stage", "ci", "--param=architecture=x86_64", "--param=inlineRecipients=2",
                    "--package", TEMPLATE_DIR.name], cwd=INFRA, check=True, capture_output=True, timeout=300,
                   env=dict(os.environ, SLS_TELEMETRY_DISABLED="1", SLS_NOTIFICATIONS_MODE="off"))


def setUpModule():
    package_template()


def packaged():
    template, state = load(TEMPLATE_DIR)
    return template, state


def service():
    """The packaged service's name (a fork's, when scripts/test rehearses one)."""
    return packaged()[1]["service"]["service"]


def namespace():
    """The packaged stack's metrics namespace at stage ci."""
    return f"{service()}/ci"


def stack_of(template, state, **kwargs):
    kwargs.setdefault("queue_endpoint", PROXY_URL)
    kwargs.setdefault("dynamic", lambda service, key, where: SECRET)
    return Stack(template, stack_name_of(state), region="us-east-1", **kwargs)


def resolved(template=None, state=None):
    """(stack, functions with their overlay applied, routes) of the packaged template."""
    if template is None:
        template, state = packaged()
    stack = stack_of(template, state)
    functions = deployment.functions_of(stack, state, INFRA)
    api, selection, routes, authorizer, stage = deployment.routes_of(stack, functions)
    for fn in functions.values():
        deployment.apply_overlay(stack, fn, stack.name(api), PROXY_URL, CA)
    return stack, functions, (api, selection, routes, authorizer, stage)


# --- The template: intrinsics, parameters, names ------------------------------------------------
def tiny():
    return {
        "Parameters": {"Topic": {"Type": "String", "Default": "", "AllowedPattern": "^(arn:.*)?$"},
                       "Size": {"Type": "String", "Default": "7"}},
        "Conditions": {"HasTopic": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Topic"}, ""]}]},
                       "Both": {"Fn::And": [{"Condition": "HasTopic"}, {"Fn::Equals": ["a", "a"]}]}},
        "Resources": {
            "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
            "Named": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": {"Fn::Sub": "${AWS::StackName}-t"}}},
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {}},
            "Fifo": {"Type": "AWS::SQS::Queue", "Properties": {"FifoQueue": True}},
            "Role": {"Type": "AWS::IAM::Role", "Properties": {}},
            "Api": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {"ProtocolType": "WEBSOCKET"}},
            "Group": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/aws/lambda/f"}},
        },
    }


class Intrinsics(unittest.TestCase):
    def stack(self, **parameters):
        return Stack(tiny(), "ws-chat-ci", parameters=parameters, queue_endpoint="http://127.0.0.1:9")

    def test_sub_with_pseudo_parameters_resources_attributes_and_literals(self):
        s = self.stack()
        text = s.resolve({"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/ci "
                                     "https://x.${AWS::URLSuffix} ${Queue.QueueName} ${!Literal} ${Queue.Arn}"})
        api = s.name("Api")
        self.assertRegex(api, r"^[a-z0-9]{10}$")
        queue = s.name("Queue")
        self.assertEqual(text, f"arn:aws:execute-api:us-east-1:123456789012:{api}/ci https://x.amazonaws.com "
                               f"{queue} ${{Literal}} arn:aws:sqs:us-east-1:123456789012:{queue}")
        self.assertEqual(s.resolve({"Fn::Sub": ["${A}-${Named}", {"A": {"Ref": "Size"}}]}), "7-ws-chat-ci-t")

    def test_names_are_cloudformations_and_stable(self):
        a, b = self.stack(), self.stack()
        self.assertRegex(a.name("Table"), r"^ws-chat-ci-Table-[A-Z0-9]{13}$")
        self.assertEqual(a.name("Table"), b.name("Table"))
        self.assertNotEqual(a.name("Table"), a.name("Queue").replace("Queue", "Table") + "x")
        self.assertTrue(a.name("Fifo").endswith(".fifo"))
        self.assertEqual(a.resolve({"Ref": "Queue"}), f"http://127.0.0.1:9/123456789012/{a.name('Queue')}")
        self.assertEqual(a.resolve({"Fn::GetAtt": ["Role", "Arn"]}), f"arn:aws:iam::123456789012:role/{a.name('Role')}")
        self.assertEqual(a.resolve({"Fn::GetAtt": "Group.Arn"}), "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/f:*")

    def test_join_if_select_split_and_no_value(self):
        s = self.stack(Topic="arn:aws:sns:us-east-1:123456789012:t")
        self.assertTrue(s.condition("HasTopic"))
        self.assertTrue(s.condition("Both"))
        self.assertEqual(s.resolve({"Fn::If": ["HasTopic", [{"Ref": "Topic"}], {"Ref": "AWS::NoValue"}]}),
                         ["arn:aws:sns:us-east-1:123456789012:t"])
        quiet = self.stack()
        self.assertEqual(quiet.resolve({"A": {"Fn::If": ["HasTopic", "x", {"Ref": "AWS::NoValue"}]}, "B": 1}), {"B": 1})
        self.assertEqual(quiet.resolve([1, {"Ref": "AWS::NoValue"}, 2]), [1, 2])
        self.assertEqual(s.resolve({"Fn::Join": ["/", [{"Fn::GetAtt": ["Table", "Arn"]}, "index", "i"]]}),
                         f"arn:aws:dynamodb:us-east-1:123456789012:table/{s.name('Table')}/index/i")
        self.assertEqual(s.resolve({"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]}), "b")

    def test_what_cannot_be_resolved_is_named(self):
        s = self.stack()
        for value, named in [({"Fn::ImportValue": "Other"}, "Fn::ImportValue"),
                             ({"Fn::GetAtt": ["Queue", "Nope"]}, "Queue.Nope"),
                             ({"Ref": "Missing"}, "Ref Missing"),
                             ({"Fn::If": ["NoSuchCondition", 1, 2]}, "NoSuchCondition"),
                             ("{{resolve:ssm:/x}}", "{{resolve:ssm:/x}}")]:
            with self.subTest(named=named):
                with self.assertRaises(TemplateError) as e:
                    s.resolve({"Outer": value}, "fn environment X")
                self.assertIn(named, str(e.exception))
                self.assertIn("fn environment X", str(e.exception))

    def test_parameters_keep_their_rules(self):
        with self.assertRaisesRegex(TemplateError, "Topic.*AllowedPattern"):
            self.stack(Topic="not an arn")
        with self.assertRaisesRegex(TemplateError, "not declared"):
            self.stack(Nope="1")
        self.assertEqual(self.stack(Size="9").resolve({"Ref": "Size"}), "9")

    def test_dynamic_references_are_resolved_as_at_deploy_time(self):
        s = Stack(tiny(), "ws-chat-ci", dynamic=lambda service, key, where: f"<{service}:{key}>")
        self.assertEqual(s.resolve("a{{resolve:ssm:/ws-chat/ci/jwt-secret}}b"), "a<ssm:/ws-chat/ci/jwt-secret>b")


# --- The packaged template: data plane, functions, routes, the deployment file -------------------
class DataPlane(unittest.TestCase):
    def test_the_table_as_the_template_declares_it(self):
        template, state = packaged()
        stack = stack_of(template, state)
        request, after, ignored = dataplane.table_request(stack, "ConnectionsTable")
        self.assertEqual(request["TableName"], stack.name("ConnectionsTable"))
        self.assertEqual([k["AttributeName"] for k in request["KeySchema"]], ["pk", "sk"])
        self.assertEqual(request["BillingMode"], "PAY_PER_REQUEST")
        [index] = request["GlobalSecondaryIndexes"]
        self.assertEqual(index["IndexName"], "connections")
        self.assertEqual(index["Projection"], {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["expiresAt"]})
        self.assertEqual(request["SSESpecification"], {"Enabled": True})
        self.assertIn(("update_time_to_live", {"TableName": request["TableName"],
                                               "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "ttl"}}), after)
        self.assertIn("update_continuous_backups", [call for call, _ in after])
        self.assertEqual(ignored, [])

    def test_queues_dead_letters_first_with_their_own_properties(self):
        template, state = packaged()
        stack = stack_of(template, state)
        requests, notes = dataplane.queue_requests(stack)
        order = [logical for logical, _ in requests]
        self.assertLess(order.index("DeliveryDeadLetterQueue"), order.index("DeliveryQueue"))
        self.assertLess(order.index("DeliveryDeadLetterQueue"), order.index("InternalQueue"))
        attrs = dict(requests)["DeliveryQueue"]["Attributes"]
        self.assertEqual(attrs["VisibilityTimeout"], "360")
        self.assertEqual(attrs["MessageRetentionPeriod"], "86400")
        self.assertEqual(attrs["SqsManagedSseEnabled"], "true")
        self.assertEqual(json.loads(attrs["RedrivePolicy"]),
                         {"deadLetterTargetArn": stack.arn("DeliveryDeadLetterQueue"), "maxReceiveCount": 3})
        self.assertEqual(notes, [])

    def test_a_redrive_policy_without_max_receive_count_gets_sqss_default(self):
        template, state = packaged()
        del template["Resources"]["DeliveryQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
        requests, notes = dataplane.queue_requests(stack_of(template, state))
        self.assertEqual(json.loads(dict(requests)["DeliveryQueue"]["Attributes"]["RedrivePolicy"])["maxReceiveCount"], 10)
        self.assertTrue(any("DeliveryQueue" in n and "maxReceiveCount" in n for n in notes), notes)

    def test_the_internal_queues_policy_resolves_for_the_deployed_roles(self):
        template, state = packaged()
        stack = stack_of(template, state)
        policies = dataplane.queue_policies(stack)
        [statement] = policies["InternalQueue"]["Statement"]
        self.assertEqual(statement["Resource"], stack.arn("InternalQueue"))
        self.assertEqual(statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"],
                         [stack.arn("DefaultRole"), stack.arn("FanoutRole")])

    def test_ssm_references_are_the_templates(self):
        template, _ = packaged()
        self.assertEqual(dataplane.ssm_references(template), [f"/{service()}/ci/jwt-secret"])


class Functions(unittest.TestCase):
    def test_environments_resolved_from_the_template_with_the_overlay(self):
        stack, functions, (api, *_rest) = resolved()
        self.assertEqual(sorted(functions), ["authorizer", "connect", "default", "disconnect", "fanout"])
        connect = functions["connect"].environment
        self.assertEqual(connect["CONNECTIONS_TABLE"], stack.name("ConnectionsTable"))
        self.assertEqual(connect["REQUIRE_PRINCIPAL"], "true")
        self.assertEqual(connect["MANAGEMENT_ENDPOINT"], f"{PROXY_URL}/ci")
        self.assertEqual(connect["AWS_ENDPOINT_URL_DYNAMODB"], PROXY_URL)
        self.assertEqual(connect["AWS_ENDPOINT_URL_SQS"], PROXY_URL)
        self.assertEqual(connect["SSL_CERT_FILE"], CA)
        self.assertEqual(connect["AWS_EC2_METADATA_DISABLED"], "true")
        self.assertEqual(connect["AWS_REGION"], "us-east-1")
        self.assertEqual(functions["default"].environment["INTERNAL_QUEUE_URL"],
                         f"{PROXY_URL}/123456789012/{stack.name('InternalQueue')}")
        self.assertEqual(functions["fanout"].environment["DEAD_LETTER_QUEUE_URL"],
                         f"{PROXY_URL}/123456789012/{stack.name('DeliveryDeadLetterQueue')}")
        self.assertEqual(functions["authorizer"].environment["JWT_SECRET"], SECRET)
        self.assertEqual(functions["default"].environment["INLINE_RECIPIENTS"], "2")
        keys = {fn.environment["AWS_ACCESS_KEY_ID"] for fn in functions.values()}
        self.assertEqual(len(keys), 5, "one key per function")
        self.assertEqual((functions["fanout"].timeout, functions["fanout"].memory), (60, 512))
        self.assertEqual((functions["connect"].timeout, functions["connect"].memory, functions["connect"].reserved), (29, 128, None))
        self.assertTrue(str(functions["connect"].artifact).endswith("target/deploy/x86_64/connect.zip"))
        # Every overlaid variable is listed (printed one line each), the secret never shown.
        shown = {key: value for key, value, _ in functions["connect"].overlay}
        self.assertEqual(shown["AWS_SECRET_ACCESS_KEY"], "<generated>")
        self.assertIn("MANAGEMENT_ENDPOINT", shown)

    def test_reserved_concurrency_comes_from_the_template(self):
        template, state = packaged()
        template["Resources"]["FanoutLambdaFunction"]["Properties"]["ReservedConcurrentExecutions"] = 7
        _, functions, _ = resolved(template, state)
        self.assertEqual(functions["fanout"].reserved, 7)

    def test_an_unresolvable_variable_names_the_function_the_variable_and_the_intrinsic(self):
        template, state = packaged()
        template["Resources"]["DefaultLambdaFunction"]["Properties"]["Environment"]["Variables"]["X"] = {"Fn::ImportValue": "y"}
        with self.assertRaises(TemplateError) as e:
            resolved(template, state)
        self.assertIn("default", str(e.exception))
        self.assertIn("environment X", str(e.exception))
        self.assertIn("Fn::ImportValue", str(e.exception))

    def test_a_management_endpoint_elsewhere_is_refused(self):
        template, state = packaged()
        variables = template["Resources"]["FanoutLambdaFunction"]["Properties"]["Environment"]["Variables"]
        variables["MANAGEMENT_ENDPOINT"] = "https://abc.execute-api.us-east-1.amazonaws.com/ci"
        with self.assertRaisesRegex(TemplateError, "fanout: MANAGEMENT_ENDPOINT .* is not this stack's API"):
            resolved(template, state)

    def test_routes_the_authorizer_and_the_mappings(self):
        stack, functions, (api, selection, routes, authorizer, stage) = resolved()
        self.assertEqual(routes, {"$connect": "connect", "$disconnect": "disconnect", "$default": "default"})
        self.assertEqual(selection, "$request.body.action")
        self.assertEqual(authorizer, {"function": "authorizer", "identitySource": ["route.request.querystring.token"]})
        self.assertEqual(stage, "ci")
        mappings = deployment.mappings_of(stack, functions, PROXY_URL)
        self.assertEqual(sorted(m["queue"] for m in mappings), ["DeliveryQueue", "InternalQueue"])
        for m in mappings:
            self.assertEqual((m["function"], m["batchSize"], m["maximumConcurrency"], m["reportBatchItemFailures"]),
                             ("fanout", 10, 2, True))
            self.assertEqual(m["queueUrl"], f"{PROXY_URL}/123456789012/{stack.name(m['queue'])}")

    def test_a_misspelt_route_key_stays_misspelt(self):
        template, state = packaged()
        template["Resources"]["SdefaultWebsocketsRoute"]["Properties"]["RouteKey"] = "$defualt"
        _, _, (_, _, routes, _, _) = resolved(template, state)
        self.assertIn("$defualt", routes)
        self.assertNotIn("$default", routes)

    def test_the_deployment_file_follows_the_contract(self):
        stack, functions, (api, selection, routes, authorizer, stage) = resolved()
        mappings = deployment.mappings_of(stack, functions, PROXY_URL)
        doc = deployment.document(stack, functions, stack.name(api), selection, routes, authorizer, stage, mappings,
                                  "/tmp/r/functions", "/tmp/r/logs")
        self.assertEqual(set(doc), {"stage", "apiId", "region", "accountId", "routeSelectionExpression", "routes",
                                    "authorizer", "functions", "eventSourceMappings"})
        self.assertEqual(set(doc["functions"]["fanout"]), {"bootstrap", "environment", "timeoutSeconds", "memoryMb",
                                                           "reservedConcurrency", "logFile"})
        self.assertEqual(doc["functions"]["fanout"]["bootstrap"], "/tmp/r/functions/fanout/bootstrap")
        self.assertEqual(doc["functions"]["fanout"]["logFile"], "/tmp/r/logs/fanout.log")
        self.assertEqual(set(doc["eventSourceMappings"][0]), {"function", "queueUrl", "batchSize", "maximumConcurrency",
                                                               "reportBatchItemFailures", "sqsEndpoint", "accessKeyId",
                                                               "secretAccessKey"})
        self.assertEqual(doc["eventSourceMappings"][0]["accessKeyId"], functions["fanout"].access_key)
        text = json.dumps(doc)
        self.assertNotIn("Fn::", text)
        self.assertNotIn('"Ref"', text)
        self.assertNotIn("{{resolve", text)

    def test_artifacts_unzip_with_an_executable_bootstrap(self):
        with tempfile.TemporaryDirectory() as tmp:
            zip_path = Path(tmp) / "f.zip"
            with zipfile.ZipFile(zip_path, "w") as archive:
                info = zipfile.ZipInfo("bootstrap")
                info.external_attr = 0o100755 << 16
                archive.writestr(info, "#!/bin/sh\n")
            fn = deployment.Function("f", "F", "f", "R", {}, 3, 128, None, zip_path)
            deployment.unzip_artifacts({"f": fn}, Path(tmp) / "out")
            self.assertTrue(os.access(Path(tmp) / "out" / "f" / "bootstrap", os.X_OK))
            with zipfile.ZipFile(zip_path, "w") as archive:
                archive.writestr("other", "x")
            with self.assertRaisesRegex(TemplateError, "no bootstrap"):
                deployment.unzip_artifacts({"f": fn}, Path(tmp) / "out")


# --- The proxy's action and resource mapping -----------------------------------------------------
CTX = {"region": "us-east-1", "account": "123456789012", "partition": "aws", "api_id": "abc123defg"}
AUTH = "AWS4-HMAC-SHA256 Credential=ASIAKEY/20260101/us-east-1/{}/aws4_request, SignedHeaders=host, Signature=x"


def classify(body, target=None, path="/", method="POST", service="dynamodb", content_type=None):
    headers = {"authorization": AUTH.format(service)}
    if target:
        headers["x-amz-target"] = target
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    return proxy.classify(CTX, method, path, headers, data)


class ProxyMapping(unittest.TestCase):
    table = "arn:aws:dynamodb:us-east-1:123456789012:table/T"

    def test_dynamodb_operations_and_indexes(self):
        _, op, actions, _ = classify({"TableName": "T", "IndexName": "connections"}, "DynamoDB_20120810.Query")
        self.assertEqual((op, actions), ("Query", [("dynamodb:Query", f"{self.table}/index/connections")]))
        _, _, actions, _ = classify({"TableName": "T", "IndexName": "i"}, "DynamoDB_20120810.Scan")
        self.assertEqual(actions, [("dynamodb:Scan", f"{self.table}/index/i")])
        _, _, actions, _ = classify({"TableName": "T", "Key": {}}, "DynamoDB_20120810.UpdateItem")
        self.assertEqual(actions, [("dynamodb:UpdateItem", self.table)])

    def test_transactions_need_each_items_action(self):
        body = {"TransactItems": [{"Put": {"TableName": "T"}}, {"Update": {"TableName": "T"}},
                                  {"Delete": {"TableName": "U"}}, {"ConditionCheck": {"TableName": "T"}}]}
        _, _, actions, _ = classify(body, "DynamoDB_20120810.TransactWriteItems")
        self.assertEqual(actions, [("dynamodb:PutItem", self.table), ("dynamodb:UpdateItem", self.table),
                                   ("dynamodb:DeleteItem", self.table.replace("table/T", "table/U")),
                                   ("dynamodb:ConditionCheckItem", self.table)])
        _, _, actions, _ = classify({"TransactItems": [{"Get": {"TableName": "T"}}]}, "DynamoDB_20120810.TransactGetItems")
        self.assertEqual(actions, [("dynamodb:GetItem", self.table)])
        _, _, actions, _ = classify({"RequestItems": {"T": [], "U": []}}, "DynamoDB_20120810.BatchWriteItem")
        self.assertEqual([a for a, _ in actions], ["dynamodb:BatchWriteItem"] * 2)

    def test_sqs_json_and_query_protocols_and_batches(self):
        queue = "arn:aws:sqs:us-east-1:123456789012:q1"
        url = "http://127.0.0.1:9/123456789012/q1"
        service, op, actions, _ = classify({"QueueUrl": url, "Entries": []}, "AmazonSQS.SendMessageBatch", service="sqs")
        self.assertEqual((service, op, actions), ("sqs", "SendMessageBatch", [("sqs:SendMessage", queue)]))
        _, _, actions, _ = classify({"QueueUrl": url}, "AmazonSQS.ChangeMessageVisibilityBatch", service="sqs")
        self.assertEqual(actions, [("sqs:ChangeMessageVisibility", queue)])
        form = f"Action=DeleteMessageBatch&QueueUrl={url}&Version=2012-11-05".encode()
        service, op, actions, _ = classify(form, service="sqs")
        self.assertEqual((service, op, actions), ("sqs", "DeleteMessageBatch", [("sqs:DeleteMessage", queue)]))
        _, _, actions, _ = classify({"QueueName": "q1"}, "AmazonSQS.GetQueueUrl", service="sqs")
        self.assertEqual(actions, [("sqs:GetQueueUrl", queue)])

    def test_connections_are_manage_connections_on_the_method_and_id(self):
        service, _, actions, parts = classify(b"{}", path="/ci/@connections/L0SM9cOF%2FvHc%3D", service="execute-api")
        self.assertEqual(service, "execute-api")
        self.assertEqual(parts, {"stage": "ci", "connectionId": "L0SM9cOF/vHc="})
        self.assertEqual(actions, [("execute-api:ManageConnections",
                                    "arn:aws:execute-api:us-east-1:123456789012:abc123defg/ci/POST/@connections/L0SM9cOF/vHc=")])
        _, _, actions, _ = classify(b"", path="/ci/@connections/x", method="DELETE", service="execute-api")
        self.assertIn("/ci/DELETE/@connections/x", actions[0][1])

    def test_the_access_key_names_the_caller(self):
        self.assertEqual(proxy.credential({"authorization": AUTH.format("sqs")}, {}), ("ASIAKEY", "us-east-1", "sqs"))
        self.assertEqual(proxy.credential({}, {}), (None, None, None))

    def test_the_poison_rule_fails_only_queries_of_its_room(self):
        rule = proxy.fail_room_queries("poison")
        query = {"TableName": "T", "KeyConditionExpression": "pk = :pk",
                 "ExpressionAttributeValues": {":pk": {"S": "ROOM#poison"}, ":sk": {"S": "CONN#"}}}
        status, headers, body = rule("fanout", "dynamodb", "Query", query)
        self.assertEqual(status, 500)
        self.assertEqual(json.loads(body)["__type"], "com.amazonaws.dynamodb.v20120810#InternalServerError")
        other = copy.deepcopy(query)
        other["ExpressionAttributeValues"][":pk"]["S"] = "ROOM#poisonous"
        self.assertIsNone(rule("fanout", "dynamodb", "Query", other))
        self.assertIsNone(rule("fanout", "dynamodb", "GetItem", query))

    def test_the_gone_rule_answers_posts_to_its_connection_only(self):
        rule = proxy.gone_connection("abc=")
        status, headers, body = rule("disconnect", "execute-api", "POST @connections", {"stage": "ci", "connectionId": "abc="})
        self.assertEqual((status, headers["x-amzn-ErrorType"]), (410, "GoneException"))
        self.assertEqual(json.loads(body), {"message": ""})
        self.assertIsNone(rule("disconnect", "execute-api", "POST @connections", {"stage": "ci", "connectionId": "abd="}))
        self.assertIsNone(rule("disconnect", "execute-api", "GET @connections", {"stage": "ci", "connectionId": "abc="}))
        self.assertIsNone(rule("disconnect", "dynamodb", "GetItem", {"Key": {"pk": {"S": "CONN#abc="}}}))

    def test_a_gone_connection_is_answered_410_without_forwarding_and_recorded_as_injected(self):
        with tempfile.TemporaryDirectory() as tmp:
            recorder = proxy.RecordingProxy(dict(CTX), {"ASIAKEY": "disconnect"}, Path(tmp) / "record.jsonl",
                                            "http://127.0.0.1:9")
            headers = {"Authorization": AUTH.format("execute-api")}
            # No gateway yet: a forwarded post is answered 502 by the proxy itself.
            self.assertEqual(recorder.handle("POST", "/ci/@connections/abc%3D", headers, b"{}")[0], 502)
            recorder.add_rule(proxy.gone_connection("abc="))
            status, answer_headers, _ = recorder.handle("POST", "/ci/@connections/abc%3D", headers, b"{}")
            self.assertEqual(status, 410)
            self.assertIn(("x-amzn-ErrorType", "GoneException"), answer_headers)
            self.assertEqual(recorder.handle("POST", "/ci/@connections/other", headers, b"{}")[0], 502)
            records = proxy.read_record(recorder.record_path)
            self.assertEqual([(r["function"], r["status"], r.get("injected", False)) for r in records],
                             [("disconnect", 502, False), ("disconnect", 410, True), ("disconnect", 502, False)])
            self.assertTrue(records[1]["resource"].endswith("/ci/POST/@connections/abc="))

    def test_received_messages_in_both_protocols(self):
        answer = json.dumps({"Messages": [{"MessageId": "m1", "Body": "{}", "Attributes": {"ApproximateReceiveCount": "2"}}]})
        self.assertEqual(proxy.received_messages("ReceiveMessage", 200, "application/x-amz-json-1.0", answer.encode()),
                         [("m1", "{}", 2)])
        xml = (b'<ReceiveMessageResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/"><ReceiveMessageResult>'
               b'<Message><MessageId>m2</MessageId><Body>b</Body><Attribute><Name>ApproximateReceiveCount</Name>'
               b'<Value>3</Value></Attribute></Message></ReceiveMessageResult></ReceiveMessageResponse>')
        self.assertEqual(proxy.received_messages("ReceiveMessage", 200, "text/xml", xml), [("m2", "b", 3)])


def moto_available():
    import importlib.util
    return all(importlib.util.find_spec(name) for name in ("moto", "boto3", "flask"))


@unittest.skipUnless(moto_available(), "moto and boto3 are not installed (the project's .venv has them)")
class ProxyBeforeMoto(unittest.TestCase):
    """The proxy in front of a real moto: forwarded unchanged, recorded, a rule's failure answered."""

    @classmethod
    def setUpClass(cls):
        from rehearsal.processes import start_moto
        cls.tmp = tempfile.mkdtemp()
        cls.moto, cls.moto_url = start_moto(Path(cls.tmp) / "moto.log", sys.executable)
        cls.proxy = proxy.RecordingProxy(dict(CTX), {"ASIAFANOUT": "fanout"}, Path(cls.tmp) / "record.jsonl",
                                         cls.moto_url, rules=[proxy.fail_room_queries("poison")])
        cls.proxy.start()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.moto.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def client(self, service, key="ASIAFANOUT"):
        import boto3
        from botocore.config import Config
        return boto3.client(service, endpoint_url=self.proxy.url, region_name="us-east-1", aws_access_key_id=key,
                            aws_secret_access_key="x", config=Config(retries={"max_attempts": 1}))

    def test_calls_are_forwarded_recorded_and_failed_on_purpose(self):
        import botocore.exceptions
        dynamodb, sqs = self.client("dynamodb"), self.client("sqs")
        dynamodb.create_table(TableName="T", BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        dynamodb.put_item(TableName="T", Item={"pk": {"S": "ROOM#lobby"}})
        answer = dynamodb.query(TableName="T", KeyConditionExpression="pk = :pk",
                                ExpressionAttributeValues={":pk": {"S": "ROOM#lobby"}})
        self.assertEqual(answer["Count"], 1)
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            dynamodb.query(TableName="T", KeyConditionExpression="pk = :pk",
                           ExpressionAttributeValues={":pk": {"S": "ROOM#poison"}})
        self.assertEqual(e.exception.response["Error"]["Code"], "InternalServerError")
        url = sqs.create_queue(QueueName="q1")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="hello")
        received = sqs.receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"]
        self.assertEqual(received[0]["Body"], "hello")
        self.client("sqs", key="ASIASTRANGER").get_queue_attributes(QueueUrl=url)
        records = proxy.read_record(self.proxy.record_path)
        seen = [(r["function"], r["action"], r["status"], r.get("injected", False)) for r in records]
        self.assertIn(("fanout", "dynamodb:Query", 200, False), seen)
        self.assertIn(("fanout", "dynamodb:Query", 500, True), seen)
        self.assertIn(("fanout", "sqs:SendMessage", 200, False), seen)
        self.assertIn(("<unknown key ASIASTRANGER>", "sqs:GetQueueAttributes", 200, False), seen)
        [put] = [r for r in records if r["action"] == "dynamodb:PutItem"]
        self.assertEqual(put["resource"], "arn:aws:dynamodb:us-east-1:123456789012:table/T")
        self.assertEqual([(r[0], r[3]) for r in self.proxy.receipts], [("fanout", "hello")])


# --- IAM -----------------------------------------------------------------------------------------
def node_ready():
    return shutil.which("node") and (INFRA / "iam" / "node_modules" / "@cloud-copilot" / "iam-simulate").is_dir()


def remove_table_query(template):
    """FanoutRole without dynamodb:Query on the table (its index grant left as it is)."""
    statements = template["Resources"]["FanoutRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    # (An Fn::If statement, lifecycle events' grant, has no Action of its own.)
    [table_grant] = [s for s in statements if "dynamodb:Query" in s.get("Action", []) and len(s["Action"]) > 1]
    table_grant["Action"].remove("dynamodb:Query")


def record(function, action, resource):
    return {"function": function, "action": action, "resource": resource, "status": 200}


@unittest.skipUnless(node_ready(), "node or infra/iam/node_modules is missing (npm ci in infra/iam)")
class Iam(unittest.TestCase):
    def evaluate(self, records, template=None, state=None):
        stack, functions, _ = resolved(template, state)
        mapped = {}
        for m in deployment.mappings_of(stack, functions, PROXY_URL):
            mapped.setdefault(m["function"], set()).add(stack.arn(m["queue"]))
        principals = iam.principals_of(stack, functions, iam.backend_policy(stack))
        calls = iam.calls_of(records, stack, functions, mapped)
        verdicts = iam.verdicts(calls, iam.evaluate(iam.evaluation_request(stack, principals, calls)))
        names = display_names(stack)
        return stack, principals, verdicts, iam.problems(verdicts, principals, lambda text: shown(text, names))

    def fanout_records(self, stack):
        table = stack.arn("ConnectionsTable")
        return [record("fanout", "dynamodb:Query", table), record("fanout", "dynamodb:Query", f"{table}/index/connections"),
                record("fanout", "sqs:ReceiveMessage", stack.arn("DeliveryQueue")),
                record("fanout", "sqs:DeleteMessage", stack.arn("InternalQueue")),
                record("fanout", "sqs:SendMessage", stack.arn("DeliveryDeadLetterQueue")),
                record("fanout", "execute-api:ManageConnections",
                       f"arn:aws:execute-api:us-east-1:123456789012:{stack.name('WebsocketsApi')}/ci/POST/@connections/a="),
                record("backend", "sqs:SendMessage", stack.arn("DeliveryQueue"))]

    def test_the_deployed_roles_allow_what_the_functions_call(self):
        stack, _, _ = resolved()
        _, principals, verdicts, problems = self.evaluate(self.fanout_records(stack))
        self.assertEqual(problems, [])
        rows, strangers = iam.report(principals, verdicts)
        mine, denied, unused, service_only = rows["fanout"]
        self.assertEqual(denied, [])
        unused_actions = {(a, r.rsplit(":", 1)[-1]) for _, _, a, r in unused}
        self.assertIn(("dynamodb:BatchWriteItem", stack.arn("ConnectionsTable").rsplit(":", 1)[-1]), unused_actions)
        self.assertNotIn("dynamodb:Query", {a for _, _, a, r in unused if r == stack.arn("ConnectionsTable")})
        # The log grants are used by the Lambda service; the mapping creation's by Lambda.
        by = {tuple(users) for (_, _, a, _), users in service_only}
        self.assertIn((iam.LAMBDA_SERVICE,), by)
        self.assertNotIn("logs:PutLogEvents", {a for _, _, a, _ in unused})
        self.assertNotIn("sqs:GetQueueAttributes", {a for _, _, a, _ in unused})
        out = io.StringIO()
        with redirect_stdout(out):
            iam.print_table(rows, strangers, print)
        self.assertIn("[Lambda service: logs]", out.getvalue())

    def test_an_action_removed_from_a_role_is_named(self):
        template, state = packaged()
        remove_table_query(template)
        stack, _, _ = resolved(template, state)
        _, _, _, problems = self.evaluate(self.fanout_records(stack), template, state)
        self.assertEqual(len(problems), 1, problems)
        self.assertRegex(problems[0], rf"^fanout: dynamodb:Query on arn:aws:dynamodb:.*table/{service()}-ci-ConnectionsTable-\w+ "
                                      r"\(ConnectionsTable\) is implicitly denied \(no grant\) by FanoutRole$")

    def test_a_get_on_connections_and_a_foreign_table_are_denied(self):
        stack, _, _ = resolved()
        api = stack.name("WebsocketsApi")
        records = [record("default", "execute-api:ManageConnections",
                          f"arn:aws:execute-api:us-east-1:123456789012:{api}/ci/GET/@connections/a="),
                   record("connect", "dynamodb:UpdateItem", "arn:aws:dynamodb:us-east-1:123456789012:table/other")]
        _, _, _, problems = self.evaluate(records)
        self.assertEqual(len(problems), 2, problems)
        self.assertIn("default: execute-api:ManageConnections", problems[0])
        self.assertIn("by DefaultRole", problems[0])

    def test_the_internal_queues_policy_refuses_a_role_granted_to_send_there(self):
        template, state = packaged()
        statements = template["Resources"]["DisconnectRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        statements.append({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": {"Fn::GetAtt": ["InternalQueue", "Arn"]}})
        stack, _, _ = resolved(template, state)
        _, _, _, problems = self.evaluate([record("disconnect", "sqs:SendMessage", stack.arn("InternalQueue")),
                                           record("backend", "sqs:SendMessage", stack.arn("InternalQueue"))], template, state)
        self.assertEqual(len(problems), 2, problems)
        self.assertIn("disconnect: sqs:SendMessage", problems[0])
        self.assertIn("explicitly denied", problems[0])
        self.assertIn("backend: sqs:SendMessage", problems[1])

    def test_the_lambda_services_calls_use_the_functions_role(self):
        template, state = packaged()
        statements = template["Resources"]["ConnectRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        statements[0]["Resource"] = {"Fn::GetAtt": ["DefaultLogGroup", "Arn"]}
        _, _, _, problems = self.evaluate([], template, state)
        self.assertEqual(sorted(p.split(" on ")[0] for p in problems),
                         ["connect: logs:CreateLogStream", "connect: logs:PutLogEvents"])
        self.assertIn("Lambda service", problems[0])

    def test_a_mapping_whose_role_may_not_read_its_queue_is_named(self):
        template, state = packaged()
        statements = template["Resources"]["FanoutRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        for statement in statements:
            if isinstance(statement.get("Action"), list) and "sqs:GetQueueAttributes" in statement["Action"]:
                statement["Action"].remove("sqs:GetQueueAttributes")
        _, _, _, problems = self.evaluate([], template, state)
        self.assertEqual(len(problems), 2, problems)
        self.assertTrue(all("sqs:GetQueueAttributes" in p and "Lambda creating the event source mapping" in p for p in problems))

    def test_a_call_with_an_unknown_key_fails(self):
        _, _, _, problems = self.evaluate([record("<unknown key ASIAX>", "sqs:SendMessage", "arn:aws:sqs:us-east-1:1:q")])
        self.assertEqual(len(problems), 1)
        self.assertIn("a key of no function", problems[0])

    def test_iam_only_mode_reads_a_record(self):
        stack, _, _ = resolved()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "record.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in self.fanout_records(stack)))
            out = io.StringIO()
            with redirect_stdout(out):
                code = rehearse.main(["--template-dir", str(TEMPLATE_DIR), "--iam-only", str(path), "--work-dir", tmp])
            self.assertEqual(code, 0, out.getvalue())
            self.assertIn("fanout", out.getvalue())


# --- infra/iam-calls.json: each role's actions ---------------------------------------------------
class CallsFile(unittest.TestCase):
    def functions(self):
        fn = lambda role: type("Fn", (), {"role": role})()  # noqa: E731
        return {"default": fn("DefaultRole"), "fanout": fn("FanoutRole"), "authorizer": fn("AuthorizerRole")}

    def test_each_roles_actions_are_its_functions_and_mappings_not_the_logs(self):
        calls = [iam.Call("default", "dynamodb:Query", "t"), iam.Call("default", "dynamodb:GetItem", "t", count=3),
                 iam.Call("default", "dynamodb:Query", "t/index/i"),
                 iam.Call("fanout", "sqs:ReceiveMessage", "q", iam.MAPPING),
                 iam.Call("fanout", "sqs:GetQueueAttributes", "q", iam.MAPPING_CREATION, 0),
                 iam.Call("fanout", "logs:PutLogEvents", "g", iam.LAMBDA_SERVICE, 0),
                 iam.Call("fanout", "<GET />", "<unclassified request>"),
                 iam.Call("backend", "sqs:SendMessage", "q")]
        self.assertEqual(iam.role_actions(calls, self.functions()), {
            "AuthorizerRole": [], "DefaultRole": ["dynamodb:GetItem", "dynamodb:Query"],
            "FanoutRole": ["sqs:GetQueueAttributes", "sqs:ReceiveMessage"]})

    def test_an_action_the_file_lacks_fails_and_one_never_called_is_a_note(self):
        recorded = {"DefaultRole": ["dynamodb:GetItem", "dynamodb:DeleteItem"], "AuthorizerRole": [], "OldRole": ["x:Y"]}
        observed = {"DefaultRole": ["dynamodb:GetItem", "sqs:SendMessage"], "AuthorizerRole": [],
                    "NewRole": ["dynamodb:Query"], "QuietRole": []}
        problems, notes = iam.compare_calls(observed, recorded)
        self.assertEqual(problems, [
            "DefaultRole: the code now calls sqs:SendMessage, which infra/iam-calls.json lacks: "
            "./scripts/rehearse --record-calls, and review the diff",
            "NewRole: not in infra/iam-calls.json, and the code calls dynamodb:Query: "
            "./scripts/rehearse --record-calls, and review the diff"])
        self.assertEqual(notes, ["DefaultRole: dynamodb:DeleteItem in infra/iam-calls.json, never called in this run",
                                 "OldRole: in infra/iam-calls.json, but no function of this template has that role"])
        self.assertEqual(iam.compare_calls(recorded, recorded), ([], []))

    def test_the_file_is_written_in_a_stable_order_and_read_back(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "calls.json"
            path.write_text(iam.calls_text({"ZRole": ["b:B", "a:A"], "ARole": []}))
            text = path.read_text()
            self.assertEqual(list(json.loads(text)), ["//", "ARole", "ZRole"])
            self.assertIn('  "ZRole": [\n    "a:A",\n    "b:B"\n  ]\n}\n', text)
            self.assertEqual(iam.read_calls(path), {"ARole": [], "ZRole": ["a:A", "b:B"]})
            path.write_text('{"ARole": "a:A"}')
            with self.assertRaisesRegex(TemplateError, "not a list of actions"):
                iam.read_calls(path)
            with self.assertRaisesRegex(TemplateError, "--record-calls writes it"):
                iam.read_calls(Path(tmp) / "absent.json")
        self.assertEqual(iam.calls_diff({"A": ["x:X", "y:Y"], "B": []}, {"A": ["y:Y", "z:Z"], "C": ["c:C"]}),
                         ["A: +z:Z -x:X", "B: role removed (it had no action)", "C: new role: c:C"])

    def rehearsal(self, tmp, **state):
        args = rehearse.argparse.Namespace(calls_file=str(Path(tmp) / "calls.json"), record_calls=True, work_dir=tmp)
        r = rehearse.Rehearsal(args)
        r.say = lambda text: None
        r.observed_roles = {"DefaultRole": ["dynamodb:GetItem"], "AuthorizerRole": []}
        r.e2e_done = True
        for key, value in state.items():
            setattr(r, key, value)
        return r, Path(args.calls_file)

    def test_record_calls_writes_only_after_a_run_that_passed(self):
        with tempfile.TemporaryDirectory() as tmp:
            r, path = self.rehearsal(tmp, failures=["EMF: something"])
            [problem] = r.check_calls()
            self.assertIn("not written: the run did not pass", problem)
            self.assertFalse(path.exists())
            r, path = self.rehearsal(tmp, e2e_done=False)
            self.assertEqual(len(r.check_calls()), 1)
            r, path = self.rehearsal(tmp)
            self.assertEqual(r.check_calls(), [])
            self.assertEqual(iam.read_calls(path), r.observed_roles)
            r.args.record_calls = False
            self.assertEqual(r.check_calls(), [])
            r.observed_roles = {"DefaultRole": ["dynamodb:GetItem", "dynamodb:PutItem"], "AuthorizerRole": []}
            [problem] = r.check_calls()
            self.assertIn("DefaultRole: the code now calls dynamodb:PutItem", problem)

    def test_record_calls_needs_a_whole_run(self):
        with redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            with self.assertRaises(SystemExit):
                rehearse.main(["--iam-only", "record.jsonl", "--record-calls"])

    def test_the_files_roles_are_the_packaged_functions_roles(self):
        _, functions, _ = resolved()
        self.assertEqual(sorted(iam.read_calls(iam.CALLS_FILE)), sorted({fn.role for fn in functions.values()}))


# --- EMF against the alarms ----------------------------------------------------------------------
def emf_line(metric, value=1, **dims):
    return json.dumps({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [
        {"Namespace": namespace(), "Dimensions": [sorted(dims)], "Metrics": [{"Name": metric, "Unit": "Count"}]}]},
        **dims, metric: value, "RequestId": "r"})


class Metrics(unittest.TestCase):
    def check(self, lines, template=None):
        if template is None:
            template, state = packaged()
        else:
            _, state = packaged()
        out = io.StringIO()
        with redirect_stdout(out):
            problems = emf.check(stack_of(template, state), namespace(), lines, print)
        return problems, out.getvalue()

    def good(self):
        return {"authorizer": [emf_line("AuthorizerDecisions", Decision="deny"), emf_line("AuthorizerDecisions", Decision="allow")],
                "default": [emf_line("PostsDelivered", 3), emf_line("Messages", Action="publish"), "not json",
                            '{"level":"INFO","message":"x"}'],
                "fanout": [emf_line("ColdStarts", Function="fanout")]}

    def test_emitted_metrics_match_the_alarms_and_the_untriggered_are_listed(self):
        problems, out = self.check(self.good())
        self.assertEqual(problems, [])
        self.assertIn("AuthorizerDenialsAlarm: AuthorizerDecisions{'Decision': 'deny'} emitted by ['authorizer']", out)
        self.assertIn("FanOutFailuresAlarm: PostsFailed: not triggered by the rehearsal", out)
        self.assertIn("DeliveryGivenUpAlarm: DeliveryGivenUp: not triggered by the rehearsal", out)
        self.assertNotIn("on no dashboard or alarm", out)

    def test_an_alarm_on_a_metric_nobody_emits_fails(self):
        template, _ = packaged()
        metrics = template["Resources"]["ThrottledPostsAlarm"]["Properties"]["Metrics"]
        [delivered] = [m for m in metrics if m["Id"] == "delivered"]
        delivered["MetricStat"]["Metric"]["MetricName"] = "PostsDelivred"
        problems, _ = self.check(self.good(), template)
        self.assertEqual(len(problems), 1, problems)
        self.assertIn(f"ThrottledPostsAlarm reads {namespace()} PostsDelivred: no binary emitted it", problems[0])

    def test_an_alarm_on_the_wrong_dimension_fails(self):
        lines = self.good()
        lines["authorizer"] = [emf_line("AuthorizerDecisions", Decision="allow")]
        problems, _ = self.check(lines)
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("emitted only with dimensions", problems[0])

    def test_a_metric_on_no_dashboard_or_alarm_is_listed(self):
        lines = self.good()
        lines["default"].append(emf_line("Mystery", Kind="x"))
        problems, out = self.check(lines)
        self.assertEqual(problems, [])
        self.assertIn("emitted but on no dashboard or alarm: Mystery", out)


# --- The real connect binary through the proxy (a minimal Lambda Runtime API) --------------------
class MiniRuntime:
    """Just enough of the Lambda Runtime API to invoke one bootstrap with one event at a time."""

    def __init__(self, bootstrap, env, log_path):
        import queue
        self.events, self.answers, self.cv = queue.Queue(), {}, threading.Condition()
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                request_id, event = runtime.events.get(timeout=60)
                body = json.dumps(event).encode()
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 29000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:f")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.split("/")
                with runtime.cv:
                    runtime.answers[parts[-2] if parts[-1] in ("response", "error") else "init"] = (parts[-1], body)
                    runtime.cv.notify_all()
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{self.server.server_address[1]}",
                   AWS_LAMBDA_FUNCTION_NAME="f", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128", AWS_LAMBDA_FUNCTION_VERSION="$LATEST")
        self.log = open(log_path, "w")
        self.process = subprocess.Popen([bootstrap], env=env, stdout=self.log, stderr=self.log)

    def invoke(self, event, timeout=30):
        request_id = os.urandom(8).hex()
        self.events.put((request_id, event))
        deadline = time.monotonic() + timeout
        with self.cv:
            while (request_id not in self.answers and "init" not in self.answers
                   and time.monotonic() < deadline and self.process.poll() is None):
                self.cv.wait(0.2)
        return self.answers.get(request_id) or self.answers.get("init") or ("exited", self.process.poll())

    def stop(self):
        self.process.kill()
        self.process.wait(10)
        self.server.shutdown()
        self.server.server_close()
        self.log.close()


@unittest.skipUnless(moto_available() and node_ready() and (ROOT / "target/deploy/x86_64/connect.zip").is_file(),
                     "needs moto, infra/iam's node_modules and the staged zip target/deploy/x86_64/connect.zip")
class RealConnectBinary(unittest.TestCase):
    def test_the_packaged_connect_writes_its_row_through_the_proxy_as_its_role_allows(self):
        from rehearsal.processes import start_moto
        import boto3
        tmp = Path(tempfile.mkdtemp())
        moto, moto_url = start_moto(tmp / "moto.log", sys.executable)
        recorder = None
        runtime = None
        try:
            template, state = packaged()
            ctx = dict(CTX)
            recorder = proxy.RecordingProxy(ctx, {}, tmp / "record.jsonl", moto_url)
            recorder.start()
            stack = stack_of(template, state, queue_endpoint=recorder.url)
            client = boto3.client("dynamodb", endpoint_url=moto_url, region_name="us-east-1")
            request, after, _ = dataplane.table_request(stack, "ConnectionsTable")
            client.create_table(**request)
            functions = {k: v for k, v in deployment.functions_of(stack, state, INFRA).items() if k == "connect"}
            api = stack.name("WebsocketsApi")
            ctx["api_id"] = api
            fn = functions["connect"]
            deployment.apply_overlay(stack, fn, api, recorder.url, deployment.host_ca_bundle())
            recorder.principals[fn.access_key] = "connect"
            deployment.unzip_artifacts(functions, tmp / "functions")
            runtime = MiniRuntime(str(tmp / "functions" / "connect" / "bootstrap"), fn.environment, tmp / "connect.log")
            now = int(time.time() * 1000)
            event = {"requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "connectionId": "abcDEF123=",
                                        "domainName": f"{api}.execute-api.us-east-1.amazonaws.com", "stage": "ci",
                                        "apiId": api, "requestId": "r1", "connectedAt": now, "requestTimeEpoch": now,
                                        "identity": {"sourceIp": "127.0.0.1"}, "authorizer": {"principalId": "alice"},
                                        "messageDirection": "IN"},
                     "headers": {"Host": "x"}, "isBase64Encoded": False}
            kind, body = runtime.invoke(event)
            self.assertEqual(kind, "response", (body, (tmp / "connect.log").read_text()))
            self.assertEqual(json.loads(body)["statusCode"], 200)
            records = proxy.read_record(recorder.record_path)
            # The principal's ban (GetItem), the row (UpdateItem), the principal's index entry (PutItem).
            self.assertEqual([(r["function"], r["action"], r["resource"]) for r in records],
                             [("connect", action, stack.arn("ConnectionsTable"))
                              for action in ("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem")])
            principals = iam.principals_of(stack, functions)
            calls = iam.calls_of(records, stack, functions, {})
            verdicts = iam.verdicts(calls, iam.evaluate(iam.evaluation_request(stack, principals, calls)))
            self.assertEqual(iam.problems(verdicts, principals), [])
            items = client.scan(TableName=request["TableName"])["Items"]
            self.assertEqual(sorted(i["pk"]["S"] for i in items), ["CONN#abcDEF123=", "PRINCIPAL#alice"])
            lines = (tmp / "connect.log").read_text().splitlines()
            found = emf.emitted({"connect": lines})
            self.assertIn((namespace(), "ConnectionsOpened", frozenset()), found)
        finally:
            if runtime:
                runtime.stop()
            if recorder:
                recorder.stop()
            moto.stop()
            shutil.rmtree(tmp, ignore_errors=True)


class StepDiagnosis(unittest.TestCase):
    def test_a_functions_start_up_failure_is_quoted_from_its_log(self):
        from rehearsal import steps
        with tempfile.TemporaryDirectory() as tmp:
            r = FakeRehearsal("ws://x", "s", type("G", (), {"lines": ["INFO ready", "ERROR connect failed to start"]})())
            r.log_path = lambda name: Path(tmp) / f"{name}.log"
            (Path(tmp) / "connect.log").write_text(
                '{"level":"INFO","message":"hello"}\n'
                + emf_line("ColdStarts", Function="connect") + "\n"
                + '{"level":"ERROR","message":"the function could not start","error":"CONNECTIONS_TABLE is not set"}\n')
            text = steps.diagnosis(r, ["authorizer", "connect"])
            self.assertIn("connect logged: the function could not start: CONNECTIONS_TABLE is not set", text)
            self.assertIn("ERROR connect failed to start", text)
            self.assertNotIn("ColdStarts", text)

    def test_a_missing_default_route_is_named(self):
        from rehearsal import steps
        r = FakeRehearsal("ws://x", "s", None)
        r.doc["routes"] = {"$connect": "connect", "$defualt": "default"}
        self.assertIn("no $default route (its route keys: ['$connect', '$defualt'])", steps.route_diagnosis(r))


# --- The client steps against today's local gateway (its own authorizer, in-memory queue) --------
class FakeRehearsal:
    def __init__(self, ws_url, secret, gateway):
        self.ws_url, self.jwt_secret, self.auth_on, self.gateway = ws_url, secret, True, gateway
        self.doc = {"routes": {"$default": "default"},
                    "authorizer": {"identitySource": ["route.request.querystring.token"]},
                    "functions": {"default": {"environment": {"INLINE_RECIPIENTS": "2"}}}}
        self.lines = []

    def say(self, text):
        self.lines.append(text)

    def log_path(self, name):
        return Path("/nonexistent") / f"{name}.log"


@unittest.skipUnless(GATEWAY.is_file(), f"no local gateway at {GATEWAY}")
class ClientSteps(unittest.TestCase):
    """The WebSocket client, tokens and the connect and publish steps, against the local gateway in
    its ordinary mode (the same protocol the rehearsed stack speaks)."""

    def test_token_connect_and_inline_and_queued_publish(self):
        from rehearsal import steps
        from rehearsal.processes import Process
        secret = "rehearsal-test-secret-0123456789abcdef"
        with tempfile.TemporaryDirectory() as tmp:
            gateway = Process("gateway", [str(GATEWAY), "--port", "0", "--host", "127.0.0.1", "--stage", "ci",
                                          "--inline-recipients", "2", "--jwt-secret", secret], Path(tmp) / "gateway.log")
            session = None
            try:
                match = gateway.wait_for_line(r"WebSocket:\s+(ws://\S+)", 60)
                self.assertIsNotNone(match, gateway.lines)
                r = FakeRehearsal(match.group(1), secret, gateway)
                session = steps.Session(r)
                first = steps.step_token_connect(r, session)
                steps.step_publish(r, session, first)
                text = "\n".join(r.lines)
                self.assertIn("without a token: refused, 401", text)
                self.assertIn("whoami: identity, principal 'alice'", text)
                self.assertIn("ack queued: true, every member got it exactly once", text)
            finally:
                if session:
                    session.close_all()
                gateway.stop()


# --- Planted mistakes: the whole rehearsal, against the local gateway's --deployment mode ---------
def gateway_ready():
    """Fails, naming the build to run, when the gateway is missing or has no --deployment mode."""
    if not GATEWAY.is_file():
        raise AssertionError(f"no local gateway at {GATEWAY}: cargo build -p local-gateway -p wsctl")
    if not rehearse.gateway_has_deployment_mode(GATEWAY):
        raise AssertionError(f"{GATEWAY} has no --deployment mode: rebuild it (cargo build -p local-gateway)")


def start_rehearsal(template_dir, work_dir, *extra):
    """The rehearsal as scripts/rehearse runs it, started."""
    return subprocess.Popen([sys.executable, str(INFRA / "rehearse.py"), "--template-dir", str(template_dir),
                             "--gateway", str(GATEWAY), "--wsctl", str(WSCTL), "--work-dir", str(work_dir), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def run_rehearsal(template_dir, work_dir, *extra):
    """The rehearsal as scripts/rehearse runs it: (exit code, output)."""
    return finish(start_rehearsal(template_dir, work_dir, *extra))


def finish(process):
    """A started rehearsal's (exit code, output), within REHEARSAL_TIMEOUT."""
    try:
        out, _ = process.communicate(timeout=REHEARSAL_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.terminate()  # SIGTERM: the rehearsal stops its moto and gateway
        out, _ = process.communicate(timeout=60)
        raise AssertionError(f"the rehearsal took over {REHEARSAL_TIMEOUT} s: {out.decode(errors='replace')[-3000:]}")
    return process.returncode, out.decode(errors="replace")


# A good run scripts/test made already (scripts/rehearse --work-dir DIR, its output in FILE): the
# record and the output are read from there instead of rehearsing the same package twice.
GOOD_RUN = os.environ.get("REHEARSAL_GOOD_RUN")
GOOD_OUTPUT = os.environ.get("REHEARSAL_GOOD_OUTPUT")


def remove_disconnect_get_item(template):
    """DisconnectRole without dynamodb:GetItem: the check before a presence prune (a 410's member)."""
    statements = template["Resources"]["DisconnectRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    for statement in statements:
        if isinstance(statement.get("Action"), list) and "dynamodb:GetItem" in statement["Action"]:
            statement["Action"].remove("dynamodb:GetItem")


def rename_connect_table(template):
    variables = template["Resources"]["ConnectLambdaFunction"]["Properties"]["Environment"]["Variables"]
    variables["CONNECTION_TABLE"] = variables.pop("CONNECTIONS_TABLE")


def misspell_default_route(template):
    template["Resources"]["SdefaultWebsocketsRoute"]["Properties"]["RouteKey"] = "$defualt"


def identity_source_in_a_header(template):
    template["Resources"]["AuthorizerWebsocketsAuthorizer"]["Properties"]["IdentitySource"] = [
        "route.request.header.Authorization"]


def no_max_receive_count(template):
    del template["Resources"]["DeliveryQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]


# Each planted mistake, rehearsed at once beside the others: each run has its own moto, proxy and
# gateway on free ports, and mostly waits.
PLANTS = {"env": rename_connect_table, "route": misspell_default_route,
          "identity": identity_source_in_a_header, "redrive": no_max_receive_count}


class Planted(unittest.TestCase):
    """Each plants one mistake in a copy of the packaged template (never a re-package)."""
    good_run = None
    planted = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="rehearsal-planted-"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        gateway_ready()

    @classmethod
    def copy_with(cls, name, change):
        target = cls.tmp / name
        target.mkdir()
        template, state = packaged()
        change(template)
        (target / "cloudformation-template-update-stack.json").write_text(json.dumps(template))
        shutil.copy(TEMPLATE_DIR / "serverless-state.json", target / "serverless-state.json")
        return target

    @classmethod
    def planted_runs(cls):
        """Every planted mistake's (exit code, output), all rehearsed at once on first need."""
        if cls.planted is None:
            started = {name: start_rehearsal(cls.copy_with(name, change), cls.tmp / f"work-{name}")
                       for name, change in PLANTS.items()}
            cls.planted = {name: finish(process) for name, process in started.items()}
        return cls.planted

    def rehearse_planted(self, name):
        code, out = self.planted_runs()[name]
        self.assertEqual(code, 1, out[-3000:])
        failures = "\n".join(line for line in out.splitlines() if line.startswith("rehearse: FAILED"))
        return failures, out

    @classmethod
    def the_good_run(cls):
        """One real run of the unmodified package (shared: its record serves the IAM test)."""
        if cls.good_run is None:
            if GOOD_RUN and GOOD_OUTPUT:
                output = Path(GOOD_OUTPUT).read_text(errors="replace")
                code = 0 if "rehearse: every step passed" in output else 1
                cls.good_run = (code, output, Path(GOOD_RUN))
            else:
                work = cls.tmp / "work-good"
                cls.good_run = (*run_rehearsal(TEMPLATE_DIR, work), work)
        return cls.good_run

    def test_0_the_packaged_stack_rehearses(self):
        code, out, work = self.the_good_run()
        self.assertEqual(code, 0, out[-6000:])
        for line in ("every step passed", "whoami: identity, principal 'alice'", "ack queued: true",
                     "the poison job reached", "dead-lettered at once",
                     "disconnect posted presence to vanishing (", "x 410), read its row (",
                     "and pruned it: its membership gone", "no connection row or membership left",
                     "every action called is in infra/iam-calls.json"):
            self.assertIn(line, out)

    def test_an_iam_action_removed_from_a_role(self):
        code, out, work = self.the_good_run()
        self.assertEqual(code, 0, out[-3000:])

        copy_dir = self.copy_with("iam", remove_table_query)
        code, out = run_rehearsal(copy_dir, self.tmp / "work-iam", "--iam-only", str(work / "record.jsonl"))
        self.assertEqual(code, 1, out)
        self.assertRegex(out, r"rehearse: IAM: fanout: dynamodb:Query on \S+ \(ConnectionsTable\) is implicitly denied "
                              r"\(no grant\) by FanoutRole")

    def test_the_disconnect_roles_get_item_removed(self):
        # Only the vanished member's prune calls it: the good run's record must hold that call.
        code, out, work = self.the_good_run()
        self.assertEqual(code, 0, out[-3000:])
        copy_dir = self.copy_with("iam-disconnect", remove_disconnect_get_item)
        code, out = run_rehearsal(copy_dir, self.tmp / "work-iam-disconnect", "--iam-only", str(work / "record.jsonl"))
        self.assertEqual(code, 1, out)
        self.assertRegex(out, r"rehearse: IAM: disconnect: dynamodb:GetItem on \S+ \(ConnectionsTable\) is implicitly "
                              r"denied \(no grant\) by DisconnectRole")

    def test_an_action_the_calls_file_lacks(self):
        code, out, work = self.the_good_run()
        self.assertEqual(code, 0, out[-3000:])
        calls = iam.read_calls(iam.CALLS_FILE)
        calls["DisconnectRole"].remove("dynamodb:GetItem")
        path = self.tmp / "iam-calls-without-get.json"
        path.write_text(iam.calls_text(calls))
        code, out = run_rehearsal(TEMPLATE_DIR, self.tmp / "work-calls", "--iam-only", str(work / "record.jsonl"),
                                  "--calls-file", str(path))
        self.assertEqual(code, 1, out)
        self.assertIn("rehearse: IAM: DisconnectRole: the code now calls dynamodb:GetItem, which "
                      f"{path} lacks: ./scripts/rehearse --record-calls, and review the diff", out)

    def test_an_environment_variable_renamed(self):
        failures, out = self.rehearse_planted("env")
        self.assertIn("connect with a valid token", failures)
        self.assertIn("CONNECTIONS_TABLE", failures, out[-3000:])

    def test_a_route_key_misspelt(self):
        failures, out = self.rehearse_planted("route")
        self.assertIn("$defualt", failures, out[-3000:])
        self.assertIn("no $default route", failures)

    def test_the_authorizers_identity_source_changed(self):
        failures, out = self.rehearse_planted("identity")
        self.assertIn("route.request.header.Authorization", failures, out[-3000:])

    def test_the_queues_max_receive_count_removed(self):
        failures, out = self.rehearse_planted("redrive")
        self.assertIn("maxReceiveCount", failures, out[-3000:])
        self.assertIn("DeliveryQueue", failures)


if __name__ == "__main__":
    # scripts/test passes --no-skips: there every tool is installed, so a skip is a failure.
    no_skips = "--no-skips" in sys.argv
    argv = [arg for arg in sys.argv if arg != "--no-skips"]
    result = unittest.main(argv=argv, exit=False, verbosity=1).result
    for test, reason in result.skipped:
        print(f"skipped: {test.id()}: {reason}")
    if no_skips and result.skipped:
        print(f"{len(result.skipped)} test(s) skipped under --no-skips")
        sys.exit(1)
    sys.exit(0 if result.wasSuccessful() else 1)
