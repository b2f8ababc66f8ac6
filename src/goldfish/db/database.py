"""SQLite connections, schema migrations and short transactions.

One connection per thread (tools run on worker threads), WAL so readers never wait for the
writer, foreign keys on, and a busy timeout so two server processes on the same project
queue up instead of failing with ``database is locked``.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from goldfish.errors import ConflictError, DiskReadOnlyError, disk_fault

BUSY_TIMEOUT_MS = 30_000
CHANGE_POLL_SECONDS = 0.005
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_DUPLICATE_KEY_ERRORS = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})


def _migrations() -> list[tuple[int, str]]:
    """Return (version, sql) for each numbered migration file, in order."""
    folder = resources.files("goldfish.db") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    return sorted(found)


def schema_version() -> int:
    """The schema version this code writes: the highest migration, or 1 for the baseline."""
    versions = [version for version, _ in _migrations()]
    return max([1, *versions])


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (the base class cannot)."""


class Database:
    """A project's SQLite database.

    Args:
        path: The database file; created with the schema when missing.
    """

    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()
        # Weak: a worker thread's connection is closed when the thread (and its locals) go away.
        self._all: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._watch: sqlite3.Connection | None = None
        self._watch_lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.migrate()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
            factory=_Connection,
        )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        with self._lock:
            self._all.add(conn)
        return conn

    @property
    def connection(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "read_only", False) and self._writable():
            self._forget_connection()  # opened while the disk was read-only: SQLite would stay so
            conn = None
        if conn is None:
            conn = self._open()
            self._local.conn = conn
            self._local.read_only = not self._writable()
        return conn

    def _writable(self) -> bool:
        return os.access(self.path, os.W_OK)

    def data_version(self) -> int:
        """A number that changes whenever another connection (any process) commits a change.

        Read on one connection kept for this (numbers of different connections do not compare),
        from any thread. Cheap enough to poll every few milliseconds.
        """
        with self._watch_lock:
            if self._watch is None:
                self._watch = self._open()
            return int(self._watch.execute("PRAGMA data_version").fetchone()[0])

    def wait_for_change(self, seen: int, seconds: float) -> int:
        """Return as soon as :meth:`data_version` differs from ``seen``, or after ``seconds``.

        A waiter notices another process's commit (a stage or a run ending) within
        :data:`CHANGE_POLL_SECONDS` without re-reading any rows; returns the version last read.
        """
        deadline = time.monotonic() + seconds
        while True:
            version = self.data_version()
            if version != seen or time.monotonic() >= deadline:
                return version
            time.sleep(CHANGE_POLL_SECONDS)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction (``BEGIN IMMEDIATE``): committed on success, rolled back on error.

        Raises:
            DiskFullError, DiskReadOnlyError: SQLite could not write because of the disk.
            ConflictError: a unique key (a name, a tag) was already taken; services that know
                what the key means catch it and raise their own error.
        """
        conn = self.connection
        with self._sqlite_errors_translated():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error:
                # A commit refused by the disk may leave the transaction open: close it, so this
                # thread's next transaction can begin.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _sqlite_errors_translated(self) -> Iterator[None]:
        """Turn the SQLite errors a user can cause into Goldfish errors that name the cause.

        "disk is full" and "readonly database" become the disk errors; a unique key already
        taken becomes :class:`ConflictError`. Other errors (a failed CHECK: a bug) stay as they are.
        """
        try:
            yield
        except sqlite3.Error as exc:
            fault = disk_fault(exc) or _conflict(exc)
            if fault is None:
                raise
            if isinstance(fault, DiskReadOnlyError):
                # SQLite opens a database it cannot write read-only for good: reopen it next time,
                # so writes work again as soon as the disk does.
                self._forget_connection()
            raise fault from exc

    def _forget_connection(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                self._all.discard(conn)  # type: ignore[arg-type]
            conn.close()

    def migrate(self) -> int:
        """Bring the schema up to date; return the resulting ``user_version``."""
        conn = self.connection
        with self.transaction():
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                baseline = (resources.files("goldfish.db") / "schema.sql").read_text(encoding="utf-8")
                for statement in _split_sql(baseline):
                    conn.execute(statement)
                conn.execute("PRAGMA user_version = 1")
                version = 1
            for number, sql in _migrations():
                if number > version:
                    for statement in _split_sql(sql):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {number}")
                    version = number
        return int(version)

    def integrity_ok(self) -> bool:
        """True when ``PRAGMA integrity_check`` reports ``ok``."""
        return bool(self.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    def snapshot(self, target: Path) -> None:
        """A consistent copy of the database in ``target`` through SQLite's online backup API.

        One step under one read transaction: in WAL mode writers go on meanwhile, and the copy
        is the database as of the step's start (a raw file copy of a WAL database is not).
        """
        dest = sqlite3.connect(target)
        try:
            self.connection.backup(dest)
        finally:
            dest.close()

    def replace_with(self, source: Path) -> None:
        """Make this (live) database a copy of the database file ``source``, in place."""
        src = sqlite3.connect(source)
        try:
            src.backup(self.connection)
        finally:
            src.close()
        self.migrate()

    def close(self) -> None:
        """Close every connection this object opened."""
        with self._lock:
            for conn in list(self._all):
                conn.close()
            self._all = weakref.WeakSet()
        self._local = threading.local()
        with self._watch_lock:
            self._watch = None


def _conflict(exc: sqlite3.Error) -> ConflictError | None:
    """The :class:`ConflictError` for a unique (or primary) key already taken, else None."""
    if getattr(exc, "sqlite_errorname", "") not in _DUPLICATE_KEY_ERRORS:
        return None
    _, _, key = str(exc).partition(": ")
    return ConflictError(
        "Another call stored an entry with the same key at the same moment; this change was not saved.",
        details={"key": key},
    )


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (executescript would commit our transaction)."""
    statements, current = [], []
    for line in script.splitlines():
        stripped = line.strip()
        if stripped.startswith("--") or not stripped:
            continue
        current.append(line)
        if sqlite3.complete_statement("\n".join(current)):
            statements.append("\n".join(current))
            current = []
    return statements
