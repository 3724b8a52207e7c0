"""The DuckDB warehouse: its schemas, and the one-writer discipline.

DuckDB allows one writing process per file, and a reader cannot open the file while another
process writes it. Every process therefore goes through :func:`connect`, which takes an
advisory file lock beside the warehouse first: exclusive for writers, shared for readers.
Writers keep their transactions short (one per partner file); in Airflow the ``duckdb_writer``
pool of one slot keeps writer tasks from even queueing on the lock.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from .contracts import load_contracts
from .errors import TransientError
from .files import make_dir, open_secure, restrictive_umask, secure
from .settings import Settings

AUDIT_DDL = (
    "CREATE SCHEMA IF NOT EXISTS raw",
    "CREATE SCHEMA IF NOT EXISTS audit",
    """
    CREATE TABLE IF NOT EXISTS audit.loads (
      load_id VARCHAR PRIMARY KEY,
      return_type VARCHAR,
      partner_code VARCHAR,
      period VARCHAR,
      file_name VARCHAR NOT NULL,
      landing_path VARCHAR NOT NULL,
      stored_path VARCHAR,
      checksum_sha256 VARCHAR NOT NULL,
      size_bytes BIGINT NOT NULL,
      row_count INTEGER,
      is_nil BOOLEAN NOT NULL DEFAULT FALSE,
      received_at TIMESTAMP NOT NULL,
      validated_at TIMESTAMP NOT NULL,
      status VARCHAR NOT NULL,
      error_count INTEGER NOT NULL DEFAULT 0,
      duplicate_of VARCHAR,
      message VARCHAR
    )
    """,
    # The rules a rejected file broke (retention keeps files holding identifiers for less time).
    # Added by ALTER so that a warehouse made before the column existed gains it too; rows from
    # before it have NULL here and their rules are read from the message (pkpi.retention).
    "ALTER TABLE audit.loads ADD COLUMN IF NOT EXISTS error_rules VARCHAR[]",
    # The file's own modification time as found (received_at may differ: see pkpi.ingest).
    "ALTER TABLE audit.loads ADD COLUMN IF NOT EXISTS modified_at TIMESTAMP",
    """
    CREATE TABLE IF NOT EXISTS audit.deletions (
      load_id VARCHAR NOT NULL,
      path VARCHAR NOT NULL,
      why VARCHAR NOT NULL,
      bytes BIGINT,
      recorded_at TIMESTAMP NOT NULL,
      deleted_at TIMESTAMP,
      outcome VARCHAR,
      detail VARCHAR,
      PRIMARY KEY (load_id, path)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS audit.emails (
      email_id VARCHAR PRIMARY KEY,
      kind VARCHAR NOT NULL,
      idempotency_key VARCHAR NOT NULL,
      period VARCHAR,
      partner_code VARCHAR,
      recipients VARCHAR NOT NULL,
      subject VARCHAR NOT NULL,
      message_id VARCHAR NOT NULL,
      status VARCHAR NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 1,
      detail VARCHAR,
      created_at TIMESTAMP NOT NULL
    )
    """,
    # Exactly-once delivery (pkpi.mailer): when the message was handed to SMTP (NULL: never, so
    # a crashed reservation can be taken over safely) and when the row last changed state.
    "ALTER TABLE audit.emails ADD COLUMN IF NOT EXISTS smtp_started_at TIMESTAMP",
    "ALTER TABLE audit.emails ADD COLUMN IF NOT EXISTS updated_at TIMESTAMP",
    # One row per recipient of each attempt: accepted, refused (retry with --only-failed),
    # failed, pending (reserved) or uncertain (the server may have it; see the runbook).
    """
    CREATE TABLE IF NOT EXISTS audit.email_recipients (
      email_id VARCHAR NOT NULL,
      recipient VARCHAR NOT NULL,
      status VARCHAR NOT NULL,
      detail VARCHAR,
      updated_at TIMESTAMP NOT NULL,
      PRIMARY KEY (email_id, recipient)
    )
    """,
    # A file's outcome is committed before its stored copy is renamed into place and before it
    # leaves landing (pkpi.ingest): this row, written in the outcome's own transaction, says what
    # is left to do, so the next run finishes it (a crash in between). Empty between runs.
    """
    CREATE TABLE IF NOT EXISTS audit.unsettled_loads (
      load_id VARCHAR PRIMARY KEY,
      staged_path VARCHAR NOT NULL,
      placed_path VARCHAR NOT NULL,
      landing_parts_hex VARCHAR NOT NULL,
      removal VARCHAR NOT NULL,
      checksum_sha256 VARCHAR,
      landing_identity VARCHAR,
      recorded_at TIMESTAMP NOT NULL
    )
    """,
    # The outbox: every notice an outcome calls for, recorded in the outcome's transaction and
    # delivered afterwards by pkpi.mailer.deliver_queued (exactly once per kind and key).
    """
    CREATE TABLE IF NOT EXISTS audit.outbox (
      kind VARCHAR NOT NULL,
      idempotency_key VARCHAR NOT NULL,
      period VARCHAR,
      partner_code VARCHAR,
      load_id VARCHAR,
      message BLOB NOT NULL,
      queued_at TIMESTAMP NOT NULL,
      delivered_at TIMESTAMP,
      email_id VARCHAR,
      detail VARCHAR,
      PRIMARY KEY (kind, idempotency_key)
    )
    """,
)

LOAD_STATUSES = ("accepted", "rejected", "duplicate")
EMAIL_STATUSES = ("sending", "sent", "partly_refused", "failed", "uncertain", "written_to_outbox")
"""audit.emails.status; see pkpi.mailer for the transitions."""
EMAIL_RECIPIENT_STATUSES = ("pending", "accepted", "refused", "failed", "uncertain", "written_to_outbox")
DELETION_OUTCOMES = ("deleted", "missing", "refused")
"""audit.deletions.outcome; NULL while a deletion is only intended (recorded, not yet done)."""


class WarehouseBusy(TransientError, RuntimeError):
    """Another process held the warehouse lock for longer than the configured timeout."""


@contextmanager
def warehouse_lock(settings: Settings, exclusive: bool) -> Iterator[None]:
    """Hold the warehouse's advisory lock (exclusive for writers, shared for readers)."""
    make_dir(settings, settings.data_dir)
    fd = open_secure(settings, settings.lock_path)
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    deadline = time.monotonic() + settings.lock_timeout_seconds
    try:
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise WarehouseBusy(
                        f"The warehouse {settings.warehouse_path} stayed locked by another process "
                        f"for {settings.lock_timeout_seconds}s. Check for a stuck ingest or build "
                        "(see the runbook), then run the task again."
                    ) from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextmanager
def connect(settings: Settings, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse under its lock. Writers get the schemas created if missing."""
    with warehouse_lock(settings, exclusive=not read_only):
        if read_only and not settings.warehouse_path.exists():
            raise FileNotFoundError(
                f"There is no warehouse at {settings.warehouse_path} yet: run `pkpi ingest` first."
            )
        # DuckDB creates the database and its .wal with the process umask: hold a private one.
        with restrictive_umask(settings):
            con = duckdb.connect(str(settings.warehouse_path), read_only=read_only)
            try:
                if not read_only:
                    secure(settings, settings.warehouse_path)  # also an older, laxer file
                    ensure_schema(con)
                yield con
            finally:
                con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT, or ROLLBACK when the block fails, without ever hiding the real error.

    After a failed statement (a full disk, a constraint) DuckDB may already have ended the
    transaction; a ROLLBACK then fails with "no transaction is active", and that secondary error
    must not replace the first. A failed COMMIT is rolled back the same way.
    """
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # nothing left to roll back: the original error is what matters
        raise


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw and audit schemas and tables (idempotent)."""
    for ddl in AUDIT_DDL:
        con.execute(ddl)
    _ensure_arrival_order(con)
    for contract in load_contracts().values():
        con.execute(contract.raw_table_ddl())


ARRIVAL_SEQUENCE = "audit.loads_arrival"


def _ensure_arrival_order(con: duckdb.DuckDBPyConnection) -> None:
    """Give audit.loads its ``arrival_seq``: the order the platform took the files in.

    Which version of a return is current is decided by it (pkpi.ingest, pkpi.status, the mart's
    int_latest_returns), never by a file's timestamp. Every new row takes the next value of a
    sequence (its column default). A warehouse made before the column existed gains it in one
    transaction: its rows are numbered in the order "latest" meant then (received_at,
    validated_at, load_id), and the sequence starts after them.
    """
    (done,) = con.execute(
        "SELECT count(*) FROM duckdb_sequences() WHERE schema_name = 'audit' AND sequence_name = 'loads_arrival'"
    ).fetchone()
    if done:
        return
    with transaction(con):
        con.execute("ALTER TABLE audit.loads ADD COLUMN IF NOT EXISTS arrival_seq BIGINT")
        con.execute("""
            UPDATE audit.loads SET arrival_seq = o.n
            FROM (SELECT load_id, row_number() OVER (ORDER BY received_at, validated_at, load_id) AS n
                  FROM audit.loads) AS o
            WHERE audit.loads.load_id = o.load_id""")
        (start,) = con.execute("SELECT coalesce(max(arrival_seq), 0) + 1 FROM audit.loads").fetchone()
        con.execute(f"CREATE SEQUENCE {ARRIVAL_SEQUENCE} START WITH {int(start)}")
        con.execute(f"ALTER TABLE audit.loads ALTER COLUMN arrival_seq SET DEFAULT nextval('{ARRIVAL_SEQUENCE}')")


def initialise(settings: Settings) -> Path:
    """Create an empty warehouse with every raw and audit table; returns its path."""
    with connect(settings):
        pass
    return settings.warehouse_path
