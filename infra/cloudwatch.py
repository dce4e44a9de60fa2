"""What CloudWatch refuses at deploy time and no offline tool looks at: the dashboard body and the
metric math of alarms.

cfn-lint sees a DashboardBody as one opaque string, and an alarm's `Metrics` only as a list of
well-typed objects: a body PutDashboard answers "The dashboard body is invalid", or metric math
PutMetricAlarm refuses, passes it, and CloudFormation rolls the whole stack back half-way through
a deploy. The rules below are CloudWatch's own, from its API reference ("Dashboard Body Structure
and Syntax", "MetricDataQuery", "PutMetricAlarm") and the user guide's search expression syntax.
"""
import json
import re

# ${Name}, ${Name.Attribute}, ${AWS::Pseudo}; ${!Literal} is Fn::Sub's escape for a literal ${Literal}.
SUBSTITUTION = re.compile(r"\$\{([^}]*)\}")
PSEUDO_PARAMETERS = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "ws-chat-ci",
}

WIDGET_TYPES = {"metric", "text", "log", "alarm", "explorer"}
# The layout is this file's: a widget without its place lands wherever CloudWatch finds room.
WIDGET_KEYS = ("type", "x", "y", "width", "height", "properties")
GRID_COLUMNS = 24
MAX_HEIGHT = 1000
MAX_WIDGETS = 500
MAX_METRICS = 500
VIEWS = {"timeSeries", "singleValue", "gauge", "bar", "pie", "table"}
# A metric array may repeat the previous one's namespace, name or dimension name with ".".
SAME_AS_ABOVE = "."

# A MetricDataQuery Id, and a dashboard metric's or expression's id: letters, digits and
# underscores, the first a lower-case letter (an id is a variable in metric math).
QUERY_ID = re.compile(r"^[a-z][A-Za-z0-9_]*$")
# SEARCH('{Namespace, DimensionName, ...} terms', ...): the metric schema between the braces.
SEARCH_SCHEMA = re.compile(r"SEARCH\(\s*'\s*\{([^}]*)\}")
# "You don't need to use quote marks inside the metric schema unless a namespace or dimension name
# includes spaces or non-alphanumeric characters": then it must be in double quotes. AWS's own
# examples leave the AWS/ namespaces bare ({AWS/EC2,InstanceId}), so those pass unquoted.
BARE_SCHEMA_NAME = re.compile(r"^(AWS/)?[A-Za-z0-9]+$")

# Metric math names its variables (query ids, lower-case first) beside functions and keywords
# written in capitals (FILL, IF, ANOMALY_DETECTION_BAND, METRICS, REPEAT, ...); a name followed by
# "(" is a function whatever its case.
VARIABLE = re.compile(r"(?<![A-Za-z0-9_.])[a-z][A-Za-z0-9_]*(?![A-Za-z0-9_]|\s*\()")
STRING_LITERAL = re.compile(r"'[^']*'|\"[^\"]*\"")
ANOMALY_BAND = "ANOMALY_DETECTION_BAND"
BAND_OPERATORS = {"LessThanLowerOrGreaterThanUpperThreshold", "LessThanLowerThreshold",
                  "GreaterThanUpperThreshold"}
# PutMetricAlarm: "If you use the Metrics parameter, you cannot include the Namespace, MetricName,
# Dimensions, Period, Unit, Statistic, or ExtendedStatistic parameters".
SINGLE_METRIC_KEYS = ("Namespace", "MetricName", "Dimensions", "Period", "Unit", "Statistic",
                      "ExtendedStatistic")


def substituted(value):
    """The string an Fn::Sub (or a plain string) produces, each ${...} replaced by a plausible
    value; None for anything else. Dummy values hold no quote or backslash, so they keep a JSON
    string valid exactly when the real value would."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict) and list(value) == ["Fn::Sub"]:
        sub = value["Fn::Sub"]
        text = sub if isinstance(sub, str) else sub[0] if isinstance(sub, list) and sub else None
        if not isinstance(text, str):
            return None
    else:
        return None

    def dummy(match):
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        return PSEUDO_PARAMETERS.get(name, "dummy-" + re.sub(r"[^A-Za-z0-9]+", "-", name).lower())

    return SUBSTITUTION.sub(dummy, text)


# --- Dashboards --------------------------------------------------------------------------------

def dashboard_problems(name, dashboard):
    props = dashboard.get("Properties")
    body = substituted(props.get("DashboardBody") if isinstance(props, dict) else None)
    if body is None:
        return [f"{name}: DashboardBody is neither a string nor an Fn::Sub string: it cannot be checked"]
    try:
        parsed = json.loads(body)
    except ValueError as e:
        return [f"{name}: DashboardBody is not JSON once its ${{...}} are substituted ({e})"]
    widgets = parsed.get("widgets") if isinstance(parsed, dict) else None
    if not isinstance(widgets, list):
        return [f"{name}: DashboardBody has no 'widgets' array"]
    problems = []
    if len(widgets) > MAX_WIDGETS:
        problems.append(f"{name}: {len(widgets)} widgets, CloudWatch takes at most {MAX_WIDGETS}")
    for index, widget in enumerate(widgets):
        properties = widget.get("properties") if isinstance(widget, dict) else None
        title = properties.get("title") if isinstance(properties, dict) else None
        where = f"{name} widget {index}" + (f" ({title!r})" if isinstance(title, str) else "")
        problems += widget_problems(where, widget)
    return problems


def is_integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


def widget_problems(where, widget):
    if not isinstance(widget, dict):
        return [f"{where}: a widget must be an object"]
    missing = [key for key in WIDGET_KEYS if key not in widget]
    if missing:
        return [f"{where}: no {', '.join(missing)} (every widget sets its type, place, size and properties)"]
    problems = []
    if not isinstance(widget["type"], str) or widget["type"] not in WIDGET_TYPES:
        problems.append(f"{where}: type {widget['type']!r}, expected one of {sorted(WIDGET_TYPES)}")
    x, y, width, height = (widget[key] for key in ("x", "y", "width", "height"))
    if not all(is_integer(v) for v in (x, y, width, height)):
        problems.append(f"{where}: x, y, width and height must be integers")
    else:
        if not 0 <= x < GRID_COLUMNS:
            problems.append(f"{where}: x {x} is off the {GRID_COLUMNS}-column grid (0-{GRID_COLUMNS - 1})")
        if y < 0:
            problems.append(f"{where}: y {y} is negative")
        if not 1 <= width <= GRID_COLUMNS:
            problems.append(f"{where}: width {width}, expected 1-{GRID_COLUMNS}")
        elif x + width > GRID_COLUMNS:
            problems.append(f"{where}: x {x} + width {width} runs past the {GRID_COLUMNS}-column grid")
        if not 1 <= height <= MAX_HEIGHT:
            problems.append(f"{where}: height {height}, expected 1-{MAX_HEIGHT}")
    properties = widget["properties"]
    if not isinstance(properties, dict):
        return problems + [f"{where}: properties must be an object"]
    if widget["type"] == "metric":
        problems += metric_widget_problems(where, properties)
    return problems


def metric_widget_problems(where, properties):
    problems = []
    if not isinstance(properties.get("region"), str):
        problems.append(f"{where}: a metric widget needs its region")
    if "view" in properties and not (isinstance(properties["view"], str) and properties["view"] in VIEWS):
        problems.append(f"{where}: view {properties['view']!r}, expected one of {sorted(VIEWS)}")
    metrics = properties.get("metrics")
    if metrics is None and "annotations" in properties:
        return problems
    if not isinstance(metrics, list):
        return problems + [f"{where}: 'metrics' must be an array of arrays"]
    if len(metrics) > MAX_METRICS:
        problems.append(f"{where}: {len(metrics)} metrics, CloudWatch takes at most {MAX_METRICS}")
    ids = []
    for index, entry in enumerate(metrics):
        at = f"{where} metrics[{index}]"
        if not isinstance(entry, list):
            # What PutDashboard answers for this: "The dashboard body is invalid ... Should be array".
            problems.append(f"{at}: every entry of 'metrics' must be an array (wrap it: [{{\"expression\": ...}}])")
            continue
        if any(isinstance(item, dict) and "expression" in item for item in entry):
            problems += expression_entry_problems(at, entry, ids)
        else:
            problems += metric_array_problems(at, entry, first=index == 0, ids=ids)
    for query_id in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"{where}: id {query_id!r} is used {ids.count(query_id)} times (ids are unique in a widget)")
    return problems


def expression_entry_problems(at, entry, ids):
    if len(entry) != 1:
        return [f"{at}: an expression is an array of exactly one object ([{{\"expression\": ..., \"id\": ...}}])"]
    expression = entry[0]
    problems = []
    if not isinstance(expression["expression"], str) or not expression["expression"].strip():
        problems.append(f"{at}: empty expression")
    else:
        problems += search_problems(at, expression["expression"])
    problems += id_problems(at, expression, ids)
    return problems


def metric_array_problems(at, entry, first, ids):
    """[Namespace, MetricName, DimensionName, DimensionValue, ..., {rendering options}?]"""
    names = entry[:-1] if entry and isinstance(entry[-1], dict) else entry
    if not all(isinstance(item, str) for item in names):
        return [f"{at}: a metric is strings (namespace, metric name, dimension name/value pairs), then at "
                f"most one options object, last"]
    if len(names) < 2:
        return [f"{at}: a metric needs a namespace and a metric name"]
    if len(names) % 2:
        return [f"{at}: dimension {names[-1]!r} has no value (dimensions come in name/value pairs)"]
    problems = []
    if first and SAME_AS_ABOVE in names[:2] + names[2::2]:
        problems.append(f"{at}: '.' repeats the previous metric's value, and this is the first metric")
    if len(names) < len(entry):
        problems += id_problems(at, entry[-1], ids)
    return problems


def id_problems(at, item, ids):
    if "id" not in item:
        return []
    ids.append(item["id"])
    if not isinstance(item["id"], str) or not QUERY_ID.match(item["id"]):
        return [f"{at}: id {item['id']!r} must start with a lower-case letter (then letters, digits, _)"]
    return []


def search_problems(at, expression):
    problems = []
    for schema in SEARCH_SCHEMA.findall(expression):
        for name in split_schema(schema):
            if not (len(name) >= 2 and name[0] == name[-1] == '"') and not BARE_SCHEMA_NAME.match(name):
                problems.append(f"{at}: SEARCH's schema names {name!r} unquoted; a namespace or dimension "
                                f"name with other characters than letters and digits goes in double quotes "
                                f"({{\"{name}\",...}})")
    return problems


def split_schema(schema):
    """The comma-separated names of a SEARCH metric schema, double-quoted ones kept whole."""
    return [part.strip() for part in re.findall(r'\s*("[^"]*"|[^,]+)\s*(?:,|$)', schema) if part.strip()]


# --- Alarms ------------------------------------------------------------------------------------

def returns_data(query):
    """ReturnData as PutMetricAlarm reads it: absent means true."""
    value = query.get("ReturnData", True)
    return not (value is False or (isinstance(value, str) and value.lower() == "false"))


def variables_of(expression):
    """The query ids a metric math expression reads (string literals, as in SEARCH, left out)."""
    return set(VARIABLE.findall(STRING_LITERAL.sub("", expression)))


def alarm_problems(name, alarm):
    props = alarm.get("Properties")
    queries = props.get("Metrics") if isinstance(props, dict) else None
    if queries is None:
        return []
    if not isinstance(queries, list) or not queries or not all(isinstance(q, dict) for q in queries):
        return [f"{name}: Metrics must be a non-empty list of queries"]
    problems = [f"{name}: {key} beside Metrics (PutMetricAlarm takes one or the other)"
                for key in SINGLE_METRIC_KEYS if key in props]
    ids = [q.get("Id") for q in queries]
    defined = {i for i in ids if isinstance(i, str)}
    for query, query_id in zip(queries, ids):
        if not isinstance(query_id, str) or not QUERY_ID.match(query_id):
            problems.append(f"{name}: query Id {query_id!r} must start with a lower-case letter (then letters, digits, _)")
        if ("Expression" in query) == ("MetricStat" in query):
            problems.append(f"{name}: query {query_id!r} needs exactly one of Expression and MetricStat")
        if isinstance(query.get("Expression"), str):
            for undefined in sorted(variables_of(query["Expression"]) - defined):
                problems.append(f"{name}: query {query_id!r} reads {undefined!r}, which no query defines")
    for query_id in sorted({i for i in defined if ids.count(i) > 1}):
        problems.append(f"{name}: query Id {query_id!r} is used {ids.count(query_id)} times")
    returning = [q.get("Id") for q in queries if returns_data(q)]
    band_id = props.get("ThresholdMetricId")
    operator = props.get("ComparisonOperator")
    operator = operator if isinstance(operator, str) else repr(operator)
    if band_id is None:
        if len(returning) != 1:
            problems.append(f"{name}: {len(returning)} queries return data ({returning}); exactly one must "
                            f"(ReturnData: false on the others; absent means true)")
        if operator in BAND_OPERATORS:
            problems.append(f"{name}: {operator} compares with a band, and no ThresholdMetricId names one")
        return problems
    band = next((q for q in queries if q.get("Id") == band_id), None)
    if band is None:
        return problems + [f"{name}: ThresholdMetricId {band_id!r} names no query"]
    if not str(band.get("Expression", "")).strip().startswith(ANOMALY_BAND):
        problems.append(f"{name}: ThresholdMetricId {band_id!r} is not an {ANOMALY_BAND} expression")
    # The band and the metric it is computed from both return data (AWS's anomaly alarm example).
    watched = [i for i in returning if i != band_id]
    if band_id not in returning or len(watched) != 1:
        problems.append(f"{name}: with ThresholdMetricId, exactly the band {band_id!r} and the one metric it "
                        f"bands return data; {returning} do")
    elif not (isinstance(watched[0], str) and watched[0] in variables_of(str(band.get("Expression", "")))):
        problems.append(f"{name}: the band {band_id!r} is not computed from {watched[0]!r}, the query the alarm watches")
    if operator not in BAND_OPERATORS:
        problems.append(f"{name}: ComparisonOperator {operator!r} with a band; expected one of {sorted(BAND_OPERATORS)}")
    if "Threshold" in props:
        problems.append(f"{name}: Threshold beside ThresholdMetricId (the band is the threshold)")
    return problems
