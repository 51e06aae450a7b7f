"""The HTTP API (Tensorlake's v1 shapes), live events over SSE, the dashboard, and
``cairn serve``.

``create_app(store_url)`` is the ASGI application; ``serve(...)`` runs it with
uvicorn next to an embedded worker, so that one command serves the applications
of the loaded code on one machine. The dashboard is at ``/`` and ``/ui``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware

from cairn.store import default_url

from . import (
    _api,
    _auth,
    _dashboard,
    _errors,
    _guard,
    _routes,
    _routing,
    _stores,
    _submissions,
)
from ._serve import ServeOptions, serve

__all__ = ["ServeOptions", "create_app", "serve"]

DEFAULT_NAMESPACE = "default"


def create_app(
    store_url: str | None = None,
    *,
    api_key: str | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    allowed_hosts: Sequence[str] = _guard.LOOPBACK_HOSTS,
) -> Starlette:
    """The ASGI application serving the applications of the loaded code.

    It creates requests in the store at ``store_url``; a worker on the same store
    (``cairn serve`` starts one) runs them.

    Args:
        store_url: the store (default: ``CAIRN_STORE`` or ``.cairn/cairn.db``).
        api_key: when set, every route but ``/healthz`` needs
            ``Authorization: Bearer <api_key>`` (the dashboard asks for the key
            once and keeps a session cookie).
        namespace: the namespace served (the only one under ``/v1/namespaces/``).
        allowed_hosts: the names requests may give in ``Host`` (default: the
            loopback names); ``"*.example.com"`` allows its subdomains, ``"*"``
            any name. Anything else gets 400, so that a page whose name was
            re-pointed at this server cannot use it (DNS rebinding).

    Returns:
        A Starlette application.
    """
    url = store_url or default_url()
    if api_key is not None and not api_key:
        raise ValueError("api_key must not be empty (pass None to turn auth off)")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = _stores.StorePool(url)
        watcher = _stores.ChangeWatcher(url)
        submissions = _submissions.Submissions(pool)
        app.state.cairn = _api.ServerState(
            url, namespace, pool, watcher, submissions, {}, auth=api_key is not None
        )
        try:
            yield
        finally:
            await watcher.close()
            pool.close()

    # The guard comes first: a request from another site is refused even if a
    # cookie would authenticate it.
    middleware = [Middleware(_guard.Guard, allowed_hosts=allowed_hosts)]
    if api_key is not None:
        middleware.append(Middleware(_auth.BearerAuth, api_key=api_key))
    return Starlette(
        routes=[
            *_routing.routes(_routes.OPERATIONS),
            *_dashboard.Dashboard(api_key=api_key, namespace=namespace).routes(),
        ],
        middleware=middleware,
        exception_handlers=_errors.HANDLERS,
        lifespan=lifespan,
    )
