#!/usr/bin/env python3
"""Checks the CloudFormation template `serverless package` generated, and the zips it points at.

Fails (exit 1, one line per problem) on: a function not on provided.al2023, a missing WebSocket
route, TTL off on the table, any wildcard IAM resource beyond the two allowed suffixes (a log
group's streams `:*`, and `/@connections/*` on this API's stage), and an artifact without an
executable `bootstrap` at its root, an authorizer on a route other than $connect, and (with
--expect-authorizer) a $connect without one.

    python3 check_template.py TEMPLATE.json [--zips DIR] [--expect-authorizer]
"""
import json
import re
import sys
import zipfile
from pathlib import Path

REQUIRED_ROUTES = {"$connect", "$disconnect", "$default"}
RUNTIME = "provided.al2023"


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


ALLOWED_WILDCARD = [
    re.compile(r"^arn:\$\{AWS::Partition\}:execute-api:\$\{AWS::Region\}:\$\{AWS::AccountId\}:\$\{WebsocketsApi\}/[A-Za-z0-9_-]+/(POST|GET|DELETE)/@connections/\*$"),
]


def wildcard_problems(template):
    problems = []
    for name, role in resources(template, "AWS::IAM::Role").items():
        for policy in role.get("Properties", {}).get("Policies", []):
            for statement in policy.get("PolicyDocument", {}).get("Statement", []):
                targets = statement.get("Resource", [])
                for text in strings_in(targets):
                    if "*" in text and not any(p.match(text) for p in ALLOWED_WILDCARD):
                        problems.append(f"{name}: wildcard IAM resource {text!r}")
                if "NotResource" in statement:
                    problems.append(f"{name}: NotResource grants everything else")
    for name, policy in resources(template, "AWS::IAM::Policy").items():
        problems.append(f"{name}: a stand-alone IAM policy; grant through the function roles")
    return problems


def check(template, zips_dir=None, expect_authorizer=False):
    problems = []
    functions = resources(template, "AWS::Lambda::Function")
    if not functions:
        problems.append("no Lambda functions in the template")
    for name, fn in functions.items():
        props = fn.get("Properties", {})
        if props.get("Runtime") != RUNTIME:
            problems.append(f"{name}: runtime {props.get('Runtime')!r}, expected {RUNTIME!r}")
        if props.get("Handler") != "bootstrap":
            problems.append(f"{name}: handler {props.get('Handler')!r}, expected 'bootstrap'")
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
    for name, group in resources(template, "AWS::Logs::LogGroup").items():
        if "RetentionInDays" not in group.get("Properties", {}):
            problems.append(f"{name}: no log retention")
    problems += wildcard_problems(template)
    if zips_dir is not None:
        problems += zip_problems(Path(zips_dir))
    return problems


def zip_problems(zips_dir):
    problems = []
    for function in ("connect", "disconnect", "default", "authorizer"):
        path = zips_dir / function / "bootstrap.zip"
        if not path.is_file():
            problems.append(f"{path}: missing (run cargo lambda build --release --output-format zip)")
            continue
        with zipfile.ZipFile(path) as archive:
            info = {i.filename: i for i in archive.infolist()}
            if "bootstrap" not in info:
                problems.append(f"{path}: no 'bootstrap' at the root")
            elif not (info["bootstrap"].external_attr >> 16) & 0o111:
                problems.append(f"{path}: 'bootstrap' is not executable")
    return problems


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    template = json.loads(Path(argv[1]).read_text())
    zips = argv[argv.index("--zips") + 1] if "--zips" in argv else None
    problems = check(template, zips, expect_authorizer="--expect-authorizer" in argv)
    for p in problems:
        print(f"check_template: {p}")
    if problems:
        return 1
    print(f"check_template: {argv[1]} is fine")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
