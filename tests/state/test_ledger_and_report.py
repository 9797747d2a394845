"""The ledger's batching and the usage report's query, grouping and rendering."""

import csv
import io
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.state import report
from proxy.state.ledger import Ledger
from proxy.state.sqlite import FILE_NAME, SqliteStore
from proxy.state.store import UsageFilter, UsageRow
from tests.state.stores import NOW

names = st.sampled_from(["a", "b", "c"])
rows = st.builds(
    UsageRow,
    key=names,
    alias=names,
    backend=names,
    day=st.sampled_from(["2027-01-14", "2027-01-15"]),
    requests=st.integers(0, 100),
    input_tokens=st.integers(0, 10**6),
    output_tokens=st.integers(0, 10**6),
    cached_tokens=st.integers(0, 10**3),
    cost=st.integers(0, 10**6).map(lambda n: n / 1000),
    errors=st.integers(0, 5),
)


@given(st.lists(rows, max_size=30), st.sampled_from(report.GROUPS))
def test_every_grouping_sums_to_the_same_total(found: list[UsageRow], by: report.Group) -> None:
    grouped = report.group(found, by)
    for name in ("requests", "input_tokens", "output_tokens", "errors"):
        assert sum(int(g[name]) for g in grouped) == sum(getattr(r, name) for r in found)
    assert sum(float(g["cost"]) for g in grouped) == pytest.approx(sum(r.cost for r in found))
    labels = [tuple(g[c] for c in report._COLUMNS[by]) for g in grouped]
    assert labels == sorted(set(labels))


@given(st.lists(rows, max_size=20), st.sampled_from(report.GROUPS))
def test_json_csv_and_table_carry_the_same_numbers(found: list[UsageRow], by: report.Group) -> None:
    q = report.UsageQuery(UsageFilter(), by, "json")
    kind, body = report.render(found, q)
    doc = msgspec.json.decode(body)
    assert kind == "application/json" and doc["group"] == by
    assert doc["rows"] == report.group(found, by)
    assert doc["total"]["requests"] == sum(r.requests for r in found)
    kind, body = report.render(found, q._replace(format="csv"))
    table = list(csv.reader(io.StringIO(body.decode())))
    assert kind.startswith("text/csv") and len(table) == 1 + len(doc["rows"])
    assert [int(line[table[0].index("requests")]) for line in table[1:]] == [
        r["requests"] for r in doc["rows"]
    ]
    kind, body = report.render(found, q._replace(format="table"))
    assert kind.startswith("text/plain") and body.decode() == report.table(found, by)
    text = report.table(found, by)
    assert text.splitlines()[-1].split()[0] == "total"
    assert str(doc["total"]["requests"]) in text.splitlines()[-1].split()


def test_query_parameters_are_checked() -> None:
    q = report.parse_query(
        {"key": "team", "from": "2027-01-01", "to": "2027-01-31", "group": "day"}
    )
    assert q == report.UsageQuery(UsageFilter("team", None, "2027-01-01", "2027-01-31"), "day")
    assert report.parse_query({"format": "csv"}).format == "csv"
    for params, fragment in [
        ({"from": "yesterday"}, "from must be a date"),
        ({"from": "2027-02-01", "to": "2027-01-01"}, "is after"),
        ({"group": "backend"}, "group must be"),
        ({"format": "xml"}, "format must be"),
        ({"user": "x"}, "unknown parameter 'user'"),
    ]:
        with pytest.raises(ValueError, match=fragment):
            report.parse_query(params)


async def test_the_ledger_batches_requests_into_one_row_per_day(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / FILE_NAME)
    try:
        ledger = Ledger(store)
        for i in range(50):
            ledger.add(
                key="team", alias="m", backend="b", now=NOW + i * 3600, input_tokens=10,
                output_tokens=5, cached_tokens=2, cost=0.01, error=i % 10 == 0,
            )  # fmt: skip
        assert len(ledger.pending) == 3  # 50 hours from 08:00 span three UTC days
        assert await ledger.flush() and not ledger.pending
        found = await store.usage(UsageFilter(key="team"))
        assert [r.day for r in found] == ["2027-01-15", "2027-01-16", "2027-01-17"]
        assert sum(r.requests for r in found) == 50 and sum(r.errors for r in found) == 5
        assert sum(r.output_tokens for r in found) == 250
        assert sum(r.cost for r in found) == pytest.approx(0.5)
    finally:
        await store.close()


async def test_a_full_ledger_drops_new_rows_but_still_counts_known_ones(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / FILE_NAME)
    try:
        ledger = Ledger(store, max_rows=2)
        for alias in ("m1", "m2", "m3", "m1"):
            ledger.add(key="k", alias=alias, backend="b", now=NOW)
        assert {r.alias: r.requests for r in ledger.pending.values()} == {"m1": 2, "m2": 1}
        assert ledger.dropped == 1
    finally:
        await store.close()
