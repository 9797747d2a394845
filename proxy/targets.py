"""Per-target circuit state, bounded: the table every worker keeps across reloads.

Targets named in the config are few and fixed; targets expanded from a glob alias (`up/*`
serves whatever model name a client sends) are as many as clients invent. So the table
pins the config's fixed targets and keeps at most `limit` others: inserting one more evicts
the oldest other target whose circuit holds nothing worth keeping (closed, no failures, no
request in flight), else the oldest other target. An evicted target starts again closed.
Pure: no clock, no I/O; a `dict`, so the request path uses it as one.
"""

from collections.abc import Iterable

from proxy.resilience import Circuit
from proxy.routing import TargetKey

GLOB_TARGETS = 256  # circuits kept for targets expanded from glob aliases


def idle(circuit: Circuit) -> bool:
    """Nothing to lose: a fresh circuit would behave the same (but for its latency EWMA)."""
    return circuit.open_until == 0.0 and circuit.failures == 0 and circuit.in_flight == 0


class CircuitTable(dict[TargetKey, Circuit]):
    """`dict` of circuits whose unpinned entries are bounded (see the module docstring).

    Only `table[key] = circuit` of a new key evicts; lookups cost what a dict's do.
    """

    def __init__(self, limit: int = GLOB_TARGETS) -> None:
        super().__init__()
        self.limit = limit
        self.pinned: frozenset[TargetKey] = frozenset()

    def pin(self, keys: Iterable[TargetKey]) -> None:
        """The config's fixed targets (after each load); the rest are bounded."""
        self.pinned = frozenset(keys)
        while self._evict(None):
            pass

    def __setitem__(self, key: TargetKey, circuit: Circuit) -> None:
        new = key not in self
        super().__setitem__(key, circuit)
        if new and key not in self.pinned:
            self._evict(key)

    def _evict(self, keep: TargetKey | None) -> bool:
        """Drop one unpinned entry (never `keep`) if over the limit; whether one was dropped."""
        others = 0
        first: TargetKey | None = None
        victim: TargetKey | None = None
        for k, c in self.items():
            if k in self.pinned:
                continue
            others += 1
            if k == keep:
                continue
            if first is None:
                first = k
            if victim is None and idle(c):
                victim = k
        if others <= self.limit or first is None:
            return False
        del self[victim if victim is not None else first]
        return True
