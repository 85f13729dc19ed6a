"""Group commit: one writer thread runs the write units of concurrent callers in one transaction.

A caller hands the writer a *unit* (a function of a `Tx`) and waits for its result. The writer takes
every unit queued meanwhile, runs them in one transaction (a unit that may refuse after writing
takes a SAVEPOINT first, so one refused unit never undoes another) and commits once: N waiting
requests share one fsync instead of queueing for one each. Only after the commit are the units'
`Changes` applied to the in-memory `PoolState` and their callers answered, so nothing is
acknowledged (or shown to a reader) before it is durable.

Coherence across processes: the first statement of a batch that changes pool state bumps the
`store_generation` row. The value it returns tells whether anyone else committed since this
process's state was loaded; if so the state is reloaded inside the transaction before any unit runs.
In PostgreSQL that row lock also orders such transactions across processes, so each sees all the
others' commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import DBAPIError

from gpupool.errors import GpupoolError
from gpupool.model import Claim
from gpupool.model.quota import Quota
from gpupool.store import schema
from gpupool.store.state import Changes, PoolState
from gpupool.store.statements import (
    BUMP_GENERATION,
    INSERT_EVENT,
    RELEASE_SAVEPOINT,
    ROLLBACK_SAVEPOINT,
    SAVEPOINT,
    Sql,
    cursor_of,
    event_row,
    execute,
    paramstyle_of,
)

log = logging.getLogger("gpupool.store")

T = TypeVar("T")
MAX_BATCH = 256
"""Most units in one transaction: bounds how long the first caller of a big batch waits."""

_GENERATION = schema.store_generation
READ_GENERATION = select(_GENERATION.c.value).where(_GENERATION.c.id == 1)

STATE, PLAIN = "state", "plain"
"""Unit kinds: one that changes pool state (its batch bumps the generation) / one that does not."""

Loader = Callable[[Connection], PoolState]
FRESH_FOR_S = 0.001
"""In a process that shares its database, a freshness check holds this long: reads are at most this
far behind other processes' commits (a request's many reads cost one check, not one each)."""
Listener = Callable[[Changes | None], None]


class Tx:
    """What a unit works with: the batch's connection (and its DB-API cursor for the prepared
    statements), and the pool state as the units before it in the batch left it (their changes
    are not committed yet, so they live in an overlay)."""

    def __init__(
        self,
        conn: Connection,
        cursor: Any,
        paramstyle: str,
        state: PoolState,
        earlier: Changes,
        shared_batch: bool = False,
    ) -> None:
        self.conn = conn
        self.cursor = cursor
        self.paramstyle = paramstyle
        self.state = state
        self.earlier = earlier
        self.changes = Changes()
        self.events: list[dict[str, Any]] = []
        self.shared_batch = shared_batch  # other units share the transaction
        self.guarded = False  # a savepoint was taken for this unit
        self.changed_rows = False  # some statement of this unit changed a row

    def guard(self) -> None:
        """Call before the first write when the unit may still refuse (raise a GpupoolError) after
        writing: in a shared batch its writes then go in a savepoint that a refusal rolls back.
        A unit that refuses before changing any row needs none (most do: checks come first)."""
        if self.shared_batch and not self.guarded:
            execute(self.cursor, self.paramstyle, SAVEPOINT, {})
            self.guarded = True

    def run(self, sql: Sql, params: Any) -> Any:
        """Execute a prepared statement (a mapping, or a list of them); returns the cursor. A driver
        error is raised as SQLAlchemy's (IntegrityError, OperationalError...), as for any statement."""
        try:
            cursor = execute(self.cursor, self.paramstyle, sql, params)
        except self.conn.dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(
                sql.text, params, exc, self.conn.dialect.loaded_dbapi.Error, dialect=self.conn.dialect
            ) from exc
        if sql.writes and cursor.rowcount and cursor.rowcount > 0:
            self.changed_rows = True
        return cursor

    def event(
        self,
        actor: str,
        action: str,
        claim_id: str | None,
        tenant: str | None,
        details: dict[str, Any],
        timestamp: float | None = None,
    ) -> None:
        """Append an audit event; the batch writes its units' events together, before its commit."""
        self.events.append(event_row(actor, action, claim_id, tenant, details, timestamp))

    def claim(self, claim_id: str) -> Claim | None:
        """The claim as of this point of the batch if it is active (pending or bound), else None
        (ended, or unknown to this process: read it from the database)."""
        for layer in (self.changes.claims, self.earlier.claims):
            if claim_id in layer:
                found = layer[claim_id]
                return found if found.state.is_active else None
        return self.state.claims.get(claim_id)

    def quota(self, tenant: str) -> Quota | None:
        for layer in (self.changes.quotas, self.earlier.quotas):
            if tenant in layer:
                return layer[tenant]
        return self.state.quotas.get(tenant)


@dataclass
class _Item(Generic[T]):
    """A queued unit and how its caller hears the outcome: a thread waits on a `Future`; a
    coroutine's asyncio future is resolved on its own loop (no lock, no thread switch there)."""

    unit: Callable[[Tx], T]
    kind: str
    future: Future[T] | None = None
    waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[T]] | None = None
    settled: bool = False

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        if self.settled:
            return
        self.settled = True
        if self.waiter is not None:
            loop, waiting = self.waiter
            with contextlib.suppress(RuntimeError):  # its loop has closed: nobody is waiting
                loop.call_soon_threadsafe(_resolve, waiting, result, error)
        elif self.future is not None:
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)


def _resolve(waiting: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if waiting.cancelled():
        return  # the request went away; the unit was committed (or refused) all the same
    if error is not None:
        waiting.set_exception(error)
    else:
        waiting.set_result(result)


class GroupCommit:
    """The writer thread of one store (started on first use)."""

    def __init__(self, engine: Engine, state: PoolState, load: Loader) -> None:
        self.engine = engine
        self.state = state
        self.load = load
        self.listeners: list[Listener] = []
        self.shared = False  # set once another process is seen writing to the same database
        self._checked_at = 0.0
        # Held while a batch runs; `exclusive` takes it too, so that on SQLite (one writer at a time)
        # other write transactions of this process wait here rather than in SQLite's busy handler.
        self.lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Item[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False

    # ----------------------------------------------------------------- callers
    def run(self, unit: Callable[[Tx], T], kind: str = STATE) -> T:
        """Run `unit` in the next batch and return its result once committed (or raise its error).

        `kind` is STATE for a unit that changes claims, bindings, device totals or quotas (the
        default), PLAIN for one that writes only other records (events)."""
        return self.submit(unit, kind).result()

    def submit(self, unit: Callable[[Tx], T], kind: str = STATE) -> Future[T]:
        """Queue `unit` for the next batch; the future holds its result once committed."""
        future: Future[T] = Future()
        self._enqueue(_Item(unit, kind, future=future))
        return future

    async def run_async(self, unit: Callable[[Tx], T], kind: str = STATE) -> T:
        """`run` for a coroutine: awaits the commit without holding a thread."""
        loop = asyncio.get_running_loop()
        waiting: asyncio.Future[T] = loop.create_future()
        self._enqueue(_Item(unit, kind, waiter=(loop, waiting)))
        return await waiting

    def _enqueue(self, item: _Item[Any]) -> None:
        self._ensure_started()
        self._queue.put(item)

    @contextlib.contextmanager
    def exclusive(self, touches_state: bool = False) -> Iterator[Connection]:
        """A write transaction in the caller's thread, between batches. For records the state does
        not hold; with `touches_state`, for a change of pool state made outside a unit: it bumps
        the generation and the state is reloaded whole after the commit."""
        guard = self.lock if self.engine.dialect.name == "sqlite" else contextlib.nullcontext()
        with guard, self.engine.connect() as conn:
            conn.execution_options(gpupool_write=True)
            with conn.begin():
                if touches_state:
                    execute(cursor_of(conn), paramstyle_of(conn), BUMP_GENERATION, {}).fetchone()
                yield conn
        if touches_state:
            self.refresh_if_stale(force=True, own=True)

    def close(self) -> None:
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                if self._closed:
                    raise RuntimeError("store is closed")
                self._thread = threading.Thread(target=self._serve, name="gpupool-store-writer", daemon=True)
                self._thread.start()

    # ------------------------------------------------------------------ writer
    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch: list[_Item[Any]] = [first]
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(more)
            while batch:
                try:
                    batch = self._commit(batch)
                except BaseException as exc:  # a bug here must not stop the writer and hang every caller
                    log.exception("store writer failed")
                    for item in batch:
                        item.settle(error=exc)
                    batch = []

    def _commit(self, batch: list[_Item[Any]]) -> list[_Item[Any]]:
        """Run and commit one batch; returns the units to run again (after an unexpected error in
        another unit of the batch rolled all of them back)."""
        results: list[tuple[_Item[Any], Any]] = []
        failed: list[tuple[_Item[Any], BaseException]] = []
        done = Changes()
        events: list[dict[str, Any]] = []
        generation = None
        reloaded: PoolState | None = None
        try:
            with self.lock, self.engine.connect() as conn:
                conn.execution_options(gpupool_write=True)
                with conn.begin():
                    cursor, style = cursor_of(conn), paramstyle_of(conn)
                    if any(item.kind == STATE for item in batch):
                        generation = self._check_generation(conn, cursor, style)
                    shared = len(batch) > 1
                    for item in batch:
                        tx = Tx(conn, cursor, style, self.state, done, shared_batch=shared)
                        try:
                            result = item.unit(tx)
                        except GpupoolError as exc:  # a refusal (capacity, conflict, not found)
                            if not shared:
                                raise
                            if tx.guarded:  # undo only this unit
                                execute(cursor, style, ROLLBACK_SAVEPOINT, {})
                                execute(cursor, style, RELEASE_SAVEPOINT, {})
                            elif tx.changed_rows:  # a unit without a guard refused after writing: a bug
                                log.error("a store unit refused after writing without a guard: %s", exc)
                                item.settle(error=exc)
                                raise _RetryOthers([i for i in batch if i is not item]) from exc
                            failed.append((item, exc))
                            continue
                        except BaseException as exc:
                            # Unexpected: undo the whole batch; the others run again without it.
                            log.exception("store write failed; rolling back its batch")
                            item.settle(error=exc)
                            raise _RetryOthers([i for i in batch if i is not item]) from exc
                        if tx.guarded:
                            execute(cursor, style, RELEASE_SAVEPOINT, {})
                        done.merge(tx.changes)
                        events.extend(tx.events)
                        results.append((item, result))
                    if events:
                        execute(cursor, style, INSERT_EVENT, events)
                    if done.reload:
                        reloaded = self.load(conn)  # sees this transaction's own writes
        except _RetryOthers as retry:
            return retry.items
        except GpupoolError as exc:  # the only unit of the batch refused: nothing was written
            batch[0].settle(error=exc)
            return []
        except BaseException as exc:  # the commit (or the generation check) failed: nothing is durable
            log.exception("store commit failed")
            for item in batch:
                item.settle(error=exc)
            return []
        try:
            self._publish(done, generation, reloaded)
        except Exception:  # committed all the same; only the in-memory copy is in doubt: reread it
            log.exception("applying a commit to the pool state failed; reloading it")
            self.state.generation = -1
            with contextlib.suppress(Exception):
                self.refresh_if_stale(force=True, own=True)
        for item, result in results:
            item.settle(result)
        for item, error in failed:
            item.settle(error=error)
        return []

    def _check_generation(self, conn: Connection, cursor: Any, paramstyle: str) -> int:
        """Bump the generation; reload the state inside this transaction if another process wrote
        since it was loaded (the units then see it current). Returns the new value."""
        generation = int(execute(cursor, paramstyle, BUMP_GENERATION, {}).fetchone()[0])
        before = generation - 1
        if before != self.state.generation:
            if self.state.generation >= 0:
                self.shared = True
            fresh = self.load(conn)
            fresh.generation = before  # as committed before this transaction
            if self.state.install(fresh):
                self._notify(None)
        return generation

    def _publish(self, done: Changes, generation: int | None, reloaded: PoolState | None) -> None:
        if reloaded is not None:
            if self.state.install(reloaded):
                self._notify(None)
            return
        if generation is not None or done.claims or done.allocations or done.quotas:
            self.state.apply(done, generation)
            self._notify(done)

    def _notify(self, changes: Changes | None) -> None:
        for listener in self.listeners:
            try:
                listener(changes)
            except Exception:  # a listener must never break the writer
                log.exception("store listener failed")

    # ------------------------------------------------------------- staleness
    def refresh_if_stale(self, force: bool = False, own: bool = False) -> bool:
        """Reload the state when the database's generation moved (another process wrote, or `own`:
        this one, outside the writer); True if it did. One small read (skipped within `FRESH_FOR_S`
        of the last one unless `force`); the reload reads one consistent snapshot in the caller's
        thread."""
        now = time.monotonic()
        if not force and now - self._checked_at < FRESH_FOR_S:
            return False
        self._checked_at = now
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":  # every statement of the reload sees one snapshot
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                current = conn.execute(READ_GENERATION).scalar_one_or_none()
                if current is None or int(current) == self.state.generation:
                    return False
                fresh = self.load(conn)
        if self.state.generation >= 0 and not own:
            self.shared = True
        if self.state.install(fresh):
            self._notify(None)
        return True


class _RetryOthers(Exception):
    def __init__(self, items: list[_Item[Any]]) -> None:
        super().__init__("retry")
        self.items = items
