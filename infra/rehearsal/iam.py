"""IAM as deployed: every recorded call, and what the Lambda service calls with each function's role
(its log stream and log events), evaluated against the role's policies from the template by
@cloud-copilot/iam-simulate (infra/iam/evaluate.mjs), with the SQS queue policies as the queues'
resource policies. Any call not allowed fails the rehearsal, naming function, action and resource.

Each role's actions (its function's calls and its event source mappings', not the Lambda service's
log calls) are held to infra/iam-calls.json, which `--record-calls` writes and
infra/check_template.py requires the roles to grant.

`requests_for`, `report`, `role_actions` and `compare_calls` are pure; `evaluate` runs Node.
"""
import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .template import TemplateError, referenced, resources
from .dataplane import queue_policies

IAM_DIR = Path(__file__).resolve().parent.parent / "iam"
# What Lambda's event source mapping calls on its queue with the function's role.
MAPPING_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                   "sqs:GetQueueAttributes"}
# Who made a call besides the function's own code (shown beside it in the table).
LAMBDA_SERVICE = "Lambda service: logs"
MAPPING = "event source mapping"
# Lambda checks a mapping's role when it creates the mapping, and refuses one that may not do these.
MAPPING_CREATION = "Lambda creating the event source mapping"
MAPPING_CREATION_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
EVALUATION_TIMEOUT = 120  # s
CALLS_FILE = Path(__file__).resolve().parent.parent / "iam-calls.json"
CALLS_COMMENT = ("Written by ./scripts/rehearse --record-calls, not by hand: per role, the IAM actions its "
                 "function called in the rehearsal and its event source mappings called with it (the Lambda "
                 "service's log calls left out). infra/check_template.py requires each role to grant them.")
CONNECTION_ID = re.compile(r"/@connections/.+$")


@dataclass
class Principal:
    name: str
    role_logical_id: str
    role_arn: str
    session: str
    policies: list


@dataclass
class Call:
    principal: str
    action: str
    resource: str
    by: str = ""          # "" (the function's own code), MAPPING or LAMBDA_SERVICE
    count: int = 1


@dataclass
class Verdict:
    call: Call
    decision: str
    error: str = ""
    allowed_by: list = field(default_factory=list)


def principals_of(stack, functions, backend_policy=None):
    """Each function's role with its inline policies resolved (plus the backend's, when given)."""
    out = {}
    for fn in functions.values():
        props = stack.properties(fn.role)
        if stack.kind(fn.role) != "AWS::IAM::Role":
            raise TemplateError(f"{fn.name}: its Role {fn.role} is not an AWS::IAM::Role")
        policies = []
        for index, policy in enumerate(props.get("Policies", [])):
            name = stack.resolve(policy.get("PolicyName", f"policy{index}"), f"{fn.role}.Policies[{index}].PolicyName")
            document = stack.resolve(policy.get("PolicyDocument", {}), f"{fn.role}.Policies[{index}].PolicyDocument")
            policies.append({"name": name, "policy": document})
        for arn in props.get("ManagedPolicyArns", []):
            raise TemplateError(f"{fn.role}: managed policy {stack.resolve(arn, fn.role)}: the rehearsal evaluates "
                                f"inline policies only (and the stack grants through them)")
        for name, policy in resources(stack.template, "AWS::IAM::Policy").items():
            if fn.role in referenced(policy.get("Properties", {}).get("Roles", []), {fn.role: None}):
                document = stack.resolve(policy["Properties"].get("PolicyDocument", {}), f"{name}.PolicyDocument")
                policies.append({"name": name, "policy": document})
        role_name = stack.name(fn.role)
        out[fn.name] = Principal(
            name=fn.name, role_logical_id=fn.role, role_arn=stack.arn(fn.role),
            session=f"arn:{stack.partition}:sts::{stack.account_id}:assumed-role/{role_name}/{fn.function_name}",
            policies=policies)
    if backend_policy is not None:
        name, document = backend_policy
        role = f"arn:{stack.partition}:iam::{stack.account_id}:role/rehearsal-backend"
        out["backend"] = Principal(name="backend", role_logical_id="(docs/deploying.md, \"The queues\": a backend's grant)", role_arn=role,
                                   session=f"arn:{stack.partition}:sts::{stack.account_id}:assumed-role/rehearsal-backend/backend",
                                   policies=[{"name": name, "policy": document}])
    return out


def backend_policy(stack):
    """docs/deploying.md, "The queues": grant a backend sqs:SendMessage on the DeliveryQueueArn output."""
    outputs = stack.template.get("Outputs", {})
    if "DeliveryQueueArn" not in outputs:
        return None
    arn = stack.resolve(outputs["DeliveryQueueArn"]["Value"], "Outputs.DeliveryQueueArn")
    return ("backend (docs/deploying.md: sqs:SendMessage on DeliveryQueueArn)",
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn}]})


def log_stream_arn(stack, fn):
    """The log stream Lambda writes the function's output to: /aws/lambda/<FunctionName>."""
    return (f"arn:{stack.partition}:logs:{stack.region}:{stack.account_id}:log-group:/aws/lambda/"
            f"{fn.function_name}:log-stream:2026/01/01/[$LATEST]rehearsal")


def calls_of(records, stack, functions, mapped_queues):
    """Distinct (principal, action, resource) of the record, and the Lambda service's calls for each
    function: its log stream and log events, and the checks of each event source mapping's role at
    its creation. `mapped_queues`: {function: {queue arn}} its event source mappings read."""
    distinct = {}
    for record in records:
        if not record.get("action"):
            key = (record["function"], f"<{record.get('operation')}>", "<unclassified request>")
        else:
            key = (record["function"], record["action"], record["resource"])
        if key in distinct:
            distinct[key].count += 1
            continue
        who, action, resource = key
        by = MAPPING if action in MAPPING_ACTIONS and resource in mapped_queues.get(who, set()) else ""
        distinct[key] = Call(who, action, resource, by)
    calls = list(distinct.values())
    for fn in functions.values():
        for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
            calls.append(Call(fn.name, action, log_stream_arn(stack, fn), LAMBDA_SERVICE, 0))
        for queue in sorted(mapped_queues.get(fn.name, set())):
            for action in MAPPING_CREATION_ACTIONS:
                calls.append(Call(fn.name, action, queue, MAPPING_CREATION, 0))
    return calls


def evaluation_request(stack, principals, calls):
    resource_policies = {stack.arn(queue): document for queue, document in queue_policies(stack).items()}
    return {
        "accountId": stack.account_id,
        "principals": {name: {"session": p.session, "roleArn": p.role_arn, "policies": p.policies}
                       for name, p in principals.items()},
        "resourcePolicies": resource_policies,
        "calls": [{"id": i, "principal": c.principal, "action": c.action, "resource": c.resource}
                  for i, c in enumerate(calls)],
    }


def evaluate(request):
    """Runs infra/iam/evaluate.mjs (npm ci there first)."""
    if not (IAM_DIR / "node_modules" / "@cloud-copilot" / "iam-simulate").is_dir():
        raise TemplateError(f"{IAM_DIR}/node_modules lacks @cloud-copilot/iam-simulate: "
                            f"run `npm ci` in infra/iam (scripts/rehearse does)")
    try:
        done = subprocess.run(["node", str(IAM_DIR / "evaluate.mjs")], input=json.dumps(request).encode(),
                              capture_output=True, timeout=EVALUATION_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise TemplateError(f"the IAM evaluation took over {EVALUATION_TIMEOUT} s") from None
    if done.returncode != 0:
        raise TemplateError(f"the IAM evaluation failed: {done.stderr.decode()[-2000:]}")
    return json.loads(done.stdout)["results"]


def verdicts(calls, results):
    by_id = {r["id"]: r for r in results}
    return [Verdict(call, by_id[i]["decision"], by_id[i].get("error", ""), by_id[i].get("allowedBy", []))
            for i, call in enumerate(calls)]


def grants_of(principal):
    """Every (policy, statement index, action pattern, resource pattern) an Allow statement grants."""
    grants = []
    for policy in principal.policies:
        statements = policy["policy"].get("Statement", [])
        for index, statement in enumerate(statements if isinstance(statements, list) else [statements]):
            if statement.get("Effect") != "Allow":
                continue
            actions = statement.get("Action", [])
            targets = statement.get("Resource", [])
            for action in actions if isinstance(actions, list) else [actions]:
                for resource in targets if isinstance(targets, list) else [targets]:
                    grants.append((policy["name"], index, action, resource))
    return grants


def report(principals, results_by_call):
    """Per principal: (calls, denied verdicts, unused grants, grants used only by the Lambda service
    or a mapping). `results_by_call` is a list of Verdicts."""
    rows = {}
    for name, principal in principals.items():
        mine = [v for v in results_by_call if v.call.principal == name]
        used = {}
        for v in mine:
            if v.decision != "Allowed":
                continue
            for a in v.allowed_by:
                for action in a.get("actions", []):
                    for resource in a.get("resources", []):
                        used.setdefault((a["policy"], a["statement"], action, resource), set()).add(v.call.by)
        unused, service_only = [], []
        for grant in grants_of(principal):
            # Action names are case-insensitive: the explain quotes the pattern as written.
            users = used.get(grant)
            if users is None:
                unused.append(grant)
            elif "" not in users:
                service_only.append((grant, sorted(users)))
        denied = [v for v in mine if v.decision != "Allowed"]
        rows[name] = (mine, denied, unused, service_only)
    strangers = [v for v in results_by_call if v.call.principal not in principals]
    return rows, strangers


def print_table(rows, strangers, print_line, show=lambda text: text):
    """The table: function, calls (distinct action on resource, its own), denied, unused grants;
    then each call (the Lambda service's and the mappings' marked) and the grants only they used."""
    print_line(f"  {'function':<12} {'calls':>5} {'denied':>6}  unused grants")
    for name, (mine, denied, unused, service_only) in rows.items():
        own = [v for v in mine if not v.call.by]
        print_line(f"  {name:<12} {len(own):>5} {len(denied):>6}  "
                   + (", ".join(f"{a} on {show(r)}" for _, _, a, r in unused) or "none"))
        # One line per action on a resource, connection ids folded ({id}): each was decided alone.
        lines = {}
        for v in mine:
            resource = CONNECTION_ID.sub("/@connections/{id}", show(v.call.resource))
            verdict = "ok  " if v.decision == "Allowed" else "DENY"
            key = (v.call.by, v.call.action, resource, verdict)
            calls, distinct = lines.get(key, (0, 0))
            lines[key] = (calls + v.call.count, distinct + 1)
        for (by, action, resource, verdict), (calls, distinct) in sorted(lines.items()):
            mark = f" [{by}]" if by else ""
            times = f" x{calls}" if calls > 1 else ""
            ids = f" ({distinct} connections)" if distinct > 1 else ""
            print_line(f"      {verdict} {action} on {resource}{times}{ids}{mark}")
        for (_, _, action, resource), users in service_only:
            print_line(f"      grant {action} on {show(resource)}: used only by {'; '.join(users)}")
    for v in strangers:
        print_line(f"  {v.call.principal}: {v.call.action} on {show(v.call.resource)}: signed with a key no function has")


def problems(verdict_list, principals, show=lambda text: text):
    out = []
    for v in verdict_list:
        who = v.call.principal
        named = show(v.call.resource)
        resource = v.call.resource + (f" ({named.split('/')[0].split(':')[0]})" if named != v.call.resource else "")
        if who not in principals:
            out.append(f"{who}: {v.call.action} on {resource}: a call signed with a key of no function")
        elif v.decision == "Error":
            out.append(f"{who}: {v.call.action} on {resource}: the evaluator refused it: {v.error}")
        elif v.decision != "Allowed":
            role = principals[who].role_logical_id
            kind = "explicitly denied" if v.decision == "ExplicitlyDenied" else "implicitly denied (no grant)"
            by = f" (called by the {v.call.by} with {who}'s role)" if v.call.by else ""
            out.append(f"{who}: {v.call.action} on {resource} is {kind} by {role}{by}")
    return out


# --- infra/iam-calls.json ------------------------------------------------------------------------
def role_actions(calls, functions):
    """{role logical id: sorted actions} called with each function's role: by its code, by its event
    source mappings (as they run and as Lambda creates them); not the Lambda service's log calls.
    Every function's role is named, with [] when it called nothing."""
    out = {fn.role: set() for fn in functions.values()}
    for call in calls:
        if call.by == LAMBDA_SERVICE or call.action.startswith("<") or call.principal not in functions:
            continue
        out[functions[call.principal].role].add(call.action)
    return {role: sorted(actions) for role, actions in sorted(out.items())}


def calls_text(roles):
    """The file's text: the comment first, then the roles in order, one action a line."""
    return json.dumps({"//": CALLS_COMMENT, **{role: sorted(roles[role]) for role in sorted(roles)}}, indent=2) + "\n"


def read_calls(path):
    """{role: [actions]} of the file; TemplateError naming the file when it is missing or malformed."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise TemplateError(f"{path}: {e}: ./scripts/rehearse --record-calls writes it") from None
    if not isinstance(data, dict):
        raise TemplateError(f"{path}: expected an object {{role: [action, ...]}}")
    roles = {role: actions for role, actions in data.items() if not role.startswith("//")}
    bad = [role for role, actions in roles.items()
           if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions)]
    if bad:
        raise TemplateError(f"{path}: expected {{role: [action, ...]}}; not a list of actions: {bad}")
    return roles


def compare_calls(observed, recorded, name="infra/iam-calls.json"):
    """(problems, notes): an action a role was observed calling that the file lacks is a problem;
    an action of the file the run never called is a note (not every run takes every path)."""
    problems, notes = [], []
    for role, actions in sorted(observed.items()):
        if role not in recorded:
            if actions:
                problems.append(f"{role}: not in {name}, and the code calls {', '.join(actions)}: "
                                f"./scripts/rehearse --record-calls, and review the diff")
            continue
        for action in actions:
            if action not in recorded[role]:
                problems.append(f"{role}: the code now calls {action}, which {name} lacks: "
                                f"./scripts/rehearse --record-calls, and review the diff")
        unseen = [a for a in recorded[role] if a not in actions]
        if unseen:
            notes.append(f"{role}: {', '.join(unseen)} in {name}, never called in this run")
    for role in sorted(set(recorded) - set(observed)):
        notes.append(f"{role}: in {name}, but no function of this template has that role")
    return problems, notes


def calls_diff(old, new):
    """Lines saying what a re-recording changed, role by role."""
    lines = []
    for role in sorted(set(old) | set(new)):
        before, after = set(old.get(role, [])), set(new.get(role, []))
        if role not in old:
            lines.append(f"{role}: new role: {', '.join(sorted(after)) or 'no action'}")
        elif role not in new:
            lines.append(f"{role}: role removed (it had {', '.join(sorted(before)) or 'no action'})")
        else:
            changes = [f"+{a}" for a in sorted(after - before)] + [f"-{a}" for a in sorted(before - after)]
            if changes:
                lines.append(f"{role}: {' '.join(changes)}")
    return lines
