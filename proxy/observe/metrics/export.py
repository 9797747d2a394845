"""Prometheus text format (0.0.4) for this worker's dump merged with the other workers'.

Counters and histograms are summed over every dump, a dead worker's included, so totals never
go down; gauges combine (sum, max or min, per family) over live workers only. Pure: no files,
no clock.
"""

from collections.abc import Iterator

from proxy.observe.metrics.registry import BY_NAME, FAMILIES, Dump, Family, Labels

Merged = tuple[dict[str, dict[Labels, float]], dict[str, dict[Labels, list[float]]]]


def _merge(own: Dump, others: list[tuple[Dump, bool]]) -> Merged:
    scalars: dict[str, dict[Labels, float]] = {f.name: {} for f in FAMILIES}
    hists: dict[str, dict[Labels, list[float]]] = {f.name: {} for f in FAMILIES}
    for d, live in [(own, True), *others]:
        for name, rows in d.scalars.items():
            fam = BY_NAME.get(name)
            if fam is None or (fam.kind == "gauge" and not live):
                continue
            acc = scalars[name]
            for labels, v in rows:
                key = tuple(labels)
                old = acc.get(key)
                if old is None:
                    acc[key] = v
                elif fam.agg == "max":
                    acc[key] = max(old, v)
                elif fam.agg == "min":
                    acc[key] = min(old, v)
                else:
                    acc[key] = old + v
        for name, hrows in d.histograms.items():
            fam = BY_NAME.get(name)
            if fam is None:
                continue
            hacc = hists[name]
            for labels, row in hrows:
                if len(row) != len(fam.buckets) + 2:
                    continue  # written by a build with other buckets
                key = tuple(labels)
                prev = hacc.get(key)
                hacc[key] = (
                    list(row) if prev is None else [a + b for a, b in zip(prev, row, strict=True)]
                )
    return scalars, hists


def text(own: Dump, others: list[tuple[Dump, bool]]) -> str:
    """The merged families as Prometheus text; `others` pairs each dump with "worker alive"."""
    scalars, hists = _merge(own, others)
    workers = 1 + sum(live for _, live in others)
    lines: list[str] = []
    for fam in FAMILIES:
        lines.append(f"# HELP {fam.name} {fam.help}")
        lines.append(f"# TYPE {fam.name} {fam.kind}")
        if fam.kind == "histogram":
            for key, row in sorted(hists[fam.name].items()):
                lines.extend(_histogram_lines(fam, key, row))
            continue
        for key, v in sorted(scalars[fam.name].items()):
            lines.append(f"{fam.name}{_labels(fam.labels, key)} {_num(v)}")
    lines += [
        "# HELP llm_proxy_workers Worker processes reporting in this scrape.",
        "# TYPE llm_proxy_workers gauge",
        f"llm_proxy_workers {workers}",
    ]
    return "\n".join(lines) + "\n"


def _histogram_lines(fam: Family, key: Labels, row: list[float]) -> Iterator[str]:
    cumulative = 0.0
    for bound, count in zip((*fam.buckets, None), row, strict=False):  # row ends with the sum
        cumulative += count
        le = "+Inf" if bound is None else _num(bound)
        yield f"{fam.name}_bucket{_labels(fam.labels, key, le)} {_num(cumulative)}"
    yield f"{fam.name}_sum{_labels(fam.labels, key)} {_num(row[-1])}"
    yield f"{fam.name}_count{_labels(fam.labels, key)} {_num(cumulative)}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: Labels, values: Labels, le: str | None = None) -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=False)]
    if le is not None:
        parts.append(f'le="{le}"')
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(v: float) -> str:
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)
