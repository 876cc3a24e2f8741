#!/usr/bin/env python3
"""Security rules for infra/template.yaml that cfn-lint and `sam validate` do not enforce.

Usage: .venv/bin/python scripts/check_template.py [--self-test] [TEMPLATE]
(default TEMPLATE: infra/template.yaml; scripts/test.sh runs both forms in its cfn-lint step).

The template is first expanded with the SAM translator that `sam validate` uses (offline), so
the rules see what CloudFormation would deploy: Globals merged into every function, the role
SAM generates for a function without one, the managed policies SAM attaches on its own (an SQS
event on a function without a Role brings AWSLambdaSQSQueueExecutionRole, whose actions apply
to every queue), and SAM policy templates expanded into statements.

Rules (ids as printed):
  env-secret       No function environment variable is named *TOKEN, *SECRET, *KEY, *PASSWORD
                   (or plurals), whatever its value: secrets reach functions as *_ARN of a
                   Secrets Manager secret, read at init.
  iam-resource     Every Allow statement of every IAM role/policy names specific resources: no
                   Resource containing '*' (also inside Fn::Sub / Fn::Join), no NotResource,
                   unless every action of the statement is in STAR_RESOURCE_ACTIONS.
  iam-action       No action containing '*', no NotAction.
  iam-managed      Managed policies only from MANAGED_POLICY_EXCEPTIONS.
  iam-role         Every function's role is a role of this template (so the rules above see it).
  iam-least        Every function is in LEAST_PRIVILEGE, and each Allow statement of its role
                   (inline policies and AWS::IAM::Policy resources attached to it) grants only
                   (action, resource) pairs listed there for it: no other table, queue, index,
                   secret, bucket or key prefix. Resources are named by logical id (buckets as
                   <bucket>, whatever their id), Fn::If counts both branches.
  table-sse        Every DynamoDB table has SSE and point-in-time recovery enabled.
  queue-sse        Every SQS queue is encrypted (SqsManagedSseEnabled or a KMS key).
  queue-dlq        Every queue that is not a DLQ has a RedrivePolicy; a FIFO queue's DLQ is
                   FIFO and keeps messages at least as long as its source.
  esm              Every SQS event source reports partial batch failures, and its queue's
                   VisibilityTimeout is >= 6x the function's Timeout (AWS's advice).
  http-throttling  Every HTTP API stage sets ThrottlingBurstLimit and ThrottlingRateLimit.

--self-test breaks the template in one way per rule (e.g. adds `Resource: '*'` to a function's
policies) and fails unless the checker reports each break under the expected rule, and passes
the unmodified template.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import sys
from pathlib import Path

# Exceptions, listed explicitly. A statement may use Resource '*' only if all its actions are
# here: AWS does not support resource-level permissions for them. None is used today.
STAR_RESOURCE_ACTIONS = {
    "xray:PutTraceSegments",  # X-Ray tracing (Tracing: Active)
    "xray:PutTelemetryRecords",
    "cloudwatch:PutMetricData",  # custom metrics (scope with a cloudwatch:namespace condition)
}

# AWS-managed policies a role may carry, and why each is acceptable.
MANAGED_POLICY_EXCEPTIONS = {
    # logs:CreateLogGroup/CreateLogStream/PutLogEvents on '*': what SAM attaches to every
    # function so Lambda can write its logs. The only '*' a Ventana function holds.
    "AWSLambdaBasicExecutionRole": "service-role/AWSLambdaBasicExecutionRole",
}

# What each function may do, and on what: function logical id -> action -> resources.
# Resources by logical id ("VentanaTable", "VentanaTable/index/gsi1", a secret or its
# parameter); any S3 bucket of the template is "<bucket>". Every grant must be listed here;
# an entry not granted (yet) is fine.
_TABLE = "VentanaTable"
_ACCESS_TOKEN = {"WhatsAppAccessTokenSecret", "AccessTokenArn"}
# Recipient CSV uploads (issue 4): object keys under uploads/ only, never the whole bucket.
_UPLOADS = "<bucket>/uploads/*"
LEAST_PRIVILEGE: dict[str, dict[str, set[str]]] = {
    "WebhookVerifyFunction": {
        "secretsmanager:GetSecretValue": {"VerifyTokenSecret", "VerifyTokenArn"},
    },
    "WebhookReceiveFunction": {
        # the verify token only with WebhookEndpoint=FunctionUrl (it answers the handshake)
        "secretsmanager:GetSecretValue": {"AppSecret", "AppSecretArn", "VerifyTokenSecret", "VerifyTokenArn"},
        "sqs:SendMessage": {"InboundQueue"},
        # quarantined bodies and oversized events only (a dynamodb:LeadingKeys condition on
        # QUARANTINE#); GetItem finds a body already kept
        "dynamodb:GetItem": {_TABLE},
        "dynamodb:PutItem": {_TABLE},
        "dynamodb:BatchWriteItem": {_TABLE},
    },
    "InboundProcessorFunction": {
        **{a: {"InboundQueue"} for a in (
            "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")},
        **{a: {_TABLE} for a in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")},
    },
    "ReadApiFunction": {
        "dynamodb:GetItem": {_TABLE, f"{_TABLE}/index/gsi1"},
        "dynamodb:Query": {_TABLE, f"{_TABLE}/index/gsi1"},
    },
    "SendApiFunction": {
        # sends, idempotency keys, consents, templates, broadcasts and their ledgers,
        **{a: {_TABLE} for a in (
            "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:ConditionCheckItem",
            "dynamodb:Query", "dynamodb:BatchWriteItem",
            # the messaging limit charged by template sends outside the window
            "dynamodb:BatchGetItem", "dynamodb:UpdateItem")},
        "sqs:SendMessage": {"OutboundQueue", "BroadcastQueue"},
        "secretsmanager:GetSecretValue": _ACCESS_TOKEN,  # template sync
        "s3:PutObject": {_UPLOADS},  # presigned upload URLs
    },
    "DeliverWorkerFunction": {
        **{a: {"OutboundQueue"} for a in (
            "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility")},
        "sqs:SendMessage": {"OutboundDeadLetterQueue"},
        # BatchGetItem / BatchWriteItem: charging a fallback template to the messaging limit.
        **{a: {_TABLE} for a in (
            "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query",
            "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem")},
        "secretsmanager:GetSecretValue": _ACCESS_TOKEN,
    },
    "BroadcastPlannerFunction": {
        **{a: {"BroadcastQueue"} for a in (
            "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")},
        "sqs:SendMessage": {"BroadcastQueue", "OutboundQueue"},
        **{a: {_TABLE} for a in (
            "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query",
            "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem")},
        "s3:GetObject": {_UPLOADS},  # recipient CSV lists
    },
}
# Resources with a '*' that iam-resource lets through: a key prefix of a bucket of this
# template, for object reads and writes (LEAST_PRIVILEGE still decides who gets which).
PREFIX_RESOURCES = {_UPLOADS: {"s3:GetObject", "s3:PutObject"}}

SECRET_NAME = re.compile(r"(TOKEN|SECRET|KEY|PASSWORD)S?$")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = ROOT / "infra" / "template.yaml"


# --------------------------------------------------------------------------------------------
# Loading and expanding
# --------------------------------------------------------------------------------------------


def load_sam(path: Path) -> dict:
    """The SAM template as a dict, intrinsics in their JSON form ({"Ref": ...})."""
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(path.read_text())


class _PolicyLoader:
    """Managed policy names SAM may need to resolve, offline (no IAM call)."""

    def load(self) -> dict:
        names = [
            "AWSLambdaBasicExecutionRole",
            "AWSLambdaSQSQueueExecutionRole",
            "AWSLambdaVPCAccessExecutionRole",
            "AWSXrayWriteOnlyAccess",
            "AmazonDynamoDBFullAccess",
            "AmazonSQSFullAccess",
            "SecretsManagerReadWrite",
        ]
        return {
            n: f"arn:aws:iam::aws:policy/{'service-role/' if n.startswith('AWSLambda') else ''}{n}"
            for n in names
        }


def expand(sam: dict) -> dict:
    """What CloudFormation would deploy: the SAM transform, run offline."""
    from samtranslator.translator.transform import transform

    # The translator warns about its own usage metrics on every run; that is not a finding.
    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    sam = copy.deepcopy(sam)
    # The translator insists on S3 code locations; `sam build` rewrites CodeUri anyway.
    for res in sam.get("Resources", {}).values():
        if res.get("Type") == "AWS::Serverless::Function":
            res.setdefault("Properties", {})["CodeUri"] = "s3://bucket/key"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return transform(sam, {"AWS::Region": "us-east-1"}, _PolicyLoader())


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def as_list(v):
    return v if isinstance(v, list) else [v]


def literals(v):
    """Every literal string inside a value, intrinsics included (Fn::Sub templates, Join parts)."""
    if isinstance(v, str):
        yield v
    elif isinstance(v, list):
        for x in v:
            yield from literals(x)
    elif isinstance(v, dict):
        for k, x in v.items():
            if k in ("Ref", "Fn::GetAtt"):
                continue  # names of resources or parameters, not resource patterns
            yield from literals(x)


def ref_target(v):
    """The logical id a Ref / GetAtt points at, or None."""
    if isinstance(v, dict):
        if "Ref" in v:
            return v["Ref"]
        if "Fn::GetAtt" in v:
            g = v["Fn::GetAtt"]
            return g[0] if isinstance(g, list) else str(g).split(".")[0]
    return None


def resource_names(v, res: dict) -> set[str]:
    """What a Resource value names, by logical id (see LEAST_PRIVILEGE); '?' if unreadable."""

    def name(target: str) -> str:
        return "<bucket>" if res.get(target, {}).get("Type") == "AWS::S3::Bucket" else target

    def sub(template: str, variables: dict) -> set[str]:
        # Each ${var} of the template by what it names (every branch of an Fn::If).
        texts = {template}
        for ref in set(re.findall(r"\$\{([^}]+)\}", template)):
            if ref in variables:
                values = resource_names(variables[ref], res)
            else:
                values = {"" if ref.startswith("AWS::") else name(ref.split(".")[0])}
            texts = {t.replace("${" + ref + "}", v) for t in texts for v in values}
        # arn:<partition>:s3:::<bucket>/key: keep what names the resource
        return {re.sub(r"^arn:[^:]*:s3:::", "", t) for t in texts}

    if isinstance(v, list):
        return set().union(*(resource_names(x, res) for x in v)) if v else set()
    if isinstance(v, str):
        return {v}
    if isinstance(v, dict):
        if "Ref" in v or "Fn::GetAtt" in v:
            return {name(ref_target(v))}
        if "Fn::If" in v:
            return set().union(*(resource_names(x, res) for x in v["Fn::If"][1:]))
        if "Fn::Sub" in v:
            arg = v["Fn::Sub"]
            return sub(arg, {}) if isinstance(arg, str) else sub(arg[0], arg[1] if len(arg) > 1 else {})
        if "Fn::Join" in v:
            sep, parts = v["Fn::Join"]
            names = [resource_names(p, res) for p in parts]
            if all(len(n) == 1 for n in names):
                return {re.sub(r"^arn:[^:]*:s3:::", "", sep.join(n.pop() for n in names))}
    return {"?"}


def resolve_number(v, params: dict):
    """A literal number, or a Ref to a parameter's default; None otherwise."""
    target = ref_target(v) if isinstance(v, dict) and "Ref" in v else None
    if target is not None:
        v = params.get(target, {}).get("Default")
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def truthy(v) -> bool:
    return v is True or (isinstance(v, str) and v.lower() == "true")


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


def check(cfn: dict) -> list[tuple[str, str, str]]:
    """Violations as (rule, where, message)."""
    out: list[tuple[str, str, str]] = []
    res = cfn.get("Resources", {})
    params = cfn.get("Parameters", {})

    def bad(rule, where, msg):
        out.append((rule, where, msg))

    functions = {k: v for k, v in res.items() if v.get("Type") == "AWS::Lambda::Function"}

    # env-secret, iam-role
    for fid, f in functions.items():
        props = f.get("Properties", {})
        env = props.get("Environment", {}).get("Variables", {}) or {}
        for name in env:
            if SECRET_NAME.search(name):
                bad("env-secret", f"{fid}.{name}",
                    "secret-like variable: pass the secret's ARN as <NAME>_ARN instead")
        role = ref_target(props.get("Role"))
        if role is None or res.get(role, {}).get("Type") != "AWS::IAM::Role":
            bad("iam-role", fid, "role is not an AWS::IAM::Role of this template")

    # iam-resource, iam-action, iam-managed
    for rid, r in res.items():
        rtype = r.get("Type")
        props = r.get("Properties", {})
        docs = []
        if rtype == "AWS::IAM::Role":
            docs = [(f"{rid}/{p.get('PolicyName')}", p.get("PolicyDocument", {}))
                    for p in props.get("Policies", []) or []]
            for arn in props.get("ManagedPolicyArns", []) or []:
                text = "".join(literals(arn))
                if not any(text.endswith(f":policy/{suffix}")
                           for suffix in MANAGED_POLICY_EXCEPTIONS.values()):
                    bad("iam-managed", rid, f"managed policy {text!r} is not an allowed exception")
        elif rtype in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            docs = [(rid, props.get("PolicyDocument", {}))]
        for where, doc in docs:
            for i, st in enumerate(as_list(doc.get("Statement", []))):
                at = f"{where}[{st.get('Sid', i)}]"
                if st.get("Effect") != "Allow":
                    continue
                if "NotAction" in st:
                    bad("iam-action", at, "NotAction grants everything else")
                actions = [a for a in literals(st.get("Action", []))]
                for a in actions:
                    if "*" in a:
                        bad("iam-action", at, f"wildcard action {a!r}")
                if "NotResource" in st:
                    bad("iam-resource", at, "NotResource grants every other resource")
                if "Resource" not in st:
                    bad("iam-resource", at, "no Resource")
                    continue
                starred = [s for s in literals(st["Resource"]) if "*" in s]
                prefixed = [n for n in resource_names(st["Resource"], res) if "*" in n]
                if starred and prefixed and all(
                        n in PREFIX_RESOURCES and set(actions) <= PREFIX_RESOURCES[n]
                        for n in prefixed):
                    starred = []
                if starred and not (actions and set(actions) <= STAR_RESOURCE_ACTIONS):
                    bad("iam-resource", at, f"Resource is not specific: {starred}")

    # iam-least
    for fid, f in functions.items():
        allowed = LEAST_PRIVILEGE.get(fid)
        if allowed is None:
            bad("iam-least", fid, "not in LEAST_PRIVILEGE: list what it may do, on what")
            continue
        role = ref_target(f.get("Properties", {}).get("Role"))
        if res.get(role, {}).get("Type") != "AWS::IAM::Role":
            continue  # iam-role reports it
        docs = [(f"{role}/{p.get('PolicyName')}", p.get("PolicyDocument", {}))
                for p in res[role].get("Properties", {}).get("Policies", []) or []]
        docs += [(pid, p.get("Properties", {}).get("PolicyDocument", {}))
                 for pid, p in res.items()
                 if p.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
                 and role in {ref_target(x) for x in as_list(p.get("Properties", {}).get("Roles", []))}]
        for where, doc in docs:
            for i, st in enumerate(as_list(doc.get("Statement", []))):
                if st.get("Effect") != "Allow":
                    continue
                at = f"{fid}: {where}[{st.get('Sid', i)}]"
                names = resource_names(st.get("Resource", []), res)
                for action in literals(st.get("Action", [])):
                    extra = sorted(names - allowed.get(action, set()))
                    if extra:
                        bad("iam-least", at, f"{action} on {extra}: not in LEAST_PRIVILEGE")

    # table-sse
    for rid, r in res.items():
        if r.get("Type") != "AWS::DynamoDB::Table":
            continue
        p = r.get("Properties", {})
        if not truthy(p.get("SSESpecification", {}).get("SSEEnabled")):
            bad("table-sse", rid, "SSESpecification.SSEEnabled is not true")
        if not truthy(p.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled")):
            bad("table-sse", rid, "point-in-time recovery is not enabled")

    # queue-sse, queue-dlq
    queues = {k: v.get("Properties", {}) for k, v in res.items() if v.get("Type") == "AWS::SQS::Queue"}
    dlqs = {}
    for qid, p in queues.items():
        target = ref_target(p.get("RedrivePolicy", {}).get("deadLetterTargetArn"))
        if target:
            dlqs[target] = qid
    for qid, p in queues.items():
        if not (truthy(p.get("SqsManagedSseEnabled")) or p.get("KmsMasterKeyId")):
            bad("queue-sse", qid, "not encrypted (SqsManagedSseEnabled or KmsMasterKeyId)")
        if qid in dlqs:
            continue
        redrive = p.get("RedrivePolicy")
        if not redrive or not redrive.get("deadLetterTargetArn") or not redrive.get("maxReceiveCount"):
            bad("queue-dlq", qid, "no RedrivePolicy with a deadLetterTargetArn and maxReceiveCount")
            continue
        dlq = ref_target(redrive["deadLetterTargetArn"])
        d = queues.get(dlq)
        if d is None:
            bad("queue-dlq", qid, f"DLQ {dlq!r} is not a queue of this template")
            continue
        if truthy(p.get("FifoQueue")) != truthy(d.get("FifoQueue")):
            bad("queue-dlq", qid, f"FIFO-ness differs from its DLQ {dlq}")
        src_ret = resolve_number(p.get("MessageRetentionPeriod", 345600), params)
        dlq_ret = resolve_number(d.get("MessageRetentionPeriod", 345600), params)
        if src_ret is not None and dlq_ret is not None and dlq_ret < src_ret:
            bad("queue-dlq", qid, f"its DLQ {dlq} keeps messages for less time than it does")

    # esm
    for rid, r in res.items():
        if r.get("Type") != "AWS::Lambda::EventSourceMapping":
            continue
        p = r.get("Properties", {})
        qid = ref_target(p.get("EventSourceArn"))
        if qid not in queues:
            continue
        if "ReportBatchItemFailures" not in (p.get("FunctionResponseTypes") or []):
            bad("esm", rid, "FunctionResponseTypes lacks ReportBatchItemFailures")
        fid = ref_target(p.get("FunctionName"))
        timeout = resolve_number(functions.get(fid, {}).get("Properties", {}).get("Timeout", 3), params)
        vis = resolve_number(queues[qid].get("VisibilityTimeout", 30), params)
        if timeout is None or vis is None:
            bad("esm", rid, "cannot resolve the function Timeout or the queue VisibilityTimeout")
        elif vis < 6 * timeout:
            bad("esm", rid, f"{qid} VisibilityTimeout {vis} s < 6 x {fid} Timeout {timeout} s")

    # http-throttling
    apis = [k for k, v in res.items() if v.get("Type") == "AWS::ApiGatewayV2::Api"]
    stages = {k: v.get("Properties", {}) for k, v in res.items() if v.get("Type") == "AWS::ApiGatewayV2::Stage"}
    for api in apis:
        mine = {k: s for k, s in stages.items() if ref_target(s.get("ApiId")) == api}
        if not mine:
            bad("http-throttling", api, "no stage, so no throttling")
        for sid, s in mine.items():
            d = s.get("DefaultRouteSettings") or {}
            for key in ("ThrottlingBurstLimit", "ThrottlingRateLimit"):
                if d.get(key) in (None, ""):
                    bad("http-throttling", sid, f"DefaultRouteSettings.{key} is not set")
    return out


# --------------------------------------------------------------------------------------------
# Self-test: each break must be caught under its rule
# --------------------------------------------------------------------------------------------


def _fn(sam, fid):
    return sam["Resources"][fid]["Properties"]


def _role_statements(sam, rid):
    return sam["Resources"][rid]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


def _first(sam, rtype):
    return next(k for k, v in sam["Resources"].items() if v["Type"] == rtype)


def _first_dlq(sam):
    for v in sam["Resources"].values():
        if v["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in v["Properties"]:
            return ref_target(v["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
    raise LookupError("no queue with a RedrivePolicy")


def _first_source_queue(sam):
    return next(k for k, v in sam["Resources"].items()
                if v["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in v["Properties"])


def _sam_functions(sam, with_role: bool):
    return [k for k, v in sam["Resources"].items()
            if v["Type"] == "AWS::Serverless::Function" and ("Role" in v["Properties"]) == with_role]


def _star_on_every_function(sam):
    """`Resource: '*'` added to every function: inline Policies, or its explicit role."""
    star = {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"}
    for fid in _sam_functions(sam, with_role=False):
        _fn(sam, fid).setdefault("Policies", []).append({"Statement": [dict(star)]})
    for fid in _sam_functions(sam, with_role=True):
        _role_statements(sam, ref_target(_fn(sam, fid)["Role"])).append(dict(star))


def _drop_role_of_sqs_consumer(sam):
    for fid in _sam_functions(sam, with_role=True):
        events = _fn(sam, fid).get("Events", {}).values()
        if any(e.get("Type") == "SQS" for e in events):
            del _fn(sam, fid)["Role"]
            return
    raise LookupError("no SQS consumer with a Role")


def _first_sqs_consumer(sam):
    for fid in _sam_functions(sam, with_role=True):
        if any(e.get("Type") == "SQS" for e in _fn(sam, fid).get("Events", {}).values()):
            return fid
    raise LookupError("no SQS consumer")


def _grant(sam, fid, statement):
    """Adds an Allow statement to a function: to its explicit role, or its SAM Policies."""
    st = {"Effect": "Allow", **statement}
    role = ref_target(_fn(sam, fid).get("Role"))
    if role:
        _role_statements(sam, role).append(st)
    else:
        _fn(sam, fid).setdefault("Policies", []).append({"Statement": [st]})


def _uploads_bucket(sam, prefix="uploads/*", who=("SendApiFunction", "BroadcastPlannerFunction")):
    """A recipients bucket as issue 4 plans it: send-api puts and the planner gets objects
    under uploads/ (Sub of the bucket's Arn, and the arn:…:s3:::${Bucket} form)."""
    sam["Resources"]["SelfTestUploadsBucket"] = {"Type": "AWS::S3::Bucket", "Properties": {}}
    put, get = who
    _grant(sam, put, {"Action": "s3:PutObject",
                      "Resource": {"Fn::Sub": "${SelfTestUploadsBucket.Arn}/" + prefix}})
    _grant(sam, get, {"Action": ["s3:GetObject"], "Resource": {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${SelfTestUploadsBucket}/" + prefix}})


def _unlisted_function(sam):
    sam["Resources"]["SelfTestExtraFunction"] = copy.deepcopy(sam["Resources"]["ReadApiFunction"])
    sam["Resources"]["SelfTestExtraFunction"]["Properties"].pop("Events", None)


MUTATIONS = [
    # (expected rule, how many findings at least, description, mutation); rule None: the
    # change must be accepted (no finding at all).
    (None, 0, "S3 uploads as planned: send-api PutObject, planner GetObject on uploads/*",
     _uploads_bucket),
    ("iam-least", 1, "S3 PutObject on the whole bucket",
     lambda s: _uploads_bucket(s, prefix="*")),
    ("iam-least", 1, "S3 GetObject on uploads/* for read-api instead of the planner",
     lambda s: _uploads_bucket(s, who=("SendApiFunction", "ReadApiFunction"))),
    ("iam-least", 1, "send-api allowed to send to the inbound queue",
     lambda s: _grant(s, "SendApiFunction", {"Action": "sqs:SendMessage",
                                             "Resource": {"Fn::GetAtt": ["InboundQueue", "Arn"]}})),
    ("iam-least", 1, "read-api allowed to delete items",
     lambda s: _grant(s, "ReadApiFunction", {"Action": "dynamodb:DeleteItem",
                                             "Resource": {"Fn::GetAtt": ["VentanaTable", "Arn"]}})),
    ("iam-least", 1, "broadcast-planner allowed to read the access token",
     lambda s: _grant(s, "BroadcastPlannerFunction", {
         "Action": "secretsmanager:GetSecretValue", "Resource": {"Ref": "AccessTokenArn"}})),
    ("iam-least", 1, "deliver-worker querying gsi1 (every conversation's history)",
     lambda s: _grant(s, "DeliverWorkerFunction", {
         "Action": "dynamodb:Query", "Resource": {"Fn::Sub": "${VentanaTable.Arn}/index/gsi1"}})),
    ("iam-least", 1, "a function missing from LEAST_PRIVILEGE", _unlisted_function),
    ("iam-resource", len, "Resource '*' added to every function", _star_on_every_function),
    ("iam-resource", 1, "a Fn::Sub resource ending in /*",
     lambda s: _fn(s, _sam_functions(s, False)[0]).setdefault("Policies", []).append(
         {"Statement": [{"Effect": "Allow", "Action": "dynamodb:Query",
                         "Resource": {"Fn::Sub": "${VentanaTable.Arn}/index/*"}}]})),
    ("iam-action", 1, "dynamodb:* on the table",
     lambda s: _fn(s, _sam_functions(s, False)[0]).setdefault("Policies", []).append(
         {"Statement": [{"Effect": "Allow", "Action": "dynamodb:*",
                         "Resource": {"Fn::GetAtt": ["VentanaTable", "Arn"]}}]})),
    ("iam-managed", 1, "a broad AWS managed policy on a function",
     lambda s: _fn(s, _sam_functions(s, False)[0]).setdefault("Policies", []).append(
         "AmazonDynamoDBFullAccess")),
    ("iam-managed", 1, "an SQS consumer without its explicit role (SAM's SQS policy is on '*')",
     _drop_role_of_sqs_consumer),
    ("env-secret", 1, "a literal access token in a function's environment",
     lambda s: _fn(s, _sam_functions(s, True)[0]).setdefault("Environment", {})
     .setdefault("Variables", {}).update({"WHATSAPP_ACCESS_TOKEN": "EAAG-not-a-token"})),
    ("env-secret", 1, "a secret in Globals",
     lambda s: s["Globals"]["Function"]["Environment"]["Variables"].update(
         {"VENTANA_API_KEY": {"Ref": "AWS::StackName"}})),
    ("table-sse", 1, "table without SSE",
     lambda s: s["Resources"][_first(s, "AWS::DynamoDB::Table")]["Properties"].pop("SSESpecification")),
    ("table-sse", 1, "table without PITR",
     lambda s: s["Resources"][_first(s, "AWS::DynamoDB::Table")]["Properties"].pop(
         "PointInTimeRecoverySpecification")),
    ("queue-sse", 1, "DLQ without SSE",
     lambda s: s["Resources"][_first_dlq(s)]["Properties"].pop("SqsManagedSseEnabled")),
    ("queue-dlq", 1, "work queue without a redrive policy",
     lambda s: s["Resources"][_first_source_queue(s)]["Properties"].pop("RedrivePolicy")),
    ("esm", 1, "consumer timeout above a sixth of the visibility timeout",
     lambda s: _fn(s, _first_sqs_consumer(s)).update({"Timeout": 900})),
    ("http-throttling", 1, "HTTP API without throttling",
     lambda s: s["Resources"][_first(s, "AWS::Serverless::HttpApi")]["Properties"].pop(
         "DefaultRouteSettings")),
]


def self_test(path: Path) -> int:
    sam = load_sam(path)
    failures = []
    base = check(expand(sam))
    if base:
        failures.append(f"the unmodified template has findings: {base}")
    n_functions = len([v for v in sam["Resources"].values() if v["Type"] == "AWS::Serverless::Function"])
    for rule, at_least, desc, mutate in MUTATIONS:
        broken = copy.deepcopy(sam)
        mutate(broken)
        try:
            found = check(expand(broken))
        except Exception as e:  # the translator rejecting it is not "caught by the rule"
            failures.append(f"{desc}: expanding failed: {e}")
            continue
        if rule is None:
            status = "ok  " if not found else "FAIL"
            print(f"self-test {status} {desc}: accepted" if not found else
                  f"self-test {status} {desc}: {found}")
            if found:
                failures.append(f"{desc}: expected no finding, got {found}")
            continue
        hits = [f for f in found if f[0] == rule]
        need = n_functions if at_least is len else at_least
        status = "ok  " if len(hits) >= need else "FAIL"
        print(f"self-test {status} {desc}: {len(hits)} {rule} finding(s), want >= {need}")
        if len(hits) < need:
            failures.append(f"{desc}: expected >= {need} {rule} findings, got {found}")
    for f in failures:
        print(f"self-test: {f}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    path = Path(args[0]) if args else DEFAULT_TEMPLATE
    if "--self-test" in argv:
        return self_test(path)
    findings = check(expand(load_sam(path)))
    for rule, where, msg in findings:
        print(f"{path}: {rule}: {where}: {msg}", file=sys.stderr)
    if findings:
        return 1
    n = sum(1 for v in load_sam(path)["Resources"].values() if v["Type"] == "AWS::Serverless::Function")
    print(f"{path}: template rules hold ({n} functions checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
