"""The Containerfile agrees with the repository and the CLI it runs.

Read as text (no image is built here): every COPY source exists, the default command is the
documented `llm-proxy serve ...`, the console script behind it is the one pyproject declares,
and the image exposes 8080, checks /ready and runs as a non-root user.
"""

import importlib
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[2]
CONTAINERFILE = REPO / "Containerfile"
EXPECTED_CMD = [
    "llm-proxy", "serve", "--host", "0.0.0.0", "--port", "8080",
    "--config", "/etc/llm-proxy/routes.yaml",
]  # fmt: skip


class Instruction(NamedTuple):
    stage: int  # 0-based index of the FROM it belongs to
    keyword: str
    args: str
    line: int


def instructions(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    stage = -1
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, args = full.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(stage, keyword, args.strip(), start))
    assert not pending, "the Containerfile ends inside a continued line"
    return out


@pytest.fixture(scope="module")
def steps() -> list[Instruction]:
    assert CONTAINERFILE.is_file(), "no Containerfile at the repository root"
    return instructions(CONTAINERFILE.read_text())


def last(steps: list[Instruction], keyword: str) -> Instruction:
    found = [s for s in steps if s.keyword == keyword]
    assert found, f"no {keyword} instruction"
    return found[-1]


def exec_form(args: str) -> list[str]:
    """A JSON-array (exec form) argument list; shell form is split as a shell would."""
    if args.startswith("["):
        value = json.loads(args)
        assert isinstance(value, list) and all(isinstance(a, str) for a in value)
        return value
    return shlex.split(args)


def copy_sources(step: Instruction) -> list[str]:
    words = [w for w in shlex.split(step.args) if not w.startswith("--")]
    if step.args.lstrip().startswith("["):
        words = json.loads(step.args)
    assert len(words) >= 2, f"line {step.line}: COPY needs a source and a destination"
    return words[:-1]


def test_every_copy_source_exists_in_the_repo(steps: list[Instruction]) -> None:
    copies = [s for s in steps if s.keyword in ("COPY", "ADD") and "--from" not in s.args]
    assert copies, "the image copies nothing from the repository"
    for step in copies:
        for source in copy_sources(step):
            assert not source.startswith(("http://", "https://")), source
            matches = list(REPO.glob(source)) if any(c in source for c in "*?[") else []
            assert (REPO / source).exists() or matches, (
                f"line {step.line}: COPY {source} names nothing in the repository"
            )


def test_copy_from_names_an_earlier_stage(steps: list[Instruction]) -> None:
    names = {
        m.group(1): s.stage
        for s in steps
        if s.keyword == "FROM" and (m := re.search(r"\bAS\s+(\S+)", s.args, re.IGNORECASE))
    }
    for step in steps:
        m = re.search(r"--from=(\S+)", step.args)
        if step.keyword == "COPY" and m:
            assert m.group(1) in names, f"line {step.line}: no stage named {m.group(1)}"
            assert names[m.group(1)] < step.stage


def arg_defaults(steps: list[Instruction]) -> dict[str, str]:
    """Global ARGs (before the first FROM) with their defaults."""
    out: dict[str, str] = {}
    for s in steps:
        if s.stage >= 0:
            break
        if s.keyword == "ARG" and "=" in s.args:
            name, _, value = s.args.partition("=")
            out[name.strip()] = value.strip()
    return out


def test_multi_stage_python_slim(steps: list[Instruction]) -> None:
    defaults = arg_defaults(steps)
    bases = [
        re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], s.args.split()[0])
        for s in steps
        if s.keyword == "FROM"
    ]
    assert len(bases) >= 2, "expected a build stage and a runtime stage"
    assert re.match(r"(docker\.io/(library/)?)?python:3\.1[1-9][\w.-]*-slim", bases[-1]), bases
    assert not re.search(r"pip install.*-e\b", CONTAINERFILE.read_text())


def test_the_shipped_routes_yaml_lands_where_cmd_reads_it(steps: list[Instruction]) -> None:
    final = max(s.stage for s in steps)
    copies = [s for s in steps if s.keyword == "COPY" and s.stage == final]
    assert any(
        copy_sources(s) == ["routes.yaml"] and shlex.split(s.args)[-1] == EXPECTED_CMD[-1]
        for s in copies
    ), "routes.yaml is not copied to /etc/llm-proxy/routes.yaml in the runtime stage"


def test_cmd_is_the_documented_serve_command(steps: list[Instruction]) -> None:
    cmd = last(steps, "CMD")
    assert cmd.args.startswith("["), "CMD should use the exec form (signals reach the server)"
    assert exec_form(cmd.args) == EXPECTED_CMD
    assert not [s for s in steps if s.keyword == "ENTRYPOINT"], "an ENTRYPOINT would wrap CMD"


def test_cmd_runs_the_console_script_pyproject_declares(steps: list[Instruction]) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    scripts = project["scripts"]
    program = exec_form(last(steps, "CMD").args)[0]
    assert program in scripts, f"CMD runs {program!r}; pyproject declares {sorted(scripts)}"
    module, _, function = scripts[program].partition(":")
    assert callable(getattr(importlib.import_module(module), function))


def test_cmd_arguments_are_accepted_by_the_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=REPO,
        check=True,
    ).stdout
    for flag in ("--host", "--port", "--config", "--workers"):
        assert flag in out, f"`llm-proxy serve` has no {flag}"


def test_expose_8080(steps: list[Instruction]) -> None:
    exposed = {p.split("/")[0] for s in steps if s.keyword == "EXPOSE" for p in s.args.split()}
    assert "8080" in exposed


def test_healthcheck_probes_ready_on_8080(steps: list[Instruction]) -> None:
    check = last(steps, "HEALTHCHECK")
    assert check.args.upper() != "NONE"
    assert re.search(r"\bCMD\b", check.args), check.args
    assert re.search(r"127\.0\.0\.1:8080/ready\b|localhost:8080/ready\b", check.args)
    # the probe must work in a slim image: no curl/wget unless installed
    text = CONTAINERFILE.read_text()
    for tool in ("curl", "wget"):
        if re.search(rf"\b{tool}\b", check.args):
            assert re.search(rf"(apt-get|apk) .*install.*\b{tool}\b", text), tool


def test_runs_as_a_non_root_user(steps: list[Instruction]) -> None:
    final = max(s.stage for s in steps)
    users = [s for s in steps if s.keyword == "USER" and s.stage == final]
    assert users, "the runtime stage never sets USER: it would run as root"
    user = users[-1].args.split(":")[0]
    assert user not in ("root", "0"), user
    if user.isdigit():
        text = CONTAINERFILE.read_text()
        assert re.search(rf"(useradd|adduser)\b.*\b{user}\b", text), "USER uid is never created"


def test_workers_come_from_llm_proxy_workers(steps: list[Instruction]) -> None:
    env = " ".join(s.args for s in steps if s.keyword == "ENV")
    assert "LLM_PROXY_WORKERS" in env
    source = (REPO / "proxy" / "__main__.py").read_text()
    assert "LLM_PROXY_WORKERS" in source, "the CLI never reads LLM_PROXY_WORKERS"
