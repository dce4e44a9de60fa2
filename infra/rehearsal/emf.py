"""The metrics the real binaries printed (CloudWatch Embedded Metric Format lines in their logs)
against the template's alarms and dashboard: every alarm on the functions' namespace reads a metric
and dimension set some binary emitted, or one the rehearsal cannot trigger (listed as such); every
emitted metric is one the dashboard or an alarm names, or is listed. Pure.
"""
import json
import re

# Metrics no rehearsal run can produce, and why (a failure mode the laptop never meets).
NOT_TRIGGERED = {
    "PostsFailed": "needs @connections answers no retry can reach (403, 413) or failures past every retry",
    "PostsMisconfigured": "needs @connections to answer 403 or 413 (a wrong endpoint, stage or grant)",
    "PostsThrottled": "needs @connections to answer 429 (an account over its quota)",
    "DeliveryGivenUp": "needs recipients handed over MAX_ATTEMPTS times without getting through",
    "PostsRetried": "needs a 429 or 5xx from @connections",
    "PostsRequeued": "needs posts that do not get through before the job's deadline",
    "PostsGone": ("needs a message's post to a connection that vanished without $disconnect (410); "
                  "the rehearsal's 410 is to a presence post, which no metric counts"),
    "DeliveryContinuations": "needs a room larger than one page (PAGE_SIZE)",
    "LifecycleEventsFailed": "needs lifecycleEvents=on and EventBridge refusing or not answering",
    "MessagesRefused": "the alarm reads reauth_refused, which needs a reauth with a bad token",
}


def emitted(lines_by_function):
    """{(namespace, metric, frozenset of (dimension, value)): {"functions": set, "sum": n, "lines": n}}."""
    out = {}
    for function, lines in lines_by_function.items():
        for line in lines:
            line = line.strip()
            if not line.startswith("{") or "CloudWatchMetrics" not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            for directive in record.get("_aws", {}).get("CloudWatchMetrics", []):
                namespace = directive.get("Namespace")
                for dimension_set in directive.get("Dimensions", [[]]) or [[]]:
                    dims = frozenset((d, str(record.get(d))) for d in dimension_set)
                    for metric in directive.get("Metrics", []):
                        name = metric.get("Name")
                        value = record.get(name, 0)
                        total = sum(value) if isinstance(value, list) else (value or 0)
                        entry = out.setdefault((namespace, name, dims), {"functions": set(), "sum": 0, "lines": 0})
                        entry["functions"].add(function)
                        entry["sum"] += total
                        entry["lines"] += 1
    return out


def alarm_metrics(stack, alarms):
    """[(alarm, namespace, metric, {dimension: value})] of every metric each alarm reads."""
    out = []
    for name, alarm in sorted(alarms.items()):
        props = stack.resolve(alarm.get("Properties", {}), name)
        if "MetricName" in props:
            out.append((name, props.get("Namespace"), props["MetricName"],
                        {d["Name"]: str(d["Value"]) for d in props.get("Dimensions", [])}))
        for query in props.get("Metrics", []):
            metric = query.get("MetricStat", {}).get("Metric")
            if metric:
                out.append((name, metric.get("Namespace"), metric.get("MetricName"),
                            {d["Name"]: str(d["Value"]) for d in metric.get("Dimensions", [])}))
    return out


SEARCH = re.compile(r"SEARCH\('\{\"?([^\"',]+)\"?((?:,[A-Za-z0-9_]+)*)\}\s*MetricName=\"([^\"]+)\"")


def dashboard_metrics(stack, dashboards):
    """{(namespace, metric): set of dimension-name tuples or None (any)} the dashboards name."""
    out = {}
    for name, dashboard in dashboards.items():
        body = stack.resolve(dashboard.get("Properties", {}).get("DashboardBody", "{}"), f"{name}.DashboardBody")
        for widget in json.loads(body).get("widgets", []):
            for entry in widget.get("properties", {}).get("metrics", []):
                if not entry:
                    continue
                if isinstance(entry[0], dict) and "expression" in entry[0]:
                    for match in SEARCH.finditer(entry[0]["expression"]):
                        namespace, dims, metric = match.groups()
                        keys = tuple(sorted(d for d in dims.split(",") if d))
                        out.setdefault((namespace, metric), set()).add(keys)
                    continue
                strings = [e for e in entry if isinstance(e, str)]
                if len(strings) >= 2 and strings[0] != "...":
                    namespace, metric, rest = strings[0], strings[1], strings[2:]
                    keys = tuple(sorted(rest[0::2]))
                    out.setdefault((namespace, metric), set()).add(keys)
    return out


def check(stack, namespace, lines_by_function, print_line):
    """Prints the matching; returns the problems."""
    from .template import resources
    found = emitted(lines_by_function)
    alarms = alarm_metrics(stack, resources(stack.template, "AWS::CloudWatch::Alarm"))
    shown = dashboard_metrics(stack, resources(stack.template, "AWS::CloudWatch::Dashboard"))
    problems = []
    ours = [(a, ns, m, d) for a, ns, m, d in alarms if ns == namespace]
    others = sorted({f"{ns} {m}" for a, ns, m, d in alarms if ns != namespace})
    print_line(f"  {len(found)} metric/dimension sets emitted in {namespace}; "
               f"{len(ours)} alarm metrics on it")
    names = sorted({f"{m}{{{','.join(sorted(k for k, _ in d))}}}" if d else m for (_, m, d) in found})
    print_line(f"  emitted: {', '.join(names)}")
    for alarm, ns, metric, dims in ours:
        want = frozenset(dims.items())
        hits = [v for (n, m, d), v in found.items() if n == ns and m == metric and d == want]
        label = f"{metric}{dict(dims) if dims else ''}"
        if hits:
            total = sum(h["sum"] for h in hits)
            print_line(f"  alarm {alarm}: {label} emitted by {sorted(set().union(*(h['functions'] for h in hits)))} "
                       f"(sum {total:g})")
        elif metric in NOT_TRIGGERED:
            near = sorted({str(dict(d)) for (n, m, d) in found if n == ns and m == metric})
            also = f"; emitted with other dimensions {near}" if near else ""
            print_line(f"  alarm {alarm}: {label}: not triggered by the rehearsal ({NOT_TRIGGERED[metric]}){also}")
        else:
            near = sorted({str(dict(d)) for (n, m, d) in found if n == ns and m == metric})
            why = f"emitted only with dimensions {near}" if near else "no binary emitted it"
            problems.append(f"alarm {alarm} reads {ns} {label}: {why} (a name or dimension the code does not write?)")
    print_line(f"  alarms on AWS's own metrics (not EMF, not checked here): {', '.join(others)}")
    for (ns, metric, dims), v in sorted(found.items(), key=lambda kv: (kv[0][1], sorted(kv[0][2]))):
        keys = tuple(sorted(k for k, _ in dims))
        in_alarm = any(a_ns == ns and a_m == metric for _, a_ns, a_m, _ in alarms)
        on_dashboard = keys in shown.get((ns, metric), set())
        if ns != namespace:
            problems.append(f"{metric} emitted by {sorted(v['functions'])} in namespace {ns!r}, not {namespace!r}")
        elif not (in_alarm or on_dashboard):
            print_line(f"  emitted but on no dashboard or alarm: {metric} {dict(dims) or ''} by {sorted(v['functions'])}")
    return problems
