"""`LLM_PROXY__<PATH>` environment overrides, applied to the composed routes.yaml tree.

12-factor style: `LLM_PROXY__SETTINGS__TIMEOUTS__TOTAL=30s` sets `settings.timeouts.total`,
`LLM_PROXY__BACKENDS__OPENAI__BASE_URL=...` sets `backends.openai.base_url` (a double
underscore is one level of nesting). Any `settings` value may be set, and a backend's
`base_url` and `api_key`. The override replaces the value node *before* the file is read, so
it is checked exactly as the file's own value would be.

Pure: the environment is an argument; no os.environ here. Invariants: every node an override
puts in the tree carries a mark named after its variable, so a bad value is reported as
`LLM_PROXY__SETTINGS__RETRIES: expected an integer ...` rather than at a line of the file;
override values are literal (a `$` in them is not a `${VAR}` reference); the file's own
nodes are never mutated (the path down to an override is copied), so a YAML alias shared
elsewhere in the file keeps its value there.
"""

from collections.abc import Mapping
from typing import NamedTuple

import yaml

from proxy.config.yaml import Problem, is_null

PREFIX = "LLM_PROXY__"
_BACKEND_FIELDS = ("base_url", "api_key")
_MAP = "tag:yaml.org,2002:map"
_STR = "tag:yaml.org,2002:str"
_RESOLVER = yaml.resolver.Resolver()


class Override(NamedTuple):
    variable: str  # LLM_PROXY__SETTINGS__TIMEOUTS__TOTAL
    path: str  # settings.timeouts.total (a backend by its name in the file)


def mark(variable: str) -> yaml.Mark:
    """A mark that names an environment variable instead of a place in the file."""
    return yaml.Mark(variable, -1, -1, -1, None, None)  # type: ignore[arg-type]


def apply(
    root: yaml.Node, env: Mapping[str, str]
) -> tuple[yaml.Node, tuple[Override, ...], tuple[Problem, ...]]:
    """`root` with every `LLM_PROXY__` variable in `env` applied, in name order; what was
    applied; and a problem for each variable whose PATH can't be set from the environment."""
    applied: list[Override] = []
    problems: list[Problem] = []
    if not isinstance(root, yaml.MappingNode):
        return root, (), ()  # the reader reports a top level that isn't a mapping
    root = _copy(root)
    for variable in sorted(v for v in env if v.upper().startswith(PREFIX)):
        value = env[variable]
        if value == "":  # `VAR=` in a compose file or .env means "not set"
            continue
        path, error = _path(root, variable)
        if error:
            problems.append(Problem(variable, 0, 0, error))
            continue
        where = _set(root, path, _value_node(variable, value), variable)
        if where:
            problems.append(Problem(variable, 0, 0, where))
        else:
            applied.append(Override(variable, ".".join(path)))
    return root, tuple(applied), tuple(problems)


def _path(root: yaml.MappingNode, variable: str) -> tuple[list[str], str]:
    parts = [p.lower() for p in variable[len(PREFIX) :].split("__")]
    if not all(parts):
        return [], "expected LLM_PROXY__SECTION__KEY with double underscores between levels"
    if parts[0] == "settings" and len(parts) >= 2:
        return parts, ""
    if parts[0] == "backends" and len(parts) == 3 and parts[2] in _BACKEND_FIELDS:
        names = _backend_names(root)
        found = [n for n in names if _env_name(n) == parts[1]]
        if not found:
            known = ", ".join(names) or "none"
            return [], f"no backend matches {parts[1]!r} in the file (backends: {known})"
        return ["backends", found[0], parts[2]], ""
    return [], (
        "only settings values (LLM_PROXY__SETTINGS__...) and a backend's base_url or api_key "
        "(LLM_PROXY__BACKENDS__NAME__BASE_URL) can be set from the environment"
    )


def _env_name(name: str) -> str:
    """How a backend name is written in a variable name: `azure-east` is `AZURE_EAST`."""
    return "".join(c if c.isalnum() else "_" for c in name).lower()


def _backend_names(root: yaml.MappingNode) -> list[str]:
    backends = _entry(root, "backends")
    if backends is None or not isinstance(backends[1], yaml.MappingNode):
        return []
    return [k.value for k, _ in backends[1].value if isinstance(k, yaml.ScalarNode)]


def _entry(node: yaml.MappingNode, name: str) -> tuple[yaml.Node, yaml.Node] | None:
    """The node's own entry for `name` (the last one, as the reader's duplicate check sees it)."""
    found = None
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode) and key.value == name:  # `<<` is never a name here
            found = (key, value)
    return found


def _set(root: yaml.MappingNode, path: list[str], value: yaml.Node, variable: str) -> str:
    """Put `value` at `path`, copying each mapping on the way; an error message or ""."""
    node = root
    for depth, name in enumerate(path):
        entry = _entry(node, name)
        last = depth == len(path) - 1
        if last:
            child: yaml.Node = value
        elif entry is None or is_null(entry[1]):
            child = yaml.MappingNode(_MAP, [], mark(variable), mark(variable))
        elif isinstance(entry[1], yaml.MappingNode):
            child = _copy(entry[1])
        else:
            where = ".".join(path[: depth + 1])
            return f"can't set {'.'.join(path)}: {where} in the file is not a mapping"
        if entry is None:
            node.value.append((_scalar(name, variable), child))
        else:
            index = next(i for i, (k, _) in enumerate(node.value) if k is entry[0])
            node.value[index] = (entry[0], child)
        if not last:
            assert isinstance(child, yaml.MappingNode)
            node = child
    return ""


def _copy(node: yaml.MappingNode) -> yaml.MappingNode:
    return yaml.MappingNode(
        node.tag, list(node.value), node.start_mark, node.end_mark, node.flow_style
    )


def _scalar(text: str, variable: str) -> yaml.ScalarNode:
    return yaml.ScalarNode(_STR, text, mark(variable), mark(variable))


def _value_node(variable: str, value: str) -> yaml.Node:
    """The value as YAML would type it written plain (`30` an int, `true` a bool); a value
    in [ ] or { } is a flow list or mapping. `$` is escaped: values are literal."""
    node: yaml.Node | None = None
    if value.strip()[:1] in ("[", "{"):
        try:
            node = yaml.compose(value, Loader=yaml.SafeLoader)
        except (yaml.YAMLError, ValueError, RecursionError):
            node = None
    if node is None:
        tag = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
        node = yaml.ScalarNode(tag, value)
    _literal(node, mark(variable), set())
    return node


def _literal(node: yaml.Node, at: yaml.Mark, seen: set[int]) -> None:
    if id(node) in seen:  # an alias: the same node again
        return
    seen.add(id(node))
    node.start_mark = node.end_mark = at
    if isinstance(node, yaml.ScalarNode):
        node.value = node.value.replace("$", "$$")
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _literal(item, at, seen)
    elif isinstance(node, yaml.MappingNode):
        for key, item in node.value:
            _literal(key, at, seen)
            _literal(item, at, seen)
