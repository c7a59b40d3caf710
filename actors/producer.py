"""Sending a sensor's batches to its actor: pipelined, in order, nothing lost across restarts.

A sensor accepts batch ``seq`` only after ``seq - 1``. Ray runs one caller's calls to a
synchronous actor in order, but after an actor restart the resent calls and newer ones may
arrive in any order; a batch that overtakes an earlier one is refused with
``OutOfOrderBatchError`` (never mistaken for a duplicate), and ``send_batches`` resends it
once every earlier batch is acked. Up to ``max_in_flight`` calls are outstanding at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any

from ray.actor import ActorHandle

from actors.sensor import IngestAck
from pdm_ray.errors import OutOfOrderBatchError
from pdm_ray.streaming import Batch

MAX_RESENDS = 100

BatchLike = Batch | dict[str, Any]


async def send_batches(
    actor: ActorHandle,
    batches: Iterable[BatchLike] | AsyncIterable[BatchLike],
    max_in_flight: int = 8,
    on_ack: Callable[[IngestAck], None] | None = None,
) -> list[IngestAck]:
    """Ingest ``batches`` (consecutive seqs) into ``actor``; returns the acks in batch order.

    Args:
        actor: a ``SensorActor`` handle.
        batches: the batches, in seq order (an async iterable may pace them).
        max_in_flight: calls outstanding at once.
        on_ack: called with each ack as it settles (e.g. to advance a progress bar).

    Raises:
        InvalidBatchError: a batch was rejected (other than for arriving out of order).
        OutOfOrderBatchError: a batch was still refused after ``MAX_RESENDS`` resends.
    """
    acks: list[IngestAck] = []
    pending: deque[tuple[BatchLike, Any]] = deque()

    async def settle_oldest() -> None:
        ack = await _settle(actor, *pending.popleft())
        acks.append(ack)
        if on_ack is not None:
            on_ack(ack)

    async for batch in _aiter(batches):
        if len(pending) >= max(1, max_in_flight):
            await settle_oldest()
        pending.append((batch, actor.ingest.remote(batch)))
    while pending:
        await settle_oldest()
    return acks


async def paced(batches: Iterable[Batch], readings_per_s: float) -> AsyncIterator[Batch]:
    """Yield ``batches`` no faster than ``readings_per_s`` readings per second (0: no limit)."""
    start = time.monotonic()
    sent = 0
    for batch in batches:
        if readings_per_s > 0:
            await asyncio.sleep(max(0.0, start + sent / readings_per_s - time.monotonic()))
        sent += len(batch)
        yield batch


async def _aiter(batches: Iterable[BatchLike] | AsyncIterable[BatchLike]) -> AsyncIterator[BatchLike]:
    if isinstance(batches, AsyncIterable):
        async for batch in batches:
            yield batch
    else:
        for batch in batches:
            yield batch


async def _settle(actor: ActorHandle, batch: BatchLike, ref: Any) -> IngestAck:
    """The ack of ``ref``; every earlier batch is acked, so a refused batch can now be resent."""
    for _ in range(MAX_RESENDS):
        try:
            return await ref
        except OutOfOrderBatchError:
            ref = actor.ingest.remote(batch)
    return await ref
