"""A refund agent that waits for a person's approval, holding no process meanwhile.

The agent looks the order up, drafts a refund, and asks for approval: it waits
for the signal ``approval`` (``{"approved": true}`` or ``false``, and who
decided). While it waits, the request is *parked*: no executor process holds it,
and a worker restarted meanwhile loses nothing. When the approval comes (from the
dashboard's request page, the CLI or the HTTP API), the request resumes: the
lookup and the draft are served from their checkpoints, and the refund is paid,
once, or the agent stops. With no answer in ``approval_timeout_s`` (default a
day), it escalates instead.

Run it here, and approve from another terminal::

    cairn run examples/refund_agent.py:refund_agent --input '{"order_id": "A-1001"}'
    cairn requests list                         # the request, running
    cairn requests show ID                      # waiting: signal 'approval' until ...
    cairn requests signal ID approval --value '{"approved": true, "by": "dana"}'

or serve it (``cairn serve examples/refund_agent.py``), start a request, and send
the signal from the request's page on the dashboard, or over HTTP::

    curl -X POST http://127.0.0.1:8900/applications/refund_agent \\
         -H 'Content-Type: application/json' -d '"A-1002"'
    curl -X POST http://127.0.0.1:8900/applications/refund_agent/requests/ID/signals/approval \\
         -H 'Content-Type: application/json' -d '{"approved": false, "by": "dana"}'

Each payment appends a line to ``refund_payments.jsonl`` in the working directory:
count the lines to see that a refund is paid once.
"""

from __future__ import annotations

import json
import os
from typing import Any

from cairn import RequestContext, application, function

ORDERS = {
    "A-1001": {"customer": "Ana", "item": "kettle", "paid_cents": 4_999},
    "A-1002": {"customer": "Bo", "item": "lamp", "paid_cents": 12_500},
}
PAYMENTS = "refund_payments.jsonl"


@function()
def look_up_order(order_id: str) -> dict[str, Any]:
    """The order (a database or an API in a real agent)."""
    order = ORDERS.get(order_id)
    if order is None:
        raise ValueError(f"no order {order_id!r}")
    return {"order_id": order_id, **order}


@function()
def draft_refund(order: dict[str, Any], reason: str) -> dict[str, Any]:
    """The refund to propose (an LLM call in a real agent): here, the full amount."""
    return {
        "order_id": order["order_id"],
        "amount_cents": order["paid_cents"],
        "message": f"Refund {order['item']} for {order['customer']}: {reason}.",
    }


@function()
def pay_refund(draft: dict[str, Any], approved_by: str) -> str:
    """Pay the refund: a side effect, its own checkpoint, so it happens once."""
    payment_id = f"pay-{draft['order_id']}"
    with open(os.path.join(os.getcwd(), PAYMENTS), "a") as handle:
        handle.write(json.dumps({**draft, "payment_id": payment_id, "by": approved_by}))
        handle.write("\n")
    return payment_id


@application()
@function()
def refund_agent(
    order_id: str, reason: str = "arrived broken", approval_timeout_s: float = 86_400.0
) -> dict[str, Any]:
    ctx = RequestContext.get()
    order = look_up_order(order_id)
    draft = draft_refund(order, reason)
    ctx.progress.update(1, 2, f"waiting for approval of {draft['message']}")
    try:
        decision = ctx.wait_for_signal("approval", timeout_s=approval_timeout_s)
    except TimeoutError:
        return {"status": "escalated", "draft": draft}
    if not isinstance(decision, dict) or not decision.get("approved"):
        who = decision.get("by") if isinstance(decision, dict) else None
        return {"status": "declined", "by": who, "draft": draft}
    payment = pay_refund(draft, str(decision.get("by", "someone")))
    ctx.progress.update(2, 2, f"paid {payment}")
    return {"status": "paid", "payment_id": payment, "draft": draft}
