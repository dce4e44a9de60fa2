"""The template check must catch each fault it names: each test breaks a good template one way."""
import copy
import os
import sys
import tempfile
import unittest
import zipfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
import check_template  # noqa: E402


def minimal():
    return {
        "Resources": {
            "ConnectLambdaFunction": {"Type": "AWS::Lambda::Function", "Properties": {"Runtime": "provided.al2023", "Handler": "bootstrap"}},
            "ConnectLogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 14}},
            "R1": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {"RouteKey": "$connect"}},
            "R2": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {"RouteKey": "$disconnect"}},
            "R3": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {"RouteKey": "$default"}},
            "ConnectionsTable": {"Type": "AWS::DynamoDB::Table", "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": True},
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "SSESpecification": {"SSEEnabled": True}}},
            "DefaultRole": {"Type": "AWS::IAM::Role", "Properties": {"Policies": [{"PolicyDocument": {"Statement": [
                {"Effect": "Allow", "Action": ["logs:PutLogEvents"], "Resource": {"Fn::GetAtt": ["ConnectLogGroup", "Arn"]}},
                {"Effect": "Allow", "Action": ["execute-api:ManageConnections"], "Resource": [
                    {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebsocketsApi}/dev/POST/@connections/*"}]},
            ]}}]}},
        }
    }


def statements(template):
    return template["Resources"]["DefaultRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


class TemplateCheck(unittest.TestCase):
    def test_a_good_template_passes(self):
        self.assertEqual(check_template.check(minimal()), [])

    def test_a_wrong_runtime_fails(self):
        t = minimal()
        t["Resources"]["ConnectLambdaFunction"]["Properties"]["Runtime"] = "provided.al2"
        self.assertTrue(any("runtime" in p for p in check_template.check(t)))

    def test_a_missing_route_fails(self):
        t = minimal()
        del t["Resources"]["R3"]
        self.assertIn("missing WebSocket route $default", check_template.check(t))

    def test_ttl_off_fails(self):
        t = minimal()
        t["Resources"]["ConnectionsTable"]["Properties"]["TimeToLiveSpecification"]["Enabled"] = False
        self.assertTrue(any("TTL" in p for p in check_template.check(t)))

    def test_a_bare_wildcard_resource_fails(self):
        t = minimal()
        statements(t).append({"Effect": "Allow", "Action": ["dynamodb:Scan"], "Resource": "*"})
        self.assertTrue(any("wildcard" in p for p in check_template.check(t)))

    def test_a_wildcard_inside_an_arn_fails(self):
        for arn in [
            "arn:aws:dynamodb:us-east-1:123:table/*",
            {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:*/@connections/*"},
            {"Fn::Join": ["", [{"Fn::GetAtt": ["ConnectionsTable", "Arn"]}, "/index/*"]]},
        ]:
            t = minimal()
            statements(t).append({"Effect": "Allow", "Action": ["dynamodb:Query"], "Resource": [arn]})
            self.assertTrue(any("wildcard" in p for p in check_template.check(t)), arn)

    def test_a_zip_without_bootstrap_fails_and_one_with_it_passes(self):
        with tempfile.TemporaryDirectory() as tmp:
            for function in ("connect", "disconnect", "default", "authorizer"):
                folder = Path(tmp) / function
                folder.mkdir()
                with zipfile.ZipFile(folder / "bootstrap.zip", "w") as z:
                    entry = zipfile.ZipInfo("bootstrap" if function != "default" else "main")
                    entry.external_attr = 0o755 << 16
                    z.writestr(entry, b"\x7fELF")
            problems = check_template.zip_problems(Path(tmp))
            self.assertEqual(problems, [f"{Path(tmp) / 'default' / 'bootstrap.zip'}: no 'bootstrap' at the root"])


    def test_an_authorizer_off_connect_fails_and_a_missing_one_fails_when_expected(self):
        t = minimal()
        self.assertIn("$connect has no authorizer (auth is on by default)", check_template.check(t, expect_authorizer=True))
        t["Resources"]["R1"]["Properties"].update({"AuthorizationType": "CUSTOM", "AuthorizerId": {"Ref": "A"}})
        self.assertEqual(check_template.check(t, expect_authorizer=True), [])
        t["Resources"]["R3"]["Properties"]["AuthorizationType"] = "CUSTOM"
        self.assertTrue(any("only $connect" in p for p in check_template.check(t)))


if __name__ == "__main__":
    unittest.main()
