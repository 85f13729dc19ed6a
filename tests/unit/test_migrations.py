"""The migrations and `schema.py` agree, on SQLite and PostgreSQL: a database the store creates
through Alembic has exactly the tables, columns and indexes the code expects."""

from __future__ import annotations

import threading

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from gpupool.store import Store
from gpupool.store.migrate import alembic_config
from gpupool.store.schema import metadata


def _schema_drift(store: Store) -> list[object]:
    from alembic.autogenerate import compare_metadata

    with store.engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))


def test_migrated_database_matches_schema(db_url: str) -> None:
    store = Store(db_url)
    assert _schema_drift(store) == [], (
        "schema.py changed without a migration: run `python -m gpupool.store.migrate revision MSG`"
    )
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with store.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head
    store.close()


def test_upgrade_is_idempotent_and_safe_for_concurrent_starts(db_url: str) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            Store(db_url).close()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _schema_drift(Store(db_url)) == []


def test_a_database_without_tables_is_created_from_scratch(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"
    Store(url).close()
    engine = create_engine(url)
    with engine.connect() as conn:
        tables = set(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'").scalars())
    assert {"claims", "bindings", "devices", "events", "tenants", "alembic_version"} <= tables
