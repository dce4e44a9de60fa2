"""The deployment file (read by the local gateway's deployment mode,
apps/local-gateway/src/deployment/; docs/local-gateway.md, "The deployment mode"): functions with their resolved
environment and the overlay of what cannot run on a laptop, routes, the authorizer, the event
source mappings. Built from the template (and serverless-state.json for each function's artifact
zip and short name); pure except `unzip_artifacts` and `write`.
"""
import hashlib
import json
import os
import secrets
import ssl
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from .template import TemplateError, referenced, resources

LAMBDA_DEFAULT_TIMEOUT = 3
LAMBDA_DEFAULT_MEMORY = 128
# What the rehearsal sets when the template does not (the queued step needs a small audience).
REHEARSAL_INLINE_RECIPIENTS = 2
BACKEND = "backend"


@dataclass
class Function:
    name: str                 # the short name (serverless.yml's key): connect, default, ...
    logical_id: str           # ConnectLambdaFunction
    function_name: str        # ws-chat-ci-connect
    role: str                 # the role's logical id
    template_environment: dict
    timeout: int
    memory: int
    reserved: object
    artifact: Path
    access_key: str = ""
    secret_key: str = ""
    environment: dict = field(default_factory=dict)
    overlay: list = field(default_factory=list)   # (variable, value printed, why)


def host_ca_bundle():
    """The host's CA bundle: the template's Amazon Linux path does not exist here."""
    candidates = [ssl.get_default_verify_paths().cafile, "/etc/ssl/certs/ca-certificates.crt",
                  "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"]
    for path in candidates:
        if path and Path(path).is_file():
            return path
    raise TemplateError("no CA bundle on this host for SSL_CERT_FILE")


def access_key_for(name):
    """A key id per principal, as an STS session's would be (20 characters, ASIA...)."""
    return "ASIA" + hashlib.sha256(f"rehearsal/{name}".encode()).hexdigest()[:16].upper()


def short_names(state, stack):
    """{FunctionName: short name} from serverless-state.json, and {short name: artifact path}."""
    names, artifacts = {}, {}
    for key, fn in state.get("service", {}).get("functions", {}).items():
        names[fn.get("name")] = key
        artifacts[key] = fn.get("package", {}).get("artifact")
    return names, artifacts


def functions_of(stack, state, service_dir):
    """Every AWS::Lambda::Function, with what the template says of it (environment unresolved)."""
    names, artifacts = short_names(state, stack)
    roles = resources(stack.template, "AWS::IAM::Role")
    out = {}
    for logical_id, resource in sorted(resources(stack.template, "AWS::Lambda::Function").items()):
        props = resource.get("Properties", {})
        function_name = stack.name(logical_id)
        short = names.get(function_name)
        if short is None:
            raise TemplateError(f"{logical_id} ({function_name}): serverless-state.json has no function of "
                                f"that name, so no artifact zip")
        if not artifacts.get(short):
            raise TemplateError(f"{logical_id}: serverless-state.json names no artifact zip for {short}")
        role = referenced(props.get("Role"), roles)
        if len(role) != 1:
            raise TemplateError(f"{logical_id}: its Role {props.get('Role')!r} is not a role of this stack")
        arch = props.get("Architectures", ["x86_64"])
        if arch != ["x86_64"]:
            raise TemplateError(f"{logical_id}: Architectures {arch}: the rehearsal runs the x86_64 package "
                                f"(scripts/rehearse packages it with --param=architecture=x86_64)")
        reserved = props.get("ReservedConcurrentExecutions")
        out[short] = Function(
            name=short, logical_id=logical_id, function_name=function_name, role=next(iter(role)),
            template_environment=props.get("Environment", {}).get("Variables", {}),
            timeout=int(stack.resolve(props.get("Timeout", LAMBDA_DEFAULT_TIMEOUT), f"{logical_id}.Timeout")),
            memory=int(stack.resolve(props.get("MemorySize", LAMBDA_DEFAULT_MEMORY), f"{logical_id}.MemorySize")),
            reserved=None if reserved is None else int(stack.resolve(reserved, f"{logical_id}.ReservedConcurrentExecutions")),
            artifact=(Path(service_dir) / artifacts[short]).resolve(),
        )
    if not out:
        raise TemplateError("no AWS::Lambda::Function in the template")
    return out


def function_by_uri(stack, uri, functions, where):
    """The function an integration's or authorizer's URI invokes (its Fn::GetAtt [Fn, Arn])."""
    lambdas = resources(stack.template, "AWS::Lambda::Function")
    named = referenced(uri, lambdas)
    if len(named) != 1:
        return None
    logical_id = next(iter(named))
    for fn in functions.values():
        if fn.logical_id == logical_id:
            return fn.name
    raise TemplateError(f"{where}: invokes {logical_id}, not a function of this deployment")


def routes_of(stack, functions):
    """(route selection expression, {RouteKey: function or None}, authorizer or None, stage)."""
    apis = resources(stack.template, "AWS::ApiGatewayV2::Api")
    websocket = {k: v for k, v in apis.items() if v.get("Properties", {}).get("ProtocolType") == "WEBSOCKET"}
    if len(websocket) != 1:
        raise TemplateError(f"expected one WebSocket API (AWS::ApiGatewayV2::Api, ProtocolType WEBSOCKET), "
                            f"found {sorted(websocket)}")
    api = next(iter(websocket))
    selection = stack.resolve(websocket[api]["Properties"].get("RouteSelectionExpression"), f"{api}.RouteSelectionExpression")
    integrations = resources(stack.template, "AWS::ApiGatewayV2::Integration")
    authorizers = resources(stack.template, "AWS::ApiGatewayV2::Authorizer")
    routes, authorizer = {}, None
    for name, route in sorted(resources(stack.template, "AWS::ApiGatewayV2::Route").items()):
        props = route.get("Properties", {})
        key = stack.resolve(props.get("RouteKey"), f"{name}.RouteKey")
        target = referenced(props.get("Target"), integrations)
        function = None
        if target:
            integration = integrations[next(iter(target))].get("Properties", {})
            function = function_by_uri(stack, integration.get("IntegrationUri"), functions, name)
        if key in routes:
            raise TemplateError(f"{name}: route key {key!r} is declared twice")
        routes[key] = function
        if props.get("AuthorizationType", "NONE") != "NONE":
            named = referenced(props.get("AuthorizerId"), authorizers)
            if not named:
                raise TemplateError(f"{name}: AuthorizationType {props['AuthorizationType']} but no AuthorizerId "
                                    f"of this stack")
            auth = authorizers[next(iter(named))].get("Properties", {})
            if key != "$connect":
                raise TemplateError(f"{name}: an authorizer on {key}: API Gateway authorizes WebSockets on $connect only")
            authorizer = {
                "function": function_by_uri(stack, auth.get("AuthorizerUri"), functions, next(iter(named))),
                "identitySource": stack.resolve(auth.get("IdentitySource", []), f"{next(iter(named))}.IdentitySource"),
            }
    stages = [stack.resolve(s["Properties"].get("StageName"), f"{n}.StageName")
              for n, s in resources(stack.template, "AWS::ApiGatewayV2::Stage").items()
              if api in referenced(s.get("Properties", {}).get("ApiId"), apis)]
    if len(stages) != 1:
        raise TemplateError(f"expected one stage of {api}, found {stages}")
    return api, selection, routes, authorizer, stages[0]


def mappings_of(stack, functions, proxy_url):
    """Each SQS event source mapping, as the contract's eventSourceMappings entries (keys added later)."""
    queues = resources(stack.template, "AWS::SQS::Queue")
    lambdas = resources(stack.template, "AWS::Lambda::Function")
    out = []
    for name, mapping in sorted(resources(stack.template, "AWS::Lambda::EventSourceMapping").items()):
        props = mapping.get("Properties", {})
        if str(stack.resolve(props.get("Enabled", True), name)).lower() == "false":
            continue
        queue = referenced(props.get("EventSourceArn"), queues)
        target = referenced(props.get("FunctionName"), lambdas)
        if len(queue) != 1 or len(target) != 1:
            raise TemplateError(f"{name}: the rehearsal runs SQS mappings onto a function of this stack only "
                                f"(EventSourceArn {props.get('EventSourceArn')!r})")
        function = next(fn.name for fn in functions.values() if fn.logical_id == next(iter(target)))
        scaling = stack.resolve(props.get("ScalingConfig", {}), f"{name}.ScalingConfig")
        out.append({
            "logicalId": name,
            "queue": next(iter(queue)),
            "function": function,
            "queueUrl": stack.queue_url(next(iter(queue))),
            "batchSize": int(stack.resolve(props.get("BatchSize", 10), f"{name}.BatchSize")),
            "maximumConcurrency": None if "MaximumConcurrency" not in scaling else int(scaling["MaximumConcurrency"]),
            "reportBatchItemFailures": "ReportBatchItemFailures" in stack.resolve(
                props.get("FunctionResponseTypes", []), f"{name}.FunctionResponseTypes"),
            "sqsEndpoint": proxy_url,
        })
    return out


def resolve_environment(stack, fn):
    """The template's variables with every intrinsic resolved (errors name the function and variable)."""
    out = {}
    for key, value in fn.template_environment.items():
        resolved = stack.resolve(value, f"{fn.name} ({fn.logical_id}) environment {key}")
        if isinstance(resolved, (dict, list)):
            raise TemplateError(f"{fn.name} environment {key}: resolves to {resolved!r}, not a string")
        out[key] = str(resolved).lower() if isinstance(resolved, bool) else str(resolved)
    return out


def management_overlay(value, api_id, proxy_url, stack, where):
    """MANAGEMENT_ENDPOINT with the proxy for host, its path kept; the host must be this API's."""
    parsed = urlparse(value)
    expected = f"{api_id}.execute-api.{stack.region}.{stack.url_suffix}"
    if parsed.hostname != expected:
        raise TemplateError(f"{where}: MANAGEMENT_ENDPOINT {value!r} is not this stack's API ({expected}); "
                            f"the rehearsal cannot stand in for another endpoint")
    return proxy_url.rstrip("/") + parsed.path.rstrip("/")


def apply_overlay(stack, fn, api_id, proxy_url, ca_bundle, inline_recipients=REHEARSAL_INLINE_RECIPIENTS):
    """fn.environment: the resolved template environment plus what a laptop needs instead."""
    env = resolve_environment(stack, fn)
    overlay = []

    def put(key, value, why, shown=None):
        overlay.append((key, shown if shown is not None else value, why))
        env[key] = value

    put("AWS_ENDPOINT_URL_DYNAMODB", proxy_url, "the recording proxy, before moto")
    put("AWS_ENDPOINT_URL_SQS", proxy_url, "the recording proxy, before moto")
    if "MANAGEMENT_ENDPOINT" in env:
        put("MANAGEMENT_ENDPOINT", management_overlay(env["MANAGEMENT_ENDPOINT"], api_id, proxy_url, stack,
                                                      f"{fn.name}"),
            f"was {env['MANAGEMENT_ENDPOINT']}: the proxy, before the gateway's @connections")
    put("SSL_CERT_FILE", ca_bundle, f"was {env.get('SSL_CERT_FILE', 'unset')}: the host's CA bundle")
    fn.access_key = access_key_for(fn.name)
    fn.secret_key = secrets.token_hex(20)
    put("AWS_ACCESS_KEY_ID", fn.access_key, f"{fn.name}'s own key: the proxy knows its calls by it")
    put("AWS_SECRET_ACCESS_KEY", fn.secret_key, "generated", shown="<generated>")
    put("AWS_REGION", stack.region, "as Lambda sets it")
    put("AWS_EC2_METADATA_DISABLED", "true", "no instance metadata on a laptop")
    if fn.name == "default" and "INLINE_RECIPIENTS" not in env:
        put("INLINE_RECIPIENTS", str(inline_recipients),
            "not in the template (serverless.yml has no inlineRecipients parameter yet): the queued step needs a small audience")
    fn.environment = env
    fn.overlay = overlay
    return env


def unzip_artifacts(functions, root):
    """Unzips each function's artifact into root/<name>/; its bootstrap must be executable."""
    for fn in functions.values():
        target = Path(root) / fn.name
        if target.exists():
            for path in sorted(target.rglob("*"), reverse=True):
                path.unlink() if path.is_file() or path.is_symlink() else path.rmdir()
        target.mkdir(parents=True, exist_ok=True)
        try:
            with zipfile.ZipFile(fn.artifact) as archive:
                for info in archive.infolist():
                    path = (target / info.filename).resolve()
                    if not str(path).startswith(str(target.resolve())):
                        raise TemplateError(f"{fn.artifact}: {info.filename} would unzip outside {target}")
                    archive.extract(info, target)
                    mode = (info.external_attr >> 16) & 0o777
                    if mode:
                        os.chmod(path, mode)
        except (OSError, zipfile.BadZipFile) as e:
            raise TemplateError(f"{fn.name}: cannot unzip its artifact {fn.artifact} ({e})") from None
        bootstrap = target / "bootstrap"
        if not bootstrap.is_file():
            raise TemplateError(f"{fn.name}: {fn.artifact} has no bootstrap at its root")
        if not bootstrap.stat().st_mode & stat.S_IXUSR:
            raise TemplateError(f"{fn.name}: {fn.artifact}'s bootstrap is not executable")


def document(stack, functions, api_id, selection, routes, authorizer, stage, mappings, bootstrap_root, log_root):
    """The deployment file's content (contract)."""
    out_mappings = []
    for m in mappings:
        fn = functions[m["function"]]
        entry = {k: v for k, v in m.items() if k not in ("logicalId", "queue")}
        entry.update({"accessKeyId": fn.access_key, "secretAccessKey": fn.secret_key})
        out_mappings.append(entry)
    return {
        "stage": stage,
        "apiId": api_id,
        "region": stack.region,
        "accountId": stack.account_id,
        "routeSelectionExpression": selection,
        "routes": routes,
        "authorizer": authorizer,
        "functions": {
            fn.name: {
                "bootstrap": str((Path(bootstrap_root) / fn.name / "bootstrap").resolve()),
                "environment": fn.environment,
                "timeoutSeconds": fn.timeout,
                "memoryMb": fn.memory,
                "reservedConcurrency": fn.reserved,
                "logFile": str((Path(log_root) / f"{fn.name}.log").resolve()),
            }
            for fn in functions.values()
        },
        "eventSourceMappings": out_mappings,
    }


def write(path, content):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(content, indent=2) + "\n")
