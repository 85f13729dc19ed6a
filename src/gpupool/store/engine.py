"""Engine construction: a path or URL in, a SQLAlchemy engine with durable settings out."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

from gpupool.errors import InvalidRequest


def database_url(path_or_url: str | Path) -> str:
    """`postgresql://...` and other URLs pass through; a plain path becomes a SQLite URL."""
    text = str(path_or_url)
    if text.startswith(("postgresql://", "postgres://")):
        # psycopg 3 is the driver gpupool ships with; SQLAlchemy would otherwise look for psycopg2.
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    if "://" in text:
        return text
    if not text.strip():
        raise InvalidRequest("db: empty database path")
    path = Path(text).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    make_private(path)
    return f"sqlite:///{path}"


def make_private(path: Path) -> None:
    """Create the database file readable by its owner only (SQLite gives its -wal and -shm files the
    same mode), and take group and other access away from one created before this rule: it holds
    every tenant's claims and token hashes."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        info = path.stat()
        if info.st_uid == os.geteuid() and info.st_mode & 0o077:
            os.chmod(path, 0o600)
            for suffix in ("-wal", "-shm", "-journal"):
                companion = path.with_name(path.name + suffix)
                if companion.exists():
                    os.chmod(companion, 0o600)
    except OSError:
        pass  # opening the database reports a real problem with the path in its own words


BUSY_TIMEOUT_S = 30.0
"""How long a SQLite connection waits for another process's lock before giving up."""


def _enable_wal(cursor: Any) -> None:
    """Switch the database to WAL unless it already is. On a fresh file several processes may try at
    once, and SQLite answers "database is locked" at once, without its busy handler, when the switch
    would deadlock with another connection's lock; so retry until `BUSY_TIMEOUT_S`."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def make_engine(path_or_url: str | Path) -> Engine:
    url = database_url(path_or_url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _sqlite_engine(url: str) -> Engine:
    # A small pool of connections reused across threads (never by two at once): opening a SQLite
    # connection and running the pragmas below on every transaction would dominate latency.
    engine = create_engine(
        url,
        pool_size=8,
        max_overflow=16,
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below issue BEGIN itself (pysqlite's own is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        _enable_wal(cursor)
        # FULL: the WAL is fsynced at every commit, so an acknowledged change survives any crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the lock up front (IMMEDIATE), so two never deadlock on a read->write
        # upgrade; readers stay deferred and, with WAL, never wait for a writer.
        if connection.get_execution_options().get("gpupool_write"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")

    return engine
