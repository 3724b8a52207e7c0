"""Airflow for the tests: a REST API client, a migrated metadata database, environments.

- :class:`AirflowApi` talks to a deployed Airflow 3's REST API (``/api/v2``) as any client of
  the platform would: it exchanges a user's password for a JWT at ``POST /auth/token`` and sends
  it as a bearer token (tests/test_stack.py, against the compose stack).
- :func:`migrated_database` migrates a SQLite metadata database once per test session, and
  :func:`install_database` copies it into a test's ``AIRFLOW_HOME`` for ``airflow dags test``
  runs (:func:`dags_test_environment`).
- :func:`run_command` runs a command in its own process group and kills the group on a timeout.

The suite's real scheduler, DAG processor, triggerer and API server are the compose stack's
(tests/test_stack.py), with tasks on Celery workers, as in production.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

import httpx

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


class AirflowStackError(RuntimeError):
    """Airflow did not do what it was asked, or a command failed; carries its output."""


# --- the REST API ---------------------------------------------------------------------------


class AirflowApi:
    """A small client for Airflow 3's REST API (``/api/v2``) with a token from the auth manager."""

    # Generous: on a busy 2-core machine the API server can take many seconds to answer.
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


# --- commands and environments -------------------------------------------------------------


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
    where :func:`dags_test_environment` points Airflow."""
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
