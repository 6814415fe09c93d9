"""Run Autobahn|Testsuite's fuzzing client against ``WS /echo`` and summarise the verdicts.

Usage::

    python conformance/run.py --scope quick                    # cases 1-7 and 10, ~10-20 s
    python conformance/run.py --scope close                    # section 7 (closing), ~7 s
    python conformance/run.py --ws websockets-sansio --scope full   # all 517 cases, ~12 min
    WEBSOCKETS_MAX_FRAGMENTS=100000 python conformance/run.py --ws websockets \
        --scope fragmented --suffix -max-fragments-100000          # the 9.3/9.4 experiment

``--ws`` defaults to what ``pushlab serve`` uses. Starts ``python -m servers`` (what ``pushlab
serve`` runs: ``servers.runner.build_config`` and ``PushlabServer``) through ``servers.launch``,
the bench's launcher, with that implementation on a free port, writes ``spec.json``, runs
``wstest -m fuzzingclient`` under a hard timeout, parses the report's ``index.json`` and writes
``<out>/<ws>-<scope>.json``: counts per verdict, per verdict and section, and every case that is
not plain OK with what Autobahn said about it. The HTML/JSON report itself goes to
``<out>/raw/`` (git-ignored). Exit status 1 when any case FAILED.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

from experiments.children import python_server_args  # noqa: E402
from experiments.machine import machine_info  # noqa: E402
from feed.settings import WS_IMPLS, Settings  # noqa: E402
from servers.launch import ServerProcess  # noqa: E402

# Sections 9 (big/fragmented messages) and 12-13 (permessage-deflate) take almost all the time.
SCOPES: dict[str, tuple[list[str], list[str]]] = {
    "quick": (["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*"], []),
    # Closing handshake (the section of 7.1.5), ~5 s.
    "close": (["7.*"], []),
    "full": (["*"], []),
    # Everything but permessage-deflate (12-13), which takes most of a full run's time.
    "no-compression": (["*"], ["12.*", "13.*"]),
    # The fragmentation cases the legacy implementation fails (docs/conformance.md).
    "fragmented": (["9.3.*", "9.4.*"], []),
}
# 9.x sends messages up to 16 MiB: the echo must accept them for the cases to mean anything.
CONFORMANCE_MAX_SIZE = 16 * 1024 * 1024
VERDICTS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
# What `pushlab serve` uses unless told otherwise.
DEFAULT_WS = Settings().ws_impl


@contextlib.contextmanager
def echo_server(ws: str, log: Path) -> Iterator[str]:
    """``python -m servers`` on a free loopback port, as ``pushlab serve`` would run it, with
    ``ws_impl=ws``, permessage-deflate offered (sections 12-13) and messages up to 16 MiB; yields
    its ``ws://`` base URL and stops it (by its process group) afterwards."""
    args = python_server_args(rate=0, size=64, topic="ticks") + ["--ws-impl", ws, "--compression"]
    env = {"PUSHLAB_WS_MAX_MESSAGE_BYTES": str(CONFORMANCE_MAX_SIZE)}
    with ServerProcess(env=env, args=args, log_path=log) as server:
        yield server.ws_url


def wstest_path() -> Path:
    """wstest from the git-ignored install; runs ``conformance/setup.sh`` when missing."""
    path = ROOT / ".conformance" / "py27" / "bin" / "wstest"
    if not path.exists():
        subprocess.run([str(ROOT / "conformance" / "setup.sh")], check=True, stdout=sys.stderr)
    return path


def case_key(case_id: str) -> tuple[int, ...]:
    """Numeric sort key of ``"9.3.10"``."""
    return tuple(int(p) for p in case_id.split("."))


def summarise(index: dict[str, Any], report_dir: Path) -> dict[str, Any]:
    """Counts per verdict and section, plus details of every case that is not OK/OK."""
    (agent,) = index.values()
    counts: Counter[str] = Counter()
    close_counts: Counter[str] = Counter()
    by_section: dict[str, Counter[str]] = defaultdict(Counter)
    ms_by_section: Counter[str] = Counter()
    notable = []
    for case_id in sorted(agent, key=case_key):
        result = agent[case_id]
        verdict, close = result["behavior"], result["behaviorClose"]
        counts[verdict] += 1
        close_counts[close] += 1
        by_section[case_id.split(".")[0]][verdict] += 1
        ms_by_section[case_id.split(".")[0]] += result.get("duration") or 0
        if verdict != "OK" or close not in ("OK", "INFORMATIONAL"):
            notable.append(_details(case_id, result, report_dir))
    return {
        "cases": sum(counts.values()),
        "verdicts": {v: counts.get(v, 0) for v in VERDICTS},
        "close_verdicts": dict(sorted(close_counts.items())),
        "by_section": {s: dict(sorted(by_section[s].items())) for s in sorted(by_section, key=int)},
        # Autobahn's own per-case durations: where the time of a run goes (sections 12-13).
        "case_ms_by_section": {s: ms_by_section[s] for s in sorted(by_section, key=int)},
        "not_ok": notable,
    }


def _details(case_id: str, result: dict[str, Any], report_dir: Path) -> dict[str, Any]:
    out = {
        "case": case_id,
        "behavior": result["behavior"],
        "behaviorClose": result["behaviorClose"],
        "remoteCloseCode": result.get("remoteCloseCode"),
        "duration_ms": result.get("duration"),
    }
    report = report_dir / result.get("reportfile", "")
    if report.is_file():
        full = json.loads(report.read_text())
        out["description"] = full.get("description")
        out["result"] = full.get("result")
        out["resultClose"] = full.get("resultClose")
    return out


def run(ws: str, scope: str, out: Path, timeout_s: float, suffix: str = "") -> dict[str, Any]:
    """One fuzzing run; returns (and writes) the summary ``<out>/<ws>-<scope><suffix>.json``."""
    cases, excluded = SCOPES[scope]
    raw = out / "raw" / f"{ws}-{scope}{suffix}"
    raw.mkdir(parents=True, exist_ok=True)
    wstest = wstest_path()
    log = raw / "server.log"
    log.unlink(missing_ok=True)  # this run's log only (ServerProcess appends)
    started = time.time()
    with echo_server(ws, log) as ws_url:
        agent = f"pushlab-uvicorn-{ws}"
        spec = {
            "outdir": str(raw / "report"),
            "servers": [{"agent": agent, "url": f"{ws_url}/echo"}],
            "cases": cases,
            "exclude-cases": excluded,
            "exclude-agent-cases": {},
        }
        (raw / "spec.json").write_text(json.dumps(spec, indent=2))
        with open(raw / "wstest.log", "wb") as wlog:
            subprocess.run(
                [str(wstest), "-m", "fuzzingclient", "-s", "spec.json"],
                cwd=raw,
                stdout=wlog,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
                check=True,
            )
    index_path = raw / "report" / "index.json"
    if not index_path.exists():  # wstest exits 0 on SIGTERM without writing its report
        raise RuntimeError(f"wstest wrote no report (interrupted?); see {raw / 'wstest.log'}")
    index = json.loads(index_path.read_text())
    summary = {
        "ws": ws,
        "scope": scope,
        "cases_spec": cases,
        "exclude_cases": excluded,
        "ws_max_size": CONFORMANCE_MAX_SIZE,
        "per_message_deflate": True,
        "server": "python -m servers (pushlab serve)",
        # Library knobs read from the environment (e.g. WEBSOCKETS_MAX_FRAGMENTS) shape verdicts.
        "env": {k: v for k, v in os.environ.items() if k.startswith(("WEBSOCKETS_", "PUSHLAB_"))},
        "duration_s": round(time.time() - started, 1),
        "machine": machine_info(),
        **summarise(index, raw / "report"),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{ws}-{scope}{suffix}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def resummarise(path: Path) -> dict[str, Any]:
    """Rebuild a saved summary from its raw report (after the parser changed); keeps run facts."""
    old = json.loads(path.read_text())
    raw = path.parent / "raw" / path.stem / "report"
    index = json.loads((raw / "index.json").read_text())
    summary = {**old, **summarise(index, raw)}
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    """CLI; prints the verdict counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ws", choices=WS_IMPLS, default=DEFAULT_WS)
    parser.add_argument("--scope", choices=sorted(SCOPES), default="quick")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "conformance")
    parser.add_argument("--timeout", type=float, help="hard limit for wstest, s")
    parser.add_argument("--suffix", default="", help="appended to the summary's file name")
    parser.add_argument("--resummarise", type=Path, help="rebuild this summary JSON from raw/")
    args = parser.parse_args(argv)
    if args.resummarise:
        print(json.dumps(resummarise(args.resummarise)["verdicts"]))
        return 0
    timeout = args.timeout or (120.0 if args.scope == "quick" else 1800.0)
    summary = run(args.ws, args.scope, args.out, timeout, args.suffix)
    print(json.dumps({k: summary[k] for k in ("ws", "scope", "cases", "verdicts", "duration_s")}))
    for case in summary["not_ok"]:
        print(f"  {case['case']}: {case['behavior']}/{case['behaviorClose']}", file=sys.stderr)
    return 1 if summary["verdicts"]["FAILED"] else 0


if __name__ == "__main__":
    sys.exit(main())
