#!/usr/bin/env python3
"""Rehearses the packaged stack on this machine, exactly as its CloudFormation template describes it.

From the template `serverless package` wrote (infra/<dir>/cloudformation-template-update-stack.json,
with serverless-state.json beside it naming each function's artifact zip) and nothing else (no code
path reads serverless.yml or the Rust configuration):

1. moto on a free port; the template's DynamoDB tables and SQS queues created from their own
   properties (dead-letter queues first), queue policies set; each `{{resolve:ssm:NAME}}` the
   template reads put on moto's SSM with a generated secret, then resolved as CloudFormation does;
2. the recording proxy (rehearsal/proxy.py): the functions' DynamoDB, SQS and @connections endpoint,
   which knows each function by its access key and records every call as IAM action and resource;
3. each function's environment resolved from the template (Ref, Fn::GetAtt, Fn::Sub, Fn::Join,
   Fn::If, ...), plus the overlay a laptop needs, printed; the artifact zips unzipped; routes, the
   authorizer and the event source mappings from the template; the deployment file written
   (contract: the local gateway's --deployment mode runs the real `bootstrap` binaries);
4. the end-to-end run: token connect, rooms, inline and queued publish, a backend's publish with
   wsctl, a poison job and a malformed message reaching the dead-letter queue, a member that
   vanished without its $disconnect (410) pruned by another's $disconnect, disconnect and cleanup
   of the table;
5. IAM as deployed: every recorded call, and the Lambda service's own (log stream, log events),
   evaluated against the roles' policies with @cloud-copilot/iam-simulate (infra/iam);
6. the EMF metrics the binaries printed against the template's alarms and dashboard;
7. each role's actions against infra/iam-calls.json (the grants infra/check_template.py requires):
   an action the file lacks fails, one this run did not call is a note; figures.

    python3 infra/rehearse.py --template-dir infra/.serverless-rehearsal --gateway target/debug/local-gateway
    python3 infra/rehearse.py --template-dir DIR --record-calls   # ... and rewrite infra/iam-calls.json
    python3 infra/rehearse.py --template-dir DIR --iam-only RECORD.jsonl     # IAM of a recorded run only

scripts/rehearse packages the template and runs this. Exit 0 when every step passed, 1 otherwise.
"""
import argparse
import json
import os
import re
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path

INFRA = Path(__file__).resolve().parent
ROOT = INFRA.parent
sys.path.insert(0, str(INFRA))

from rehearsal import dataplane, deployment, emf, iam, steps  # noqa: E402
from rehearsal.processes import Process, start_moto  # noqa: E402
from rehearsal.proxy import RecordingProxy, fail_room_queries, read_record  # noqa: E402
from rehearsal.template import (Stack, TemplateError, display_names, load, referenced, resources,  # noqa: E402
                                stack_name_of, shown)

GATEWAY_START = 60  # s
POISON_ROOM = "poison"


def gateway_has_deployment_mode(binary):
    """Whether the local gateway at `binary` has the --deployment mode (the Rust half)."""
    import subprocess
    try:
        done = subprocess.run([str(binary), "--help"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return b"--deployment" in done.stdout


class Rehearsal:
    def __init__(self, args):
        self.args = args
        self.work = Path(args.work_dir).resolve()
        self.started = time.monotonic()
        self.step_times = []
        self.failures = []
        self.gateway = None
        self.proxy = None
        self.moto = None
        self.e2e_done = False
        self.observed_roles = None   # {role: [actions]} of the IAM evaluation

    # --- Output --------------------------------------------------------------------------------
    def say(self, text):
        print(text, flush=True)

    @contextmanager
    def step(self, name):
        self.say(f"\n==> {name}")
        start = time.monotonic()
        try:
            yield
        except (TemplateError, steps.StepFailed) as e:
            self.say(f"    FAILED: {e}")
            raise
        finally:
            took = time.monotonic() - start
            self.step_times.append((name, took))
            self.say(f"    [{took:.1f}s] {name}")

    def log_path(self, function):
        return self.work / "logs" / f"{function}.log"

    # --- The template --------------------------------------------------------------------------
    def load_template(self):
        self.template, self.state = load(self.args.template_dir)
        provider = self.state.get("service", {}).get("provider", {})
        self.region = self.args.region or provider.get("region") or "us-east-1"
        self.stack_name = self.args.stack_name or stack_name_of(self.state)
        self.parameters = dict(p.split("=", 1) for p in self.args.param)

    def make_stack(self, queue_endpoint=None, dynamic=None):
        return Stack(self.template, self.stack_name, region=self.region, parameters=self.parameters,
                     queue_endpoint=queue_endpoint, dynamic=dynamic)

    def mapped_queues(self, stack, functions):
        out = {}
        for m in deployment.mappings_of(stack, functions, ""):
            out.setdefault(m["function"], set()).add(stack.arn(m["queue"]))
        return out

    # --- IAM -----------------------------------------------------------------------------------
    def evaluate_iam(self, stack, functions, records):
        principals = iam.principals_of(stack, functions, iam.backend_policy(stack))
        calls = iam.calls_of(records, stack, functions, self.mapped_queues(stack, functions))
        unclassified = [c for c in calls if c.action.startswith("<")]
        calls = [c for c in calls if not c.action.startswith("<")]
        request = iam.evaluation_request(stack, principals, calls)
        (self.work / "iam-request.json").write_text(json.dumps(request, indent=1))
        results = iam.evaluate(request)
        (self.work / "iam-decisions.json").write_text(json.dumps(results, indent=1))
        verdict_list = iam.verdicts(calls, results)
        rows, strangers = iam.report(principals, verdict_list)
        names = display_names(stack)
        iam.print_table(rows, strangers, self.say, lambda text: shown(text, names))
        problems = iam.problems(verdict_list, principals, lambda text: shown(text, names))
        problems += [f"{c.principal}: a request the proxy could not classify ({c.action[1:-1]}, x{c.count})"
                     for c in unclassified]
        self.observed_roles = iam.role_actions(calls, functions)
        return problems

    def calls_file_name(self):
        path = Path(self.args.calls_file).resolve()
        return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)

    def check_calls(self):
        """The roles' calls against the calls file (infra/iam-calls.json): an action it lacks fails,
        one this run did not call is a note. With --record-calls, after a run that passed, writes
        the file instead. Returns the problems."""
        path, name = Path(self.args.calls_file), self.calls_file_name()
        observed = self.observed_roles
        if self.args.record_calls:
            if self.failures or not self.e2e_done or observed is None:
                return [f"--record-calls: {name} not written: the run did not pass (its calls would leave "
                        f"out the paths it did not reach)"]
            try:
                old = iam.read_calls(path) if path.is_file() else {}
            except TemplateError:
                old = {}
            path.write_text(iam.calls_text(observed))
            self.say(f"  written: {name} ({len(observed)} roles, "
                     f"{sum(len(a) for a in observed.values())} actions)")
            for line in iam.calls_diff(old, observed) or ["unchanged"]:
                self.say(f"    {line}")
            return []
        problems, notes = iam.compare_calls(observed, iam.read_calls(path), name)
        for role, actions in observed.items():
            self.say(f"  {role}: {len(actions)} action(s) called" + (f": {', '.join(actions)}" if actions else ""))
        if notes and not self.e2e_done and not self.args.iam_only:
            notes = [f"the run stopped before its last step: {len(notes)} role(s) with actions in {name} "
                     f"it never reached (not listed)"]
        for note in notes:
            self.say(f"  note: {note}")
        for problem in problems:
            self.say(f"  {problem}")
        if not problems:
            self.say(f"  every action called is in {name}")
        return problems

    def iam_only(self):
        """Evaluates a recorded run against this template (no run): the planted-IAM tests."""
        self.work.mkdir(parents=True, exist_ok=True)
        with self.step(f"IAM as deployed: {self.args.iam_only} against {self.args.template_dir}"):
            stack = self.make_stack(dynamic=lambda service, key, where: "<not resolved: IAM only>")
            functions = deployment.functions_of(stack, self.state, INFRA)
            problems = self.evaluate_iam(stack, functions, read_record(self.args.iam_only))
        with self.step(f"the roles' calls against {self.calls_file_name()}"):
            problems += self.check_calls()
        for p in problems:
            self.say(f"rehearse: IAM: {p}")
        return 1 if problems else 0

    # --- The run -------------------------------------------------------------------------------
    def run(self):
        try:
            self.load_template()
        except TemplateError as e:
            self.say(f"rehearse: {e}")
            return 1
        if self.args.iam_only:
            try:
                return self.iam_only()
            except TemplateError as e:
                self.say(f"rehearse: {e}")
                return 1
        try:
            self.rehearse()
        except (TemplateError, steps.StepFailed) as e:
            self.failures.append(str(e))
        except Exception as e:  # an unexpected error still stops every process
            self.failures.append(f"{type(e).__name__}: {e}")
            import traceback
            traceback.print_exc()
        finally:
            self.stop_everything()
        self.figures_and_summary()
        return 1 if self.failures else 0

    def rehearse(self):
        import boto3
        from botocore.config import Config
        os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION=self.region,
                          AWS_DEFAULT_REGION=self.region, AWS_EC2_METADATA_DISABLED="true")
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            os.environ.pop(var, None)
        for sub in ("logs", "functions"):
            (self.work / sub).mkdir(parents=True, exist_ok=True)
        for old in (self.work / "logs").glob("*.log"):
            old.unlink()

        with self.step(f"template: {Path(self.args.template_dir) / 'cloudformation-template-update-stack.json'}"):
            kinds = {}
            for r in self.template.get("Resources", {}).values():
                kinds[r.get("Type")] = kinds.get(r.get("Type"), 0) + 1
            self.say(f"  stack {self.stack_name} in {self.region}: {sum(kinds.values())} resources, "
                     + ", ".join(f"{n} {k.split('::', 1)[1]}" for k, n in sorted(kinds.items()) if n))

        with self.step("moto (DynamoDB, SQS, SSM) on a free port"):
            self.moto, self.moto_url = start_moto(self.work / "moto.log", sys.executable)
            config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30)
            client = lambda service: boto3.client(service, endpoint_url=self.moto_url, region_name=self.region,  # noqa: E731
                                                  config=config)
            self.moto_dynamodb, self.moto_sqs, self.moto_ssm = client("dynamodb"), client("sqs"), client("ssm")
            self.say(f"  {self.moto_url} (log: {self.work / 'moto.log'})")

        with self.step("the recording proxy"):
            ctx = {"region": self.region, "account": "123456789012", "partition": "aws", "api_id": None}
            rules = [fail_room_queries(POISON_ROOM)]
            self.proxy = RecordingProxy(ctx, {}, self.work / "record.jsonl", self.moto_url, rules=rules)
            self.proxy.start()
            self.say(f"  {self.proxy.url}: records to {self.work / 'record.jsonl'}; forwards to moto, and "
                     f"@connections to the gateway; fails every DynamoDB Query of the room `{POISON_ROOM}` (500)")

        with self.step("data plane from the template: SSM parameters, tables, queues"):
            names = dataplane.ssm_references(self.template)
            self.ssm_values = dataplane.put_ssm_parameters(self.moto_ssm, names)
            for name in names:
                self.say(f"  SSM {name}: a generated secret (Type String), as docs/deploying.md, \"Rehearse, then deploy\", puts it")
            stack = self.make_stack(queue_endpoint=self.proxy.url, dynamic=dataplane.ssm_resolver(self.moto_ssm))
            self.stack = stack
            ctx["account"], ctx["partition"] = stack.account_id, stack.partition
            self.made = dataplane.create(stack, {"dynamodb": self.moto_dynamodb, "sqs": self.moto_sqs}, self.say)

        with self.step("functions, routes and mappings from the template; the deployment file"):
            self.write_deployment(stack, ctx)

        with self.step(f"start the gateway: {self.args.gateway} --deployment {self.deployment_path}"):
            self.start_gateway()

        session = steps.Session(self)
        try:
            with self.step("token connect: refused without a token, open with one; whoami"):
                first = steps.step_token_connect(self, session)
            with self.step("rooms: inline and queued publish"):
                members = steps.step_publish(self, session, first)
            with self.step("a backend's publish: wsctl through the backend queue"):
                steps.step_backend_publish(self, session, members)
            with self.step("dead letters: a poison job, and a malformed backend message"):
                steps.step_poison(self)
            with self.step("a member that vanished without its $disconnect: a 410 to presence, pruned"):
                steps.step_vanished_member(self, session)
            with self.step("disconnect and cleanup: no connection or membership left in the table"):
                steps.step_cleanup(self, session)
            self.e2e_done = True
        finally:
            session.close_all()

    def write_deployment(self, stack, ctx):
        functions = deployment.functions_of(stack, self.state, INFRA)
        api, selection, routes, authorizer, stage = deployment.routes_of(stack, functions)
        api_id = stack.name(api)
        ctx["api_id"] = api_id
        ca = deployment.host_ca_bundle()
        for fn in functions.values():
            deployment.apply_overlay(stack, fn, api_id, self.proxy.url, ca)
            self.say(f"  {fn.name} ({fn.function_name}, role {fn.role}): timeout {fn.timeout} s, {fn.memory} MB, "
                     f"reserved concurrency {fn.reserved}; {len(fn.template_environment)} variables from "
                     f"the template")
            for key, value, why in fn.overlay:
                self.say(f"    overlay {fn.name}: {key}={value} ({why})")
        self.functions = functions
        self.proxy.principals.update({fn.access_key: fn.name for fn in functions.values()})
        self.backend_key = deployment.access_key_for(deployment.BACKEND)
        self.backend_secret = "rehearsal-backend-secret"
        self.proxy.principals[self.backend_key] = deployment.BACKEND
        mappings = deployment.mappings_of(stack, functions, self.proxy.url)
        deployment.unzip_artifacts(functions, self.work / "functions")
        self.say(f"  artifacts unzipped into {self.work / 'functions'}/<function>/bootstrap")
        for key, fn in sorted(routes.items()):
            self.say(f"  route {key} -> {fn}")
        self.say(f"  route selection {selection}; stage {stage}; API id {api_id}")
        self.say(f"  authorizer: {authorizer}")
        for m in mappings:
            self.say(f"  mapping {m['logicalId']}: {m['queue']} -> {m['function']}, batch {m['batchSize']}, "
                     f"at most {m['maximumConcurrency']} at once, ReportBatchItemFailures {m['reportBatchItemFailures']}")
        self.doc = deployment.document(stack, functions, api_id, selection, routes, authorizer, stage, mappings,
                                       self.work / "functions", self.work / "logs")
        self.deployment_path = self.work / "deployment.json"
        deployment.write(self.deployment_path, self.doc)
        self.say(f"  written: {self.deployment_path}")
        # What the steps need to know of the stack.
        self.auth_on = authorizer is not None
        secret = functions[authorizer["function"]].environment.get("JWT_SECRET") if authorizer else None
        if self.auth_on and (not secret or functions[authorizer["function"]].environment.get("JWKS_URL")):
            raise TemplateError("the authorizer verifies with a JWKS URL (or has no JWT_SECRET): the rehearsal "
                                "mints HS256 tokens; package it with jwksUrl empty")
        self.jwt_secret = secret
        outputs = self.template.get("Outputs", {})
        queues = resources(self.template, "AWS::SQS::Queue")
        backend = referenced(outputs.get("DeliveryQueueUrl", {}).get("Value"), queues)
        if len(backend) != 1:
            raise TemplateError("no DeliveryQueueUrl output naming a queue: where would a backend publish?")
        self.backend_queue = next(iter(backend))
        self.backend_queue_url = stack.queue_url(self.backend_queue)
        redrive = stack.resolve(stack.properties(self.backend_queue).get("RedrivePolicy", {}), self.backend_queue)
        redrive = json.loads(redrive) if isinstance(redrive, str) else redrive
        dead = [q for q in queues if redrive.get("deadLetterTargetArn") == stack.arn(q)]
        if not dead:
            raise TemplateError(f"{self.backend_queue} has no RedrivePolicy to a dead-letter queue of this stack: "
                                f"a poison job would be retried until it expires")
        self.dead_letter_queue = dead[0]
        self.dead_letter_moto_url = self.made[dead[0]]
        self.max_receive_count_declared = redrive.get("maxReceiveCount")
        self.max_receive_count = int(self.max_receive_count_declared or dataplane.SQS_DEFAULT_MAX_RECEIVE_COUNT)
        table = list(resources(self.template, "AWS::DynamoDB::Table"))
        self.table_name = stack.name(table[0])
        self.namespace = next(iter({fn.environment.get("METRICS_NAMESPACE") for fn in functions.values()}))
        import boto3
        self.backend_sqs = boto3.client("sqs", endpoint_url=self.proxy.url, region_name=self.region,
                                        aws_access_key_id=self.backend_key, aws_secret_access_key=self.backend_secret)
        self.wsctl = Path(self.args.wsctl).resolve()

    def start_gateway(self):
        binary = Path(self.args.gateway).resolve()
        if not binary.is_file():
            raise TemplateError(f"no local gateway at {binary} (cargo build -p local-gateway)")
        if not gateway_has_deployment_mode(binary):
            raise TemplateError(f"{binary} has no --deployment mode (the Rust half of the rehearsal)")
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"), NO_COLOR="1")
        self.gateway = Process("gateway", [str(binary), "--deployment", str(self.deployment_path), "--port", "0",
                                           "--host", "127.0.0.1"], self.work / "gateway.log", env)
        match = self.gateway.wait_for_line(r"WebSocket:\s+(ws://\S+)", GATEWAY_START)
        if not match:
            tail = " | ".join(self.gateway.lines[-8:])
            raise TemplateError(f"the gateway printed no `WebSocket:` line within {GATEWAY_START} s "
                                f"(exited: {not self.gateway.alive()}): {tail}")
        self.ws_url = match.group(1)
        http = self.ws_url.replace("ws://", "http://", 1)
        self.proxy.set_gateway(http.rsplit("/", 1)[0])
        deployed = self.gateway.wait_for_line(r"deployment:\s+(\d+) functions", 5)
        if deployed and int(deployed.group(1)) != len(self.doc["functions"]):
            raise TemplateError(f"the gateway says {deployed.group(0)!r}; the deployment file has "
                                f"{len(self.doc['functions'])}")
        self.say(f"  {self.ws_url} ({deployed.group(0) if deployed else 'no deployment line'}; log: "
                 f"{self.work / 'gateway.log'})")

    def stop_everything(self):
        if self.gateway:
            code = self.gateway.stop()
            self.say(f"\n  gateway stopped (exit {code})")
        if self.proxy:
            self.proxy.stop()
        if self.moto:
            self.moto.stop()

    # --- After the run -------------------------------------------------------------------------
    def figures_and_summary(self):
        if self.proxy and getattr(self, "functions", None):
            with self.step("IAM as deployed: every recorded call against its function's role"):
                try:
                    problems = self.evaluate_iam(self.stack, self.functions, read_record(self.proxy.record_path))
                    self.failures += [f"IAM: {p}" for p in problems]
                except TemplateError as e:
                    self.failures.append(f"IAM: {e}")
        if self.gateway and getattr(self, "functions", None):
            lines = {name: (self.log_path(name).read_text(errors="replace").splitlines()
                            if self.log_path(name).is_file() else []) for name in self.functions}
            if not self.e2e_done:
                self.say("\n==> EMF: skipped (the run did not get through its steps)")
            else:
                with self.step("EMF: the metrics the binaries printed, against the alarms and the dashboard"):
                    try:
                        problems = emf.check(self.stack, self.namespace, lines, self.say)
                        self.failures += [f"EMF: {p}" for p in problems]
                    except (TemplateError, ValueError) as e:
                        self.failures.append(f"EMF: {e}")
        if self.observed_roles is not None or self.args.record_calls:
            title = (f"--record-calls: {self.calls_file_name()} from this run's calls" if self.args.record_calls
                     else f"the roles' calls against {self.calls_file_name()}")
            with self.step(title):
                try:
                    self.failures += [f"IAM calls: {p}" for p in self.check_calls()]
                except TemplateError as e:
                    self.failures.append(f"IAM calls: {e}")
        if self.gateway and getattr(self, "functions", None):
            with self.step("figures"):
                self.figures(lines)
        wall = time.monotonic() - self.started
        self.say(f"\nrehearsal: {wall:.1f} s wall time; slowest steps: "
                 + ", ".join(f"{n.split(':')[0]} {t:.1f}s" for n, t in sorted(self.step_times, key=lambda x: -x[1])[:4]))
        for failure in self.failures:
            self.say(f"rehearse: FAILED: {failure}")
        self.say("rehearse: every step passed" if not self.failures else f"rehearse: {len(self.failures)} failure(s)")

    def gateway_stats(self):
        """What the gateway printed of each function at exit: {name: (invocations, cold starts, init
        median ms, init max ms)} ("  connect: 4 invocations, 1 cold starts (init 10.3 ms median, ...)")."""
        stats = {}
        if not self.gateway:
            return stats
        pattern = re.compile(r"^\s+([\w-]+): (\d+) invocations, (\d+) cold starts?"
                             r"(?: \(init ([\d.]+) ms median, ([\d.]+) ms max\))?")
        for line in self.gateway.lines:
            match = pattern.match(line)
            if match and match.group(1) in self.functions:
                name, invocations, cold, median, top = match.groups()
                stats[name] = (int(invocations), int(cold), median, top)
        return stats

    def figures(self, lines):
        stats = self.gateway_stats()
        for name in self.functions:
            if name in stats:
                invocations, cold, median, top = stats[name]
                init = f"to the first `next`: {median} ms median, {top} ms max" if median else "no cold start"
                self.say(f"  {name:<11} {invocations:>4} invocations, {cold:>2} cold starts (process starts); {init}")
            else:
                ids, cold = set(), 0
                for line in lines.get(name, []):
                    if '"CloudWatchMetrics"' in line:
                        try:
                            record = json.loads(line)
                        except ValueError:
                            continue
                        ids.add(record.get("RequestId"))
                        cold += int(record.get("ColdStarts", 0) or 0)
                self.say(f"  {name:<11} {len(ids - {None}):>4} invocations with metrics, {cold:>2} cold starts "
                         f"(from its EMF lines: the gateway printed no figures for it)")


def main(argv):
    # A SIGTERM (a test's timeout, a CI cancel) still stops moto, the proxy and the gateway.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template-dir", default=str(INFRA / ".serverless-rehearsal"))
    parser.add_argument("--gateway", default=str(ROOT / "target" / "debug" / "local-gateway"))
    parser.add_argument("--wsctl", default=str(ROOT / "target" / "debug" / "wsctl"))
    parser.add_argument("--work-dir", default=str(ROOT / "target" / "rehearsal"))
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a value for one of the template's Parameters (else its default)")
    parser.add_argument("--stack-name", help="default: serverless-state.json's (<service>-<stage>)")
    parser.add_argument("--region", help="default: serverless-state.json's provider.region")
    parser.add_argument("--iam-only", metavar="RECORD", help="evaluate a recorded run's calls against the template only")
    parser.add_argument("--calls-file", default=str(iam.CALLS_FILE),
                        help="each role's actions, held to the run's calls (default: infra/iam-calls.json)")
    parser.add_argument("--record-calls", action="store_true",
                        help="write --calls-file from this run's calls (only when every step passed)")
    args = parser.parse_args(argv)
    if args.record_calls and args.iam_only:
        parser.error("--record-calls needs a whole run (a record alone does not say the run passed)")
    for p in args.param:
        if "=" not in p:
            parser.error(f"--param {p!r}: expected NAME=VALUE")
    return Rehearsal(args).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
