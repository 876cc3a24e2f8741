#!/usr/bin/env python3
"""Writes the Lambda event fixtures in events/<function>/<case>.json.

Each file is a complete Lambda event (API Gateway HTTP API payload 2.0, or SQS), usable with
`cargo lambda invoke <function> --data-file events/<function>/<case>.json`,
`sam local invoke <Function> -e ...` and the handler tests. Webhook bodies are signed with the
test app secret below. Run it again after changing a case: `python3 events/generate.py`.
"""
import base64, hashlib, hmac, json, os

APP_SECRET = b"test-app-secret"
VERIFY_TOKEN = "test-verify-token"
API_KEY = "test-api-key"
HERE = os.path.dirname(os.path.abspath(__file__))
PNID = "106540352242922"
WABA = "102290129340398"


def apigw(method, path, route_key, *, query=None, headers=None, body=None, b64=False, path_params=None):
    headers = {"host": "abc123.execute-api.us-east-1.amazonaws.com", "user-agent": "facebookexternalua",
               **(headers or {})}
    ev = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com", "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "173.252.127.1", "userAgent": headers["user-agent"]},
            "requestId": "JKJaXmPLvHcESHA=", "routeKey": route_key, "stage": "$default",
            "time": "23/Nov/2026:10:00:00 +0000", "timeEpoch": 1795428000000,
        },
        "isBase64Encoded": b64,
    }
    if query:
        ev["queryStringParameters"] = query
    if path_params:
        ev["pathParameters"] = path_params
    if body is not None:
        ev["body"] = base64.b64encode(body).decode() if b64 else body.decode()
    return ev


def signed(body, secret=APP_SECRET):
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def webhook(body, *, sig="valid", b64=False, header="x-hub-signature-256"):
    headers = {"content-type": "application/json"}
    if sig == "valid":
        headers[header] = signed(body)
    elif sig == "wrong-secret":
        headers[header] = signed(body, b"another-secret")
    elif sig is not None:
        headers[header] = sig
    return apigw("POST", "/webhook", "POST /webhook", headers=headers, body=body, b64=b64)


def envelope(value, field="messages"):
    return {"object": "whatsapp_business_account",
            "entry": [{"id": WABA, "changes": [{"field": field, "value": value}]}]}


def write(function, case, event):
    os.makedirs(os.path.join(HERE, function), exist_ok=True)
    with open(os.path.join(HERE, function, case + ".json"), "w") as f:
        json.dump(event, f, indent=2, ensure_ascii=False)
        f.write("\n")


META = {"display_phone_number": "15550783881", "phone_number_id": PNID}
CONTACT = {"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234", "user_id": "US.13491208655302741918"}
TEXT = envelope({"messaging_product": "whatsapp", "metadata": META, "contacts": [CONTACT],
                 "messages": [{"from": "16505551234", "from_user_id": "US.13491208655302741918",
                               "id": "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                               "timestamp": "1795420800", "type": "text",
                               "text": {"body": "Does it come in another color?"}}]})
text_body = json.dumps(TEXT, separators=(",", ":")).encode()

# Meta escapes non-ASCII as \uXXXX and "/" as "\/": written here by hand, as Meta sends them.
escaped_body = (
    '{"object":"whatsapp_business_account","entry":[{"id":"' + WABA + '","changes":[{"field":"messages",'
    '"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"' + PNID + '"},'
    '"contacts":[{"profile":{"name":"Luc\\u00eda G\\u00f3mez"},"wa_id":"5215512345678"}],'
    '"messages":[{"from":"5215512345678","id":"wamid.ESCAPED1","timestamp":"1795420800","type":"text",'
    '"text":{"body":"Hola @soporte \\ud83d\\ude00 \\u00bfpueden ayudarme? https:\\/\\/example.com"}}]}}]}]}'
).encode()

STATUSES = envelope({"messaging_product": "whatsapp", "metadata": META, "statuses": [
    {"id": "wamid.OUT1", "status": "read", "timestamp": "1795420900", "recipient_id": "16505551234",
     "recipient_user_id": "US.13491208655302741918", "biz_opaque_callback_data": "v1-out-1"},
    {"id": "wamid.OUT1", "status": "delivered", "timestamp": "1795420850", "recipient_id": "16505551234",
     "recipient_user_id": "US.13491208655302741918",
     "pricing": {"billable": False, "pricing_model": "PMP", "type": "free_customer_service", "category": "service"}},
    {"id": "wamid.OUT2", "status": "failed", "timestamp": "1795420901", "recipient_id": "16505551234",
     "errors": [{"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message",
                 "error_data": {"details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number."}}]},
]})
status_body = json.dumps(STATUSES, separators=(",", ":")).encode()

TEMPLATE = {"object": "whatsapp_business_account", "entry": [{"id": WABA, "time": 1795420800, "changes": [
    {"field": "message_template_status_update", "value": {
        "event": "PAUSED", "message_template_id": 1689556908129835, "message_template_name": "order_update",
        "message_template_language": "es", "reason": "NONE",
        "other_info": {"title": "FIRST_PAUSE", "description": "Your template has been paused due to low quality."}}}]}]}
template_body = json.dumps(TEMPLATE, separators=(",", ":")).encode()

PREFS = envelope({"messaging_product": "whatsapp", "metadata": META,
                  "contacts": [{"wa_id": "16505551234", "user_id": "US.13491208655302741918"}],
                  "user_preferences": [{"wa_id": "16505551234", "detail": "User requested to stop marketing messages",
                                        "category": "marketing_messages", "value": "stop", "timestamp": 1795420800}]},
                 field="user_preferences")
prefs_body = json.dumps(PREFS, separators=(",", ":")).encode()

# webhook-verify
q = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": VERIFY_TOKEN}
write("webhook-verify", "subscribe-ok", apigw("GET", "/webhook", "GET /webhook", query=q))
write("webhook-verify", "wrong-token", apigw("GET", "/webhook", "GET /webhook", query={**q, "hub.verify_token": "guess"}))
write("webhook-verify", "missing-params", apigw("GET", "/webhook", "GET /webhook"))

# webhook-receive
write("webhook-receive", "text-message", webhook(text_body))
write("webhook-receive", "text-message-base64", webhook(text_body, b64=True))
write("webhook-receive", "escaped-unicode", webhook(escaped_body))
write("webhook-receive", "statuses-out-of-order", webhook(status_body))
write("webhook-receive", "template-paused", webhook(template_body))
write("webhook-receive", "user-preferences-stop", webhook(prefs_body))
write("webhook-receive", "missing-signature", webhook(text_body, sig=None))
write("webhook-receive", "wrong-secret", webhook(text_body, sig="wrong-secret"))
write("webhook-receive", "sha1-only", webhook(text_body, sig="sha1=" + hashlib.sha1(text_body).hexdigest(), header="x-hub-signature"))
write("webhook-receive", "uppercase-header-name", webhook(text_body, header="X-HUB-SIGNATURE-256"))
write("webhook-receive", "signed-not-json", webhook(b"this is not json"))
write("webhook-receive", "signed-not-a-webhook", webhook(b'{"object":"page","entry":[]}'))

# read-api
path = f"/v1/conversations/{PNID}/16505551234"
route = "GET /v1/conversations/{phone_number_id}/{customer}"
pp = {"phone_number_id": PNID, "customer": "16505551234"}
write("read-api", "conversation", apigw("GET", path, route, query={"limit": "20"}, path_params=pp,
                                        headers={"authorization": f"Bearer {API_KEY}"}))
write("read-api", "conversation-no-key", apigw("GET", path, route, path_params=pp))
write("read-api", "conversation-other-number", apigw(
    "GET", "/v1/conversations/999999999999999/16505551234", route,
    path_params={"phone_number_id": "999999999999999", "customer": "16505551234"},
    headers={"authorization": f"Bearer {API_KEY}"}))
write("read-api", "conversation-bad-limit", apigw("GET", path, route, query={"limit": "5000"}, path_params=pp,
                                                  headers={"authorization": f"Bearer {API_KEY}"}))

# inbound-processor: the SQS envelopes webhook-receive writes ({"schema_version":1,"event":…}).
def sqs_record(i, event, group):
    body = json.dumps({"schema_version": 1, "event": event}, separators=(",", ":"))
    return {"messageId": f"0e9a2d6c-0000-4000-8000-00000000000{i}", "receiptHandle": f"AQEB{i}",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795420801000",
                           "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1795420801001",
                           "SequenceNumber": f"1881000000000000000{i}", "MessageGroupId": group,
                           "MessageDeduplicationId": hashlib.sha256(event["natural_key"].encode()).hexdigest()},
            "messageAttributes": {}, "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ventana-inbound.fifo",
            "awsRegion": "us-east-1"}

msg = TEXT["entry"][0]["changes"][0]["value"]["messages"][0]
ev_msg = {"kind": "message", "field": "messages", "waba_id": WABA, "phone_number_id": PNID,
          "display_phone_number": "15550783881",
          "customer": {"user_id": CONTACT["user_id"], "wa_id": CONTACT["wa_id"]},
          "contact": CONTACT, "item": msg, "natural_key": "message:" + msg["id"]}
st = STATUSES["entry"][0]["changes"][0]["value"]["statuses"][0]
ev_status = {"kind": "status", "field": "messages", "waba_id": WABA, "phone_number_id": PNID,
             "display_phone_number": "15550783881",
             "customer": {"user_id": st["recipient_user_id"], "wa_id": st["recipient_id"]},
             "item": st, "natural_key": f"status:{st['id']}:{st['status']}:{st['timestamp']}"}
tv = TEMPLATE["entry"][0]["changes"][0]["value"]
ev_tpl = {"kind": "field", "field": "message_template_status_update", "waba_id": WABA, "entry_time": 1795420800,
          "item": tv, "natural_key": "field:message_template_status_update:" + WABA + ":-:1795420800:fixture"}
group = f"{PNID}:{CONTACT['user_id']}"
write("inbound-processor", "batch", {"Records": [
    sqs_record(1, ev_msg, group), sqs_record(2, ev_status, group),
    sqs_record(3, ev_tpl, f"{WABA}:message_template_status_update")]})
bad = sqs_record(4, ev_msg, group)
bad["body"] = '{"schema_version":99,"event":{}}'
write("inbound-processor", "poison", {"Records": [sqs_record(1, ev_msg, group), bad]})

# send-api: Cloud API bodies as an SDK posts them.
send_route = "POST /{version}/{phone_number_id}/messages"
send_path = f"/v25.0/{PNID}/messages"
send_pp = {"version": "v25.0", "phone_number_id": PNID}
auth = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}


def send(case, body, *, headers=auth, path=send_path, pp=send_pp, b64=False):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    write("send-api", case, apigw("POST", path, send_route, headers=headers, body=raw, b64=b64,
                                  path_params=pp))


text_send = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "+1 650-555-1234",
             "type": "text", "text": {"preview_url": False, "body": "Your order shipped."}}
template_send = {"messaging_product": "whatsapp", "to": "16505551234", "type": "template",
                 "template": {"name": "order_update", "language": {"code": "en_US"},
                              "components": [{"type": "body", "parameters": [{"type": "text", "text": "#1234"}]}]}}
send("text", text_send)
send("text-base64", text_send, b64=True)
send("text-idempotent", text_send, headers={**auth, "idempotency-key": "order-1234-shipped"})
send("text-with-fallback", {**text_send, "fallback_template": template_send["template"]})
send("template", template_send)
send("read-receipt", {"messaging_product": "whatsapp", "status": "read",
                      "message_id": "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTdBNjg5RjdFOEQ5NUE0QjM0NwA="})
send("no-key", text_send, headers={"content-type": "application/json"})
send("other-number", text_send, path="/v25.0/999999999999999/messages",
     pp={"version": "v25.0", "phone_number_id": "999999999999999"})
send("text-too-long", {**text_send, "text": {"body": "x" * 4097}})
send("not-json", b"{not json")
send("bad-version", text_send, path=f"/latest/{PNID}/messages", pp={"version": "latest", "phone_number_id": PNID})

# send-api: the consent API (PUT records an opt-in or opt-out, GET reads what is in force).
consent_route = "{method} /v1/consents/{{phone_number_id}}/{{customer}}"


def consent(case, method, *, body=None, headers=auth, pnid=PNID, customer="16505551234"):
    raw = None if body is None else json.dumps(body).encode()
    write("send-api", case, apigw(method, f"/v1/consents/{pnid}/{customer}", consent_route.format(method=method),
                                  headers=headers, body=raw,
                                  path_params={"phone_number_id": pnid, "customer": customer}))


web_opt_in = {"scope": "marketing", "status": "opted_in", "source": "web_form",
              "proof": "Ticked 'Send me offers on WhatsApp' on /signup (form v3)"}
consent("consent-put", "PUT", body=web_opt_in)
consent("consent-get", "GET")
consent("consent-get-bsuid", "GET", customer="US.13491208655302741918")
consent("consent-put-no-key", "PUT", body=web_opt_in, headers={"content-type": "application/json"})
consent("consent-put-other-number", "PUT", body=web_opt_in, pnid="999999999999999")
consent("consent-put-bad-scope", "PUT", body={**web_opt_in, "scope": "everything"})

# send-api: the template registry (GET lists an account's templates, POST /sync reads them from Meta).
WABA = "102290129340398"
write("send-api", "templates-list", apigw("GET", "/v1/templates", "GET /v1/templates", query={"waba_id": WABA},
                                          headers=auth))
write("send-api", "templates-list-no-key", apigw("GET", "/v1/templates", "GET /v1/templates",
                                                 query={"waba_id": WABA}))
write("send-api", "templates-sync", apigw("POST", "/v1/templates/sync", "POST /v1/templates/sync", headers=auth,
                                          body=json.dumps({"waba_id": WABA}).encode()))
write("send-api", "templates-sync-other-waba", apigw("POST", "/v1/templates/sync", "POST /v1/templates/sync",
                                                     headers=auth, body=b'{"waba_id":"999999999999999"}'))
write("send-api", "templates-sync-bad", apigw("POST", "/v1/templates/sync", "POST /v1/templates/sync",
                                              headers=auth, body=b'{"waba":1}'))

# read-api: a send's state.
msg_route = "GET /v1/messages/{id}"
msg_id = "vnt.01KAP7X5Z8M3Q9R2T4V6W8Y0AB"
write("read-api", "message", apigw("GET", f"/v1/messages/{msg_id}", msg_route, path_params={"id": msg_id},
                                   headers={"authorization": f"Bearer {API_KEY}"}))
write("read-api", "message-no-key", apigw("GET", f"/v1/messages/{msg_id}", msg_route, path_params={"id": msg_id}))


# deliver-worker: the outbound queue's envelopes ({"schema_version":1,"send_id","group"}).
def outbound_record(i, send_id, group, receive_count=1):
    body = json.dumps({"schema_version": 1, "send_id": send_id, "group": group}, separators=(",", ":"))
    return {"messageId": f"7c1b5f3e-0000-4000-8000-00000000000{i}", "receiptHandle": f"AQEBout{i}",
            "body": body,
            "attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "1795420801000",
                           "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1795420801001",
                           "SequenceNumber": f"1882000000000000000{i}", "MessageGroupId": group,
                           "MessageDeduplicationId": send_id.replace(".", "-")},
            "messageAttributes": {}, "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ventana-outbound.fifo",
            "awsRegion": "us-east-1"}


g1 = f"{PNID}:p:16505551234"
g2 = f"{PNID}:p:16505550000"
write("deliver-worker", "batch", {"Records": [
    outbound_record(1, msg_id, g1), outbound_record(2, "vnt.01KAP7X5Z8M3Q9R2T4V6W8Y0AC", g1),
    outbound_record(3, "vnt.01KAP7X5Z8M3Q9R2T4V6W8Y0AD", g2)]})
poison = outbound_record(2, msg_id, g2)
poison["body"] = '{"schema_version":7}'
write("deliver-worker", "poison", {"Records": [outbound_record(1, msg_id, g1), poison]})


# send-api: broadcasts. The tests create a broadcast and put its id in place of BC_ID.
BC_ID = "bc_01KAP7X5Z8M3Q9R2T4V6W8Y0AB"
bc_body = {"phone_number_id": PNID, "template": {"name": "order_update", "language": "en_US"},
           "release": {"all_at_once": True},
           "recipients": [{"to": f"1650555{i:04d}",
                           "components": [{"type": "body", "parameters": [{"type": "text", "text": f"#{i}"}]}]}
                          for i in range(3)] + [{"to": "16505550001"}, {"to": "not a phone"}]}


def bc(case, method, path, route_key, *, body=None, headers=auth, pp=None, query=None):
    raw = json.dumps(body).encode() if body is not None else None
    write("send-api", case, apigw(method, path, route_key, headers=headers, body=raw, path_params=pp,
                                  query=query))


bc("broadcast-create", "POST", "/v1/broadcasts", "POST /v1/broadcasts", body=bc_body)
bc("broadcast-create-no-key", "POST", "/v1/broadcasts", "POST /v1/broadcasts", body=bc_body,
   headers={"content-type": "application/json"})
bc("broadcast-create-other-number", "POST", "/v1/broadcasts", "POST /v1/broadcasts",
   body={**bc_body, "phone_number_id": "999999999999999"})
bc("broadcast-create-bad", "POST", "/v1/broadcasts", "POST /v1/broadcasts",
   body={"phone_number_id": PNID, "recipients": []})
bc_pp = {"id": BC_ID}
bc("broadcast-get", "GET", f"/v1/broadcasts/{BC_ID}", "GET /v1/broadcasts/{id}", pp=bc_pp)
bc("broadcast-get-no-key", "GET", f"/v1/broadcasts/{BC_ID}", "GET /v1/broadcasts/{id}", pp=bc_pp,
   headers={})
bc("broadcast-pause", "POST", f"/v1/broadcasts/{BC_ID}/pause", "POST /v1/broadcasts/{id}/pause", pp=bc_pp)
bc("broadcast-resume", "POST", f"/v1/broadcasts/{BC_ID}/resume", "POST /v1/broadcasts/{id}/resume", pp=bc_pp)
bc("broadcast-recipients", "GET", f"/v1/broadcasts/{BC_ID}/recipients", "GET /v1/broadcasts/{id}/recipients",
   pp=bc_pp, query={"format": "json", "limit": "2"})
bc("broadcast-recipients-csv", "GET", f"/v1/broadcasts/{BC_ID}/recipients", "GET /v1/broadcasts/{id}/recipients",
   pp=bc_pp, query={"format": "csv"})


# broadcast-planner: step messages of the broadcast step queue (standard).
def step_record(i, body):
    return {"messageId": f"5d2c6a1e-0000-4000-8000-00000000000{i}", "receiptHandle": f"AQEBstep{i}",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795420801000",
                           "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1795420801001"},
            "messageAttributes": {}, "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ventana-broadcast-steps",
            "awsRegion": "us-east-1"}


step_body = json.dumps({"v": 1, "broadcast_id": BC_ID, "chain": 1}, separators=(",", ":"))
write("broadcast-planner", "step", {"Records": [step_record(1, step_body)]})
write("broadcast-planner", "step-and-poison", {"Records": [step_record(1, step_body),
                                                           step_record(2, '{"v":9}')]})
