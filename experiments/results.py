"""Results folders: ``results/<UTC timestamp>_<name>/`` with meta, summaries, raw samples, figures.

Layout (see results/README.md)::

    meta.json        parameters, settings, machine, git commit, start/end times
    summary.json     {"cells": [ {cell parameters + measured figures}, ... ]}
    summary.csv      the same cells, flat, one row each
    raw/             raw samples (git-ignored)
    figures/         PNGs made by plotting code from the files above
    report.md        generated from summary.json

Cells are written as soon as each finishes, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import csv
import json
import re
import time
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments.machine import machine_info
from experiments.records import (
    CELL_KINDS,
    DERIVED_ROWS,
    BenchCell,
    BenchMeta,
    R,
    RecordError,
    RttCell,
    RunMeta,
    check,
)

# ``ResultsDir.create`` adds ``-N`` when two runs of one name start in the same second.
_SUFFIX = re.compile(r"-\d+$")


def _utc_stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


@dataclass
class ResultsDir:
    """A results folder being written."""

    path: Path
    cells: list[Mapping[str, object]] = field(default_factory=list)
    # Read once, at the first write: the machine as the run found it (a later write would
    # record the load the run itself put on the machine as the load "when the run started").
    machine: dict[str, object] = field(default_factory=dict)

    @classmethod
    def create(cls, name: str, root: Path | str = "results") -> ResultsDir:
        """A new, empty folder ``<root>/<timestamp>_<name>``."""
        path = Path(root) / f"{_utc_stamp()}_{name}"
        suffix = 1
        while path.exists():
            suffix += 1
            path = Path(root) / f"{_utc_stamp()}_{name}-{suffix}"
        (path / "raw").mkdir(parents=True)
        (path / "figures").mkdir()
        return cls(path)

    def write_meta(self, params: Mapping[str, object], **extra: object) -> None:
        """Parameters of the run plus machine facts; call again to update (e.g. end time)."""
        self.machine = self.machine or machine_info()
        meta = {"params": params, "machine": self.machine, "written_at": time.time(), **extra}
        _write_json(self.path / "meta.json", meta)

    def add_cell(self, cell: Mapping[str, object]) -> None:
        """Record one finished cell (flat dict of parameters and figures; see records.py)."""
        self.cells.append(cell)
        _write_json(self.path / "summary.json", {"cells": self.cells})
        keys: list[str] = []
        for c in self.cells:
            keys.extend(k for k in c if k not in keys)
        with open(self.path / "summary.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            for c in self.cells:
                writer.writerow({k: _flat(v) for k, v in c.items()})

    def raw(self, name: str) -> Path:
        """Path for a raw-sample file (kept out of git)."""
        return self.path / "raw" / name

    def figure(self, name: str) -> Path:
        """Path for a figure."""
        return self.path / "figures" / name


def load(path: Path | str) -> tuple[BenchMeta, list[BenchCell]]:
    """``(meta, cells)`` of a saved bench run (``pushlab bench``), keys checked."""
    return _meta(Path(path), BenchMeta), load_cells(path, BenchCell)


def load_rtt(path: Path | str) -> tuple[RunMeta, list[RttCell]]:
    """``(meta, cells)`` of a saved ``pushlab rtt`` run, keys checked."""
    return load_as(path, RttCell)


def load_as(path: Path | str, cell: type[R]) -> tuple[RunMeta, list[R]]:
    """``(meta, cells)`` of a saved run of another experiment, each cell checked as ``cell``."""
    return _meta(Path(path), RunMeta), load_cells(path, cell)


def load_cells(path: Path | str, cell: type[R]) -> list[R]:
    """The cells of ``summary.json`` (none when it is not written yet), checked as ``cell``."""
    summary = Path(path) / "summary.json"
    if not summary.exists():
        return []
    raw = json.loads(summary.read_text())
    if not isinstance(raw, dict) or set(raw) != {"cells"}:
        raise RecordError(f'{summary}: expected {{"cells": [...]}}')
    return [
        check(_record_for(cell, c), c, f"{summary}: cell {i}") for i, c in enumerate(raw["cells"])
    ]


def _record_for(cell: type[R], row: object) -> type[R]:
    """The record a saved row is checked as: a bench run's derived rows (a capacity run's knees
    and ceiling) carry their own keys, named by their ``kind`` (records.DERIVED_ROWS)."""
    kind = row.get("kind") if isinstance(row, dict) else None
    if cell is BenchCell and isinstance(kind, str) and kind in DERIVED_ROWS:
        # Readers select derived rows by "kind" and read them as mappings, never as bench cells.
        return typing.cast(type[R], DERIVED_ROWS[kind])
    return cell


def load_checked(path: Path | str) -> tuple[Mapping[str, object], Sequence[Mapping[str, object]]]:
    """Any saved run, checked as the record its folder name says (:func:`cell_record`)."""
    p = Path(path)
    cell = CELL_KINDS.get(run_name(p))
    return load(p) if cell is None else load_as(p, cell)


def cell_record(path: Path | str) -> type[Mapping[str, object]]:
    """The record of a folder's cells: by its name (:data:`records.CELL_KINDS`), else a bench."""
    return CELL_KINDS.get(run_name(Path(path)), BenchCell)


def run_name(path: Path) -> str:
    """``quick`` of ``results/20261126T104925Z_quick-2``."""
    return _SUFFIX.sub("", path.name.split("_", 1)[-1])


def _meta(folder: Path, meta: type[R]) -> R:
    path = folder / "meta.json"
    return check(meta, json.loads(path.read_text()), str(path))


def latest(root: Path | str = "results", name: str | None = None) -> Path | None:
    """The newest results folder (optionally of one profile name)."""
    dirs = sorted(d for d in Path(root).glob("*_*") if (d / "meta.json").exists())
    if name is not None:
        dirs = [d for d in dirs if d.name.split("_", 1)[1].split("-")[0] == name]
    return dirs[-1] if dirs else None


def _flat(value: object) -> object:
    return json.dumps(value) if isinstance(value, dict | list | tuple) else value


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)
