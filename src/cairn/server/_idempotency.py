"""An ``Idempotency-Key`` used again: the first answer again, or 409.

The key is the request's id, so a second invoke with it finds the request the
first one created. As Stripe does, a retry with the same body (the same
application and arguments) gets the first answer (the same request id, 200,
``Idempotent-Replayed: true``); only a different body is a conflict. Arguments
are compared as the request stores them, its JSON input, with keys sorted: the
same arguments sent as JSON or as multipart parts, or with keys in another order,
are the same invoke.
"""

from __future__ import annotations

import json
from typing import Any

from cairn import _serialization
from cairn.store import Store

#: The header marking an answer repeated for a key used again.
REPLAYED = "Idempotent-Replayed"


def _canonical(data: bytes) -> str:
    # sort_keys orders objects only: 1, 1.0 and true stay distinct.
    return json.dumps(json.loads(data), sort_keys=True, separators=(",", ":"))


def same_invoke(
    store: Store,
    request_id: str,
    application: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> bool:
    """Whether request ``request_id`` was created by an invoke like this one."""
    record = store.get_request(request_id)
    if record is None or record.application != application:
        return False
    given = _serialization.encode_json_input(args, kwargs)
    return _canonical(record.input) == _canonical(given)
