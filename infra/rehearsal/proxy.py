"""The recording proxy: the functions' (and the event source mappings') DynamoDB, SQS and
@connections endpoint. Each request is attributed to a principal by its SigV4 access key id,
mapped to the IAM actions and resources AWS would authorize it as, recorded (one JSON line per
action and resource), and forwarded unchanged to moto or to the gateway, whose answer goes back
unchanged. A rule can answer a request with a failure instead, without forwarding it (the
rehearsal's poison job; a member whose connection vanished without its $disconnect).

`classify` is pure (unit-tested); `RecordingProxy` is the server.
"""
import http.client
import json
import re
import sys
import threading
import time
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

CREDENTIAL = re.compile(r"Credential=([^/\s,]+)/\d{8}/([^/\s,]+)/([^/\s,]+)/aws4_request")
CONNECTIONS_PATH = re.compile(r"^/([^/]+)/@connections/([^/?]+)$")
# SQS batch operations are authorized as their single action.
SQS_BATCH = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
             "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}
TRANSACT_WRITE = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                  "ConditionCheck": "ConditionCheckItem"}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te", "trailer"}
UPSTREAM_TIMEOUT = 70  # s: above SQS's longest poll (20 s) and any function's call


def credential(headers, query):
    """(access key id, region, service) from the SigV4 Authorization header (or a presigned URL)."""
    text = headers.get("authorization") or ""
    match = CREDENTIAL.search(text)
    if not match and query.get("X-Amz-Credential"):
        match = CREDENTIAL.search("Credential=" + query["X-Amz-Credential"][0])
    return match.groups() if match else (None, None, None)


def table_arn(ctx, table, index=None):
    base = f"arn:{ctx['partition']}:dynamodb:{ctx['region']}:{ctx['account']}:table/{table}"
    return f"{base}/index/{index}" if index else base


def queue_arn(ctx, url_or_name):
    name = url_or_name.rstrip("/").split("/")[-1]
    return f"arn:{ctx['partition']}:sqs:{ctx['region']}:{ctx['account']}:{name}"


def dynamodb_actions(ctx, operation, body):
    """[(action, resource)] a DynamoDB request is authorized as."""
    if operation == "TransactWriteItems":
        out = []
        for item in body.get("TransactItems", []):
            for kind, action in TRANSACT_WRITE.items():
                if kind in item:
                    out.append((f"dynamodb:{action}", table_arn(ctx, item[kind].get("TableName", "?"))))
        return out
    if operation == "TransactGetItems":
        return [("dynamodb:GetItem", table_arn(ctx, item.get("Get", {}).get("TableName", "?")))
                for item in body.get("TransactItems", [])]
    if operation in ("BatchWriteItem", "BatchGetItem"):
        return [(f"dynamodb:{operation}", table_arn(ctx, table)) for table in sorted(body.get("RequestItems", {}))]
    if "TableName" in body:
        index = body.get("IndexName") if operation in ("Query", "Scan") else None
        return [(f"dynamodb:{operation}", table_arn(ctx, body["TableName"], index))]
    return [(f"dynamodb:{operation}", "*")]


def sqs_actions(ctx, operation, params):
    """[(action, resource)] an SQS request is authorized as."""
    action = "sqs:" + SQS_BATCH.get(operation, operation)
    if params.get("QueueUrl"):
        return [(action, queue_arn(ctx, params["QueueUrl"]))]
    if params.get("QueueName"):
        return [(action, queue_arn(ctx, params["QueueName"]))]
    return [(action, "*")]


def classify(ctx, method, path, headers, body):
    """(service, operation, [(action, resource)], parsed body) of one request. `headers` has
    lower-case names. Unknown requests give service None. An @connections request's "parsed
    body" is its path's stage and connection id (its body is the frame, which no rule reads)."""
    parsed = urlparse(path)
    query = parse_qs(parsed.query)
    target = headers.get("x-amz-target", "")
    _, _, scope_service = credential(headers, query)
    connections = CONNECTIONS_PATH.match(parsed.path)
    if connections:
        stage, connection = connections.group(1), unquote(connections.group(2))
        resource = (f"arn:{ctx['partition']}:execute-api:{ctx['region']}:{ctx['account']}:"
                    f"{ctx['api_id']}/{stage}/{method}/@connections/{connection}")
        return ("execute-api", f"{method} @connections", [("execute-api:ManageConnections", resource)],
                {"stage": stage, "connectionId": connection})
    if target.startswith("DynamoDB_"):
        operation = target.split(".", 1)[1]
        payload = _json(body)
        return "dynamodb", operation, dynamodb_actions(ctx, operation, payload), payload
    if target.startswith("AmazonSQS."):
        operation = target.split(".", 1)[1]
        payload = _json(body)
        return "sqs", operation, sqs_actions(ctx, operation, payload), payload
    if scope_service == "sqs" or "Action" in query:
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()} if body else {}
        form.update({k: v[0] for k, v in query.items() if k not in form})
        if "Action" in form:
            return "sqs", form["Action"], sqs_actions(ctx, form["Action"], form), form
    return None, f"{method} {parsed.path}", [], None


def _json(body):
    try:
        value = json.loads(body or b"{}")
        return value if isinstance(value, dict) else {}
    except ValueError:
        return {}


def strings_in(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for inner in value.values():
            yield from strings_in(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from strings_in(inner)


def fail_room_queries(room, principal=None):
    """A rule: a DynamoDB Query whose key condition values name `room` (its `ROOM#room` key) gets
    DynamoDB's 500 InternalServerError, every time."""
    def rule(who, service, operation, payload):
        if service != "dynamodb" or operation != "Query" or (principal and who != principal):
            return None
        values = list(strings_in((payload or {}).get("ExpressionAttributeValues", {})))
        if not any(v == room or v.endswith("#" + room) for v in values):
            return None
        body = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
                           "message": f"Internal server error (injected by the rehearsal: room {room})"}).encode()
        return 500, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": "InternalServerError"}, body
    return rule


# API Gateway's answer to a post to a connection that is gone, as the local gateway's own
# @connections answers it (apps/local-gateway/src/management.rs).
GONE = (410, {"Content-Type": "application/json", "x-amzn-ErrorType": "GoneException"},
        json.dumps({"message": ""}).encode())


def gone_connection(connection_id):
    """A rule: every `POST /{stage}/@connections/{connection_id}` gets API Gateway's 410
    GoneException, and never reaches the gateway: the connection vanished without its $disconnect
    (its socket may well be open still)."""
    def rule(who, service, operation, payload):
        if service != "execute-api" or operation != "POST @connections":
            return None
        if (payload or {}).get("connectionId") != connection_id:
            return None
        status, headers, body = GONE
        return status, dict(headers), body
    return rule


def received_messages(operation, status, content_type, body):
    """[(message id, body, receive count)] in a ReceiveMessage answer (JSON or query protocol)."""
    if operation != "ReceiveMessage" or status != 200:
        return []
    out = []
    try:
        if "json" in (content_type or "") or body.lstrip().startswith(b"{"):
            for m in json.loads(body).get("Messages", []):
                out.append((m.get("MessageId"), m.get("Body"),
                            int(m.get("Attributes", {}).get("ApproximateReceiveCount", 0) or 0)))
        else:
            root = ET.fromstring(body)
            for m in root.iter():
                if m.tag.endswith("Message") and not m.tag.endswith("ReceiveMessageResult"):
                    fields = {c.tag.split("}")[-1]: c for c in m}
                    if "MessageId" not in fields:
                        continue
                    count = 0
                    for attribute in m:
                        if attribute.tag.endswith("Attribute"):
                            kv = {c.tag.split("}")[-1]: c.text for c in attribute}
                            if kv.get("Name") == "ApproximateReceiveCount":
                                count = int(kv.get("Value") or 0)
                    out.append((fields["MessageId"].text, fields.get("Body").text if "Body" in fields else None, count))
    except (ValueError, ET.ParseError):
        return []
    return out


class RecordingProxy:
    """The server. `principals` maps access key ids to principals (function names, "backend")."""

    def __init__(self, ctx, principals, record_path, moto_url, gateway_url=None, rules=()):
        self.ctx = ctx
        self.principals = dict(principals)
        self.record_path = record_path
        self.moto = urlparse(moto_url)
        self.gateway = urlparse(gateway_url) if gateway_url else None
        self.rules = list(rules)
        self.lock = threading.Lock()
        self.records = []
        self.receipts = []   # (principal, queue arn, message id, body, receive count, time)
        self.server = None
        self.thread = None
        open(record_path, "w").close()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def set_gateway(self, gateway_url):
        self.gateway = urlparse(gateway_url)

    def add_rule(self, rule):
        """A rule that applies from the next request on (before the earlier ones)."""
        with self.lock:
            self.rules.insert(0, rule)

    def start(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    for _ in range(1_000_000):
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    return b"".join(chunks)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _any(self):
                body = self._body()
                status, headers, answer = proxy.handle(self.command, self.path, self.headers, body)
                try:
                    self.send_response_only(status)
                    for key, value in headers:
                        if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(answer)
                except (BrokenPipeError, ConnectionResetError):
                    # The caller gave up (a long poll cut by the gateway's shutdown): nothing to answer.
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _any

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="recording-proxy", daemon=True)
        self.thread.start()
        return self.url

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def handle(self, method, path, raw_headers, body):
        headers = {k.lower(): v for k, v in raw_headers.items()}
        key, _, _ = credential(headers, parse_qs(urlparse(path).query))
        who = self.principals.get(key, f"<unknown key {key}>" if key else "<unsigned>")
        service, operation, actions, payload = classify(self.ctx, method, path, headers, body)
        injected = None
        with self.lock:
            rules = list(self.rules)
        for rule in rules:
            injected = rule(who, service, operation, payload)
            if injected:
                break
        if injected:
            status, answer_headers, answer = injected
            answer_headers = list(answer_headers.items())
        else:
            upstream = self.gateway if service == "execute-api" else self.moto
            status, answer_headers, answer = self._forward(upstream, method, path, raw_headers, body)
        now = time.time()
        lines = [{"function": who, "action": action, "resource": resource, "status": status,
                  "service": service, "operation": operation, "time": round(now, 3)}
                 for action, resource in actions]
        if not actions:
            lines = [{"function": who, "action": None, "resource": None, "status": status,
                      "service": service, "operation": operation, "time": round(now, 3)}]
        for line in lines:
            if injected:
                line["injected"] = True
        content_type = dict((k.lower(), v) for k, v in answer_headers).get("content-type")
        receipts = received_messages(operation, status, content_type, answer)
        with self.lock:
            self.records.extend(lines)
            for message_id, message_body, count in receipts:
                self.receipts.append((who, actions[0][1] if actions else None, message_id, message_body, count, now))
            with open(self.record_path, "a") as f:
                for line in lines:
                    f.write(json.dumps(line) + "\n")
        return status, answer_headers, answer

    def _forward(self, upstream, method, path, raw_headers, body):
        if upstream is None:
            message = b'{"message":"the rehearsal has no gateway yet"}'
            return 502, [("Content-Type", "application/json")], message
        connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=UPSTREAM_TIMEOUT)
        try:
            headers = {k: v for k, v in raw_headers.items()
                       if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"}
            headers["Content-Length"] = str(len(body))
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            return response.status, response.getheaders(), answer
        except OSError as e:
            message = json.dumps({"message": f"the recording proxy could not reach {upstream.netloc}: {e}"}).encode()
            return 502, [("Content-Type", "application/json")], message
        finally:
            connection.close()


def read_record(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
