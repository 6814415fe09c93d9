"""Every erratum quotes the seed, and every quote is verbatim in tests/docs/seed.md."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "interview-prep.md").read_text()
SEED = (Path(__file__).parent / "seed.md").read_text()


def squash(text: str) -> str:
    """Whitespace-insensitive: the seed's tabs, indents and line breaks are not part of a claim."""
    return " ".join(text.split())


def errata() -> list[tuple[str, str]]:
    return re.findall(r"\*\*Erratum (E\d+)\.\*\*(.*?)(?:\n\n|\Z)", DOC, re.DOTALL)


def test_every_erratum_quotes_the_seed_verbatim():
    """Each erratum holds at least one “quote”, and each quote appears in tests/docs/seed.md."""
    seed = squash(SEED)
    problems = []
    for name, body in errata():
        quotes = re.findall(r"“([^”]+)”", body)
        if not quotes:
            problems.append(f"{name}: no quote of the seed")
        problems += [f"{name}: not in the seed: {q!r}" for q in quotes if squash(q) not in seed]
    assert problems == []


def test_the_seed_has_all_fifty_questions_and_ten_tasks():
    """tests/docs/seed.md is the whole seed: Q.1 to Q.50 and Task 1 to Task 10, in order."""
    questions = [int(n) for n in re.findall(r"^### Q\.\s?(\d+)\s?\)", SEED, re.M)]
    tasks = [int(n) for n in re.findall(r"^### Task (\d+):", SEED, re.M)]
    assert questions == list(range(1, 51)) and tasks == list(range(1, 11))
