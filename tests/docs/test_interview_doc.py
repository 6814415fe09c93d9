"""docs/interview-prep.md cannot rot: its references exist and its quoted commands run."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from clients.explain.cli import add_arguments
from experiments.docfigures import main as docfigures_main
from pushlab.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "interview-prep.md"
PENDING = "lands with branch"
TEXT = DOC.read_text()
EXPLAIN_WHATS = {"handshake", "frames", "sse", "stream", "poll", "h2"}


def sections() -> dict[int, str]:
    parts = re.split(r"^### Q(\d+)\. ", TEXT, flags=re.MULTILINE)
    return {int(n): body for n, body in zip(parts[1::2], parts[2::2], strict=True)}


def paragraph(body: str, label: str) -> str:
    m = re.search(rf"\*\*{label}[^*]*\*\*(.*?)(?:\n\n|\Z)", body, re.DOTALL)
    return m.group(1) if m else ""


def check_ref(ref: str) -> bool | None:
    """True/False when ``ref`` is something checkable (command, target, test, file); else None."""
    words = ref.split()
    if "<" in ref or not words:
        return None
    if words[0] == "pushlab" and len(words) > 1:
        if words[1] == "explain":
            return len(words) == 2 or words[2] in EXPLAIN_WHATS
        return words[1] in COMMANDS
    if words[0] == "make" and len(words) == 2:
        return (
            re.search(rf"^{re.escape(words[1])}:", (ROOT / "Makefile").read_text(), re.M)
            is not None
        )
    if "::" in ref:
        path, func = ref.split("::", 1)
        file = ROOT / path
        func = func.split("[")[0]
        return (
            file.is_file() and re.search(rf"def {re.escape(func)}\(", file.read_text()) is not None
        )
    if re.fullmatch(r"[\w.-]+(/[\w.-]*)+", ref) and not ref.startswith("results/"):
        return (ROOT / ref.rstrip("/")).exists()
    return None


def refs_in(text: str) -> list[tuple[str, bool]]:
    """Backticked references in ``text``, each with whether its item is marked pending."""
    out = []
    for item in re.split(r"\s·\s|;\s|\n\|", text):
        pending = PENDING in " ".join(item.split())
        out += [(ref, pending) for ref in re.findall(r"`([^`]+)`", item)]
    return out


def test_every_question_has_an_answer_and_a_runnable_see_it():
    """Q1–Q50 appear once each, in order, with an answer and at least one existing reference."""
    found = sections()
    assert sorted(found) == list(range(1, 51))
    problems = []
    for n, body in found.items():
        if not body.split("**Answer.**", 1)[-1].split("**See it.**")[0].strip():
            problems.append(f"Q{n}: no answer")
        see = paragraph(body, "See it")
        checked = [(r, check_ref(r)) for r, pending in refs_in(see) if not pending]
        checked = [(r, ok) for r, ok in checked if ok is not None]
        if not checked:
            problems.append(f"Q{n}: no checkable reference outside pending items")
        problems += [f"Q{n}: missing {r}" for r, ok in checked if not ok]
    assert problems == []


def test_every_non_pending_reference_in_the_doc_exists():
    """Tests, files, commands and make targets quoted anywhere (outside pending items) exist."""
    missing = [r for r, pending in refs_in(TEXT) if not pending and check_ref(r) is False]
    assert missing == []


def test_every_erratum_cites_evidence():
    """Each erratum names a test that exists, or says plainly that it is only cited."""
    errata = re.findall(r"\*\*Erratum (E\d+)\.\*\*(.*?)(?:\n\n|\Z)", TEXT, re.DOTALL)
    assert len(errata) >= 10
    for name, body in errata:
        tests = [r for r in re.findall(r"`([^`]+::[^`]+)`", body) if check_ref(r)]
        assert (
            tests
            or "Not\ndemonstrated here" in body
            or "Not demonstrated here" in body
            or ("reference run" in body)
        ), f"{name} cites no evidence"
    table = TEXT.split("## Errata at a glance")[1]
    assert {f"E{i}" for i in range(1, len(errata) + 1)} <= set(re.findall(r"\| (E\d+) \|", table))


def test_every_task_has_code_a_proving_test_and_a_way_to_try_it():
    """T1–T10 each map to code, an existing test, and something to run."""
    rows = re.findall(r"^\| T(\d+) ([^|]+)\|([^|]+)\|([^|]+)\|([^|]+)\|$", TEXT, re.M)
    assert [int(r[0]) for r in rows] == list(range(1, 11))
    for n, _name, code, test, try_it in rows:
        assert any(check_ref(r) for r in re.findall(r"`([^`]+)`", test)), f"T{n}: no test"
        assert any(check_ref(r) for r, p in refs_in(code) if not p), f"T{n}: no code"
        assert re.findall(r"`([^`]+)`", try_it), f"T{n}: nothing to try"


def test_figures_are_generated_and_up_to_date():
    """The fig blocks equal what experiments.docfigures renders from the committed results."""
    assert "<!-- fig " in TEXT
    assert docfigures_main([str(DOC), "--results", str(ROOT / "results"), "--check"]) == 0


def test_readme_figures_are_up_to_date():
    """The README's reference tables equal what docfigures renders from results/REFERENCE."""
    readme = ROOT / "README.md"
    assert "<!-- fig " in readme.read_text()
    assert docfigures_main([str(readme), "--results", str(ROOT / "results"), "--check"]) == 0


def doctest_commands() -> list[str]:
    blocks = re.findall(r"<!-- doctest -->\n```sh\n(.*?)```", TEXT, re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_doctest_blocks_exist_and_name_real_subcommands():
    """The doc quotes runnable explain commands, all known to the CLI parser."""
    commands = doctest_commands()
    assert len(commands) >= 4
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for line in commands:
        words = shlex.split(line)
        assert words[:2] == ["pushlab", "explain"]
        parser.parse_args(words[2:])


@pytest.mark.parametrize("line", doctest_commands())
def test_doctest_commands_run_against_a_live_server(line, serve, settings):
    """Each quoted command exits 0 and prints something against a real server."""
    server = serve(settings.replace(ticker_rate=20.0))
    words = shlex.split(line.replace("http://127.0.0.1:8000", server.url))
    assert words[0] == "pushlab"
    proc = subprocess.run(
        [sys.executable, "-m", "pushlab.cli", *words[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
