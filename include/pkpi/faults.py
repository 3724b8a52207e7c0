"""Crash points for the fault-injection tests: ``checkpoint(step)`` dies there when asked to.

The code calls :func:`checkpoint` with a step name at each point where a crash must be
recoverable. Nothing happens unless the environment variable ``PKPI_CRASH_AT`` names that step
(or several, comma-separated); then the process ends at once with ``os._exit(CRASH_EXIT_CODE)``:
no ``finally`` blocks, no flushing, no atexit, like ``kill -9`` at that instant (open file
descriptors are closed by the kernel, so advisory locks are released as after a real crash).
Only tests set the variable; a production run never does.

Step names (``<area>.<step>``; add new ones here when you add a checkpoint):

ingest (pkpi.ingest, one landing file; see its docstring for the recovery of each):
  ``ingest.staged``        the archive or quarantine copy (with errors file and report) is complete
                           under its temporary name; nothing committed
  ``ingest.committed``     rows, audit row, settle record and queued notice are committed; the
                           copy still has its temporary name, the file is still in landing
  ``ingest.placed``        the copy is renamed into place; the file is still in landing
  ``ingest.left_landing``  the file is removed from landing; its settle record not yet cleared
  ``ingest.settled``       the settle record is cleared; the queued notice not yet handed over
  ``outbox.delivered``     a queued notice was delivered (see delivery.*); its queue row not yet
                           marked done

files (pkpi.files.write_atomic, every file written whole: scorecard files, charts, ...):
  ``files.written``        the content is complete and fsynced under its temporary name; not yet
                           renamed over the final name (which still holds the old file, if any)

delivery (pkpi.mailer.deliver):
  ``delivery.reserved``    the ledger row ``sending`` is committed; the mail server not yet contacted
  ``delivery.handing_over`` the ledger says the message is being handed to SMTP; not yet connected
  ``delivery.accepted``    the SMTP server accepted the message; the ledger not yet updated
  ``delivery.outbox_written`` the .eml is in outbox/; the ledger not yet updated
  ``delivery.recorded``    the final ledger state (sent, refused, written_to_outbox) is committed

build (pkpi.build.build_mart):
  ``build.built``          dbt has built the mart; its disclosure decisions not yet stored (the
                           published copy and scorecards refuse the mart until `pkpi build` runs)
  ``build.decided``        the decisions are stored; the build not yet recorded as good
                           (pkpi.build_inputs), so the next build runs dbt again

publishing (pkpi.publish.publish):
  ``publish.partial``      the temporary release ``published/releases/.<id>.tmp`` is half written
  ``publish.written``      the temporary release is complete; not yet renamed
  ``publish.renamed``      ``releases/<id>`` is in place; ``current`` still names the old release
  ``publish.switched``     ``current`` names the new release; the stable links not yet checked
  ``publish.linked``       the stable links are in place; old releases not yet removed
"""

from __future__ import annotations

import os
import sys

ENV = "PKPI_CRASH_AT"
CRASH_EXIT_CODE = 86
"""The exit status of a process ended by a checkpoint (tests tell it from a real failure)."""


def checkpoint(step: str) -> None:
    """End the process now if ``PKPI_CRASH_AT`` names ``step``; otherwise do nothing."""
    wanted = os.environ.get(ENV)
    if not wanted or step not in {s.strip() for s in wanted.split(",")}:
        return
    try:
        sys.stderr.write(f"pkpi: crash injected at {step} ({ENV})\n")
        sys.stderr.flush()
    finally:
        os._exit(CRASH_EXIT_CODE)
