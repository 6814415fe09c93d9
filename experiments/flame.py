"""Top self-time functions of a py-spy ``--format raw`` profile, as a markdown table.

    py-spy record -p PID -d 8 -r 200 -f raw -o prof.txt --nonblocking
    python -m experiments.flame prof.txt [more.txt ...] [--top 15]

Self time is the innermost Python frame of each sample, summed per function (lines merged).
Native code (a ``send`` syscall inside ``transport.write``) is charged to the Python frame that
called it, so ``...send`` rows include the kernel's loopback TCP work.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"\s*\(([^)]*?):\d+\)$")


def self_shares(path: Path) -> tuple[int, Counter[str]]:
    """Total samples and self samples per ``function (file)``."""
    total, shares = 0, Counter[str]()
    for line in path.read_text().splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = stack.split(";")[-1]
        # "send (uvicorn/protocols/.../impl.py:506)" -> "send (.../impl.py)"
        name = _LINE.sub(lambda m: f" ({m.group(1).split('site-packages/')[-1]})", leaf)
        shares[name] += int(count)
        total += int(count)
    return total, shares


def table(paths: list[Path], top: int) -> str:
    """One column of self % per profile, rows = the union of each profile's top functions."""
    data = [self_shares(p) for p in paths]
    names: list[str] = []
    for _, shares in data:
        for name, _ in shares.most_common(top):
            if name not in names:
                names.append(name)
    head = [
        "function (self time)",
        *[f"{p.stem} (n={t})" for p, (t, _) in zip(paths, data, strict=True)],
    ]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        cells = [f"{100 * s[name] / t:.1f}%" if t else "-" for t, s in data]
        out.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    print(table(args.profiles, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
