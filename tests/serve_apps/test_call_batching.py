"""The ingress's call batching, on a plain event loop (no Ray): what goes out together, and what comes back to whom."""

from __future__ import annotations

import asyncio

from serve_apps.call_batching import CallBatcher


class Recorder:
    """A ``send`` that records each batch and holds it until ``release`` is set."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.release = asyncio.Event()
        self.out = 0

    async def send(self, key: str, items: list[int]) -> list[str]:
        self.batches.append((key, list(items)))
        self.out += 1
        self.max_out = max(getattr(self, "max_out", 0), self.out)
        await self.release.wait()
        self.out -= 1
        if any(item < 0 for item in items):
            raise ValueError(f"negative item in {items}")
        return [f"{key}:{item * 10}" for item in items]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_calls_made_while_one_is_out_go_together_and_each_gets_its_own_outcome() -> None:
    async def scenario() -> None:
        rec = Recorder()
        batcher = CallBatcher(rec.send, max_batch=16, max_in_flight=1)
        first = asyncio.create_task(batcher.call("m", 1))
        await settle()  # the first call is out alone: nothing waits for company
        rest = [asyncio.create_task(batcher.call("m", i)) for i in (2, 3, 4)]
        await settle()
        assert rec.batches == [("m", [1])]
        rec.release.set()
        assert await first == "m:10"
        assert await asyncio.gather(*rest) == ["m:20", "m:30", "m:40"]
        assert rec.batches == [("m", [1]), ("m", [2, 3, 4])]

    asyncio.run(scenario())


def test_calls_of_one_turn_share_the_first_batch_up_to_max_batch() -> None:
    async def scenario() -> None:
        rec = Recorder()
        rec.release.set()
        batcher = CallBatcher(rec.send, max_batch=2, max_in_flight=1)
        assert await asyncio.gather(*(batcher.call("m", i) for i in range(5))) == [f"m:{i * 10}" for i in range(5)]
        assert [items for _, items in rec.batches] == [[0, 1], [2, 3], [4]]

    asyncio.run(scenario())


def test_keys_are_sent_apart_with_at_most_max_in_flight_each() -> None:
    async def scenario() -> None:
        rec = Recorder()
        batcher = CallBatcher(rec.send, max_batch=1, max_in_flight=2)
        calls = [asyncio.create_task(batcher.call(key, i)) for i in range(3) for key in ("a", "b")]
        await settle()
        assert rec.out == 4 and sorted(rec.batches) == [("a", [0]), ("a", [1]), ("b", [0]), ("b", [1])]
        rec.release.set()
        assert await asyncio.gather(*calls) == ["a:0", "b:0", "a:10", "b:10", "a:20", "b:20"]
        assert rec.max_out == 4

    asyncio.run(scenario())


def test_a_failed_send_fails_its_own_callers_only() -> None:
    async def scenario() -> None:
        rec = Recorder()
        rec.release.set()
        batcher = CallBatcher(rec.send, max_batch=2, max_in_flight=1)
        outcomes = await asyncio.gather(*(batcher.call("m", i) for i in (1, -1, 2)), return_exceptions=True)
        assert isinstance(outcomes[0], ValueError) and isinstance(outcomes[1], ValueError)
        assert outcomes[2] == "m:20"
        assert await batcher.call("m", 3) == "m:30"  # the batcher goes on after a failure

    asyncio.run(scenario())


def test_a_caller_that_gave_up_is_not_sent() -> None:
    async def scenario() -> None:
        rec = Recorder()
        batcher = CallBatcher(rec.send, max_batch=16, max_in_flight=1)
        first = asyncio.create_task(batcher.call("m", 1))
        await settle()
        gone, kept = asyncio.create_task(batcher.call("m", 2)), asyncio.create_task(batcher.call("m", 3))
        await settle()
        gone.cancel()
        rec.release.set()
        assert (await first, await kept) == ("m:10", "m:30")
        assert rec.batches == [("m", [1]), ("m", [3])]

    asyncio.run(scenario())
