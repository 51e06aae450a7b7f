"""Coroutines over Futures: what calling an async function, and ``Future.coroutine()``,
return. They are awaited once, as Python's own coroutines are, and are ``Coroutine``
objects, so ``asyncio.create_task`` and ``gather`` take them."""

from __future__ import annotations

import collections.abc
from collections.abc import Generator
from typing import Any, Protocol


class _Awaitable(Protocol):
    async def _await(self) -> Any: ...


class OneShot(collections.abc.Coroutine):  # type: ignore[type-arg]
    """A coroutine over a Future, awaited once."""

    _awaited = False
    _driver: Generator[Any, None, Any] | None = None

    def _consume(self) -> None:
        if self._awaited:
            raise RuntimeError("cannot reuse already awaited coroutine")
        self._awaited = True

    async def _once(self) -> Any:
        raise NotImplementedError

    def __await__(self) -> Generator[Any, None, Any]:
        self._consume()
        return self._once().__await__()

    def send(self, value: Any) -> Any:
        """Step the coroutine (what an asyncio Task does)."""
        if self._driver is None:
            self._driver = self.__await__()
        return self._driver.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        """Raise inside the coroutine (a cancel)."""
        if self._driver is None:
            self._driver = self.__await__()
        if val is None and tb is None:
            return self._driver.throw(typ)
        return self._driver.throw(typ, val, tb)  # pragma: no cover - old signature

    def close(self) -> None:
        """Close the coroutine; it cannot be awaited after."""
        if self._driver is not None:
            self._driver.close()
        self._awaited = True


class FutureCoroutine(OneShot):
    """What ``Future.coroutine()`` returns: awaiting it starts the Future."""

    def __init__(self, future: _Awaitable) -> None:
        self.future = future

    async def _once(self) -> Any:
        return await self.future._await()

    def __repr__(self) -> str:
        return f"<coroutine of {self.future!r}>"
