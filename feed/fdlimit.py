"""Open-file limit: a server or load generator holding 10,000 sockets needs more than 1,024."""

from __future__ import annotations

import resource


def raise_nofile() -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit; returns the new soft limit.

    Only the soft limit moves (no privileges needed); the hard limit is whatever the shell or
    service manager gave the process (``ulimit -Hn``).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target
