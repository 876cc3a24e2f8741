#!/usr/bin/env python3
"""moto's server as Ventana's scripts and tests run it, with seventeen of its costs removed and
one of its races closed.

moto (5.x) does two things per SQS message that take time in proportion to the queue's depth,
and one per DynamoDB query in proportion to the table's size:

1. It builds a queue's whole attribute map (``Queue.attributes``) about six times per message
   it sends and once per message it receives, just to read ``ContentBasedDeduplication`` or
   ``MessageRetentionPeriod``. Building it counts the queue's visible, in-flight and delayed
   messages: three scans of every message in the queue, each reading the clock per message.
   On this 2-core machine a SendMessageBatch of 10 took 0.2 s on an empty FIFO queue, 1.4 s at
   550 messages, 2.8 s at 1,050 and 6 s at 2,050. Here the three counts are computed only when
   they are read (GetQueueAttributes), never while a message is sent or received.
2. A FIFO queue checks a new message's deduplication id against every message in the queue.
   Here each FIFO queue keeps an index of deduplication id -> time first sent, so the check is
   one lookup. This is also closer to SQS itself: SQS ignores a duplicate for five minutes after
   the first send even when the first message was already deleted, which moto's scan (over the
   messages still in the queue) does not.
3. A DynamoDB Query on a table's own key sorts every item of the table (``Table.all_items``)
   and then keeps the partition's: a query of 100 ledger entries took 0.57 s with 100,000
   items in the table. Here such a query starts from the partition's items only (GSI queries
   and scans keep moto's path).
4. Answers are written member by member along the service's model, and a DynamoDB item's
   every attribute value goes through that walk: 100 items of a few attributes took ~120 ms
   to write out. Here a scalar attribute value (S, N, BOOL, NULL), which moto already holds
   in its wire form, is written as it is.
5. ``camelcase_to_underscores`` (a pure function of a name) runs character by character for
   each of a queue's ~18 attribute names every time the attribute map is built: ~75 % of a
   SendMessageBatch. Here it is memoised.

6. moto's server answers each request on its own thread, and its DynamoDB backend is not
   thread-safe: TransactWriteItems deep-copies the whole table (its rollback copy) while other
   threads write to it, and fails with "dictionary changed size during iteration", answered
   as a 500 with an HTML page. The chaos suite's moto logged 10 of them in 3 quick runs (the
   SDK's retries hid them; under more load all three attempts failed and send-api answered
   503). Here DynamoDB requests run one at a time, as the interpreter's lock nearly makes them
   anyway; SQS (whose ReceiveMessage long-polls) keeps its threads.

7. Every request is routed by asking whether its host names a moto module: moto lists its own
   package directory (``os.listdir`` and an ``isdir`` per entry, ~200 of them) to answer, on
   every request: 8.5 % of moto's CPU while a broadcast is planned (py-spy, 20,000
   recipients). The listing cannot change while the server runs; here it is made once.

8. Every item written (PutItem, BatchWriteItem, TransactWriteItems) is built one attribute at a
   time into a dict that re-measures the whole item on each insert, to enforce the 400 KB limit:
   quadratic in the item's attributes. For a send record of 20 attributes this was 56 % of a
   BatchWriteItem (py-spy). Here a new item is measured once, attribute by attribute, with the
   same sizes and the same limit, and refused the same way (ItemSizeTooLarge) when over it.
   Later changes to an item (UpdateItem) keep moto's path.

9. A JSON request (DynamoDB's protocol) is walked along the service's model, and each attribute
   value is a structure of ten members (S, N, B, SS, ...) looked up one by one: 16 % of a
   BatchGetItem of 100 keys was that lookup alone. Here a scalar attribute value (S, N, BOOL,
   NULL), whose parse is the value itself, is taken as it is: the mirror of item 4.

10. moto's server (werkzeug's development server) closes the connection after every answer,
   so each request costs a TCP connection and a new thread. Here the same WSGI application is
   served by waitress, which keeps connections alive and answers from a pool of 1,024 threads
   (long polls hold one each; see ``_THREADS``).
   Only answers with a 5xx status are logged, one line each (``grep -c ' -> 5'`` counts them;
   werkzeug logged every request), an exception out of moto with its traceback after it.
   ``VENTANA_MOTO_HTTP=werkzeug`` runs moto's own server instead, to compare the two.

11. BatchGetItem checks its keys for duplicates by comparing each with every earlier one (a
   list, not a set): 4,950 comparisons of nested dicts for 100 keys, 6 % of the request. Here
   each key is reduced to a canonical string once and looked up in a set; the same keys are
   refused, with the same error.

12. Every request checks that its action is a method of the service's handler class by listing
   the class's members (``inspect.getmembers``: a ``dir()`` and a ``getattr`` for each of ~230
   members): ~10 % of a GetItem's time in moto. The classes do not change once the server
   runs; here each is listed once.

13. A queue's attribute map (item 1) was still built about five times per message sent, to
   read ``ContentBasedDeduplication``: ~14 % of a SendMessageBatch (cProfile). Here it is
   built once and again only after something is set on the queue (its attributes, policy,
   redrive policy, tags); the message counts in it stay counted when read.

14. The result entries of a SendMessageBatch (``Id``, ``MessageId``, ``MD5OfMessageBody``, ...:
   plain maps of strings named as on the wire) are written as they are instead of member by
   member through the model, where each member's value is looked up under every alias moto
   knows (~26 % of a SendMessageBatch). Checked equal to moto's own writing, FIFO and
   standard, with and without message attributes and with a failed entry.

15. A BatchWriteItem or BatchGetItem request is parsed along the model, node by node, into
   the same JSON it came as whenever its attribute values are all scalar (S, N, BOOL, NULL),
   which is every request the planner makes: ~20 % of a BatchWriteItem. Here such a request
   (no null, no float, no binary, set, list or map value: anything else takes moto's parse)
   is taken as it came. Checked equal to moto's parse on every such request of the broadcast
   scale test and the DynamoDB adapter suites (1,170 requests) when it was written.

16. moto keeps every item and message as Python objects: with 100,000 recipients planned,
   the interpreter's full collections, which scan every object, took ~4.5 s of moto's ~65
   CPU-s (15 of them), and the young ones another ~1.4 s. Here young objects are collected
   every 50,000 allocations rather than 700 and the old generation far less often (memory
   is freed by reference counting as before; only cycles wait longer).

17. Each DynamoDB request looks its backend up (account, then region, through moto's
   account-aware dictionaries) every time the handler names it: once per key of a
   BatchGetItem, ~10 % of one of 100 keys (cProfile). A handler answers one request, after
   its account and region are set; here it looks the backend up once.

18. Item 11's canonical form of a key was its JSON (``json.dumps`` with sorted keys): ~10 %
   of a BatchGetItem of 100 keys. Here a key of scalar values is a sorted tuple of
   (attribute, type, value), equal exactly when the JSON is; anything else keeps the JSON.
   BatchWriteItem hands its items in as JSON strings already: they are compared as they are.

Nothing else changes: same API, same answers, same FIFO ordering, visibility and redrive
behaviour. A queue with a Lambda event source mapping inside moto (not used here) keeps moto's
own path. Usage is moto_server's: ``python scripts/moto_server.py -H 127.0.0.1 -p PORT``
(``scripts/moto-server`` runs it with the project's virtualenv).
"""

import argparse
import functools
import gc
import json
import os
import signal
import sys
import threading

import waitress

from moto.core import responses as moto_responses
from moto.core import parse as moto_parse
from moto.core import serialize
from moto import backends as moto_backends
from moto.core import utils as moto_utils
from moto import server as moto_server_main
from moto.server import main
from moto.dynamodb import responses as dynamodb_responses
from moto.dynamodb.models import dynamo_type
from moto.dynamodb.models import table as dynamodb_table
from moto.sqs import models

# attribute name -> Queue property that counts messages
_COUNTS = {
    "ApproximateNumberOfMessages": "approximate_number_of_messages",
    "ApproximateNumberOfMessagesDelayed": "approximate_number_of_messages_delayed",
    "ApproximateNumberOfMessagesNotVisible": "approximate_number_of_messages_not_visible",
}
_COUNTERS = {name: getattr(models.Queue, prop) for name, prop in _COUNTS.items()}
_BUILD_ATTRIBUTES = models.Queue.attributes.fget
_GET_QUEUE_ATTRIBUTES = models.SQSBackend.get_queue_attributes
_building = threading.local()


class _LazyCounts(dict):
    """A queue's attributes whose message counts are counted when read."""

    def __init__(self, queue, values):
        super().__init__(values)
        self._queue = queue

    def _resolve(self, key, value):
        if key in _COUNTERS:
            return _COUNTERS[key].fget(self._queue)
        return value

    def __getitem__(self, key):
        return self._resolve(key, super().__getitem__(key))

    def get(self, key, default=None):
        return self[key] if key in self else default

    def items(self):
        return [(k, self._resolve(k, v)) for k, v in super().items()]

    def values(self):
        return [v for _, v in self.items()]


def _counter(name):
    count = _COUNTERS[name].fget

    def fget(self):
        # While the attribute map is built, a placeholder; _LazyCounts counts on read.
        if getattr(_building, "active", False):
            return None
        return count(self)

    return property(fget)


def _attributes(self):
    # Item 13: built once, then again only after an attribute of the queue is set.
    values = self.__dict__.get("_attributes_built")
    if values is None:
        _building.active = True
        try:
            values = _BUILD_ATTRIBUTES(self)
        finally:
            _building.active = False
        self.__dict__["_attributes_built"] = values
    return _LazyCounts(self, values)


def _queue_setattr(self, name, value):
    # Whatever moto sets on a queue (its attributes, policy, redrive policy, tags) may be in
    # the map: the next read builds it again. Messages are added without setting anything.
    self.__dict__.pop("_attributes_built", None)
    object.__setattr__(self, name, value)


def _get_queue_attributes(self, *args, **kwargs):
    # What is answered is a plain map with real counts (serialisers read dicts directly).
    return dict(_GET_QUEUE_ATTRIBUTES(self, *args, **kwargs).items())


_ADD_MESSAGE = models.Queue.add_message
_PRUNE_AT = 200_000


def _add_message(self, message):
    if not self.fifo_queue or self.lambda_event_source_mappings:
        return _ADD_MESSAGE(self, message)
    dedup = message.deduplication_id
    if getattr(self, "content_based_deduplication", False) or dedup:
        seen = self.__dict__.setdefault("_first_sent_by_dedup_id", {})
        first = seen.get(dedup)
        if first is not None and (
            message.sent_timestamp - first
        ) / 1000 < models.DEDUPLICATION_TIME_IN_SECONDS:
            return None
        if len(seen) >= _PRUNE_AT:
            # Forget ids older than the interval, so the index stays as big as it must.
            for old in [k for k, t in seen.items()
                        if (message.sent_timestamp - t) / 1000 >= models.DEDUPLICATION_TIME_IN_SECONDS]:
                del seen[old]
        seen[dedup] = message.sent_timestamp
    with self._messages_lock:
        self._messages.append(message)
        self._messages_lock.notify_all()
    return None


_QUERY = dynamodb_table.Table.query
_ALL_ITEMS = dynamodb_table.Table.all_items
_querying = threading.local()


def _query(self, hash_key, *args, **kwargs):
    # Table.query (positional: hash_key, range_comparison, range_objs, limit,
    # exclusive_start_key, scan_index_forward, projection_expressions, index_name, ...).
    index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
    if index_name is not None or hash_key is None:
        return _QUERY(self, hash_key, *args, **kwargs)
    _querying.hash_key = hash_key
    try:
        return _QUERY(self, hash_key, *args, **kwargs)
    finally:
        _querying.hash_key = None


def _all_items(self):
    hash_key = getattr(_querying, "hash_key", None)
    if hash_key is None:
        return _ALL_ITEMS(self)
    # A query on the table's own key reads one partition, as DynamoDB does.
    if hash_key not in self.items:
        return []
    part = self.items[hash_key]
    return list(part.values()) if self.range_key_attr else [part]


_SCALARS = {"S": str, "N": str, "BOOL": bool, "NULL": bool}
# Item 14: result entries of SQS batch sends, plain maps of strings named as on the wire.
_FLAT_ENTRIES = {"SendMessageBatchResultEntry"}
_SERIALIZE_STRUCTURE = serialize.BaseJSONSerializer._serialize_type_structure


def _serialize_structure(self, serialized, value, shape, key):
    # A DynamoDB attribute value of a scalar type is already in its wire form.
    if (
        shape.name == "AttributeValue"
        and isinstance(value, dict)
        and len(value) == 1
    ):
        ((t, v),) = value.items()
        if isinstance(v, _SCALARS.get(t, ())):
            self._default_serialize(serialized, value, shape, key)
            return
    if (
        shape.name in _FLAT_ENTRIES
        and type(value) is dict
        and all(
            type(v) is str
            and k in shape.members
            and shape.members[k].type_name == "string"
            and shape.members[k].serialization.get("name", k) == k
            for k, v in value.items()
        )
    ):
        self._default_serialize(serialized, dict(value), shape, key)
        return
    _SERIALIZE_STRUCTURE(self, serialized, value, shape, key)


_PARSE_STRUCTURE = moto_parse.BaseJSONParser._parse_structure


def _parse_structure(self, shape, value):
    # A scalar DynamoDB attribute value parses to itself (JSONParser has no string or boolean
    # handlers: their parse is the value as it came).
    if shape.name == "AttributeValue" and isinstance(value, dict) and len(value) == 1:
        ((t, v),) = value.items()
        if isinstance(v, _SCALARS.get(t, ())):
            return self.MAP_TYPE(value)
    return _PARSE_STRUCTURE(self, shape, value)


# Item 15: DynamoDB batch requests that are nothing but their JSON.
_PLAIN_OPERATIONS = {"BatchWriteItem", "BatchGetItem"}
# Attribute value types whose parse is not the value as it came (B, BS: base64) or that nest
# (L, M, sets): a request with any dict key among them takes moto's parse, even when the key
# is an attribute's name rather than a type.
_NOT_PLAIN_KEYS = frozenset({"B", "BS", "SS", "NS", "L", "M"})
_JSON_PARSE = moto_parse.JSONParser.parse


def _plain(node):
    # True when moto's parse of `node` along the model would give `node` back: dicts, lists,
    # strings, booleans and ints only (no null, which the parse drops; no float, which an
    # integer member would convert), and every attribute value a scalar one (S, N, BOOL, NULL
    # with the type its parse keeps).
    t = type(node)
    if t is dict:
        if len(node) == 1:
            ((k, v),) = node.items()
            if k in _SCALARS:
                return isinstance(v, _SCALARS[k])
        for k, v in node.items():
            if k in _NOT_PLAIN_KEYS or not _plain(v):
                return False
        return True
    if t is list:
        return all(_plain(v) for v in node)
    return t is str or t is bool or t is int


def _json_parse(self, request_dict):
    op = self.operation_model
    if op.name in _PLAIN_OPERATIONS and op.service_model.service_name == "dynamodb":
        body = self._parse_body_as_json(request_dict["body"])
        if type(body) is dict and _plain(body):
            return body
    return _JSON_PARSE(self, request_dict)


def _canonical_key(k):
    # Item 18: a key of scalar values as a sorted tuple of (attribute, type, value); anything
    # unhashable (a set or list value, which a key cannot have, but moto then answers) as
    # its JSON, as item 11 wrote every key. Binary key values arrive decoded (bytes): written
    # by their repr, type tag beside.
    # BatchWriteItem passes its items already written as JSON strings: those are their own
    # canonical form (a string's JSON is equal exactly when the string is).
    if type(k) is str:
        return k
    try:
        canonical = tuple(sorted((name, t, v) for name, av in k.items() for t, v in av.items()))
        hash(canonical)
        return canonical
    except (AttributeError, TypeError):
        return json.dumps(k, sort_keys=True, default=repr)


def _contains_duplicates(self, keys):
    seen = set()
    for k in keys:
        canonical = _canonical_key(k)
        if canonical in seen:
            return True
        seen.add(canonical)
    return False


_DYNAMODB_BACKEND = dynamodb_responses.DynamoHandler.dynamodb_backend.fget


def _dynamodb_backend(self):
    # Item 17: looked up once per request (a handler instance answers one request, after
    # its account and region are set), not once per key of a batch.
    backend = self.__dict__.get("_ventana_backend")
    if backend is None:
        backend = _DYNAMODB_BACKEND(self)
        self.__dict__["_ventana_backend"] = backend
    return backend


# A pure function of a name, called for every attribute of a queue's attribute map (about
# five maps per message sent) and for every request's action: the same few names each time.
_camel = functools.lru_cache(maxsize=4096)(moto_utils.camelcase_to_underscores)


# Item 12: a handler class's method names, listed once.
@functools.lru_cache(maxsize=256)
def _method_names(clazz):
    return frozenset(_METHOD_NAMES(clazz))


_METHOD_NAMES = moto_utils.method_names_from_class


# The package's module directories: fixed for the life of the process.
_MOTO_MODULES = tuple(moto_backends.list_of_moto_modules())


def _list_of_moto_modules():
    return _MOTO_MODULES


# waitress answers from a fixed pool of threads, and a long-polling ReceiveMessage holds one
# for up to 20 s, even after its client is gone (a test process that ended mid-poll). With 64,
# 100 abandoned polls held every thread and the next requests waited ~17 s (measured; a CI run
# timed out on it). werkzeug had no bound (a thread per connection); 1,024 idle threads cost
# ~16 MB here. poll(), not select(): past 1,024 file descriptors select() fails.
_THREADS = 1024
_CONNECTIONS = 4000
_IDLE_SECS = 300

_ITEM_LIMIT = 405000  # moto's own (LimitedSizeDict): between DynamoDB's 409 and 410 KB


def _item_init(self, hash_key, range_key, attrs):
    # Item.__init__, with the item measured once rather than once per attribute.
    self.hash_key = hash_key
    self.range_key = range_key
    values = {key: dynamo_type.DynamoType(value) for key, value in attrs.items()}
    size = sum(dynamo_type.bytesize(key) + value.size() for key, value in values.items())
    if size > _ITEM_LIMIT:
        raise dynamo_type.ItemSizeTooLarge
    self.attrs = dynamo_type.LimitedSizeDict()
    dict.update(self.attrs, values)


_DYNAMODB_CALL = dynamodb_responses.DynamoHandler.call_action
_dynamodb_lock = threading.Lock()


def _dynamodb_call_alone(self):
    with _dynamodb_lock:
        return _DYNAMODB_CALL(self)


for _name, _prop in _COUNTS.items():
    setattr(models.Queue, _prop, _counter(_name))
models.Queue.attributes = property(_attributes)
models.Queue.__setattr__ = _queue_setattr
models.SQSBackend.get_queue_attributes = _get_queue_attributes
models.Queue.add_message = _add_message
dynamodb_table.Table.query = _query
dynamo_type.Item.__init__ = _item_init
dynamodb_table.Table.all_items = _all_items
serialize.BaseJSONSerializer._serialize_type_structure = _serialize_structure
moto_parse.JSONParser._parse_structure = _parse_structure
moto_parse.JSONParser.parse = _json_parse
dynamodb_responses.DynamoHandler._contains_duplicates = _contains_duplicates
dynamodb_responses.DynamoHandler.dynamodb_backend = property(_dynamodb_backend)
dynamodb_responses.DynamoHandler.call_action = _dynamodb_call_alone
moto_backends.list_of_moto_modules = _list_of_moto_modules
moto_responses.method_names_from_class = _method_names
for _module in (models, moto_responses):
    _module.camelcase_to_underscores = _camel
# Item 16: young objects are collected after 50,000 allocations rather than 700, and the
# whole heap is scanned far less often.
gc.set_threshold(50_000, 50, 100)


def _log_server_errors(app):
    # One line per 5xx answer (`<method> <path> <target> -> 5xx ...`; count them with
    # `grep -c ' -> 5'`), as werkzeug's request log had them. 4xx are moto's normal answers
    # to refused conditions and are not logged. An exception out of moto is answered 500 by
    # waitress, which logs its traceback after this line.
    def logged(environ, start_response):
        request = (
            f'{environ.get("REQUEST_METHOD")} {environ.get("PATH_INFO")} '
            f'{environ.get("HTTP_X_AMZ_TARGET", "")}'
        )

        def start(status, headers, exc_info=None):
            if status.startswith("5"):
                print(f"{request} -> {status}", file=sys.stderr, flush=True)
            return start_response(status, headers, exc_info)

        try:
            return app(environ, start)
        except Exception as e:
            print(f"{request} -> 500 ({type(e).__name__})", file=sys.stderr, flush=True)
            raise

    return logged


def _serve(argv):
    parser = argparse.ArgumentParser(description="moto's server, kept-alive (waitress)")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=int(os.environ.get("MOTO_PORT", 5000)))
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: sys.exit(0))
    app = moto_server_main.DomainDispatcherApplication(moto_server_main.create_backend_app)
    app.debug = True
    waitress.serve(
        _log_server_errors(app),
        host=args.host,
        port=args.port,
        threads=_THREADS,
        connection_limit=_CONNECTIONS,
        channel_timeout=_IDLE_SECS,
        asyncore_use_poll=True,
        _quiet=True,
    )


if __name__ == "__main__":
    if os.environ.get("VENTANA_MOTO_HTTP") == "werkzeug":
        sys.exit(main())
    sys.exit(_serve(sys.argv[1:]))
