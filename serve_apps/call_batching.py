"""Send the ingress's concurrent calls for one model as one call through the ``DeploymentHandle``.

Each handle call costs CPU on both ends whatever it carries: on 2 cores, through the proxy,
the ``Api`` replica spent 6.4-7.1 ms and the ``SensorModels`` replica 7.0-7.3 ms per request
of the small model, most of it Ray's and Serve's per-call work (BENCHMARKS.md, "Serve load").
``@serve.batch`` on the model side merges requests only after each has paid for its own call;
this batches them before: a call that arrives while ``max_in_flight`` calls for its key are
already out waits, and every waiting call of that key goes out together when one comes back
(natural batching: no timer, so a lone request is sent at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class CallBatcher(Generic[Key, Item, Outcome]):
    """Coalesces ``call(key, item)`` into ``send(key, items)`` with at most ``max_in_flight`` sends per key.

    Args:
        send: sends one batch of a key; returns one outcome per item, in order. An exception
            it raises is raised to every caller in that batch.
        max_batch: the most items in one send (>= 1; ``serve.batch_max_size``, validated there).
        max_in_flight: sends of one key out at once, >= 1 (2 keeps two model batches computing).
    """

    def __init__(
        self, send: Callable[[Key, list[Item]], Awaitable[list[Outcome]]], max_batch: int, max_in_flight: int
    ) -> None:
        self._send = send
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._waiting: dict[Key, list[tuple[Item, asyncio.Future[Outcome]]]] = {}
        self._in_flight: dict[Key, int] = {}
        self._senders: set[asyncio.Task[None]] = set()  # strong references until each finishes

    async def call(self, key: Key, item: Item) -> Outcome:
        """The outcome of ``item``, sent alone or with the other items of ``key`` waiting now."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append((item, future))
        if self._in_flight.get(key, 0) < self._max_in_flight:
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            task = asyncio.create_task(self._drain(key))
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)
        return await future

    async def _drain(self, key: Key) -> None:
        """Send the key's waiting items, a batch at a time, until none wait."""
        try:
            await asyncio.sleep(0)  # calls made in this same turn of the event loop join the first batch
            while waiting := self._waiting.get(key):
                batch = waiting[: self._max_batch]
                del waiting[: self._max_batch]
                live = [(item, future) for item, future in batch if not future.done()]  # drop cancelled callers
                if not live:
                    continue
                try:
                    outcomes = await self._send(key, [item for item, _ in live])
                except asyncio.CancelledError:  # the replica is shutting down
                    for _, future in live:
                        future.cancel()
                    raise
                except Exception as exc:  # handed to the callers, who raise it
                    for _, future in live:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), outcome in zip(live, outcomes, strict=True):
                    if not future.done():
                        future.set_result(outcome)
        finally:
            self._in_flight[key] -= 1
            if not self._in_flight[key]:
                del self._in_flight[key]
                for _, future in self._waiting.pop(key, []):  # left only when this sender was cancelled
                    future.cancel()
