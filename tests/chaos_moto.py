"""moto's server for tests/chaos.rs, with one cost of its SQS queues made lazy.

moto (5.x) builds a queue's whole attribute map (``Queue.attributes``) about six times per
message it sends and once per message it receives, just to read ``ContentBasedDeduplication``
or ``MessageRetentionPeriod``. Building it counts the queue's visible, in-flight and delayed
messages, three scans of every message in the queue, each reading the clock per message.
So every SendMessage / ReceiveMessage costs time in proportion to the queue's depth: on this
2-core machine a SendMessageBatch of 10 took 0.2 s on an empty FIFO queue, 1.4 s at 550
messages, 2.8 s at 1,050 and 6 s at 2,050 (tests/chaos.rs's doc has the command). A webhook
of 1,000 updates (100 batches) then takes minutes, and the chaos suite measured moto.

Here the three counts are computed only when they are read (GetQueueAttributes), never while
a message is sent or received. Nothing else changes: same API, same answers, same FIFO,
deduplication, visibility and redrive behaviour. Usage is moto_server's:
``python tests/chaos_moto.py -H 127.0.0.1 -p PORT``.
"""

import sys
import threading

from moto.server import main
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


for _name, _prop in _COUNTS.items():
    setattr(models.Queue, _prop, _counter(_name))
models.Queue.attributes = property(_attributes)
models.SQSBackend.get_queue_attributes = _get_queue_attributes

if __name__ == "__main__":
    sys.exit(main())
