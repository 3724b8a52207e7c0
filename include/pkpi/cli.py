"""``pkpi``: the command line the partnership's engineers use (README, the command line).

Exit status: 0 when the command did its job (even when returns were rejected: they are
reported), 2 for a usage error, 1 when the system itself failed. Both follow from the error's
class in pkpi.errors (``exit_code``); the message is the error's own sentence, never a
traceback, and a full disk is reported as such whatever library ran into it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .errors import EXIT_FAILED, PkpiError, UserError, classify, says_disk_full
from .files import secure_entry_point
from .periods import PeriodError, parse_month
from .quiet_logs import quiet_third_party
from .settings import Settings

DEMO_PERIOD = "2026-03"


class UsageError(UserError):
    """The command was called wrongly; exit status 2."""


def _month(value: str) -> str:
    try:
        return parse_month(value).label
    except PeriodError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pkpi", description="Safeguarding partnership data platform.")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("ingest", help="validate and load every file waiting in landing")
    b = sub.add_parser("build", help="build and test the KPI mart, then refresh the published copy")
    b.add_argument("--full-refresh", action="store_true",
                   help="rebuild the incremental facts and KPI tables from scratch (after a contract change)")
    s = sub.add_parser("scorecard", help="produce the scorecard for a month")
    s.add_argument("--period", required=True, type=_month, help="YYYY-MM")
    s.add_argument("--send", action="store_true", help="email it (or write it to outbox/ without SMTP)")
    s.add_argument("--force", action="store_true", help="send again a month already sent (or uncertain)")
    s.add_argument("--only-failed", action="store_true",
                   help="with --send: send only to the recipients the mail server refused before")
    s.add_argument("--mark-sent", action="store_true",
                   help="record an uncertain send as sent (after finding its Message-ID in the mail server's log)")
    r = sub.add_parser("run", help="ingest, build, scorecard, in that order")
    r.add_argument("--period", required=True, type=_month, help="YYYY-MM")
    r.add_argument("--send", action="store_true")
    r.add_argument("--force", action="store_true")
    d = sub.add_parser("demo", help="write realistic sample returns and run the whole cycle")
    d.add_argument("--returns-only", action="store_true", help="only write the sample returns")
    d.add_argument("--summary", action="store_true", help="only say where the demo's outputs are")
    t = sub.add_parser("templates", help="write a blank template for every return type")
    t.add_argument("dir", type=Path)
    st = sub.add_parser("status", help="which returns are received, late, missing or rejected")
    st.add_argument("--period", required=True, type=_month, help="YYYY-MM")
    q = sub.add_parser("query", help="read-only SQL against the published KPI mart")
    q.add_argument("sql")
    q.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    rt = sub.add_parser("retention", help="delete archived and quarantined originals whose retention period has ended")
    rt.add_argument("--dry-run", action="store_true", help="only list what is due; delete and record nothing")
    sub.add_parser("suites", help="write the GX expectation suites derived from the contracts")
    sub.add_parser("docs", help="write the partner pages, GX suites and dbt raw sources from the contracts, "
                   "the dbt docs site and GX Data Docs of the latest returns")
    return p


def _print_ingest(report) -> None:
    print(report.summary())
    for o in report.rejected + report.duplicates:
        print(f"  {o.describe()}")


def _print_scorecard(output, settings: Settings) -> None:
    if output.up_to_date:
        print(f"scorecard already up to date in {output.directory} (nothing it shows has changed)")
    else:
        print(f"scorecard written to {output.directory}")


def _print_delivery(result) -> None:
    print(str(result))


def _cmd_ingest(args, settings: Settings) -> int:
    from .ingest import ingest_landing

    _print_ingest(ingest_landing(settings))
    return 0


def _cmd_build(args, settings: Settings) -> int:
    from .build import build_mart

    result = build_mart(settings, full_refresh=args.full_refresh)
    print(result)
    return 0


def _cmd_scorecard(args, settings: Settings) -> int:
    from .delivery import deliver_scorecard
    from .scorecard import produce_scorecard

    if args.mark_sent:
        from .mailer import mark_sent

        if args.send or args.force or args.only_failed:
            raise UsageError("--mark-sent records an uncertain send as sent and sends nothing: use it alone.")
        entry = mark_sent(settings, "scorecard", args.period)
        print(f"Scorecard for {args.period}: recorded as sent (Message-ID {entry.message_id}); nothing was sent now.")
        return 0
    if (args.only_failed or args.force) and not args.send:
        raise UsageError("--force and --only-failed say how to send: add --send.")
    if args.only_failed and args.force:
        raise UsageError("Use --only-failed (the refused recipients) or --force (everyone), not both.")
    output = produce_scorecard(settings, args.period)
    _print_scorecard(output, settings)
    if args.send:
        _print_delivery(deliver_scorecard(settings, args.period, force=args.force, only_failed=args.only_failed))
    return 0


def _cmd_run(args, settings: Settings) -> int:
    from .cycle import run_cycle

    result = run_cycle(settings, args.period, send=args.send, force=args.force)
    _print_ingest(result.ingest)
    _print_scorecard(result.scorecard, settings)
    if result.delivery is not None:
        _print_delivery(result.delivery)
    return 0


def _demo_summary(settings: Settings) -> None:
    from .demo_summary import describe_outputs

    print(describe_outputs(settings, DEMO_PERIOD))


def _cmd_demo(args, settings: Settings) -> int:
    if args.summary:
        _demo_summary(settings)
        return 0
    from .demo import write_sample_returns

    summary = write_sample_returns(settings)
    print(summary)
    if args.returns_only:
        return 0
    from .cycle import run_cycle

    result = run_cycle(settings, DEMO_PERIOD, send=True)
    _print_ingest(result.ingest)
    _demo_summary(settings)
    return 0


def _cmd_templates(args, settings: Settings) -> int:
    from .reference import load_reference
    from .templates_gen import write_templates

    for path in write_templates(args.dir, load_reference(settings)):
        print(path)
    return 0


def _cmd_status(args, settings: Settings) -> int:
    from .status import format_landing, format_states, landing_entries, return_states

    print(format_states(return_states(settings, args.period)))
    print()
    print(format_landing(landing_entries(settings), settings.abandoned_after_hours, settings.quiet_seconds))
    return 0


def _cmd_query(args, settings: Settings) -> int:
    import csv

    from .query import query_published

    result = query_published(settings, args.sql)  # QueryError: the caller's query to change, exit 2
    columns, rows = result.columns, result.rows
    if args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        # Booleans as the published CSV files write them (true/false), not Python's True/False.
        writer.writerows([("true" if v else "false") if isinstance(v, bool) else v for v in row] for row in rows)
        if result.note:  # on stderr, so the CSV stays clean
            print(f"pkpi: {result.note}", file=sys.stderr)
        return 0
    text = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in text]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for r in text:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
    print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    if result.note:
        print(result.note)
    return 0


def _cmd_retention(args, settings: Settings) -> int:
    from .retention import apply_retention

    report = apply_retention(settings, dry_run=args.dry_run)
    print(report.summary())
    for d in report.deletions:
        print(f"  {d}")
    return 0


def _cmd_suites(args, settings: Settings) -> int:
    from .suites import write_gx_project

    for path in write_gx_project(settings.expectations_dir):
        print(path)
    return 0


def _cmd_docs(args, settings: Settings) -> int:
    from .templates_gen import write_partner_docs

    from .build import generate_docs
    from .dbt_contracts import write_raw_sources
    from .gx_docs import build_data_docs

    for path in write_partner_docs(settings.project_dir / "docs" / "returns"):
        print(path)
    _cmd_suites(args, settings)
    print(write_raw_sources(settings.dbt_project_dir))  # before the site, which documents them
    print(f"dbt docs site: {generate_docs(settings) / 'index.html'}")
    print(f"GX Data Docs: {build_data_docs(settings)}")
    return 0


COMMANDS = {
    "ingest": _cmd_ingest, "build": _cmd_build, "scorecard": _cmd_scorecard, "run": _cmd_run,
    "demo": _cmd_demo, "templates": _cmd_templates, "status": _cmd_status, "query": _cmd_query,
    "suites": _cmd_suites, "docs": _cmd_docs, "retention": _cmd_retention,
}
WRITES_DATA = {"ingest", "build", "scorecard", "run", "demo", "docs", "retention"}
"""Commands that write the data folder: they tighten its modes first (pkpi.files)."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_third_party()
    # A log handler that cannot write (dbt.log on a full disk) must not print Python's
    # "--- Logging error ---" traceback for every line: the failure itself is reported below.
    logging.raiseExceptions = False
    settings = None
    try:
        settings = Settings.from_env()
        if args.command in WRITES_DATA:
            secure_entry_point(settings)  # the umask, and a data folder left too open is tightened
        return COMMANDS[args.command](args, settings)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return _report_failure(exc, settings)


def _report_failure(exc: Exception, settings: Settings | None) -> int:
    """Say what failed on stderr (sentences, no traceback) and return the exit status.

    A full disk anywhere in the chain of causes is said first, with the file system and what to
    free (pkpi.errors.DiskFull); the command's own error follows, so the original is never hidden
    (an incomplete ingest's message also counts what was done).
    """
    logging.getLogger("pkpi").debug("failure", exc_info=True)
    error = classify(exc, settings.data_dir if settings is not None else None)
    if error is None:  # not an error pkpi raises on purpose: a bug or a library's own failure
        print(f"pkpi: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"pkpi: {error}", file=sys.stderr)
    if isinstance(exc, PkpiError) and error is not exc:  # the command's own account of what it did
        print(f"pkpi: {exc}", file=sys.stderr)
    elif error is not exc and not says_disk_full(exc):  # a library's error the disk full lies under
        print(f"pkpi: {type(exc).__name__}: {exc}", file=sys.stderr)
    return error.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
