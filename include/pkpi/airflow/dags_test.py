"""``python -m pkpi.airflow.dags_test DAG_ID LOGICAL_DATE --log FILE``: ``airflow dags test``
for a person watching it (``make demo``).

``airflow dags test`` runs every task of one DAG run in its own process and writes thousands of
log lines; sent to a file, it leaves minutes of silence. This runs it the same way, its output
going to ``--log``, and prints one short line as each task starts and as it ends, read from the
run's task instances in Airflow's database every second (the run's own process is busy running
the tasks). When the run fails, the tail of the log follows; the exit status is dags test's.

It also mends the run's start. ``dags test`` records a run as started at its logical date
(``Dag.test`` creates it with ``start_date=logical_date``), so the demo's run for 2026-04-20
lasted months in the UI and ``airflow dags list-runs``. Once the run has ended it is recorded as
started when ``dags test`` began it (the run's ``run_after``); not sooner, because on SQLite the
run's own process holds the database's write lock while its tasks run. The log's own "DagRun
Finished ... run_duration" line was written before that, and still counts from the logical date.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path

POLL_SECONDS = 1.0
FINISHED = ("success", "failed", "skipped", "upstream_failed", "removed")
TAIL_LINES = 80


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    seconds = max(0, round((end - start).total_seconds()))
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def _state(value) -> str:
    return str(getattr(value, "value", value) or "none")


class RunWatcher:
    """What one ``dags test`` run's tasks have done so far, said once each (see the module docstring)."""

    def __init__(self, dag_id: str, launched: datetime, out=None):
        self.dag_id = dag_id
        self.launched = launched
        self.out = out or sys.stdout
        self.run = None  # (run id, state, run_after, end_date), once the run exists
        self._said: set[tuple] = set()

    def look(self) -> None:
        """Read the run and its tasks; print what is new. A busy database is read next time."""
        from sqlalchemy import select
        from sqlalchemy.exc import OperationalError

        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session

        try:
            with create_session() as session:
                run = session.scalars(
                    select(DagRun).where(DagRun.dag_id == self.dag_id, DagRun.run_after >= self.launched)
                    .order_by(DagRun.run_after.desc()).limit(1)).first()
                if run is None:
                    return
                tasks = session.scalars(select(TaskInstance).where(
                    TaskInstance.dag_id == self.dag_id, TaskInstance.run_id == run.run_id)).all()
                rows = [(ti.task_id, ti.map_index, ti.try_number, _state(ti.state), ti.start_date, ti.end_date)
                        for ti in tasks]
                self.run = (run.run_id, _state(run.state), run.run_after, run.end_date)
        except OperationalError:  # SQLite busy with the run's own writes: read it next time
            return
        far = datetime.max.replace(tzinfo=timezone.utc)
        for task_id, map_index, attempt, state, start, end in sorted(rows, key=lambda r: (r[4] or far, r[0])):
            name = task_id if map_index < 0 else f"{task_id}[{map_index}]"
            if (start is not None or state in FINISHED) and (name, attempt) not in self._said:
                self._said.add((name, attempt))
                if start is not None:
                    self._say(f"  {name}: started" + (f" (attempt {attempt})" if attempt > 1 else ""))
            if state in FINISHED + ("up_for_retry",) and (name, attempt, state) not in self._said:
                self._said.add((name, attempt, state))
                took = _duration(start, end)
                self._say(f"  {name}: {state.replace('_', ' ')}" + (f" after {took}" if took else ""))

    def mend_start(self) -> None:
        """Record the ended run as started when ``dags test`` began it (see the module docstring)."""
        from sqlalchemy import update

        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session

        if self.run is None:
            return
        run_id, _, run_after, _ = self.run
        with create_session() as session:
            session.execute(update(DagRun).where(DagRun.dag_id == self.dag_id, DagRun.run_id == run_id,
                                                 DagRun.start_date < run_after).values(start_date=run_after))

    def _say(self, line: str) -> None:
        print(line, file=self.out, flush=True)


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return "".join(deque(f, maxlen=lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pkpi.airflow.dags_test",
        description="Run `airflow dags test`, its output to a log file, saying as each task starts and ends.")
    parser.add_argument("dag_id")
    parser.add_argument("logical_date")
    parser.add_argument("--log", type=Path, required=True, help="where the run's own output goes")
    parser.add_argument("-c", "--conf", help="the run's conf, as JSON (as airflow dags test -c)")
    args = parser.parse_args(argv)
    command = [sys.executable, "-m", "airflow", "dags", "test", args.dag_id, args.logical_date]
    if args.conf:
        command += ["-c", args.conf]
    args.log.parent.mkdir(parents=True, exist_ok=True)
    print(f"Running {args.dag_id} for {args.logical_date} with `airflow dags test` "
          f"(its log: {args.log}):", flush=True)
    launched = datetime.now(timezone.utc)
    watcher = RunWatcher(args.dag_id, launched)
    with open(args.log, "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            while process.poll() is None:
                watcher.look()
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            process.terminate()
            process.wait()
            return 130
    watcher.look()  # the last tasks' ends
    watcher.mend_start()
    if watcher.run is not None:
        _, state, started, ended = watcher.run
        print(f"{args.dag_id}: {state}" + (f" in {_duration(started, ended)}" if ended else ""), flush=True)
    if process.returncode != 0:
        print(f"\n`airflow dags test` exited with status {process.returncode}; the last {TAIL_LINES} lines "
              f"of {args.log} follow. Fix the cause they name and run it again.\n", flush=True)
        print(_tail(args.log), end="", flush=True)
    return process.returncode


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
