"""The lab's CPU reading: nanosecond resolution, exited threads counted, trees summed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from experiments.cpuclock import process_cpu_ns, process_cpu_s, tree_cpu_s

# A child that burns CPU on command: "main S" on its main thread, "thread S" on a thread that then
# exits, "child S" in a grandchild that then waits; it answers "ok" when the work is done.
_CHILD = r"""
import subprocess, sys, threading, time

def burn(s):
    end = time.thread_time() + s
    while time.thread_time() < end:
        pass

kids = []
for line in sys.stdin:
    what, s = line.split()
    if what == "main":
        burn(float(s))
    elif what == "thread":
        t = threading.Thread(target=burn, args=(float(s),))
        t.start()
        t.join()
    elif what == "child":
        code = f"import sys, time\nend = time.thread_time() + {s}\n"
        code += "while time.thread_time() < end: pass\nprint('ok', flush=True)\nsys.stdin.read()"
        kid = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
        assert kid.stdout.readline() == "ok\n"
        kids.append(kid)
    print("ok", flush=True)
"""


class Burner:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def burn(self, what: str, seconds: float) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{what} {seconds}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "ok\n"


@pytest.fixture
def burner() -> Iterator[Burner]:
    b = Burner()
    try:
        b.burn("main", 0)  # started and answering
        yield b
    finally:
        with b.proc:  # closes the pipes and waits; the grandchild's stdin closes with its parent
            assert b.proc.stdin is not None
            b.proc.stdin.close()


def test_two_milliseconds_of_cpu_read_in_nanoseconds(burner: Burner):
    """Clock ticks (psutil's cpu_times) would read 0 or a multiple of 10 ms here."""
    before = process_cpu_ns(burner.proc.pid)
    burner.burn("main", 0.002)
    spent = process_cpu_ns(burner.proc.pid) - before
    assert spent >= 2_000_000
    assert spent % 10_000_000 != 0, spent


def test_a_thread_that_exited_still_counts(burner: Burner):
    """Summing /proc/PID/task/*/schedstat would lose it: the thread is no longer listed."""
    before = process_cpu_s(burner.proc.pid)
    burner.burn("thread", 0.03)
    assert process_cpu_s(burner.proc.pid) - before >= 0.03


def test_a_tree_sums_its_descendants(burner: Burner):
    pid = burner.proc.pid
    before, own_before = tree_cpu_s(pid), process_cpu_s(pid)
    burner.burn("child", 0.03)
    assert tree_cpu_s(pid) - before >= 0.03 + (process_cpu_s(pid) - own_before)


def test_a_process_that_is_gone_is_a_lookup_error():
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait(10)
    with pytest.raises(ProcessLookupError):
        process_cpu_ns(proc.pid)
    with pytest.raises(ProcessLookupError):
        tree_cpu_s(proc.pid)
