"""Sending a sensor's batches to its actor: pipelined, in order, nothing lost across restarts.

A sensor accepts batch ``seq`` only after ``seq - 1``. Ray runs one caller's calls to a
synchronous actor in order, but after an actor restart the resent calls and newer ones may
arrive in any order; a batch that overtakes an earlier one is refused with
``OutOfOrderBatchError`` (never mistaken for a duplicate), and ``send_batches`` resends it
once every earlier batch is acked. Up to ``max_in_flight`` calls are outstanding at a time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from ray.actor import ActorHandle

from actors.sensor import IngestAck
from pdm_ray.errors import OutOfOrderBatchError
from pdm_ray.streaming import Batch

MAX_RESENDS = 100


async def send_batches(
    actor: ActorHandle, batches: Iterable[Batch | dict[str, Any]], max_in_flight: int = 8
) -> list[IngestAck]:
    """Ingest ``batches`` (consecutive seqs) into ``actor``; returns the acks in batch order.

    Raises:
        InvalidBatchError: a batch was rejected (other than for arriving out of order).
        OutOfOrderBatchError: a batch was still refused after ``MAX_RESENDS`` resends.
    """
    acks: list[IngestAck] = []
    pending: deque[tuple[Batch | dict[str, Any], Any]] = deque()
    for batch in batches:
        if len(pending) >= max(1, max_in_flight):
            acks.append(await _settle(actor, *pending.popleft()))
        pending.append((batch, actor.ingest.remote(batch)))
    while pending:
        acks.append(await _settle(actor, *pending.popleft()))
    return acks


async def _settle(actor: ActorHandle, batch: Batch | dict[str, Any], ref: Any) -> IngestAck:
    """The ack of ``ref``; every earlier batch is acked, so a refused batch can now be resent."""
    for _ in range(MAX_RESENDS):
        try:
            return await ref
        except OutOfOrderBatchError:
            ref = actor.ingest.remote(batch)
    return await ref
