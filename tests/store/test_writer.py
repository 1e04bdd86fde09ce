"""Group commit: concurrent writes share a transaction, answers wait for COMMIT, failures stay local."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store import Store
from store.tables import service_state
from store.writer import GroupCommitWriter, NotDurable

pytestmark = pytest.mark.anyio


def put_many(conn: Connection, keys: list[str]) -> list[str]:
    """A batch apply: one executemany for every queued key."""
    conn.execute(sa.insert(service_state), [{"key": key, "value": "v"} for key in keys])
    return keys


async def count(store: Store) -> int:
    query = sa.select(sa.func.count()).select_from(service_state)
    return int(await store.read(lambda conn: conn.execute(query).scalar_one()))


async def test_concurrent_writes_are_grouped_into_few_commits(store: Store) -> None:
    before = store.writer.batches
    results = await asyncio.gather(*(store.submit(put_many, f"k{i}") for i in range(200)))
    assert results == [f"k{i}" for i in range(200)]
    assert store.writer.batches - before < 10
    assert await count(store) == 200


async def test_a_write_is_visible_to_other_connections_when_submit_returns(store: Store) -> None:
    await store.submit(put_many, "durable")
    with store.engines.read.connect() as other:
        found = other.execute(sa.select(service_state.c.key).where(service_state.c.key == "durable"))
        assert found.scalar_one() == "durable"


async def test_a_failing_write_fails_alone(store: Store) -> None:
    await store.submit(put_many, "taken")
    outcomes = await asyncio.gather(
        *(store.submit(put_many, key) for key in ("a", "taken", "b")), return_exceptions=True
    )
    assert outcomes[0] == "a" and outcomes[2] == "b"
    assert isinstance(outcomes[1], sa.exc.IntegrityError)
    assert await count(store) == 3


async def test_a_failed_statement_does_not_quote_its_parameters(store: Store) -> None:
    """The error is logged; a parameter may be a webhook's signing secret."""
    secret = "whsec_do_not_log_" + "s" * 16
    insert = sa.insert(service_state).values(key="credential", value=secret)
    await store.write(lambda conn: conn.execute(insert))
    with pytest.raises(sa.exc.IntegrityError) as failed:
        await store.write(lambda conn: conn.execute(insert))
    assert secret not in str(failed.value) and "hidden" in str(failed.value)


async def test_an_ad_hoc_write_that_raises_does_not_undo_its_batch(store: Store) -> None:
    def broken(conn: Connection) -> None:
        conn.execute(sa.insert(service_state).values(key="half", value="v"))
        raise LookupError("refused after a statement")

    outcomes = await asyncio.gather(store.submit(put_many, "kept"), store.write(broken), return_exceptions=True)
    assert outcomes[0] == "kept" and isinstance(outcomes[1], LookupError)
    keys = set(await store.read(lambda conn: conn.execute(sa.select(service_state.c.key)).scalars().all()))
    assert keys == {"kept"}


async def test_close_commits_what_is_queued_then_refuses(store: Store, tmp_path: Path) -> None:
    pending = [asyncio.ensure_future(store.submit(put_many, f"late{i}")) for i in range(20)]
    await asyncio.sleep(0)
    await store.writer.close()
    assert [await write for write in pending] == [f"late{i}" for i in range(20)]
    with pytest.raises(RuntimeError):
        await store.submit(put_many, "after")
    store.writer.start()  # let the fixture close it again


async def test_answers_wait_for_the_flush_that_makes_the_commit_durable(store: Store) -> None:
    gate = threading.Event()
    flushes: list[int] = []

    def flush() -> None:
        assert gate.wait(10)
        flushes.append(1)

    writer = GroupCommitWriter(store.engines.write, flush=flush)
    writer.start()
    write = asyncio.ensure_future(writer.submit(put_many, "pending-flush"))
    while await count(store) == 0:  # committed (visible to readers)...
        await asyncio.sleep(0.01)
    assert not write.done()  # ...but not acknowledged before the flush
    gate.set()
    assert await write == "pending-flush"
    assert flushes == [1]
    await writer.close()


async def test_a_failed_flush_fails_its_writes(store: Store) -> None:
    def flush() -> None:
        raise OSError(5, "Input/output error")

    writer = GroupCommitWriter(store.engines.write, flush=flush)
    writer.start()
    with pytest.raises(NotDurable):  # the store failing (a 503), not a bug: see ingress.errors.STORE_ERRORS
        await writer.submit(put_many, "never-acknowledged")
    await writer.close()


async def test_failing_flushes_are_logged_once_and_their_end_too(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A data directory gone fails every group commit's flush, hundreds a second under load: each caller is
    told (and the HTTP edge logs a line a minute), the writer says when it began and when it ended."""
    failing = [True]

    def flush() -> None:
        if failing[0]:
            raise FileNotFoundError(2, "No such file or directory")

    writer = GroupCommitWriter(store.engines.write, flush=flush)
    writer.start()
    for key in ("a", "b", "c"):
        with pytest.raises(NotDurable):
            await writer.submit(put_many, key)
    failing[0] = False
    assert await writer.submit(put_many, "d") == "d"
    await writer.close()
    logged = [(record.levelname, record.getMessage()) for record in caplog.records if record.name == "flowhook.store"]
    assert logged == [
        ("ERROR", "flushing the write-ahead log failed: [Errno 2] No such file or directory; writes are refused "
         "until it works"),
        ("WARNING", "flushing the write-ahead log works again"),
    ]  # fmt: skip
