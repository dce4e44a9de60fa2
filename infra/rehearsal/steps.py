"""The end-to-end run against the rehearsed stack: each step prints a line, and fails with a
message naming what went wrong (with the functions' own last errors where they explain it)."""
import json
import os
import subprocess
import time
import uuid

from .proxy import gone_connection
from .wsclient import Client, HandshakeRefused, hs256_token

FRAME_WAIT = 15.0       # s for an answer to a client's frame
QUEUED_WAIT = 30.0      # s for queued delivery (a poll, a fan-out cold start)
POISON_WAIT = 150.0     # s for a poison job to use up its receives (SDK retries on each)
MALFORMED_WAIT = 45.0   # s for a malformed job: the worker dead-letters it on its first receive
CLEANUP_WAIT = 30.0     # s for every $disconnect to have run
PRUNE_WAIT = 15.0       # s for $disconnect's presence post, its 410 and the prune
VANISHED_ROOM = "rehearsal-vanished"
# The service keeps a connection a 410 names while its $connect may still be running (API Gateway
# answers 410 until $connect returns): CONNECT_GRACE in domain/src/connection.rs. A member that
# vanished did so long after its $connect: its row is dated back by CONNECTED_BEFORE_MS.
CONNECT_GRACE_S = 34
CONNECTED_BEFORE_MS = 10 * 60 * 1000
MAX_CLIENTS = 12


class StepFailed(Exception):
    pass


def function_errors(rehearsal, names, limit=3):
    """The last error lines each function logged (its start-up failure names the variable)."""
    out = []
    for name in names:
        path = rehearsal.log_path(name)
        if not path.is_file():
            continue
        errors = []
        for line in path.read_text(errors="replace").splitlines():
            text = line.strip()
            if not text:
                continue
            try:
                record = json.loads(text)
            except ValueError:
                if "error" in text.lower() or "panick" in text.lower():
                    errors.append(text[:400])
                continue
            if isinstance(record, dict) and (record.get("level") in ("ERROR", "error") or "error" in record) \
                    and "_aws" not in record:
                message = record.get("fields", record).get("message", "") if isinstance(record.get("fields"), dict) \
                    else record.get("message", "")
                error = record.get("error") or record.get("fields", {}).get("error", "")
                errors.append(f"{message}: {error}".strip(": ")[:400])
        distinct = []
        for error in reversed(errors):
            if error not in distinct:
                distinct.insert(0, error)
        if distinct:
            out.append(f"{name} logged: " + " | ".join(e[:300] for e in distinct[-limit:]))
    return "; ".join(out)


def gateway_errors(rehearsal, limit=5):
    if not getattr(rehearsal, "gateway", None):
        return ""
    lines = [l for l in rehearsal.gateway.lines if any(w in l.lower() for w in ("error", "fail", "panic", "refus"))]
    return " | ".join(lines[-limit:])


def diagnosis(rehearsal, functions):
    parts = [p for p in (function_errors(rehearsal, functions), gateway_errors(rehearsal)) if p]
    return ("; " + "; ".join(parts)) if parts else ""


def route_diagnosis(rehearsal):
    routes = rehearsal.doc["routes"]
    if "$default" not in routes:
        return f"; the template has no $default route (its route keys: {sorted(routes)}): messages reach no function"
    return ""


def api_gateway_error(frame):
    """API Gateway's own answer to a message no route takes ("Forbidden") or whose integration
    failed ("Internal server error"): no `type`, a `message`, its own requestId."""
    return "type" not in frame and frame.get("message") in ("Forbidden", "Internal server error")


class Session:
    """The clients of one run."""

    def __init__(self, rehearsal):
        self.r = rehearsal
        self.clients = []

    def url(self, token=None):
        return self.r.ws_url + (f"?token={token}" if token is not None else "")

    def connect(self, subject):
        token = hs256_token(self.r.jwt_secret, subject) if self.r.auth_on else None
        try:
            client = Client(self.url(token))
        except HandshakeRefused as e:
            raise StepFailed(self.connect_refused(e, subject)) from None
        except OSError as e:
            raise StepFailed(f"connect as {subject}: {e}{diagnosis(self.r, ['connect'])}") from None
        client.subject = subject
        self.clients.append(client)
        return client

    def connect_refused(self, e, subject):
        auth = self.r.doc.get("authorizer")
        source = ""
        if auth:
            sources = auth.get("identitySource")
            source = (f"; the authorizer's identity source is {sources}: the rehearsal sends the token as "
                      f"?token= (route.request.querystring.token), as browsers must")
            if sources == ["route.request.querystring.token"]:
                source = f"; identity source {sources}"
        return (f"connect with a valid token as {subject} was refused: {e.status} {e.body[:200]!r}{source}"
                f"{diagnosis(self.r, ['authorizer', 'connect'])}")

    def request(self, client, frame, answer_type, what, timeout=FRAME_WAIT):
        request_id = uuid.uuid4().hex[:12]
        client.send(dict(frame, requestId=request_id))
        try:
            answer = client.wait_for(lambda f: (f.get("requestId") == request_id and f.get("type") in (answer_type, "error"))
                                     or api_gateway_error(f), timeout, what)
        except TimeoutError as e:
            raise StepFailed(f"{what}: {e}{route_diagnosis(self.r)}{diagnosis(self.r, ['default'])}") from None
        if api_gateway_error(answer):
            raise StepFailed(f"{what}: API Gateway answered {json.dumps(answer)}{route_diagnosis(self.r)}"
                             f"{diagnosis(self.r, ['default'])}")
        return answer

    def close_all(self):
        for client in self.clients:
            client.close()
        self.clients = []


def step_token_connect(r, session):
    if not r.auth_on:
        client = session.connect("anonymous")
        r.say("  auth is off in this template: connected without a token")
    else:
        try:
            Client(session.url()).close()
            raise StepFailed("a connect WITHOUT a token was accepted: $connect must refuse it (401)")
        except HandshakeRefused as e:
            if e.status != 401:
                raise StepFailed(f"a connect without a token got {e.status}, expected 401 {e.body[:200]!r}"
                                 f"{diagnosis(r, ['authorizer', 'connect'])}") from None
        r.say("  without a token: refused, 401")
        bad = hs256_token("not-the-secret", "mallory")
        try:
            Client(session.url(bad)).close()
            raise StepFailed("a connect with a token signed by another secret was accepted")
        except HandshakeRefused as e:
            if e.status not in (401, 403):
                raise StepFailed(f"a connect with a forged token got {e.status}, expected 403{diagnosis(r, ['authorizer'])}") from None
            r.say(f"  with a forged token: refused, {e.status}")
        client = session.connect("alice")
        r.say("  with an HS256 token (the secret put on SSM): open")
    answer = session.request(client, {"action": "whoami"}, "identity", "whoami's identity frame")
    expected = "alice" if r.auth_on else None
    if answer.get("type") != "identity" or answer.get("principal") != expected:
        raise StepFailed(f"whoami answered {answer}, expected an identity with principal {expected!r}")
    r.say(f"  whoami: identity, principal {answer.get('principal')!r}, connection {answer.get('connectionId')}")
    return client


def join(session, client, room):
    answer = session.request(client, {"action": "join", "room": room}, "ack", f"{client.subject}'s join of {room}")
    if answer.get("type") != "ack":
        raise StepFailed(f"{client.subject} could not join {room}: {answer}")


def expect_everyone(session, members, marker, what, timeout, sender=None):
    """Each member gets the message carrying `marker` exactly once; returns the frames."""
    frames = {}
    for client in members:
        try:
            frames[client.subject] = client.wait_for(
                lambda f: f.get("type") == "message" and isinstance(f.get("data"), dict)
                and f["data"].get("marker") == marker, timeout, f"{what} at {client.subject}")
        except TimeoutError as e:
            got = sorted(frames)
            raise StepFailed(f"{what}: {e}; delivered to {got} of {[c.subject for c in members]}"
                             f"{diagnosis(session.r, ['default', 'fanout'])}") from None
    time.sleep(1.0)  # a second copy would come within this
    for client in members:
        extra = client.taken(lambda f: f.get("type") == "message" and isinstance(f.get("data"), dict)
                             and f["data"].get("marker") == marker)
        if extra:
            raise StepFailed(f"{what}: {client.subject} got the message {1 + len(extra)} times (ids "
                             f"{[frames[client.subject].get('id')] + [x.get('id') for x in extra]})")
    return frames


def step_publish(r, session, first):
    inline = int(r.doc["functions"]["default"]["environment"].get("INLINE_RECIPIENTS", "1000"))
    total = inline + 2
    if total > MAX_CLIENTS:
        raise StepFailed(f"INLINE_RECIPIENTS is {inline} in the template: the queued step needs more members than "
                         f"that; package with --param=inlineRecipients=2 (scripts/rehearse does)")
    clients = [first] + [session.connect(f"user{i}") for i in range(1, total)]
    small = clients[:max(1, min(2, inline))]
    for client in small:
        join(session, client, "rehearsal-inline")
    marker = uuid.uuid4().hex
    ack = session.request(first, {"action": "publish", "room": "rehearsal-inline", "data": {"marker": marker}},
                          "ack", "the inline publish's ack")
    if ack.get("type") != "ack" or ack.get("queued") is not False:
        raise StepFailed(f"the inline publish (room of {len(small)}, INLINE_RECIPIENTS {inline}) answered {ack}, "
                         f"expected an ack with queued: false")
    expect_everyone(session, small, marker, "the inline publish", FRAME_WAIT)
    r.say(f"  inline: a room of {len(small)} (INLINE_RECIPIENTS {inline}): every member got it once, ack queued: false")
    for client in clients:
        join(session, client, "rehearsal-queued")
    marker = uuid.uuid4().hex
    ack = session.request(first, {"action": "publish", "room": "rehearsal-queued", "data": {"marker": marker}},
                          "ack", "the queued publish's ack")
    if ack.get("type") != "ack" or ack.get("queued") is not True:
        env = r.doc["functions"]["default"]["environment"]
        queues = {k: v for k, v in env.items() if k.endswith("QUEUE_URL") or k == "INLINE_RECIPIENTS"}
        raise StepFailed(f"the publish to a room of {len(clients)} (INLINE_RECIPIENTS {inline}) answered {ack}, "
                         f"expected queued: true (default's environment has {queues}: does its binary read "
                         f"them, or is its artifact older than the template?){diagnosis(r, ['default'])}")
    expect_everyone(session, clients, marker, "the queued publish", QUEUED_WAIT)
    r.say(f"  queued: a room of {len(clients)}: ack queued: true, every member got it exactly once")
    return clients


def wsctl(r, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=r.backend_key, AWS_SECRET_ACCESS_KEY=r.backend_secret,
               AWS_REGION=r.stack.region, AWS_DEFAULT_REGION=r.stack.region, AWS_EC2_METADATA_DISABLED="true")
    for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS"):
        env.pop(var, None)
    argv = [str(r.wsctl), "publish", *args, "--queue-url", r.backend_queue_url, "--endpoint-url", r.proxy.url]
    try:
        done = subprocess.run(argv, capture_output=True, env=env, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        raise StepFailed(f"wsctl publish {' '.join(args)} did not finish within 60 s") from None
    if done.returncode != 0:
        raise StepFailed(f"wsctl publish {' '.join(args)} failed: {done.stderr.decode()[-500:]}")
    return done.stdout.decode().strip()


def step_backend_publish(r, session, members):
    marker = uuid.uuid4().hex
    message_id = wsctl(r, "--room", "rehearsal-queued", "--data", json.dumps({"marker": marker}))
    frames = expect_everyone(session, members, marker, "the backend's publish (wsctl, backend queue)", QUEUED_WAIT)
    with_from = [s for s, f in frames.items() if "from" in f]
    if with_from:
        raise StepFailed(f"the backend's message reached {with_from} with a `from`: a backend speaks as nobody")
    r.say(f"  wsctl publish --queue-url <{r.backend_queue}> (key {r.backend_key}): message {message_id} "
          f"reached all {len(members)} members, no `from`")


def dead_letters(r):
    """Every message in the dead-letter queue, read without taking it (visibility 0)."""
    found = {}
    for _ in range(10):
        answer = r.moto_sqs.receive_message(QueueUrl=r.dead_letter_moto_url, MaxNumberOfMessages=10,
                                            VisibilityTimeout=0, AttributeNames=["All"],
                                            MessageAttributeNames=["All"], WaitTimeSeconds=0)
        messages = answer.get("Messages", [])
        new = [m for m in messages if m["MessageId"] not in found]
        for m in messages:
            found[m["MessageId"]] = m
        if not new:
            break
    return list(found.values())


def body_of(message):
    try:
        body = json.loads(message.get("Body") or "")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def step_poison(r):
    expected = r.max_receive_count
    if r.max_receive_count_declared is None:
        # Rehearsing it would take SQS's default of 10 failing receives (each a fanout invocation
        # with its retries) to show what the template already says: nobody chose the bound.
        raise StepFailed(f"{r.backend_queue}'s RedrivePolicy names no maxReceiveCount: SQS's default "
                         f"({expected}) would apply, so a poison job is retried {expected} times; declare it")
    wsctl(r, "--room", "poison", "--data", json.dumps({"poison": True}))
    r.say("  a job for the room `poison` sent; the proxy answers every Query of that room with DynamoDB's 500")
    malformed = {"room": "rehearsal-queued", "data": 1, "from": "x"}
    r.backend_sqs.send_message(QueueUrl=r.backend_queue_url, MessageBody=json.dumps(malformed))
    r.say(f"  a malformed backend message sent: {json.dumps(malformed)} (a backend speaking as a user)")
    start = time.monotonic()
    poison = bad = None
    for _ in range(int(POISON_WAIT) + 1):
        for m in dead_letters(r):
            body = body_of(m)
            if body.get("room") == "poison":
                poison = m
            elif body.get("from") == "x" and body.get("data") == 1:
                bad = m
        waited = time.monotonic() - start
        if (poison or waited > POISON_WAIT) and (bad or waited > MALFORMED_WAIT):
            break
        time.sleep(1.0)
    receipts = [x for x in r.proxy.receipts if body_of({"Body": x[3]}).get("room") == "poison"]
    if not poison:
        counts = sorted({x[4] for x in receipts})
        why = ""
        if r.max_receive_count_declared is None:
            why = (f"; {r.backend_queue}'s RedrivePolicy names no maxReceiveCount, so SQS's default of "
                   f"{expected} applies")
        raise StepFailed(f"the poison job did not reach the dead-letter queue {r.dead_letter_queue} within "
                         f"{POISON_WAIT:g} s: received {len(receipts)} times (receive counts {counts}){why}"
                         f"{diagnosis(r, ['fanout'])}")
    received = len(receipts)
    if r.max_receive_count_declared is None:
        raise StepFailed(f"the poison job reached {r.dead_letter_queue} only after {received} receives: "
                         f"{r.backend_queue}'s RedrivePolicy names no maxReceiveCount (SQS's default, "
                         f"{expected}, applied); declare it")
    if received != expected:
        raise StepFailed(f"the poison job reached {r.dead_letter_queue} after {received} receives, not the "
                         f"RedrivePolicy's maxReceiveCount {expected}")
    r.say(f"  the poison job reached {r.dead_letter_queue} after {received} receives "
          f"(maxReceiveCount {expected}; each failed as the proxy made its Query fail)")
    if not bad:
        raise StepFailed(f"the malformed backend message did not reach {r.dead_letter_queue} within "
                         f"{MALFORMED_WAIT:g} s: the worker must dead-letter it at once, with its reason"
                         f"{diagnosis(r, ['fanout'])}")
    reason = bad.get("MessageAttributes", {}).get("reason", {}).get("StringValue")
    if not reason:
        raise StepFailed(f"the malformed message reached {r.dead_letter_queue} without a `reason` message attribute "
                         f"(attributes: {sorted(bad.get('MessageAttributes', {}))})")
    malformed_receipts = [x for x in r.proxy.receipts if body_of({"Body": x[3]}).get("from") == "x"]
    if len(malformed_receipts) > 1:
        raise StepFailed(f"the malformed message was received {len(malformed_receipts)} times: the worker must "
                         f"dead-letter it at once")
    r.say(f"  the malformed message was dead-lettered at once by the worker, reason: {reason!r}")


def table_items(r):
    items, start = [], None
    for _ in range(1000):
        args = {"TableName": r.table_name}
        if start:
            args["ExclusiveStartKey"] = start
        page = r.moto_dynamodb.scan(**args)
        items += page.get("Items", [])
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    return items


def step_cleanup(r, session):
    count = len(session.clients)
    session.close_all()
    deadline = time.monotonic() + CLEANUP_WAIT
    left = []
    while time.monotonic() < deadline:
        items = table_items(r)
        # Connection rows, and memberships (a room's sort keys that start as a connection's); a
        # room's stream (its counter, kept messages, once-ids) stays until its TTL by design.
        left = [i for i in items if i.get("pk", {}).get("S", "").startswith("CONN#")
                or (i.get("pk", {}).get("S", "").startswith("ROOM#")
                    and i.get("sk", {}).get("S", "").startswith("CONN#"))]
        if not left:
            kept = [f"{i['pk']['S'][:40]}/{i.get('sk', {}).get('S', '')}" for i in items]
            r.say(f"  {count} sockets closed; no connection row or membership left"
                  + (f" (kept by design, with their TTL: {len(kept)} item(s) {kept[:3]})" if kept else ""))
            return
        time.sleep(0.5)
    shown = [f"{i['pk']['S']}/{i.get('sk', {}).get('S', '')}" for i in left[:5]]
    raise StepFailed(f"{len(left)} connection rows or memberships left {CLEANUP_WAIT:g} s after the sockets closed: "
                     f"{shown}{diagnosis(r, ['disconnect'])}")


def membership_of(r, room, connection_id):
    """The table's membership row of `connection_id` in `room` (None when there is none)."""
    answer = r.moto_dynamodb.get_item(TableName=r.table_name, ConsistentRead=True,
                                      Key={"pk": {"S": f"ROOM#{room}"}, "sk": {"S": f"CONN#{connection_id}"}})
    return answer.get("Item")


def date_back(r, connection_id, millis):
    """Sets the connection row's connectedAt `millis` earlier, straight on moto (no function's call)."""
    key = {"pk": {"S": f"CONN#{connection_id}"}, "sk": {"S": "META"}}
    item = r.moto_dynamodb.get_item(TableName=r.table_name, Key=key, ConsistentRead=True).get("Item")
    if not item or "N" not in item.get("connectedAt", {}):
        raise StepFailed(f"no connection row CONN#{connection_id}/META with a numeric connectedAt in {r.table_name} "
                         f"(found {sorted(item) if item else 'no row'}): the step dates it back to show a "
                         f"member that vanished long after its $connect; has the table's layout changed?")
    earlier = int(item["connectedAt"]["N"]) - millis
    r.moto_dynamodb.update_item(TableName=r.table_name, Key=key, UpdateExpression="SET connectedAt = :t",
                                ExpressionAttributeValues={":t": {"N": str(earlier)}})


def step_vanished_member(r, session):
    """A member whose connection vanished without its $disconnect: posts to it answer 410, and the
    presence post of another member's $disconnect prunes it (after checking with a GetItem that
    its $connect is over)."""
    presence = r.doc["functions"]["disconnect"]["environment"].get("PRESENCE_MAX_MEMBERS", "100")
    if presence.strip() == "0":
        raise StepFailed("disconnect's PRESENCE_MAX_MEMBERS is 0 in the template: presence is off, so no post "
                         "would find a vanished member")
    room = VANISHED_ROOM
    vanishing, staying = session.connect("vanishing"), session.connect("staying")
    ids = {}
    for client in (vanishing, staying):
        answer = session.request(client, {"action": "whoami"}, "identity", f"{client.subject}'s whoami")
        ids[client.subject] = answer.get("connectionId")
        if not ids[client.subject]:
            raise StepFailed(f"{client.subject}'s whoami named no connectionId: {answer}")
    gone = ids["vanishing"]
    join(session, vanishing, room)
    join(session, staying, room)
    try:
        vanishing.wait_for(lambda f: f.get("type") == "presence" and f.get("event") == "joined"
                           and f.get("connectionId") == ids["staying"], FRAME_WAIT,
                           f"staying's `joined` presence frame at vanishing")
    except TimeoutError as e:
        raise StepFailed(f"presence in {room}: {e}{diagnosis(r, ['default'])}") from None
    r.say(f"  vanishing ({gone}) and staying ({ids['staying']}) joined {room}; vanishing heard staying join")
    date_back(r, gone, CONNECTED_BEFORE_MS)
    since = time.time()
    r.proxy.add_rule(gone_connection(gone))
    r.say(f"  vanishing vanishes without its $disconnect: its socket stays open, and the proxy answers every "
          f"POST to @connections/{gone} with 410 GoneException")
    r.say(f"  its row's connectedAt set {CONNECTED_BEFORE_MS // 60000} min back (a 410 keeps a connection younger "
          f"than CONNECT_GRACE, {CONNECT_GRACE_S} s: its $connect may still be running)")
    staying.close()
    session.clients.remove(staying)
    start = time.monotonic()
    deadline = start + PRUNE_WAIT
    while membership_of(r, room, gone) and time.monotonic() < deadline:
        time.sleep(0.1)
    pruned = membership_of(r, room, gone) is None
    waited = time.monotonic() - start
    with r.proxy.lock:
        records = [x for x in r.proxy.records if x.get("time", 0) >= since]
    posts = [x for x in records if x.get("injected") and x.get("service") == "execute-api"
             and (x.get("resource") or "").endswith(f"/@connections/{gone}")]
    posters = sorted({x["function"] for x in posts})
    reads = [x for x in records if x["function"] == "disconnect" and x["action"] == "dynamodb:GetItem"]
    if not pruned:
        if not posts:
            why = (f"no function posted to it (disconnect posts `left` to the members of the rooms of a "
                   f"connection that closes, rooms of at most {presence} members)")
        elif not reads:
            why = f"{', '.join(posters)} got 410 for it {len(posts)} time(s) but disconnect never read its row (GetItem)"
        else:
            row = r.moto_dynamodb.get_item(TableName=r.table_name, ConsistentRead=True,
                                           Key={"pk": {"S": f"CONN#{gone}"}, "sk": {"S": "META"}}).get("Item") or {}
            age = ""
            if "N" in row.get("connectedAt", {}):
                age = f"; its row's connectedAt is {time.time() - int(row['connectedAt']['N']) / 1000:.0f} s old"
            why = (f"{', '.join(posters)} got 410 for it {len(posts)} time(s) and disconnect read its row "
                   f"{len(reads)} time(s), yet kept it (a connection younger than CONNECT_GRACE, "
                   f"{CONNECT_GRACE_S} s, is kept: its $connect may still be running){age}")
        raise StepFailed(f"the vanished member {gone} was still in {room} {PRUNE_WAIT:g} s after staying closed "
                         f"its socket: {why}{diagnosis(r, ['disconnect'])}")
    if "disconnect" not in posters:
        raise StepFailed(f"the vanished member {gone} left {room}, but disconnect never posted to it (posts "
                         f"answered 410: {len(posts)}, by {posters}): what removed its membership?")
    r.say(f"  staying closed its socket: {', '.join(posters)} posted presence to vanishing ({len(posts)} x 410), "
          f"read its row ({len(reads)} x GetItem) and pruned it: its membership gone after {waited:.1f} s")
    vanishing.close()
    session.clients.remove(vanishing)
    r.say("  vanishing's real socket closed")
