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
)

LOAD_STATUSES = ("accepted", "rejected", "duplicate")
EMAIL_STATUSES = ("sent", "failed", "outbox")


class WarehouseBusy(RuntimeError):
    """Another process held the warehouse lock for longer than the configured timeout."""


@contextmanager
def warehouse_lock(settings: Settings, exclusive: bool) -> Iterator[None]:
    """Hold the warehouse's advisory lock (exclusive for writers, shared for readers)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
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
        con = duckdb.connect(str(settings.warehouse_path), read_only=read_only)
        try:
            if not read_only:
                ensure_schema(con)
            yield con
        finally:
            con.close()


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw and audit schemas and tables (idempotent)."""
    for ddl in AUDIT_DDL:
        con.execute(ddl)
    for contract in load_contracts().values():
        con.execute(contract.raw_table_ddl())


def initialise(settings: Settings) -> Path:
    """Create an empty warehouse with every raw and audit table; returns its path."""
    with connect(settings):
        pass
    return settings.warehouse_path
