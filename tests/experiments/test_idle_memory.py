"""experiments/idle_memory.py: who allocated, per package."""

import tracemalloc

from experiments import idle_memory
from experiments.idle_memory import by_package, package_of, tracked_growth


def test_package_of_names_the_library_the_stdlib_module_or_the_project_folder():
    assert package_of("/v/lib/python3.11/site-packages/anyio/_backends/_asyncio.py") == "anyio"
    assert package_of("/v/lib/python3.11/site-packages/typing_extensions.py") == (
        "typing_extensions"
    )
    assert package_of(str(idle_memory.STDLIB / "asyncio" / "locks.py")) == "stdlib asyncio"
    assert package_of(str(idle_memory.STDLIB / "contextlib.py")) == "stdlib contextlib"
    assert package_of(str(idle_memory.PROJECT / "servers" / "sse.py")) == "pushlab servers"
    assert package_of("<frozen abc>") == "<frozen abc>"


def test_by_package_sums_what_this_file_keeps():
    kept: list[bytearray] = []
    growth = tracked_growth(lambda: kept.extend(bytearray(1000) for _ in range(100)))
    sizes = {name: (size, count) for name, size, count in by_package(growth)}
    size, count = sizes["pushlab tests"]
    assert size >= 100_000 and count >= 100
    assert not tracemalloc.is_tracing()
