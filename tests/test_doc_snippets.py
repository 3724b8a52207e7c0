"""Every shell snippet in the README and docs runs as printed.

The snippets are the fenced ``bash``/``sh``/``console`` blocks of README.md and docs/**/*.md,
run in document order (README first, then docs/ by path) with bash (``set -euo pipefail``), in a
folder laid out like a checkout (``.venv``, ``dbt_project``, ``seeds``, ``.env.example``) whose
``data/`` holds three demo months run through `pkpi run`, with ``.venv/bin`` first on PATH as
after ``source .venv/bin/activate``, and an Airflow home whose database holds the DAGs. In a
``console`` block the lines after ``$ `` are the commands; the rest is example output.

A block that cannot run offline says why in an HTML comment on the line before it:

    <!-- snippet not run: needs a running Airflow API server -->

and it is reported as a skipped test with that reason (the suite's ``-ra`` lists them), so none
hides.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, SEEDS

NOT_RUN = re.compile(r"<!--\s*snippet not run:\s*(?P<reason>.+?)\s*-->\s*$")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```\s*$", re.M | re.S)
SHELLS = {"bash", "sh", "shell", "console"}
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


@dataclass(frozen=True)
class Snippet:
    document: Path
    line: int
    lang: str
    body: str
    not_run: str | None

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(REPO)}:{self.line}"

    @property
    def script(self) -> str:
        if self.lang != "console":
            return self.body
        commands, current = [], None
        for line in self.body.splitlines():
            if line.startswith("$ "):
                current = [line[2:]]
                commands.append(current)
            elif current is not None and current[-1].endswith("\\"):
                current.append(line)  # a command continued on the next line
            else:
                current = None  # example output
        return "\n".join("\n".join(c) for c in commands)


def snippets() -> list[Snippet]:
    found = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match["lang"] not in SHELLS:
                continue
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            reason = NOT_RUN.search(before)
            found.append(Snippet(document, text[: match.start()].count("\n") + 1, match["lang"],
                                 match["body"], reason["reason"] if reason else None))
    return found


SNIPPETS = snippets()


def test_the_docs_have_shell_snippets_and_most_of_them_run():
    # Guards the parser: the README's and runbook's examples are found, and marking a block
    # "not run" stays the exception.
    assert len(SNIPPETS) >= 15
    assert any(s.document.name == "README.md" and "pkpi query" in s.body for s in SNIPPETS)
    run = [s for s in SNIPPETS if s.not_run is None]
    assert len(run) > len(SNIPPETS) / 2


def test_every_block_not_run_says_why():
    for snippet in SNIPPETS:
        if snippet.not_run is not None:
            assert len(snippet.not_run.split()) >= 3, f"{snippet.where}: say why it cannot run offline"


@pytest.fixture(scope="module")
def checkout(tmp_path_factory, airflow_database):
    """A folder laid out like a checkout after `make demo`'s ingest and build (no Airflow run)."""
    from support.airflow_stack import dags_test_environment, install_database, run_command

    from pkpi.cycle import run_cycle
    from pkpi.demo import write_sample_returns
    from pkpi.settings import Settings

    root = tmp_path_factory.mktemp("checkout")
    (root / ".venv").symlink_to(Path(sys.executable).parents[1])
    for name in ("dbt_project", "seeds"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("target", "logs", ".user.yml"))
    for name in (".env.example", "docker-compose.yml"):
        shutil.copyfile(REPO / name, root / name)
    env = dags_test_environment(root, REPO / "dags", root / "seeds")
    env.update({"PATH": f"{root / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
                "VIRTUAL_ENV": str(root / ".venv")})
    settings = Settings.from_env({"PKPI_DATA_DIR": env["PKPI_DATA_DIR"], "PKPI_REFERENCE_DIR": env["PKPI_REFERENCE_DIR"]})
    write_sample_returns(settings, first_month="2026-01", last_month="2026-03")
    run_cycle(settings, "2026-03", send=False)
    install_database(airflow_database, Path(env["AIRFLOW_HOME"]))
    airflow = str(root / ".venv" / "bin" / "airflow")
    run_command([airflow, "dags", "reserialize"], env, timeout=300, cwd=root)
    return root, env


@pytest.mark.parametrize("snippet", [
    pytest.param(s, id=s.where, marks=[pytest.mark.skip(reason=f"not run offline: {s.not_run}")] if s.not_run else [])
    for s in SNIPPETS
])
def test_the_snippet_runs_as_printed(snippet, checkout):
    root, env = checkout
    script = f"set -euo pipefail\n{snippet.script}\n"
    run = subprocess.run(["bash", "-c", script], cwd=root, env=env, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (
        f"{snippet.where} failed with status {run.returncode}:\n{script}\n"
        f"--- stdout ---\n{run.stdout[-3000:]}\n--- stderr ---\n{run.stderr[-3000:]}"
    )


# --- commands quoted inline: `pkpi templates ./templates` ---------------------------------------

INLINE = re.compile(r"`(pkpi [^`]*)`")
# How the docs write a value to fill in, and a value of that kind.
PLACEHOLDERS = {"YYYY-MM": "2026-03", "DIR": "./templates", '"SQL"': '"select 1"'}


def inline_commands() -> dict[str, list[str]]:
    """Each pkpi command quoted inline in the docs, with its placeholders filled in, and where."""
    found: dict[str, list[str]] = {}
    for document in DOCUMENTS:
        for number, line in enumerate(document.read_text(encoding="utf-8").splitlines(), start=1):
            for command in INLINE.findall(line):
                if "..." in command:
                    continue  # "pkpi ..." stands for any command
                for placeholder, value in PLACEHOLDERS.items():
                    command = command.replace(placeholder, value)
                # "[--send]" and "[--force \| --only-failed]": the usage's optional parts, each alone.
                options = re.findall(r"\[([^\]]+)\]", command)
                base = re.sub(r"\s*\[[^\]]+\]", "", command)
                variants = [base] + [f"{base} {o.strip()}" for opt in options for o in opt.split("\\|")]
                for variant in variants:
                    found.setdefault(variant, []).append(f"{document.relative_to(REPO)}:{number}")
    return found


def test_every_pkpi_command_quoted_in_the_docs_is_one_pkpi_accepts():
    """Quoted inline, a command is often only named ("run `pkpi scorecard`"), so its required
    arguments may be left out; but its subcommand and every option it shows must exist."""
    import argparse
    import shlex

    from pkpi.cli import _parser

    [subcommands] = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    main = _parser()._option_string_actions  # pkpi's own options, before the subcommand (-v)
    commands = inline_commands()
    assert "pkpi templates ./templates" in commands and len(commands) >= 20
    wrong = {}
    for command, where in commands.items():
        words = shlex.split(command)[1:]
        while words and words[0] in main:
            words = words[1:]
        parser = subcommands.choices.get(words[0]) if words else None
        unknown = [w for w in words[1:] if w.startswith("-") and parser is not None
                   and w.split("=", 1)[0] not in parser._option_string_actions]
        if parser is None or unknown:
            wrong[command] = where
    assert not wrong, f"the docs quote commands pkpi refuses: {wrong}"


def test_the_templates_command_the_readme_quotes_writes_the_templates(checkout):
    root, env = checkout
    run = subprocess.run(["bash", "-c", "pkpi templates ./templates"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert {p.name for p in (root / "templates").iterdir()} >= {"contacts.csv", "contacts.xlsx"}
