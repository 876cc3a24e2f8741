"""The pywa peer of the ingest bench (functions/domain/benches/ingest.rs).

Run by scripts/bench.sh with the bench's own virtualenv (pywa pinned in
scripts/bench-requirements.txt) on the payloads the Rust bench wrote to a directory
(VENTANA_BENCH_PAYLOADS): the same bytes, the same secret, the same signature headers.

Two routines per payload, both through pywa's own code:

- ``pywa_handler``: what a pywa app does with a webhook POST, minus the web framework:
  ``WhatsApp.webhook_update_validator(body, header)`` (pywa.utils.webhook_updates_validator:
  hmac.new(...).hexdigest() + hmac.compare_digest), then ``WhatsApp.webhook_update_handler(body)``
  (blake2s update hash, duplicate cache, ``RawUpdate`` = json.loads of the whole body, handler
  lookup, ``Message.from_update`` / ``MessageStatus.from_update`` into pywa's frozen dataclasses,
  a registered no-op callback). pywa builds ONE update per webhook (``messages[0]`` /
  ``statuses[0]``): the other items of a batched webhook are not turned into anything.
- ``pywa_every_item``: the same validator and ``RawUpdate``, then every item of the change turned
  into pywa's type by pywa's ``from_update``, each given a one-item view of the change (the item
  and its contact; for statuses, which pywa expects to carry a ``contacts`` entry, a contact made
  from ``recipient_id``/``recipient_user_id``). This is the figure comparable with Ventana's
  split, which yields every item; the views are the driver's, not pywa's, and cost a dict each.

Prints one line per payload and routine:
``pywa <payload> <routine>: <seconds per webhook> s/webhook, <events> events, <samples> samples``
(the median of the samples). pywa's logger is at CRITICAL (see main).
"""

import glob
import logging
import os
import statistics
import sys
import time

import pywa
from pywa import WhatsApp
from pywa.types import Message, MessageStatus
from pywa.types.base_update import RawUpdate


def client(secret: str) -> WhatsApp:
    wa = WhatsApp(
        phone_id="106540352242922",
        token="bench-token",
        server=None,
        verify_token="bench-verify",
        app_secret=secret,
        validate_updates=True,
        # A bench repeats the same body: with the duplicate cache on, every call after the
        # first would stop at the hash lookup. The hash is still computed.
        skip_duplicate_updates=False,
    )
    built = []
    wa.on_message()(lambda _c, m: built.append(1))
    wa.on_message_status()(lambda _c, s: built.append(1))
    return wa, built


def one_item_views(raw: RawUpdate):
    """Every item of the first change, each as a RawUpdate holding just that item."""
    entry = raw["entry"][0]
    change = entry["changes"][0]
    value = change["value"]
    contacts = {c.get("wa_id"): c for c in value.get("contacts", ())}
    if "messages" in value:
        items = [("messages", m, contacts.get(m.get("from"))) for m in value["messages"]]
    else:
        items = [
            ("statuses", s, {"wa_id": s.get("recipient_id"), "user_id": s.get("recipient_user_id")})
            for s in value["statuses"]
        ]
    for key, item, contact in items:
        view = RawUpdate.__new__(RawUpdate)
        dict.__init__(
            view,
            {
                "object": raw["object"],
                "entry": [
                    {
                        "id": entry["id"],
                        "changes": [
                            {
                                "field": change["field"],
                                "value": {
                                    "messaging_product": value["messaging_product"],
                                    "metadata": value["metadata"],
                                    "contacts": [contact],
                                    key: [item],
                                },
                            }
                        ],
                    }
                ],
            },
        )
        view.raw = raw.raw
        view.hmac_header = None
        view._update_hash = raw._update_hash
        view.shared_data = raw.shared_data
        yield key, view


def main() -> None:
    # pywa logs a traceback at ERROR for every status webhook it cannot build (no `contacts`):
    # formatting it would be the bench's cost, not pywa's parsing, so its logger is silenced.
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pywa").setLevel(logging.CRITICAL)
    d = os.environ["VENTANA_BENCH_PAYLOADS"]
    quick = os.environ.get("VENTANA_BENCH_QUICK", "") not in ("", "0")
    samples, sample_secs = (5, 0.12) if quick else (15, 0.2)
    secret = open(os.path.join(d, "secret")).read()
    wa, built = client(secret)
    print(f"pywa version {pywa.__version__}")

    for path in sorted(glob.glob(os.path.join(d, "ingest_*.json"))):
        name = os.path.basename(path)[: -len(".json")]
        body = open(path, "rb").read()
        header = open(os.path.join(d, name + ".sig")).read().strip()

        def handler():
            if wa.webhook_update_validator(body, header) is not None:
                raise SystemExit(f"{name}: pywa rejected the signature")
            return wa.webhook_update_handler(body)

        def every_item():
            if wa.webhook_update_validator(body, header) is not None:
                raise SystemExit(f"{name}: pywa rejected the signature")
            raw = RawUpdate(body, hmac_header=header, update_hash="bench")
            out = []
            for key, view in one_item_views(raw):
                cls = Message if key == "messages" else MessageStatus
                out.append(cls.from_update(client=wa, update=view))
            return out

        # Check both do the work before timing them.
        built.clear()
        if handler() != ("ok", 200):
            raise SystemExit(f"{name}: pywa's handler did not answer 200")
        handler_built = len(built)
        events = len(every_item())
        print(f"pywa {name}: handler built {handler_built} update(s), every_item built {events}")

        for routine, fn, n_events in (("pywa_handler", handler, handler_built), ("pywa_every_item", every_item, events)):
            # Iterations per sample, sized from one timed call.
            t0 = time.perf_counter()
            fn()
            one = max(time.perf_counter() - t0, 1e-7)
            iters = max(1, int(sample_secs / one))
            per = []
            for _ in range(samples):
                t0 = time.perf_counter()
                for _ in range(iters):
                    fn()
                per.append((time.perf_counter() - t0) / iters)
            print(
                f"pywa {name} {routine}: {statistics.median(per):.9f} s/webhook, "
                f"{n_events} events, {samples} samples",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
