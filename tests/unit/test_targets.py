"""proxy.targets: circuit state for glob-expanded targets stays bounded; fixed targets stay."""

from hypothesis import given
from hypothesis import strategies as st

from proxy.resilience import Circuit
from proxy.routing import TargetKey
from proxy.targets import CircuitTable

FIXED = [TargetKey("a", f"fixed-{i}") for i in range(3)]


def busy() -> Circuit:
    c = Circuit()
    c.failures = 2
    return c


@given(
    st.lists(st.tuples(st.integers(0, 40), st.booleans()), max_size=120),
    st.integers(1, 10),
)
def test_unpinned_entries_never_exceed_the_limit_and_pinned_are_never_evicted(
    inserts: list[tuple[int, bool]], limit: int
) -> None:
    table = CircuitTable(limit)
    table.pin(FIXED)
    for k in FIXED:
        table[k] = Circuit()
    for n, failing in inserts:
        key = TargetKey("up", f"rand-{n}")
        table[key] = busy() if failing else Circuit()
        assert key in table  # the one just inserted is kept
        assert sum(1 for k in table if k not in table.pinned) <= limit
        assert all(k in table for k in FIXED)


def test_idle_circuits_are_evicted_before_ones_that_remember_failures() -> None:
    table = CircuitTable(2)
    table[TargetKey("up", "failing")] = busy()
    table[TargetKey("up", "idle-1")] = Circuit()
    table[TargetKey("up", "idle-2")] = Circuit()
    assert set(table) == {TargetKey("up", "failing"), TargetKey("up", "idle-2")}


def test_pinning_a_smaller_config_trims_the_rest() -> None:
    table = CircuitTable(1)
    table.pin(FIXED)
    for k in FIXED:
        table[k] = Circuit()
    table.pin(FIXED[:1])  # a reload made two fixed targets glob-only
    assert len(table) == 2 and FIXED[0] in table


def test_five_thousand_client_names_keep_the_table_small() -> None:
    table = CircuitTable()
    for n in range(5000):
        table[TargetKey("up", f"up/rand-{n}")] = Circuit()
    assert len(table) == table.limit
