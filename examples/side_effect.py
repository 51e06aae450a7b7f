"""A side effect happens once, even when a later step fails and the request is replayed.

``send_email`` "sends" a welcome email by appending a line to ``outbox.jsonl`` in the
working directory. Because it is its own ``@function()``, its result (the message
id) is checkpointed the moment it returns. The next step, ``record_in_crm``, fails
on the first run: the file ``crm_down.flag`` stands for a CRM that is down. The
script then "fixes" the CRM (removes the flag) and replays the request: the CRM
step runs again, the email step is served from its checkpoint, and the outbox still
holds exactly one email for the request.

Run it::

    python examples/side_effect.py              # fail, fix, replay, count the outbox
    python examples/side_effect.py --no-failure # just run it
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from cairn import (
    RequestContext,
    Retries,
    application,
    function,
    run_local_application,
)

OUTBOX = Path("outbox.jsonl")
CRM_LOG = Path("crm.jsonl")
CRM_DOWN = Path("crm_down.flag")
"""While this file exists, the CRM "API" refuses every call."""


@function()
def compose_welcome(name: str, email: str) -> dict[str, str]:
    """Build the message (pure: safe to run any number of times)."""
    first = name.split()[0]
    return {
        "to": email,
        "subject": f"Welcome aboard, {first}!",
        "body": f"Hi {first},\n\nYour account is ready. Reply to this email with "
        "any question; a person reads every reply.\n",
    }


@function()
def send_email(message: dict[str, str]) -> str:
    """The side effect. Its checkpoint is the receipt: a replay never sends again."""
    message_id = f"msg-{uuid.uuid4().hex[:12]}"
    line = {
        "message_id": message_id,
        "request_id": RequestContext.get().request_id,
        "to": message["to"],
        "subject": message["subject"],
        "sent_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    with OUTBOX.open("a") as outbox:
        outbox.write(json.dumps(line) + "\n")
    return message_id


@function(retries=Retries(max_retries=2, initial_delay=0.1, max_delay=0.5))
def record_in_crm(email: str, message_id: str) -> dict[str, str]:
    """A later step that fails while the CRM is down (after its retries)."""
    if CRM_DOWN.exists():
        raise ConnectionError(f"CRM API unavailable ({CRM_DOWN} exists)")
    entry = {"email": email, "welcome_message_id": message_id, "stage": "welcomed"}
    with CRM_LOG.open("a") as log:
        log.write(json.dumps(entry) + "\n")
    return entry


@application()
@function()
def onboard_customer(name: str, email: str) -> dict[str, Any]:
    """Compose, send (once), record."""
    message = compose_welcome(name, email)
    message_id = send_email(message)
    crm_entry = record_in_crm(email, message_id)
    return {"message_id": message_id, "crm": crm_entry}


def emails_sent(request_id: str) -> int:
    """Lines of the outbox that belong to this request: the side effects, counted."""
    if not OUTBOX.exists():
        return 0
    lines = [json.loads(line) for line in OUTBOX.read_text().splitlines() if line]
    return sum(1 for line in lines if line["request_id"] == request_id)


def show_calls(request: Any) -> None:
    """Each call of the latest run: did it run, or come from its checkpoint?"""
    calls = sorted(request.calls(), key=lambda c: c.kind != "app")
    latest = max(a.run for c in calls for a in c.attempts)
    for call in calls:
        if call.ran_in_latest_run:
            tries = sum(1 for a in call.attempts if a.run == latest)
            where = f"ran ({tries} attempt{'s' if tries > 1 else ''})"
        elif call.served_from_checkpoint:
            where = "served from its checkpoint"
        else:
            where = "-"
        print(f"    {call.function:<18} {call.status:<10} {where}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="Ada Lovelace")
    parser.add_argument("--email", default="ada@example.com")
    parser.add_argument("--store", help="store URL (default: $CAIRN_STORE or .cairn)")
    parser.add_argument(
        "--no-failure", action="store_true", help="do not take the CRM down"
    )
    options = parser.parse_args(argv)
    kwargs: dict[str, Any] = {"cairn_store": options.store} if options.store else {}

    if not options.no_failure:
        CRM_DOWN.touch()
    try:
        request = run_local_application(
            onboard_customer, options.name, options.email, **kwargs
        )
    finally:
        CRM_DOWN.unlink(missing_ok=True)
    print(f"run 1 of request {request.id}: {request.status()}")
    show_calls(request)
    print(f"  emails in {OUTBOX} for this request: {emails_sent(request.id)}")

    if request.status() == "failed":
        print(f"\nthe CRM is back ({CRM_DOWN} removed); replaying {request.id}")
        request.replay()
        print(f"run 2: {request.status()}")
        show_calls(request)
        print(f"  output: {request.output()}")
        print(f"  emails in {OUTBOX} for this request: {emails_sent(request.id)}")

    sent = emails_sent(request.id)
    print(f"\nthe email was sent {sent} time(s)")
    return 0 if sent == 1 and request.status() == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
