"""The packaged template as CloudFormation would deploy it: parameters, conditions, the
intrinsic functions, the physical names and ARNs CloudFormation would give each resource.

Only the template (and the parameter values given) is read: nothing here knows serverless.yml.
Physical names follow CloudFormation's pattern for resources without an explicit name
(`<stack>-<LogicalId>-<SUFFIX>`), with a suffix derived from the stack and the logical id, so the
same template always resolves to the same names and ARNs (a record of one run can be evaluated
against a modified copy of the template).
"""
import base64
import hashlib
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import check_template  # noqa: E402  (infra/: resources(), referenced())

resources = check_template.resources
referenced = check_template.referenced

DEFAULT_REGION = "us-east-1"
# moto's default account, so that the ARNs moto builds and the ones resolved here agree.
DEFAULT_ACCOUNT = "123456789012"
URL_SUFFIX = {"aws": "amazonaws.com", "aws-cn": "amazonaws.com.cn"}


class TemplateError(Exception):
    """A template the rehearsal cannot deploy; the message names where and why."""


class NoValue:
    """`Ref: AWS::NoValue`: the property it stands for is removed."""

    def __repr__(self):
        return "AWS::NoValue"


NO_VALUE = NoValue()

# ${Name}, ${Name.Attribute}, ${AWS::Region}; ${!Literal} is a literal ${Literal}.
SUB_VARIABLE = re.compile(r"\$\{(!?)([^}]*)\}")
DYNAMIC_REFERENCE = re.compile(r"\{\{resolve:([a-z-]+):([^}]*)\}\}")


def partition_of(region):
    return "aws-cn" if region.startswith("cn-") else "aws"


def suffix(stack_name, logical_id, length=13, alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"):
    """A stable stand-in for CloudFormation's random suffix."""
    digest = hashlib.sha256(f"{stack_name}/{logical_id}".encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


def generated_name(stack_name, logical_id, limit):
    """CloudFormation's name for a resource with none: stack, logical id, random suffix, cut to
    the service's limit."""
    tail = suffix(stack_name, logical_id)
    head = f"{stack_name}-{logical_id}"[: max(limit - len(tail) - 1, 1)]
    return f"{head}-{tail}"


class Stack:
    """A template with its parameter values: resolves intrinsics to what CloudFormation would give.

    `queue_endpoint` is the scheme and host of queue URLs (`Ref` of a queue): AWS's by default,
    the recording proxy's in a rehearsal. `dynamic` resolves `{{resolve:service:key}}` references
    (CloudFormation resolves them at deploy time); without it they are an error."""

    def __init__(self, template, stack_name, region=DEFAULT_REGION, account_id=DEFAULT_ACCOUNT,
                 parameters=None, queue_endpoint=None, dynamic=None):
        self.template = template
        self.stack_name = stack_name
        self.region = region
        self.account_id = account_id
        self.partition = partition_of(region)
        self.url_suffix = URL_SUFFIX[self.partition]
        self.queue_endpoint = queue_endpoint or f"https://sqs.{region}.{self.url_suffix}"
        self.dynamic = dynamic
        self.resources_by_id = template.get("Resources", {})
        self.parameter_values = self._parameters(parameters or {})
        self._conditions = {}

    # --- Parameters and conditions -------------------------------------------------------------
    def _parameters(self, given):
        declared = self.template.get("Parameters", {})
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise TemplateError(f"parameters {unknown} are not declared by the template "
                                f"(it declares {sorted(declared)})")
        values = {}
        for name, spec in declared.items():
            if name in given:
                value = given[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise TemplateError(f"parameter {name} has no default and no value was given")
            pattern = spec.get("AllowedPattern")
            if pattern is not None and isinstance(value, str) and not re.fullmatch(pattern, value):
                raise TemplateError(f"parameter {name}: {value!r} does not match its AllowedPattern {pattern!r}")
            allowed = spec.get("AllowedValues")
            if allowed is not None and value not in allowed:
                raise TemplateError(f"parameter {name}: {value!r} is not one of {allowed}")
            values[name] = str(value) if not isinstance(value, list) else value
        return values

    def condition(self, name, where="template"):
        if name not in self._conditions:
            conditions = self.template.get("Conditions", {})
            if name not in conditions:
                raise TemplateError(f"{where}: condition {name!r} is not declared in Conditions")
            self._conditions[name] = None  # a cycle shows as an error, not a recursion
            value = self._condition_value(conditions[name], f"Conditions.{name}")
            self._conditions[name] = value
        value = self._conditions[name]
        if value is None:
            raise TemplateError(f"condition {name!r} refers to itself")
        return value

    def _condition_value(self, value, where):
        if isinstance(value, dict) and len(value) == 1:
            (key, args), = value.items()
            if key == "Condition":
                return self.condition(args, where)
            if key == "Fn::Equals":
                left, right = (self.resolve(a, where) for a in args)
                return str(left) == str(right) if not isinstance(left, (list, dict)) else left == right
            if key == "Fn::Not":
                return not self._condition_value(args[0], where)
            if key == "Fn::And":
                return all(self._condition_value(a, where) for a in args)
            if key == "Fn::Or":
                return any(self._condition_value(a, where) for a in args)
        if isinstance(value, bool):
            return value
        raise TemplateError(f"{where}: cannot evaluate the condition {json.dumps(value)}")

    # --- Physical names and ARNs ---------------------------------------------------------------
    def resource(self, logical_id, where="template"):
        if logical_id not in self.resources_by_id:
            raise TemplateError(f"{where}: no resource {logical_id!r} in the template")
        return self.resources_by_id[logical_id]

    def kind(self, logical_id):
        return self.resource(logical_id).get("Type")

    def properties(self, logical_id):
        return self.resource(logical_id).get("Properties", {})

    def _given_name(self, logical_id, prop, where):
        value = self.properties(logical_id).get(prop)
        return None if value is None else str(self.resolve(value, f"{where}.{prop}"))

    def name(self, logical_id):
        """The physical name (what `Ref` gives for the named kinds)."""
        kind = self.kind(logical_id)
        where = f"{logical_id}"
        if kind == "AWS::DynamoDB::Table":
            return self._given_name(logical_id, "TableName", where) or generated_name(self.stack_name, logical_id, 255)
        if kind == "AWS::SQS::Queue":
            given = self._given_name(logical_id, "QueueName", where)
            if given:
                return given
            fifo = str(self.properties(logical_id).get("FifoQueue", "false")).lower() == "true"
            name = generated_name(self.stack_name, logical_id, 80 - (5 if fifo else 0))
            return name + ".fifo" if fifo else name
        if kind == "AWS::IAM::Role":
            return self._given_name(logical_id, "RoleName", where) or generated_name(self.stack_name, logical_id, 64)
        if kind == "AWS::Lambda::Function":
            return self._given_name(logical_id, "FunctionName", where) or generated_name(self.stack_name, logical_id, 64)
        if kind == "AWS::Logs::LogGroup":
            return self._given_name(logical_id, "LogGroupName", where) or generated_name(self.stack_name, logical_id, 512)
        if kind == "AWS::S3::Bucket":
            return (self._given_name(logical_id, "BucketName", where)
                    or generated_name(self.stack_name, logical_id, 63).lower())
        if kind == "AWS::ApiGatewayV2::Api":
            return suffix(self.stack_name, logical_id, 10, "abcdefghijklmnopqrstuvwxyz0123456789")
        if kind == "AWS::ApiGatewayV2::Stage":
            return self._given_name(logical_id, "StageName", where)
        if kind in ("AWS::ApiGatewayV2::Integration", "AWS::ApiGatewayV2::Authorizer",
                    "AWS::ApiGatewayV2::Deployment", "AWS::ApiGatewayV2::Route"):
            return suffix(self.stack_name, logical_id, 7, "abcdefghijklmnopqrstuvwxyz0123456789")
        if kind == "AWS::SNS::Topic":
            return self.arn(logical_id)
        if kind == "AWS::Lambda::Version":
            function = referenced(self.properties(logical_id).get("FunctionName"), self.resources_by_id)
            if len(function) != 1:
                raise TemplateError(f"{logical_id}: cannot tell which function this version is of")
            return self.arn(next(iter(function))) + ":1"
        raise TemplateError(f"Ref {logical_id}: the rehearsal does not know what Ref gives for {kind}")

    def queue_url(self, logical_id):
        return f"{self.queue_endpoint}/{self.account_id}/{self.name(logical_id)}"

    def arn(self, logical_id):
        kind = self.kind(logical_id)
        p, r, a = self.partition, self.region, self.account_id
        if kind == "AWS::DynamoDB::Table":
            return f"arn:{p}:dynamodb:{r}:{a}:table/{self.name(logical_id)}"
        if kind == "AWS::SQS::Queue":
            return f"arn:{p}:sqs:{r}:{a}:{self.name(logical_id)}"
        if kind == "AWS::IAM::Role":
            path = self._given_name(logical_id, "Path", logical_id) or "/"
            return f"arn:{p}:iam::{a}:role{path}{self.name(logical_id)}"
        if kind == "AWS::Lambda::Function":
            return f"arn:{p}:lambda:{r}:{a}:function:{self.name(logical_id)}"
        if kind == "AWS::Logs::LogGroup":
            # What Fn::GetAtt gives: the group's ARN with `:*` (its streams).
            return f"arn:{p}:logs:{r}:{a}:log-group:{self.name(logical_id)}:*"
        if kind == "AWS::S3::Bucket":
            return f"arn:{p}:s3:::{self.name(logical_id)}"
        if kind == "AWS::SNS::Topic":
            topic = self._given_name(logical_id, "TopicName", logical_id) or generated_name(self.stack_name, logical_id, 256)
            return f"arn:{p}:sns:{r}:{a}:{topic}"
        raise TemplateError(f"Fn::GetAtt {logical_id}.Arn: the rehearsal does not know the ARN of {kind}")

    def ref(self, name, where):
        if name in self.parameter_values:
            return self.parameter_values[name]
        pseudo = {
            "AWS::Region": self.region, "AWS::AccountId": self.account_id,
            "AWS::Partition": self.partition, "AWS::URLSuffix": self.url_suffix,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:{self.partition}:cloudformation:{self.region}:{self.account_id}:stack/"
                            f"{self.stack_name}/{suffix(self.stack_name, 'StackId', 12).lower()}",
        }
        if name in pseudo:
            return pseudo[name]
        if name == "AWS::NoValue":
            return NO_VALUE
        if name not in self.resources_by_id:
            raise TemplateError(f"{where}: Ref {name}: neither a parameter nor a resource of the template")
        if self.kind(name) == "AWS::SQS::Queue":
            return self.queue_url(name)
        if self.kind(name) == "AWS::IAM::Role":
            return self.name(name)
        return self.name(name)

    def get_att(self, logical_id, attribute, where):
        if logical_id not in self.resources_by_id:
            raise TemplateError(f"{where}: Fn::GetAtt {logical_id}.{attribute}: no such resource")
        kind = self.kind(logical_id)
        if attribute == "Arn":
            return self.arn(logical_id)
        known = {
            ("AWS::SQS::Queue", "QueueName"): lambda: self.name(logical_id),
            ("AWS::SQS::Queue", "QueueUrl"): lambda: self.queue_url(logical_id),
            ("AWS::IAM::Role", "RoleId"): lambda: "AROA" + suffix(self.stack_name, logical_id, 17),
            ("AWS::ApiGatewayV2::Api", "ApiId"): lambda: self.name(logical_id),
            ("AWS::ApiGatewayV2::Api", "ApiEndpoint"):
                lambda: f"wss://{self.name(logical_id)}.execute-api.{self.region}.{self.url_suffix}",
            ("AWS::DynamoDB::Table", "StreamArn"):
                lambda: f"{self.arn(logical_id)}/stream/1970-01-01T00:00:00.000",
        }
        if (kind, attribute) not in known:
            raise TemplateError(f"{where}: Fn::GetAtt {logical_id}.{attribute}: the rehearsal does not "
                                f"resolve the attribute {attribute} of {kind}")
        return known[(kind, attribute)]()

    # --- Intrinsic functions -------------------------------------------------------------------
    def resolve(self, value, where="template"):
        """`value` with every intrinsic function resolved; AWS::NoValue removes its property."""
        if isinstance(value, list):
            items = [self.resolve(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return [v for v in items if v is not NO_VALUE]
        if isinstance(value, str):
            return self._dynamic(value, where)
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, args), = value.items()
            if key == "Ref":
                return self.ref(args, where)
            if key.startswith("Fn::") or key == "Condition":
                return self._function(key, args, where)
        out = {}
        for key, inner in value.items():
            resolved = self.resolve(inner, f"{where}.{key}")
            if resolved is not NO_VALUE:
                out[key] = resolved
        return out

    def _dynamic(self, text, where):
        if "{{resolve:" not in text:
            return text

        def one(match):
            if self.dynamic is None:
                raise TemplateError(f"{where}: the dynamic reference {match.group(0)} needs the value "
                                    f"CloudFormation would read at deploy time")
            return str(self.dynamic(match.group(1), match.group(2), where))

        return DYNAMIC_REFERENCE.sub(one, text)

    def _function(self, key, args, where):
        here = f"{where} ({key})"
        if key == "Fn::GetAtt":
            if isinstance(args, str):
                logical_id, _, attribute = args.partition(".")
            else:
                logical_id, attribute = args[0], self.resolve(args[1], here)
            return self.get_att(logical_id, attribute, where)
        if key == "Fn::Sub":
            return self._sub(args, here)
        if key == "Fn::Join":
            separator, parts = args
            parts = self.resolve(parts, here)
            if not isinstance(parts, list) or any(isinstance(p, (dict, list)) for p in parts):
                raise TemplateError(f"{here}: the parts do not resolve to a list of strings: {parts!r}")
            return str(separator).join(str(p) for p in parts)
        if key == "Fn::If":
            condition, yes, no = args
            return self.resolve(yes if self.condition(condition, where) else no, here)
        if key == "Fn::Select":
            index, items = int(self.resolve(args[0], here)), self.resolve(args[1], here)
            if not isinstance(items, list) or not 0 <= index < len(items):
                raise TemplateError(f"{here}: index {index} out of {items!r}")
            return items[index]
        if key == "Fn::Split":
            separator, text = args
            return str(self.resolve(text, here)).split(separator)
        if key == "Fn::Base64":
            return base64.b64encode(str(self.resolve(args, here)).encode()).decode()
        if key == "Fn::FindInMap":
            name, top, second = (self.resolve(a, here) for a in args[:3])
            try:
                return self.template["Mappings"][name][top][second]
            except KeyError:
                raise TemplateError(f"{here}: no mapping {name}.{top}.{second}") from None
        if key in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition"):
            return self._condition_value({key: args}, here)
        raise TemplateError(f"{where}: the rehearsal cannot resolve the intrinsic {key} "
                            f"({json.dumps({key: args})[:200]})")

    def _sub(self, args, where):
        if isinstance(args, str):
            text, variables = args, {}
        else:
            text, variables = args[0], {k: self.resolve(v, where) for k, v in args[1].items()}

        def one(match):
            bang, name = match.groups()
            if bang:
                return "${" + name + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, _, attribute = name.partition(".")
                return str(self.get_att(logical_id, attribute, where))
            value = self.ref(name, where)
            if value is NO_VALUE:
                raise TemplateError(f"{where}: ${{AWS::NoValue}} in a string")
            return str(value)

        return self._dynamic(SUB_VARIABLE.sub(one, text), where)


def display_names(stack):
    """[(ARN or ARN prefix, how to show it)], longest first: ARNs of the stack's resources shown by
    their logical ids in tables and messages."""
    pairs = []
    for logical_id, resource in stack.resources_by_id.items():
        kind = resource.get("Type")
        try:
            if kind in ("AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::IAM::Role", "AWS::Lambda::Function"):
                pairs.append((stack.arn(logical_id), logical_id))
            elif kind == "AWS::Logs::LogGroup":
                pairs.append((stack.arn(logical_id)[:-2], logical_id))
            elif kind == "AWS::ApiGatewayV2::Api":
                pairs.append((f"arn:{stack.partition}:execute-api:{stack.region}:{stack.account_id}:"
                              f"{stack.name(logical_id)}", logical_id))
        except TemplateError:
            continue
    return sorted(pairs, key=lambda p: -len(p[0]))


def shown(text, names):
    for physical, logical in names:
        if text.startswith(physical):
            return logical + text[len(physical):]
    return text


def load(template_dir):
    """The packaged template and serverless-state.json beside it."""
    template_dir = Path(template_dir)
    template_path = template_dir / "cloudformation-template-update-stack.json"
    state_path = template_dir / "serverless-state.json"
    try:
        template = json.loads(template_path.read_text())
    except (OSError, ValueError) as e:
        raise TemplateError(f"{template_path}: cannot read the packaged template ({e}); "
                            f"package first (scripts/rehearse does)") from None
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError) as e:
        raise TemplateError(f"{state_path}: cannot read the packaged service ({e})") from None
    return template, state


def stack_name_of(state):
    """The stack `serverless deploy` would create: provider.stackName, or <service>-<stage>."""
    service = state.get("service", {})
    provider = service.get("provider", {})
    if provider.get("stackName"):
        return provider["stackName"]
    name = service.get("serviceObject", {}).get("name") or service.get("service")
    stage = provider.get("stage")
    if not name or not stage:
        raise TemplateError("serverless-state.json names no service and stage (the stack's name)")
    return f"{name}-{stage}"
