"""A real, small Airflow 3 deployment for end-to-end tests.

:func:`airflow_stack` starts the three long-running Airflow components the platform needs,
each as its own process group on 127.0.0.1:

- ``airflow scheduler`` with the LocalExecutor (task processes are its children);
- ``airflow dag-processor``, which parses the DAG folder into the metadata database;
- ``airflow api-server`` (REST API ``/api/v2``, the task execution API ``/execution`` that
  the LocalExecutor's task processes talk to, and the auth manager's ``/auth/token``).

The metadata database is SQLite in a temporary ``AIRFLOW_HOME``. SQLite is not for production
(it takes one writer at a time) but Airflow 3.3 runs the LocalExecutor on it, as
``airflow standalone`` does, which is what a test of the real wiring needs. Five processes
write to it at once here (scheduler, DAG processor, API server, task runs, ``airflow`` commands),
so every connection waits up to a minute for the database instead of SQLite's default five
seconds, through the ``airflow_local_settings`` module Airflow imports from ``AIRFLOW_HOME/config``.

Authentication is the real thing: the default SimpleAuthManager with one admin user whose
password the stack writes to the auth manager's passwords file before the API server starts;
:class:`AirflowApi` exchanges it for a JWT at ``POST /auth/token`` and sends it as a bearer
token, as any REST client of a deployed platform would.

The stack never runs cron-scheduled runs (``[scheduler] use_job_schedule = False``): what a
scheduled run would do depends on today's date, and a test must not. Tests trigger runs
through the REST API and create backfills with the ``airflow backfill create`` command.

Everything the components write (their own output, task logs, the database) stays in the
temporary folder, and :meth:`AirflowStack.diagnostics` gathers the tails of those logs for a
failure message.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import httpx
import psutil

from support.smtp import free_port

HOST = "127.0.0.1"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
USERNAME = "pkpi-e2e"
COMPONENTS = ("api-server", "dag-processor", "scheduler")
# Imported by every component from AIRFLOW_HOME/config (see the module docstring).
LOCAL_SETTINGS = '''"""Written by tests/support/airflow_stack.py for a throwaway test deployment."""

# SQLite: wait up to a minute for another process's write instead of failing with
# "database is locked" after five seconds.
connect_args = {"timeout": 60}
connect_args_async = {"timeout": 60}
'''
FINISHED_RUN_STATES = ("success", "failed")
FINISHED_TASK_STATES = ("success", "failed", "skipped", "upstream_failed", "removed")


class AirflowStackError(RuntimeError):
    """The stack did not start, or did not do what it was asked in time; carries the logs."""


# --- the REST API ---------------------------------------------------------------------------


class AirflowApi:
    """A small client for Airflow 3's REST API (``/api/v2``) with a SimpleAuthManager token."""

    # Longer than the minute a metadata database connection may wait for SQLite's write lock
    # (LOCAL_SETTINGS), so a busy moment of the test deployment is not taken for a failure.
    def __init__(self, base_url: str, username: str, password: str, timeout: float = 90.0):
        self.base_url = base_url
        self._username = username
        self._password = password
        self._client = httpx.Client(base_url=base_url, timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def login(self) -> None:
        """Exchange the user's password for a JWT (``POST /auth/token``) and use it from now on."""
        response = self._client.post("/auth/token", json={"username": self._username, "password": self._password})
        if response.status_code != 201:
            raise AirflowStackError(f"POST /auth/token answered {response.status_code}: {response.text[:500]}")
        self._client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call ``/api/v2<path>``; logs in first when needed; returns the decoded JSON body."""
        if "Authorization" not in self._client.headers:
            self.login()
        response = self._client.request(method, f"/api/v2{path}", **kwargs)
        if response.status_code == 401:  # the token expired: log in again, once
            self.login()
            response = self._client.request(method, f"/api/v2{path}", **kwargs)
        if response.status_code >= 400:
            raise AirflowStackError(f"{method} /api/v2{path} answered {response.status_code}: {response.text[:1000]}")
        return response.json() if response.content else None

    # The calls the tests need, named after what they do.

    def health(self) -> dict:
        return self.request("GET", "/monitor/health")

    def dag(self, dag_id: str) -> dict:
        return self.request("GET", f"/dags/{dag_id}")

    def set_paused(self, dag_id: str, paused: bool) -> dict:
        return self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def trigger(self, dag_id: str, logical_date: str | None, conf: Mapping[str, Any] | None = None,
                run_id: str | None = None) -> dict:
        """Trigger a manual run (``POST /dags/{dag_id}/dagRuns``); returns the new run."""
        body: dict[str, Any] = {"logical_date": logical_date, "conf": dict(conf or {})}
        if run_id:
            body["dag_run_id"] = run_id
        return self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def dag_runs(self, dag_id: str, **filters: Any) -> list[dict]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100, **filters})["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict]:
        """The run's task instances by task id."""
        body = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti for ti in body["task_instances"]}


# --- the stack ------------------------------------------------------------------------------


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class AirflowStack:
    """A running (or stopped) set of Airflow components sharing one AIRFLOW_HOME."""

    root: Path
    env: dict[str, str]
    port: int
    password: str
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    api: AirflowApi | None = None

    @property
    def home(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"])

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def task_logs_dir(self) -> Path:
        return self.home / "logs"

    def component_log(self, name: str) -> Path:
        return self.home / "components" / f"{name}.log"

    # -- commands -----------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 300, attempts: int = 3) -> subprocess.CompletedProcess:
        """Run ``airflow <args>`` against this stack's metadata database; raises when it fails.

        SQLite (this test deployment's metadata database, never production's) refuses a write at
        once, whatever the busy timeout, when the writing transaction began by reading while
        another process (the scheduler, say) was writing: "database is locked". The command's
        transaction is rolled back, so it is run again, up to ``attempts`` times in all.
        """
        for attempt in range(1, attempts + 1):
            result = run_command([AIRFLOW, *args], self.env, timeout=timeout, cwd=self.root, check=False)
            if result.returncode == 0 or "database is locked" not in result.stdout or attempt == attempts:
                break
            time.sleep(2 * attempt)
        if result.returncode != 0:
            raise AirflowStackError(f"{' '.join(result.args)} exited with status {result.returncode}:\n{result.stdout[-4000:]}")
        return result

    def start(self, timeout: float = 240) -> None:
        """Start the API server, DAG processor and scheduler and wait until all are healthy."""
        self.launch()
        self.wait_until_healthy(timeout)

    def launch(self) -> None:
        """Start the API server, DAG processor and scheduler without waiting for them."""
        (self.home / "components").mkdir(parents=True, exist_ok=True)
        commands = {
            "api-server": ["api-server", "--host", HOST, "--port", str(self.port), "--workers", "1"],
            "dag-processor": ["dag-processor"],
            "scheduler": ["scheduler"],
        }
        for name in COMPONENTS:
            log = open(self.component_log(name), "ab")
            try:
                # A session of its own, so stop() can signal the component and its children.
                self.processes[name] = subprocess.Popen(
                    [AIRFLOW, *commands[name]], env=self.env, cwd=self.root, stdout=log,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                )
            finally:
                log.close()
        self.api = AirflowApi(self.base_url, USERNAME, self.password)

    def _check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise AirflowStackError(
                    f"airflow {name} exited with status {proc.returncode}.\n{self.diagnostics()}"
                )

    def wait_until_healthy(self, timeout: float) -> None:
        """Wait until the API answers and reports the scheduler and DAG processor healthy."""
        deadline = time.monotonic() + timeout
        last = "the API server did not answer"
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                health = self.api.health()
            except (httpx.HTTPError, AirflowStackError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                states = {part: (health.get(part) or {}).get("status") for part in ("metadatabase", "scheduler", "dag_processor")}
                if all(state == "healthy" for state in states.values()):
                    return
                last = f"health: {states}"
            time.sleep(1)
        raise AirflowStackError(f"The Airflow stack was not healthy after {timeout:.0f}s ({last}).\n{self.diagnostics()}")

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> dict:
        """Wait until the DAG processor has parsed ``dag_id`` into the database; returns the DAG."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                return self.api.dag(dag_id)
            except AirflowStackError as exc:
                last = str(exc)
            time.sleep(1)
        raise AirflowStackError(f"The DAG {dag_id} was not parsed after {timeout:.0f}s ({last}).\n{self.diagnostics()}")

    def wait_for_task_state(self, dag_id: str, run_id: str, task_id: str, states: Iterable[str],
                            timeout: float, poll: float = 1.0) -> str:
        """Wait until a task instance reaches one of ``states`` (or finishes); returns its state."""
        wanted = set(states)
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            self._check_alive()
            state = self.api.task_instances(dag_id, run_id).get(task_id, {}).get("state")
            if state in wanted or state in FINISHED_TASK_STATES:
                return state
            time.sleep(poll)
        raise AirflowStackError(
            f"{dag_id} {run_id}: task {task_id} was still {state!r} after {timeout:.0f}s.\n"
            f"{self.diagnostics(dag_id, run_id)}"
        )

    def wait_for_runs(self, dag_id: str, run_ids: Iterable[str], timeout: float, poll: float = 1) -> dict[str, dict]:
        """Wait until every run has finished (success or failed); returns the runs by run id.

        On timeout, raises with the state of every task and the tail of the task and component
        logs, so the failure says where the run got stuck.
        """
        pending = list(run_ids)
        finished: dict[str, dict] = {}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            self._check_alive()
            # One request for all the runs, not one each: every answer costs the API server CPU
            # time that the runs being waited for need.
            runs = {run["dag_run_id"]: run for run in self.api.dag_runs(dag_id)}
            for run_id in list(pending):
                run = runs.get(run_id) or self.api.dag_run(dag_id, run_id)
                if run["state"] in FINISHED_RUN_STATES:
                    finished[run_id] = run
                    pending.remove(run_id)
            if pending:
                time.sleep(poll)
        if pending:
            raise AirflowStackError(
                f"{dag_id}: runs {pending} had not finished after {timeout:.0f}s.\n"
                + "\n".join(self.diagnostics(dag_id, run_id) for run_id in pending)
            )
        return finished

    # -- diagnostics --------------------------------------------------------------------

    def task_log_files(self, dag_id: str | None = None, run_id: str | None = None) -> list[Path]:
        pattern = f"dag_id={dag_id or '*'}/run_id={run_id or '*'}/task_id=*/attempt=*.log"
        return sorted(self.task_logs_dir.glob(pattern))

    def diagnostics(self, dag_id: str | None = None, run_id: str | None = None, lines: int = 40) -> str:
        """Task states and the tails of the task and component logs, for a failure message."""
        parts: list[str] = []
        if dag_id and run_id and self.api is not None:
            try:
                states = {t: ti.get("state") for t, ti in self.api.task_instances(dag_id, run_id).items()}
                parts.append(f"--- task states of {run_id}: {states}")
            except Exception as exc:  # the API may be the thing that is down
                parts.append(f"--- task states of {run_id} unavailable: {exc}")
        for path in self.task_log_files(dag_id, run_id):
            parts.append(f"--- {path.relative_to(self.task_logs_dir)}\n{_tail(path, lines)}")
        for name in COMPONENTS:
            parts.append(f"--- airflow {name}\n{_tail(self.component_log(name), lines)}")
        return "\n".join(parts)

    # -- shutdown -----------------------------------------------------------------------

    def stop(self, grace: float = 5) -> None:
        """Stop every component: SIGTERM to each process group, SIGKILL after ``grace`` seconds.

        The grace is short: a component that has stopped its work (the API server's "Finished
        server process", the scheduler's "Exited execute loop") then spends ten seconds and more
        tearing down its interpreter, and nothing of a throwaway deployment needs that.

        Task processes run in process groups of their own, so the whole tree of every
        component is collected first and whatever outlives the grace period is killed.
        """
        if self.api is not None:
            self.api.close()
        started = [proc for proc in (self.processes.get(name) for name in reversed(COMPONENTS)) if proc]
        family: list[psutil.Process] = []
        for proc in started:
            try:
                parent = psutil.Process(proc.pid)
                family += [parent, *parent.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        for proc in started:  # the scheduler first, so it launches nothing new
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in started:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        _, alive = psutil.wait_procs(family, timeout=max(0.1, deadline - time.monotonic()))
        for proc in started:
            _signal_group(proc.pid, signal.SIGKILL)
        for leftover in alive:
            try:
                leftover.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        for proc in started:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def run_command(args: list[str], env: Mapping[str, str], timeout: float, cwd: Path | None = None,
                check: bool = True) -> subprocess.CompletedProcess:
    """Run a command in its own process group; kill the group if it overruns ``timeout``."""
    proc = subprocess.Popen(args, env=dict(env), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AirflowStackError(f"{' '.join(args)} did not finish in {timeout:.0f}s:\n{out[-4000:]}") from None
    result = subprocess.CompletedProcess(args, proc.returncode, out, "")
    if check and proc.returncode != 0:
        raise AirflowStackError(f"{' '.join(args)} exited with status {proc.returncode}:\n{out[-4000:]}")
    return result


def _own_environment() -> dict[str, str]:
    """This process's environment without the developer's own ``AIRFLOW*`` and ``PKPI_*``
    variables, so that nothing outside a test's temporary folder is read or written."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PKPI_", "AIRFLOW"))}


def migrated_database(folder: Path) -> Path:
    """A metadata database migrated by ``airflow db migrate``, made once in ``folder``.

    Migrating a fresh SQLite database costs some seven seconds of CPU (half a minute or more of
    a busy machine) and every migration by the same Airflow gives the same database, so the
    test session migrates once and each Airflow test module starts from a copy
    (:func:`install_database`). The lock lets the session's xdist workers share the folder: the
    first one migrates, the others wait for it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    template = folder / "airflow.db"
    with open(folder / "migrate.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not template.exists():
            partial = folder / "migrating.db"
            partial.unlink(missing_ok=True)
            env = _own_environment()
            env.update({
                "AIRFLOW_HOME": str(folder / "home"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{partial}",
                "NO_COLOR": "1",
            })
            run_command([AIRFLOW, "db", "migrate"], env, timeout=300, cwd=folder)
            os.replace(partial, template)  # complete or absent: a failed migration is not reused
    return template


def install_database(template: Path, home: Path) -> Path:
    """Copy a migrated metadata database (:func:`migrated_database`) to ``home/airflow.db``,
    where both :func:`dags_test_environment` and :func:`stack_environment` point Airflow."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, home / "airflow.db")
    return home / "airflow.db"


def dags_test_environment(root: Path, dags_folder: Path, reference_dir: Path,
                          extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for ``airflow dags test`` runs (no stack): Airflow's home and pkpi's data
    folder in ``root``, the DAGs of ``dags_folder``, the reference data of ``reference_dir``."""
    env = _own_environment()
    env.update({
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PKPI_DATA_DIR": str(root / "data"),
        "PKPI_REFERENCE_DIR": str(reference_dir),
        "GX_ANALYTICS_ENABLED": "False",
        "NO_COLOR": "1",
    })
    env.update(extra or {})
    return env


def stack_environment(root: Path, dags_folder: Path, port: int, password_file: Path,
                      extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every component (and every ``airflow`` command) of the stack runs with.

    The developer's own ``AIRFLOW*`` and ``PKPI_*`` variables are left out so that nothing
    outside the temporary folder is read or written.
    """
    env = _own_environment()
    home = root / "airflow"
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # Two cores: a few task processes at a time is plenty and keeps memory down.
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "airflow_local_settings.connect_args",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC": "airflow_local_settings.connect_args_async",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{HOST}:{port}/execution/",
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://{HOST}:{port}",
        # Shared by every component: the API server signs task and user tokens with these.
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        # No cron-scheduled runs: their month would depend on today's date (see the module doc).
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        # A task process's calls to the execution API (start, heartbeat, finish) wait up to a
        # minute, not five seconds: on a busy test machine the API server, itself waiting for
        # SQLite's lock (LOCAL_SETTINGS), can take longer, the task's start then times out and
        # is retried after the server has started it, and the task fails before it begins.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        # The DAG files never change during a test: parse each once, not every 30 seconds (each
        # parse rewrites the DAG's rows, one more writer on SQLite, and costs a core for a while).
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
        "NO_COLOR": "1",
        "GX_ANALYTICS_ENABLED": "False",
        # The venv's own commands first, whatever the caller's PATH.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    env.update(extra or {})
    return env


@contextmanager
def airflow_stack(root: Path, dag_files: Iterable[Path], database: Path,
                  extra_env: Mapping[str, str] | None = None,
                  pools: Mapping[str, tuple[int, str]] | None = None, start_timeout: float = 240,
                  dag_ids: Iterable[str] = ()) -> Iterator[AirflowStack]:
    """A running Airflow stack in ``root`` with only ``dag_files`` in its DAG folder.

    Starts from a copy of ``database`` (a migrated one, :func:`migrated_database`), starts the
    components, creates ``pools``
    (name -> (slots, description)) with ``airflow pools set`` as ``make airflow-init`` does
    while the components are still starting (that takes them most of a minute), waits until
    they are healthy and ``dag_ids`` are parsed, and always stops them on the way out.
    """
    dags_folder = root / "dags"
    dags_folder.mkdir(parents=True, exist_ok=True)
    for path in dag_files:
        # A copy, not the repository's folder: DAG files other work adds meanwhile stay out.
        shutil.copy2(path, dags_folder / path.name)
    port = free_port()
    password = secrets.token_urlsafe(16)
    password_file = root / "airflow" / "simple_auth_manager_passwords.json"
    password_file.parent.mkdir(parents=True, exist_ok=True)
    # The auth manager only generates passwords for users missing from this file.
    password_file.write_text(json.dumps({USERNAME: password}) + "\n", encoding="utf-8")
    (root / "airflow" / "config").mkdir(exist_ok=True)
    (root / "airflow" / "config" / "airflow_local_settings.py").write_text(LOCAL_SETTINGS, encoding="utf-8")
    env = stack_environment(root, dags_folder, port, password_file, extra_env)
    stack = AirflowStack(root=root, env=env, port=port, password=password)
    try:
        install_database(database, stack.home)
        stack.launch()
        for name, (slots, description) in (pools or {}).items():
            stack.cli("pools", "set", name, str(slots), description, timeout=120)
        stack.wait_until_healthy(start_timeout)
        for dag_id in dag_ids:
            stack.wait_for_dag(dag_id)
        yield stack
    finally:
        stack.stop()
