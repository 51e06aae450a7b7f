"""Store operations the server needs that the Store protocol does not have yet.

Temporary: ``delete_request`` belongs in the store (``Store.delete_request``); until
it is there, this deletes through the SQLite store's own connection and answers
501 on other stores.
"""

from __future__ import annotations

from cairn.store import Store, sqlite

from . import _errors


def delete_request(store: Store, request_id: str) -> bool:
    """Delete a request and everything recorded for it; False if it did not exist.

    Raises:
        ApiError: 501 on a store that cannot delete yet.
    """
    if not isinstance(store, sqlite.SQLiteStore):
        raise _errors.ApiError(
            501,
            "not_supported",
            "deleting requests is not supported on this store yet",
        )
    with store._write() as conn:
        # attempts has no request_id index: reach its rows through their calls.
        conn.execute(
            "DELETE FROM attempts WHERE call_id IN "
            "(SELECT id FROM calls WHERE request_id = ?)",
            (request_id,),
        )
        for table in ("events", "request_state", "calls"):
            conn.execute(f"DELETE FROM {table} WHERE request_id = ?", (request_id,))
        deleted = conn.execute("DELETE FROM requests WHERE id = ?", (request_id,))
        return deleted.rowcount > 0
