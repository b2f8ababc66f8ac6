"""A unique key taken by another writer: the database layer says CONFLICT, services say what was taken.

Real SQLite files and real services. "Another server process" is a second connection to the same
database that writes just before the service's own write transaction begins, after its checks:
the moment two processes race for the same slot or tag.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from goldfish.context import ServerContext
from goldfish.db.database import Database
from goldfish.db.workspaces import WorkspaceRepository
from goldfish.errors import ConflictError, SlotOccupiedError, TagExistsError


@contextmanager
def another_process_writes_first(db: Database, write: Callable[[sqlite3.Connection], None]) -> Iterator[None]:
    """Run ``write`` on a second connection as this thread's next write transaction begins."""
    other = Database(db.path)
    written: list[bool] = []

    def before_statement(statement: str) -> None:
        if statement == "BEGIN IMMEDIATE" and not written:
            written.append(True)
            with other.transaction() as conn:
                write(conn)

    db.connection.set_trace_callback(before_statement)
    try:
        yield
    finally:
        db.connection.set_trace_callback(None)
        other.close()
    assert written, "the service never began a write transaction"


def test_transaction_when_unique_key_taken_raises_conflict_and_saves_nothing(tmp_path: Path) -> None:
    db = Database(tmp_path / "goldfish.db")
    rows = WorkspaceRepository(db)
    with db.transaction() as conn:
        rows.insert(conn, "ws", "a goal", "base", None, None)

    with pytest.raises(ConflictError) as raised, db.transaction() as conn:
        rows.insert(conn, "other", "saved with the duplicate?", "base", None, None)
        rows.insert(conn, "ws", "the same name again", "base", None, None)

    assert raised.value.code == "CONFLICT"
    assert "ws" not in raised.value.message  # no table or column names in the message
    assert raised.value.details["key"]
    assert rows.names() == ["ws"]  # the whole transaction was rolled back
    db.close()


def test_transaction_when_check_constraint_fails_keeps_the_sqlite_error(tmp_path: Path) -> None:
    db = Database(tmp_path / "goldfish.db")
    with db.transaction() as conn:
        conn.execute("CREATE TABLE positive (value INTEGER CHECK (value > 0))")

    # A failed CHECK is a bug in our code, not something a user caused: it stays unexplained.
    with pytest.raises(sqlite3.IntegrityError), db.transaction() as conn:
        conn.execute("INSERT INTO positive VALUES (0)")
    db.close()


def test_mount_when_another_process_takes_the_slot_first_says_slot_just_taken(
    context: ServerContext,
) -> None:
    context.workspaces.create("first", "a goal")
    context.workspaces.create("second", "another goal")
    rows = WorkspaceRepository(context.db)
    first = rows.get("first")
    assert first is not None

    def claim(conn: sqlite3.Connection) -> None:
        rows.insert_mount(conn, "w1", first.id)

    with pytest.raises(SlotOccupiedError) as raised, another_process_writes_first(context.db, claim):
        context.workspaces.mount("second", "w1")

    assert raised.value.message == "Slot 'w1' was just taken."
    mount = rows.mount_of_slot("w1")
    assert mount is not None
    assert mount.workspace == "first"


def test_tag_when_another_process_uses_the_tag_first_says_tag_just_used(context: ServerContext) -> None:
    context.workspaces.create("ws", "a goal")
    slot = Path(context.workspaces.mount("ws", "w1").slot_path)
    (slot / "train.py").write_text("lr = 0.1\n", encoding="utf-8")
    context.versions.save("w1", "the first learning rate")
    rows = WorkspaceRepository(context.db)
    ws = rows.get("ws")
    assert ws is not None
    version = rows.latest_version(ws.id)
    assert version is not None

    def tag(conn: sqlite3.Connection) -> None:
        rows.add_tag(conn, ws.id, version.id, "best")

    with pytest.raises(TagExistsError) as raised, another_process_writes_first(context.db, tag):
        context.versions.manage(
            "ws",
            "tag",
            version=version.version,
            tag="best",
            from_version=None,
            to_version=None,
            include_pruned=False,
            limit=50,
            offset=0,
        )

    assert raised.value.message == "Tag 'best' was just used."
