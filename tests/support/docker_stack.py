"""The production stack for tests/test_stack.py: a private dockerd, images built offline, and
docker-compose on docker-compose.yml with docker/compose.offline.yml.

* **Docker itself.** Debian's ``docker.io``, ``docker-compose`` (v1) and ``debootstrap``; where
  they are missing and the tests run as root with apt, they are installed. Otherwise the test is
  skipped with what is missing, except under ``CI=true``, where that is a failure.
* **A dockerd of the test's own**, never the machine's: data root, exec root and socket in a
  temporary folder, host networking only (no bridge, no iptables), stopped by its process id.
* **Images without a registry.** The Debian base is made with ``debootstrap --variant=minbase``
  from the apt mirror the machine uses and ``docker import``-ed; PostgreSQL, Redis and the mail
  catcher come from docker/offline/Dockerfile, the platform from the Dockerfile with
  ``BASE=debian``. The machine's CA bundle is passed in at build time (docker/ca-certificates/,
  git-ignored), as a TLS-intercepting proxy requires.
* **Cached between runs on the same machine** as ``docker save`` archives under
  ``$XDG_CACHE_HOME/pkpi/stack-images`` (``~/.cache``), each named by a hash of what it is built
  from; a second run loads them. The platform's image is built with BuildKit's inline cache from
  the last one, so a code change rebuilds only the layers after the dependencies.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

import pytest

REPO = Path(__file__).resolve().parents[2]
DEBIAN_SUITE = "bookworm"
BASE_IMAGE = f"pkpi-debian-base:{DEBIAN_SUITE}"
OFFLINE_SERVICES = ("postgres", "redis", "smtp")
PLATFORM_IMAGE = "pkpi-airflow:stack-test"
PACKAGES = {"dockerd": "docker.io", "docker-compose": "docker-compose", "debootstrap": "debootstrap"}
# What the platform's image is built from (Dockerfile COPY lines), for its cache key.
PLATFORM_INPUTS = ("Dockerfile", "docker/entrypoint.sh", "requirements.lock", "pyproject.toml", "README.md",
                   "include", "dags", "dbt_project", "seeds", "expectations")
IGNORED_PARTS = {"__pycache__", "target", "logs", "dbt_packages", "uncommitted", ".user.yml"}


class StackError(RuntimeError):
    """A docker command failed; the message carries its output."""


# What _log said, for the test run's summary (xdist hides a passing test's own output).
LOGGED: list[str] = []


def _log(message: str) -> None:
    line = f"[stack] {time.strftime('%H:%M:%S')} {message}"
    LOGGED.append(line)
    print(line, flush=True)


# --- Docker on this machine -----------------------------------------------------------------


def _missing_tools() -> list[str]:
    return [tool for tool in PACKAGES if shutil.which(tool) is None]


def require_docker() -> None:
    """Install Docker's Debian packages when missing and possible; else skip (fail under CI)."""
    missing = _missing_tools()
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        _log(f"installing {', '.join(PACKAGES[t] for t in missing)} from apt")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                        *sorted({PACKAGES[t] for t in missing})], env=env, check=False, capture_output=True)
        missing = _missing_tools()
    if missing:
        how = "run the tests as root on a machine with apt" if os.geteuid() != 0 or not shutil.which("apt-get") else "apt-get failed"
        reason = (f"the production stack test needs {', '.join(missing)} (Debian: "
                  f"{' '.join(sorted({PACKAGES[t] for t in missing}))}); {how} to have them installed")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)


def docker_client() -> str:
    """The docker command line of the docker.io package (another one on PATH may be newer than
    the daemon speaks)."""
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker")


@dataclass
class Docker:
    """A running dockerd of the test's own and the commands that talk to it."""

    root: Path
    pid: int = 0
    env: dict[str, str] = field(default_factory=dict)

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    def run(self, *args: str, timeout: float = 1800, input: bytes | None = None, check: bool = True,
            env: Mapping[str, str] | None = None, cwd: Path | None = None, command: str | None = None) -> str:
        argv = [command or docker_client(), *args]
        proc = subprocess.run(argv, env={**self.env, **(env or {})}, cwd=cwd, input=input,
                              capture_output=True, timeout=timeout)
        out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
        if check and proc.returncode != 0:
            raise StackError(f"{' '.join(argv[:6])} ... exited with status {proc.returncode}:\n{out[-6000:]}")
        return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def reap_abandoned(parent: Path) -> None:
    """Stop and delete the daemons (and their containers) of earlier test runs that were killed
    before they could: a root whose owning process is gone. Running again is the recovery."""
    for root in sorted(parent.glob("pkpi-dockerd-*")):
        owner = _read_pid(root / "owner.pid")
        if root.name.endswith(".deleting") or owner is None or _alive(owner):
            continue
        daemon = _read_pid(root / "dockerd.pid")
        if daemon and _alive(daemon):
            _log(f"stopping the Docker daemon an interrupted run left in {root}")
            env = {**os.environ, "DOCKER_HOST": f"unix://{root / 'docker.sock'}"}
            ids = subprocess.run([docker_client(), "ps", "-q"], env=env, capture_output=True, text=True,
                                 timeout=60).stdout.split()
            if ids:
                subprocess.run([docker_client(), "kill", *ids], env=env, capture_output=True, timeout=120)
            os.kill(daemon, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while _alive(daemon) and time.monotonic() < deadline:
                time.sleep(0.5)
            if _alive(daemon):
                os.kill(daemon, signal.SIGKILL)
        _remove_root(root)


@contextmanager
def private_dockerd(root: Path) -> Iterator[Docker]:
    """Start dockerd with everything under ``root``; stop it by its process id afterwards."""
    reap_abandoned(root.parent)
    root.mkdir(parents=True, exist_ok=True)
    (root / "owner.pid").write_text(str(os.getpid()))
    docker = Docker(root)
    docker.env = {**os.environ, "DOCKER_HOST": f"unix://{docker.socket}", "DOCKER_BUILDKIT": "1"}
    log = open(root / "dockerd.log", "wb")
    proc = subprocess.Popen(
        ["dockerd", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
         "--pidfile", str(root / "dockerd.pid"), "-H", f"unix://{docker.socket}",
         "--iptables=false", "--ip-masq=false", "--bridge=none"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    docker.pid = proc.pid
    try:
        deadline = time.monotonic() + 60
        while docker.run("info", check=False, timeout=30).find("Server Version") < 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise StackError("dockerd did not start:\n" + (root / "dockerd.log").read_text(errors="replace")[-4000:])
            time.sleep(0.5)
        yield docker
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        _remove_root(root)


def _remove_root(root: Path) -> None:
    """The daemon's images, containers and volumes go with it: nothing is left in /tmp. Anything
    still mounted under it (after a daemon that had to be killed) is unmounted first."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
              if line.split()[1].startswith(str(root) + "/")]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
    # Gigabytes of layers: renamed out of the way at once, deleted by a process of its own.
    trash = root.with_name(root.name + ".deleting")
    try:
        root.rename(trash)
    except FileNotFoundError:
        return
    subprocess.Popen(["rm", "-rf", str(trash)], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- images, built without a registry and cached ------------------------------------------


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = base / "pkpi" / "stack-images"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _digest(paths: list[Path], *extra: str) -> str:
    h = hashlib.sha256("\0".join(extra).encode())
    for path in paths:
        files = [path] if path.is_file() else sorted(
            p for p in path.rglob("*") if p.is_file() and not IGNORED_PARTS & set(p.relative_to(path).parts))
        for f in files:
            h.update(str(f.relative_to(REPO)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _apt_mirror() -> str:
    """The Debian mirror this machine's apt uses, so debootstrap reaches what apt reaches."""
    for source in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if source.is_file():
            for line in source.read_text().splitlines():
                words = line.split()
                if line.startswith("URIs:") and len(words) > 1 and "security" not in words[1]:
                    return words[1]
                if line.startswith("deb ") and "security" not in line:
                    return next(w for w in words[1:] if "://" in w)
    return "http://deb.debian.org/debian"


def _archive(name: str, key: str) -> Path:
    return cache_dir() / f"{name.replace(':', '_').replace('/', '_')}-{key}.tar"


def _save(docker: Docker, name: str, archive: Path) -> None:
    """``docker save`` under a temporary name, then rename; older archives of the image go."""
    temporary = archive.with_suffix(".tmp")
    docker.run("save", "-o", str(temporary), name)
    for stale in archive.parent.glob(archive.name.rsplit("-", 1)[0] + "-*.tar"):
        stale.unlink()
    temporary.rename(archive)


def _load_or_build(docker: Docker, name: str, key: str, build, saves: list[Future], saver: ThreadPoolExecutor) -> float:
    """Load ``name`` from its cached archive, or build it and queue saving the archive (off the
    test's critical path: the stack starts while it is written); returns seconds."""
    started = time.monotonic()
    archive = _archive(name, key)
    if archive.exists():
        docker.run("load", "-i", str(archive))
        _log(f"{name}: loaded from {archive.name} in {time.monotonic() - started:.0f}s")
    else:
        build()
        saves.append(saver.submit(_save, docker, name, archive))
        _log(f"{name}: built in {time.monotonic() - started:.0f}s")
    return time.monotonic() - started


def _ca_certificates() -> None:
    """The machine's CA bundle into the build context (git-ignored), for a TLS-intercepting proxy."""
    bundle = Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")
    if bundle.is_file():
        shutil.copyfile(bundle, REPO / "docker" / "ca-certificates" / "build-host.crt")


@contextmanager
def built_images(docker: Docker, scratch: Path) -> Iterator[dict[str, float]]:
    """Every image the offline stack runs, with the seconds each took. The base comes first; the
    three service images and the platform's are then built side by side. Archives of newly built
    images are written to the cache in the background and finished when the block ends."""
    _ca_certificates()
    timings: dict[str, float] = {}
    mirror = _apt_mirror()
    saves: list[Future] = []

    def base():
        rootfs = scratch / "rootfs"
        subprocess.run(["debootstrap", "--variant=minbase", DEBIAN_SUITE, str(rootfs), mirror],
                       check=True, capture_output=True, timeout=1200)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        docker.run("import", "-", BASE_IMAGE, input=tar.stdout.read())
        tar.wait()
        shutil.rmtree(rootfs, ignore_errors=True)

    def platform():
        # The previous image (if any) lends its layers: a code change keeps the pip install.
        previous = sorted(cache_dir().glob("pkpi-airflow_stack-test-*.tar"))
        cache_from = []
        if previous:
            docker.run("load", "-i", str(previous[-1]))
            cache_from = ["--cache-from", PLATFORM_IMAGE]
        docker.run("build", "--network", "host", "--build-arg", "BASE=debian", "--build-arg",
                   "BUILDKIT_INLINE_CACHE=1", *cache_from, "-t", PLATFORM_IMAGE, ".", cwd=REPO)

    def service(name: str, image: str):
        docker.run("build", "--network", "host", "-q", "-f", "docker/offline/Dockerfile", "--target", name,
                   "-t", image, "docker", cwd=REPO)

    with ThreadPoolExecutor(max_workers=1) as saver:
        timings["base"] = _load_or_build(docker, BASE_IMAGE, _digest([], DEBIAN_SUITE, mirror), base, saves, saver)
        offline_key = _digest([REPO / "docker" / "offline"], DEBIAN_SUITE, mirror)
        jobs = {s: (f"pkpi-offline-{s}:latest", offline_key, lambda s=s: service(s, f"pkpi-offline-{s}:latest"))
                for s in OFFLINE_SERVICES}
        jobs["platform"] = (PLATFORM_IMAGE, _digest([REPO / p for p in PLATFORM_INPUTS]), platform)
        with ThreadPoolExecutor(max_workers=len(jobs)) as builders:
            futures = {label: builders.submit(_load_or_build, docker, *job, saves, saver) for label, job in jobs.items()}
            timings.update({label: f.result() for label, f in futures.items()})
        try:
            yield timings
        finally:
            waited = time.monotonic()
            for save in saves:
                save.result()
            if saves:
                _log(f"{len(saves)} image archive(s) cached, {time.monotonic() - waited:.0f}s after the test")


# --- the compose stack ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ComposeStack:
    docker: Docker
    project: str
    env: dict[str, str]
    ports: dict[str, int]
    mail_dir: Path

    def compose(self, *args: str, timeout: float = 900, check: bool = True) -> str:
        return self.docker.run("-p", self.project, "-f", "docker-compose.yml", "-f", "docker/compose.offline.yml",
                               *args, env=self.env, cwd=REPO, timeout=timeout, check=check,
                               command=shutil.which("docker-compose"))

    def containers(self, service: str | None = None) -> list[dict]:
        label = [f"label=com.docker.compose.project={self.project}"]
        if service:
            label.append(f"label=com.docker.compose.service={service}")
        ids = self.docker.run("ps", "-aq", *[a for f in label for a in ("--filter", f)]).split()
        return json.loads(self.docker.run("inspect", *ids)) if ids else []

    def wait_healthy(self, services: list[str], timeout: float = 900) -> None:
        """Until every container of these services reports healthy; fails with their logs."""
        deadline = time.monotonic() + timeout
        while True:
            states = {c["Name"].lstrip("/"): c["State"].get("Health", {}).get("Status", c["State"]["Status"])
                      for s in services for c in self.containers(s)}
            if states and all(v == "healthy" for v in states.values()) and {
                    c["Config"]["Labels"]["com.docker.compose.service"] for s in services for c in self.containers(s)} == set(services):
                return
            if time.monotonic() > deadline:
                logs = "\n".join(self.compose("logs", "--no-color", "--tail", "40", name, check=False)
                                 for name in services if states.get(name) != "healthy")
                raise StackError(f"not healthy after {timeout:.0f}s: {states}\n{logs[-12000:]}")
            time.sleep(3)

    def volume_path(self, volume: str) -> Path:
        [info] = json.loads(self.docker.run("volume", "inspect", f"{self.project}_{volume}"))
        return Path(info["Mountpoint"])

    def mail(self) -> list[bytes]:
        """Every message the mail catcher was sent, as raw bytes."""
        maildir = self.mail_dir / "Maildir"
        return [p.read_bytes() for sub in ("new", "cur") if (maildir / sub).is_dir() for p in sorted((maildir / sub).iterdir())]


def stack_environment(root: Path, project: str) -> tuple[dict[str, str], dict[str, int], Path]:
    ports = {name: free_port() for name in ("PG", "REDIS", "API", "SMTP", "SCHEDULER_HEALTH", "TRIGGERER_LOG", "FLOWER")}
    mail_dir = root / "mail"
    mail_dir.mkdir(parents=True)
    mail_dir.chmod(0o777)  # the catcher runs as uid 50000
    project_dir = root / "project"  # config/ and plugins/ (AIRFLOW_PROJ_DIR), never the checkout
    for sub in ("config", "plugins"):
        (project_dir / sub).mkdir(parents=True)
    env = {f"PKPI_STACK_{name}_PORT": str(port) for name, port in ports.items()}
    env.update({
        "COMPOSE_PROJECT_NAME": project, "AIRFLOW_UID": "50000", "AIRFLOW_PROJ_DIR": str(project_dir),
        "PKPI_STACK_MAIL_DIR": str(mail_dir), "PKPI_IMAGE_NAME": PLATFORM_IMAGE,
        "PKPI_REFERENCE_HOST_DIR": str(REPO / "seeds"), "PKPI_PARTNERSHIP_NAME": "Stack test partnership",
        "PKPI_ENGINEER_EMAILS": "data-engineers@partnership.example",
        # Only the runs the test triggers: an unpaused DAG would otherwise start its latest missed
        # scheduled run at once (catchup=False), a month the test did not ask for.
        "PKPI_STACK_USE_JOB_SCHEDULE": "False", "PKPI_STACK_DAG_PARSE_SECONDS": "300",
    })
    return env, ports, mail_dir
