"""The data plane on moto, from the template's own resource properties: the DynamoDB tables, the
SQS queues (dead-letter queues first), their queue policies, and the SSM parameters the template's
`{{resolve:ssm:...}}` references read.

`table_request` and `queue_requests` are pure (the API calls CloudFormation would make), so they are
unit-tested without moto; `create` makes them.
"""
import json
import secrets

from .template import TemplateError, referenced, resources

# The SQS API's default maxReceiveCount when a RedrivePolicy names none (SetQueueAttributes:
# "Default: 10"); moto refuses such a policy, AWS does not.
SQS_DEFAULT_MAX_RECEIVE_COUNT = 10

# CloudFormation's AWS::DynamoDB::Table properties and what the rehearsal does with each.
TABLE_APPLIED = {"TableName", "BillingMode", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes",
                 "LocalSecondaryIndexes", "TimeToLiveSpecification", "PointInTimeRecoverySpecification",
                 "SSESpecification", "StreamSpecification", "ProvisionedThroughput", "Tags",
                 "DeletionProtectionEnabled", "TableClass"}
QUEUE_ATTRIBUTES = ("DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds",
                    "VisibilityTimeout", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds", "SqsManagedSseEnabled",
                    "FifoQueue", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit")


def table_request(stack, logical_id):
    """CreateTable's arguments for the table, and what follows it (TTL, PITR) as (call, args)."""
    props = stack.resolve(stack.properties(logical_id), logical_id)
    ignored = sorted(set(props) - TABLE_APPLIED)
    request = {
        "TableName": stack.name(logical_id),
        "AttributeDefinitions": props.get("AttributeDefinitions", []),
        "KeySchema": props.get("KeySchema", []),
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if "ProvisionedThroughput" in props:
        request["ProvisionedThroughput"] = {k: int(v) for k, v in props["ProvisionedThroughput"].items()}
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if key in props:
            request[key] = [{k: v for k, v in index.items() if k != "ContributorInsightsSpecification"}
                            for index in props[key]]
    if "SSESpecification" in props:
        sse = props["SSESpecification"]
        request["SSESpecification"] = {"Enabled": bool(sse.get("SSEEnabled"))}
        if sse.get("SSEType"):
            request["SSESpecification"]["SSEType"] = sse["SSEType"]
        if sse.get("KMSMasterKeyId"):
            request["SSESpecification"]["KMSMasterKeyId"] = sse["KMSMasterKeyId"]
    if "StreamSpecification" in props:
        request["StreamSpecification"] = {"StreamEnabled": True,
                                          "StreamViewType": props["StreamSpecification"]["StreamViewType"]}
    if "Tags" in props:
        request["Tags"] = props["Tags"]
    if "DeletionProtectionEnabled" in props:
        request["DeletionProtectionEnabled"] = bool(props["DeletionProtectionEnabled"])
    if "TableClass" in props:
        request["TableClass"] = props["TableClass"]
    after = []
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        after.append(("update_time_to_live", {"TableName": request["TableName"], "TimeToLiveSpecification":
                      {"Enabled": True, "AttributeName": ttl["AttributeName"]}}))
    if props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
        after.append(("update_continuous_backups", {"TableName": request["TableName"],
                      "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}}))
    return request, after, ignored


def queue_order(stack):
    """The queues, each after the queues its RedrivePolicy names (dead-letter queues first)."""
    queues = resources(stack.template, "AWS::SQS::Queue")
    order, visiting = [], set()

    def visit(name, path):
        if name in order:
            return
        if name in visiting:
            raise TemplateError(f"queues redrive to each other in a cycle: {' -> '.join(path + [name])}")
        visiting.add(name)
        redrive = queues[name].get("Properties", {}).get("RedrivePolicy", {})
        for target in sorted(referenced(redrive, queues)):
            visit(target, path + [name])
        visiting.discard(name)
        order.append(name)

    for name in sorted(queues):
        visit(name, [])
    return order


def queue_requests(stack):
    """CreateQueue's arguments for each queue, in creation order, and the notes to print (what the
    rehearsal had to decide for moto)."""
    requests, notes = [], []
    for logical_id in queue_order(stack):
        props = stack.resolve(stack.properties(logical_id), logical_id)
        attributes = {}
        for key in QUEUE_ATTRIBUTES:
            if key in props:
                value = props[key]
                attributes[key] = str(value).lower() if isinstance(value, bool) else str(value)
        redrive = props.get("RedrivePolicy")
        if redrive is not None:
            redrive = json.loads(redrive) if isinstance(redrive, str) else dict(redrive)
            if "maxReceiveCount" not in redrive:
                notes.append(f"{logical_id}: its RedrivePolicy names no maxReceiveCount: SQS's default, "
                             f"{SQS_DEFAULT_MAX_RECEIVE_COUNT}, applies (moto refuses such a policy; AWS takes it)")
                redrive["maxReceiveCount"] = SQS_DEFAULT_MAX_RECEIVE_COUNT
            attributes["RedrivePolicy"] = json.dumps(redrive)
        if "RedriveAllowPolicy" in props:
            allow = props["RedriveAllowPolicy"]
            attributes["RedriveAllowPolicy"] = allow if isinstance(allow, str) else json.dumps(allow)
        ignored = sorted(set(props) - set(QUEUE_ATTRIBUTES) - {"RedrivePolicy", "RedriveAllowPolicy", "QueueName", "Tags"})
        if ignored:
            notes.append(f"{logical_id}: not applied on moto: {ignored}")
        request = {"QueueName": stack.name(logical_id), "Attributes": attributes}
        if props.get("Tags"):
            request["tags"] = {t["Key"]: t["Value"] for t in props["Tags"]}
        requests.append((logical_id, request))
    return requests, notes


def queue_policies(stack):
    """{queue logical id: policy document} from each AWS::SQS::QueuePolicy (Queues are Refs)."""
    queues = resources(stack.template, "AWS::SQS::Queue")
    policies = {}
    for name, policy in sorted(resources(stack.template, "AWS::SQS::QueuePolicy").items()):
        props = policy.get("Properties", {})
        document = stack.resolve(props.get("PolicyDocument", {}), f"{name}.PolicyDocument")
        targets = referenced(props.get("Queues", []), queues)
        if not targets:
            raise TemplateError(f"{name}: its Queues name no queue of this stack")
        for queue in sorted(targets):
            if queue in policies:
                raise TemplateError(f"{name}: {queue} already has a queue policy (SQS keeps one)")
            policies[queue] = document
    return policies


def ssm_references(template):
    """Every `{{resolve:ssm:NAME}}` (or NAME:VERSION) in the template: the parameter names."""
    from .template import DYNAMIC_REFERENCE
    names = set()
    for match in DYNAMIC_REFERENCE.finditer(json.dumps(template)):
        if match.group(1) == "ssm":
            names.add(match.group(2).rsplit(":", 1)[0] if match.group(2).count(":") else match.group(2))
    return sorted(names)


def put_ssm_parameters(ssm, names):
    """Puts a generated secret under each name, as a user does before deploying (Type String:
    docs/deploying.md, "Rehearse, then deploy"). Returns {name: value}."""
    values = {}
    for name in names:
        values[name] = secrets.token_hex(32)
        ssm.put_parameter(Name=name, Type="String", Value=values[name], Overwrite=True)
    return values


def ssm_resolver(ssm):
    """`{{resolve:ssm:NAME[:VERSION]}}` read from (moto's) SSM, as CloudFormation does at deploy."""
    def resolve(service, key, where):
        if service != "ssm":
            raise TemplateError(f"{where}: the dynamic reference {{{{resolve:{service}:...}}}} is not "
                                f"resolved by the rehearsal (ssm only)")
        name = key
        if key.count(":") and key.rsplit(":", 1)[1].isdigit():
            name = key.rsplit(":", 1)[0]
        try:
            return ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except Exception as e:  # botocore's ParameterNotFound, or moto down
            raise TemplateError(f"{where}: SSM parameter {name} cannot be read ({e}): CloudFormation "
                                f"would fail the deploy") from None
    return resolve


def create(stack, clients, log):
    """Creates every table and queue of the template on moto; returns {logical id: what was made}."""
    made = {}
    for logical_id in sorted(resources(stack.template, "AWS::DynamoDB::Table")):
        request, after, ignored = table_request(stack, logical_id)
        try:
            clients["dynamodb"].create_table(**request)
            for call, args in after:
                getattr(clients["dynamodb"], call)(**args)
        except Exception as e:
            raise TemplateError(f"{logical_id}: DynamoDB refused the table: {e}") from None
        indexes = [i["IndexName"] for i in request.get("GlobalSecondaryIndexes", [])]
        log(f"  table {request['TableName']} ({logical_id}): keys "
            f"{[k['AttributeName'] for k in request['KeySchema']]}, indexes {indexes}, "
            f"{', '.join(call for call, _ in after) or 'no TTL/PITR'}"
            + (f"; not applied on moto: {ignored}" if ignored else ""))
        made[logical_id] = request["TableName"]
    requests, notes = queue_requests(stack)
    for note in notes:
        log(f"  note: {note}")
    for logical_id, request in requests:
        try:
            url = clients["sqs"].create_queue(**request)["QueueUrl"]
        except Exception as e:
            raise TemplateError(f"{logical_id}: SQS refused the queue: {e}") from None
        made[logical_id] = url
        attrs = request["Attributes"]
        log(f"  queue {request['QueueName']} ({logical_id}): "
            + ", ".join(f"{k}={v}" for k, v in sorted(attrs.items())))
    for queue, document in queue_policies(stack).items():
        clients["sqs"].set_queue_attributes(QueueUrl=made[queue], Attributes={"Policy": json.dumps(document)})
        log(f"  queue policy on {queue}: {len(document.get('Statement', []))} statement(s)")
    return made
