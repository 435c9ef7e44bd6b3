"""`walleta.attribute` instances shared between threads and asyncio tasks, nested in themselves,
left by an exception or by an unclosed generator: every call is recorded with the attribution of
the code that made it, and leaving a block restores exactly what was in force before it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable

import pytest

import walleta
from walleta.capture import Attribution, current

from .capture_harness import Harness

EMPTY = Attribution()
EMBED = {"model": "text-embedding-3-small", "input": "x"}
THREADS = 8


def run_threads(count: int, target: Callable[[int], Any]) -> list[BaseException]:
    """Run target(0..count-1) in `count` threads; the exceptions they raised."""
    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            target(index)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return errors


class Turns:
    """Lets threads pass a point one at a time, in index order (0, 1, 2, ...)."""

    def __init__(self) -> None:
        self._next = 0
        self._condition = threading.Condition()

    def take(self, index: int) -> None:
        with self._condition:
            assert self._condition.wait_for(lambda: self._next == index, timeout=30)

    def done(self) -> None:
        with self._condition:
            self._next += 1
            self._condition.notify_all()


def test_shared_instance_in_overlapping_blocks_of_eight_threads(sqlite_url: str) -> None:
    h = Harness(sqlite_url)
    shared = walleta.attribute(customer="acme", feature="shared")  # a module-level constant in an app
    entered, left = Turns(), Turns()
    barrier = threading.Barrier(THREADS)
    seen: dict[int, list[Attribution]] = {}

    def work(index: int) -> None:
        with walleta.attribute(user=f"u{index}"):
            entered.take(index)  # enter in index order ...
            try:
                with shared as value:
                    entered.done()
                    barrier.wait(timeout=30)  # ... all eight blocks open at once ...
                    for _ in range(3):
                        h.client.embeddings.create(**EMBED)
                    seen[index] = [value, current()]
                    left.take(index)  # ... and leave in the same order (not the reverse)
                seen[index].append(current())
            finally:
                left.done()
        seen[index].append(current())

    assert run_threads(THREADS, work) == []
    for index in range(THREADS):
        mine = Attribution("acme", "shared", f"u{index}")
        assert seen[index] == [mine, mine, Attribution("", "", f"u{index}"), EMPTY]
    rows = h.rows()
    assert sorted((r["customer_id"], r["feature"], r["user_id"]) for r in rows) == sorted(
        ("acme", "shared", f"u{i}") for i in range(THREADS) for _ in range(3)
    )
    assert current() == EMPTY
    h.close()


def test_same_instance_nested_in_itself() -> None:
    acme = walleta.attribute(customer="acme")
    with acme as outer:
        with walleta.attribute(feature="inner"):
            with acme as again:
                assert again == current() == Attribution("acme", "inner", "")
                with acme:
                    assert current() == Attribution("acme", "inner", "")
                assert current() == Attribution("acme", "inner", "")
            assert current() == Attribution("acme", "inner", "")
        assert current() == outer == Attribution("acme", "", "")
        with acme:
            assert current() == outer
    assert current() == EMPTY


def test_exception_inside_a_block_restores_the_outer_attribution(sqlite_url: str) -> None:
    h = Harness(sqlite_url)
    shared = walleta.attribute(customer="inner-co", user="u9")
    with walleta.attribute(customer="outer-co", feature="f"):
        with pytest.raises(RuntimeError):
            with shared:
                h.client.embeddings.create(**EMBED)
                with shared:
                    raise RuntimeError("boom")
        assert current() == Attribution("outer-co", "f", "")
        h.client.embeddings.create(**EMBED)
    assert current() == EMPTY
    assert [(r["customer_id"], r["feature"], r["user_id"]) for r in h.rows()] == [("inner-co", "f", "u9"), ("outer-co", "f", "")]
    h.close()


def test_asyncio_tasks_sharing_one_instance_with_overlapping_awaits(sqlite_url: str) -> None:
    h = Harness(sqlite_url, is_async=True)
    shared = walleta.attribute(feature="shared")
    tasks = 6
    seen: dict[int, list[Attribution]] = {}

    async def job(index: int, all_in: asyncio.Event, opened: list[int]) -> None:
        async with walleta.attribute(customer=f"c{index}"):
            async with shared:
                opened.append(index)
                if len(opened) == tasks:
                    all_in.set()
                await all_in.wait()  # every task is inside `shared` here; they resume first-in first-out
                await h.client.embeddings.create(**EMBED)
                await asyncio.sleep(0)
                await h.client.embeddings.create(**EMBED)
                seen[index] = [current()]
            seen[index].append(current())
        seen[index].append(current())

    async def scenario() -> None:
        all_in, opened = asyncio.Event(), []
        await asyncio.gather(*(job(i, all_in, opened) for i in range(tasks)))
        await h.client.close()

    asyncio.run(scenario())
    for index in range(tasks):
        assert seen[index] == [Attribution(f"c{index}", "shared", ""), Attribution(f"c{index}", "", ""), EMPTY]
    rows = h.rows()
    assert sorted((r["customer_id"], r["feature"]) for r in rows) == sorted((f"c{i}", "shared") for i in range(tasks) for _ in range(2))
    h.close()


def test_decorator_called_from_several_threads(sqlite_url: str) -> None:
    h = Harness(sqlite_url)
    barrier = threading.Barrier(THREADS)

    @walleta.attribute(customer="deco", feature="decorated")
    def handle(index: int) -> Attribution:
        barrier.wait(timeout=30)  # every thread is inside the decorated function at once
        h.client.embeddings.create(**EMBED)
        return current()

    results: dict[int, tuple[Attribution, Attribution]] = {}

    def work(index: int) -> None:
        with walleta.attribute(user=f"u{index}"):
            results[index] = (handle(index), current())

    assert run_threads(THREADS, work) == []
    assert handle.__name__ == "handle"
    for index in range(THREADS):
        assert results[index] == (Attribution("deco", "decorated", f"u{index}"), Attribution("", "", f"u{index}"))
    assert sorted(r["user_id"] for r in h.rows()) == sorted(f"u{i}" for i in range(THREADS))
    assert {(r["customer_id"], r["feature"]) for r in h.rows()} == {("deco", "decorated")}
    h.close()


def test_decorated_coroutine_function_runs_inside_the_attribution() -> None:
    @walleta.attribute(customer="async-deco")
    async def handle() -> Attribution:
        await asyncio.sleep(0)
        return current()

    async def scenario() -> tuple[Attribution, Attribution]:
        return await handle(), current()

    assert asyncio.run(scenario()) == (Attribution("async-deco", "", ""), EMPTY)


def test_block_left_open_by_an_unclosed_generator_does_not_leak() -> None:
    def generator():  # type: ignore[no-untyped-def]
        with walleta.attribute(customer="gen"):
            yield current()
            yield current()

    stream = generator()
    with walleta.attribute(customer="outer", feature="f") as outer:
        assert next(stream) == Attribution("gen", "f", "")  # the generator's block opens on top of ours
        assert current() == Attribution("gen", "f", "")
    assert current() == EMPTY  # leaving ours also drops the generator's block it contained
    stream.close()  # the generator's block ends outside the context it was opened in
    assert current() == EMPTY and outer == Attribution("outer", "f", "")


def test_block_exited_in_another_context_raises_nothing() -> None:
    import contextvars

    block = walleta.attribute(customer="elsewhere")
    block.__enter__()
    contextvars.copy_context().run(lambda: None)
    assert contextvars.Context().run(lambda: block.__exit__(None, None, None)) is None  # a fresh context: nothing to undo
    assert current() == Attribution("elsewhere", "", "")
    block.__exit__(None, None, None)
    assert current() == EMPTY


def test_instances_built_per_call_are_reused_only_for_the_same_text() -> None:
    assert walleta.attribute(customer="acme", feature="f") is walleta.attribute(customer="acme", feature="f")
    assert walleta.attribute(customer="acme") is not walleta.attribute(customer="acme", user="acme")
    with walleta.attribute(customer=True) as yes, walleta.attribute(customer=1) as one, walleta.attribute(customer=1.0) as real:
        assert (yes.customer, one.customer, real.customer) == ("True", "1", "1.0")
    with walleta.attribute(customer=["unhashable"], feature="f") as value:  # any value: converted with str()
        assert value == Attribution("['unhashable']", "f", "")
    assert repr(walleta.attribute("acme", user="u1")) == "attribute(customer='acme', user='u1')"
    assert current() == EMPTY


def test_inner_block_value_follows_its_enclosing_block() -> None:
    inner = walleta.attribute(feature="x")
    for outer in ("a", "b", "a", "b"):  # the enclosing attribution changes between entries
        with walleta.attribute(customer=outer):
            for _ in range(2):
                with inner:
                    assert current() == Attribution(outer, "x", "")
    with walleta.attribute(customer="a", user="u"), inner:
        assert current() == Attribution("a", "x", "u")
    with inner:
        assert current() == Attribution("", "x", "")
    assert current() == EMPTY
