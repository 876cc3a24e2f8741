#!/usr/bin/env python3
"""moto's server as Ventana's scripts and tests run it, with six of its costs removed and
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

Nothing else changes: same API, same answers, same FIFO ordering, visibility and redrive
behaviour. A queue with a Lambda event source mapping inside moto (not used here) keeps moto's
own path. Usage is moto_server's: ``python scripts/moto_server.py -H 127.0.0.1 -p PORT``
(``scripts/moto-server`` runs it with the project's virtualenv).
"""

import functools
import sys
import threading

from moto.core import responses as moto_responses
from moto.core import serialize
from moto import backends as moto_backends
from moto.core import utils as moto_utils
from moto.server import main
from moto.dynamodb import responses as dynamodb_responses
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
    _building.active = True
    try:
        values = _BUILD_ATTRIBUTES(self)
    finally:
        _building.active = False
    return _LazyCounts(self, values)


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
    _SERIALIZE_STRUCTURE(self, serialized, value, shape, key)


# A pure function of a name, called for every attribute of a queue's attribute map (about
# five maps per message sent) and for every request's action: the same few names each time.
_camel = functools.lru_cache(maxsize=4096)(moto_utils.camelcase_to_underscores)


# The package's module directories: fixed for the life of the process.
_MOTO_MODULES = tuple(moto_backends.list_of_moto_modules())


def _list_of_moto_modules():
    return _MOTO_MODULES


_DYNAMODB_CALL = dynamodb_responses.DynamoHandler.call_action
_dynamodb_lock = threading.Lock()


def _dynamodb_call_alone(self):
    with _dynamodb_lock:
        return _DYNAMODB_CALL(self)


for _name, _prop in _COUNTS.items():
    setattr(models.Queue, _prop, _counter(_name))
models.Queue.attributes = property(_attributes)
models.SQSBackend.get_queue_attributes = _get_queue_attributes
models.Queue.add_message = _add_message
dynamodb_table.Table.query = _query
dynamodb_table.Table.all_items = _all_items
serialize.BaseJSONSerializer._serialize_type_structure = _serialize_structure
dynamodb_responses.DynamoHandler.call_action = _dynamodb_call_alone
moto_backends.list_of_moto_modules = _list_of_moto_modules
for _module in (models, moto_responses):
    _module.camelcase_to_underscores = _camel

if __name__ == "__main__":
    sys.exit(main())
