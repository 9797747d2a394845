"""The usage ledger's read side, pure: query parameters in, grouped rows, rendered out.

`GET /admin/usage?key=&model=&from=&to=&group=day|key|model&format=json|csv` and
`llm-proxy usage` share these: `parse_query` validates the parameters (ValueError with a
message for a 400), the store reads the rows matching `query.where`, `group` sums them,
and `render` / `table` write them. Totals are sums of the ledger's rows, never estimates.
"""

import csv
import datetime
import io
from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple

import msgspec

from proxy.state.store import UsageFilter, UsageRow

Group = Literal["day", "key", "model", "none"]
Format = Literal["json", "csv", "table"]
GROUPS: tuple[Group, ...] = ("day", "key", "model", "none")
FORMATS: tuple[Format, ...] = ("json", "csv", "table")
COUNTS = ("requests", "input_tokens", "output_tokens", "cached_tokens", "cost", "errors")
_COLUMNS: dict[Group, tuple[str, ...]] = {
    "day": ("day",),
    "key": ("key",),
    "model": ("model",),
    "none": ("day", "key", "model", "backend"),
}


class UsageQuery(NamedTuple):
    where: UsageFilter
    group: Group = "none"
    format: Format = "json"


def _day(name: str, value: str) -> str:
    try:
        return datetime.date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValueError(f"{name} must be a date like 2026-01-31, got {value[:40]!r}") from None


def parse_query(params: Mapping[str, str], default_format: Format = "json") -> UsageQuery:
    """The query in `params` (`key`, `model`, `from`, `to`, `group`, `format`)."""
    unknown = sorted(set(params) - {"key", "model", "from", "to", "group", "format"})
    if unknown:
        raise ValueError(
            f"unknown parameter {unknown[0]!r}; use key, model, from, to, group, format"
        )
    first = _day("from", params["from"]) if params.get("from") else None
    last = _day("to", params["to"]) if params.get("to") else None
    if first and last and first > last:
        raise ValueError(f"from ({first}) is after to ({last})")
    group = params.get("group") or "none"
    if group not in GROUPS:
        raise ValueError(f"group must be one of day, key, model; got {group[:40]!r}")
    fmt = params.get("format") or default_format
    if fmt not in FORMATS:
        raise ValueError(f"format must be json, csv or table; got {fmt[:40]!r}")
    where = UsageFilter(params.get("key") or None, params.get("model") or None, first, last)
    return UsageQuery(where, group, fmt)


def _label(row: UsageRow, column: str) -> str:
    return {"day": row.day, "key": row.key, "model": row.alias, "backend": row.backend}[column]


def group(rows: Sequence[UsageRow], by: Group) -> list[dict[str, str | int | float]]:
    """One dict per group (its label columns, then the summed counts), sorted by label."""
    columns = _COLUMNS[by]
    sums: dict[tuple[str, ...], list[float]] = {}
    for row in rows:
        label = tuple(_label(row, c) for c in columns)
        acc = sums.setdefault(label, [0.0] * len(COUNTS))
        for i, name in enumerate(COUNTS):
            acc[i] += getattr(row, name)
    out: list[dict[str, str | int | float]] = []
    for label, acc in sorted(sums.items()):
        item: dict[str, str | int | float] = dict(zip(columns, label, strict=True))
        for name, value in zip(COUNTS, acc, strict=True):
            item[name] = round(value, 6) if name == "cost" else int(value)
        out.append(item)
    return out


def total(rows: Sequence[UsageRow]) -> dict[str, int | float]:
    grouped = group([msgspec.structs.replace(r, day="") for r in rows], "day")
    if not grouped:
        return {name: 0.0 if name == "cost" else 0 for name in COUNTS}
    return {name: grouped[0][name] for name in COUNTS}  # type: ignore[misc]


def render(rows: Sequence[UsageRow], query: UsageQuery) -> tuple[str, bytes]:
    """(content type, body): JSON `{group, from, to, rows, total}`, CSV, or the text table."""
    if query.format == "table":
        return "text/plain; charset=utf-8", table(rows, query.group).encode()
    grouped = group(rows, query.group)
    if query.format == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        columns = (*_COLUMNS[query.group], *COUNTS)
        writer.writerow(columns)
        for item in grouped:
            writer.writerow([item[c] for c in columns])
        return "text/csv; charset=utf-8", out.getvalue().encode()
    body = {
        "group": query.group,
        "from": query.where.first,
        "to": query.where.last,
        "rows": grouped,
        "total": total(rows),
    }
    return "application/json", msgspec.json.encode(body)


def table(rows: Sequence[UsageRow], by: Group) -> str:
    """The same numbers as an aligned text table, a total line last (for the CLI)."""
    grouped = group(rows, by)
    columns = (*_COLUMNS[by], *COUNTS)
    cells = [list(columns)] + [[_cell(item[c]) for c in columns] for item in grouped]
    sums = total(rows)
    cells.append(["total", *[""] * (len(_COLUMNS[by]) - 1), *[_cell(sums[c]) for c in COUNTS]])
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = []
    for row in cells:
        labels = len(_COLUMNS[by])
        parts = [
            c.ljust(w) if i < labels else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines) + "\n"


def _cell(value: str | int | float) -> str:
    return f"{value:.6f}" if isinstance(value, float) else str(value)
