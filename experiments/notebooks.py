"""Execute the teaching notebooks and save them with their outputs (``make notebooks-run``).

The notebooks are committed executed, so GitHub or any viewer shows their tables and figures. They
read frozen inputs only (``notebooks/data/`` and the reference runs in ``results/REFERENCE``), so
re-running them must give the same text; ``text_outputs`` is what the test compares: stream text
and the plain, Markdown and HTML forms of every result, with images, execution counts and
object addresses left out.

    python -m experiments.notebooks            # re-execute every notebook in place
    python -m experiments.notebooks 03 06      # only those whose name starts so
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
TEXT_MIMES = ("text/plain", "text/markdown", "text/html")
ADDRESS = re.compile(r"0x[0-9a-f]{6,}")


def execute(path: Path, timeout: int = 300) -> Any:
    """``path`` run top to bottom on the ``python3`` kernel, from the notebooks folder."""
    nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return nb


def text_outputs(nb: Any) -> list[list[str]]:
    """Per code cell, the text its outputs show (what a reader reads), normalised."""
    root = str(NOTEBOOKS.parent)
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        texts = []
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                texts.append(f"{out['name']}: {out['text']}")
            elif out["output_type"] == "error":
                texts.append(f"error: {out['ename']}: {out['evalue']}")
            else:
                data = out.get("data", {})
                texts += [f"{m}: {data[m]}" for m in TEXT_MIMES if m in data]
        cells.append([ADDRESS.sub("0x…", t.replace(root, "<repo>")) for t in texts])
    return cells


def errors(nb: Any) -> list[str]:
    return [
        f"{o['ename']}: {o['evalue']}"
        for c in nb.cells
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.notebooks")
    parser.add_argument("prefixes", nargs="*", help="only notebooks whose name starts so")
    args = parser.parse_args(argv)
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    if args.prefixes:
        paths = [p for p in paths if p.name.startswith(tuple(args.prefixes))]
    for path in paths:
        nb = execute(path)
        if errs := errors(nb):
            print(f"{path.name}: {errs}", file=sys.stderr)
            return 1
        nbformat.write(nb, path)  # type: ignore[no-untyped-call]
        print(f"executed {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
