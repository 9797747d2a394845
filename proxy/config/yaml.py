"""The YAML layer under `proxy.config`: nodes with marks → checked values, problems at LINE:COL.

PyYAML's composer keeps each node's position, so the file is read one named entry at a time
and a bad value becomes a `Problem` at its own LINE:COL instead of an exception: one pass
finds every problem. `${VAR}`, `${VAR:-default}` and `$$` are substituted in every scalar
before it is typed. Pure: the environment is an argument; no file, os.environ or clock here.
"""

import difflib
from collections.abc import Callable, Collection, Mapping
from typing import NamedTuple, TypeVar

import msgspec
import yaml

from proxy.config.values import interpolate as interpolate
from proxy.config.values import parse_duration as parse_duration
from proxy.config.values import parse_size as parse_size
from proxy.config.values import show as show

T = TypeVar("T")
C = TypeVar("C", bound=str)

NULL = "tag:yaml.org,2002:null"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
BOOL = "tag:yaml.org,2002:bool"
_MERGE = "tag:yaml.org,2002:merge"

_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_RESOLVER = yaml.resolver.Resolver()


class Problem(msgspec.Struct, frozen=True):
    """One finding at a place in the file; `str()` is `PATH:LINE:COL: message`."""

    path: str  # the file, or the environment variable a value came from
    line: int  # 1-based; 0 when `path` is an environment variable
    col: int  # 1-based
    message: str

    def __str__(self) -> str:
        if self.line == 0:  # not in the file: `path` names an environment variable
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


def did_you_mean(word: str, options: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


# --- units ---------------------------------------------------------------------------------


class Scalar(NamedTuple):
    text: str  # after interpolation
    tag: str  # the YAML tag as written, or as the substituted text resolves (`${N:-2}` → int)
    refs: tuple[str, ...]  # environment variables the text came from


def is_absent(s: Scalar) -> bool:
    """A literal null (`key:`, `~`), or a reference that came out empty: use the default."""
    return s.text == "" or (s.tag == NULL and not s.refs)


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[Scalar], int]:
    want = "an integer"
    if minimum is not None:
        want += f" from {minimum} to {maximum}" if maximum is not None else f" >= {minimum}"

    def convert(s: Scalar) -> int:
        value = _construct(_CONSTRUCTOR.construct_yaml_int, s) if s.tag == _INT else None
        if not isinstance(value, int):
            raise ValueError(f"expected {want}, got {show(s.text)}")
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise ValueError(f"expected {want}, got {value}")
        return value

    return convert


def boolean(s: Scalar) -> bool:
    text = s.text.lower() if s.tag == BOOL else ""
    if text not in ("true", "yes", "on", "false", "no", "off"):
        raise ValueError(f"expected true or false, got {show(s.text)}")
    return text in ("true", "yes", "on")


def duration(*, positive: bool) -> Callable[[Scalar], float]:
    def convert(s: Scalar) -> float:
        number: float | None = None
        if s.tag == _INT:
            number = _construct(_CONSTRUCTOR.construct_yaml_int, s)
        elif s.tag == _FLOAT:
            number = _construct(_CONSTRUCTOR.construct_yaml_float, s)
        seconds = parse_duration(s.text if number is None else number)
        if positive and seconds == 0:
            raise ValueError(f"expected a duration above 0 like 5s, got {show(s.text)}")
        return seconds

    return convert


def size(minimum: int) -> Callable[[Scalar], int]:
    def convert(s: Scalar) -> int:
        number = _construct(_CONSTRUCTOR.construct_yaml_int, s) if s.tag == _INT else None
        value = parse_size(s.text if number is None else number)
        if value < minimum:
            raise ValueError(f"expected a size of at least {minimum} bytes, got {show(s.text)}")
        return value

    return convert


def choice(options: tuple[C, ...]) -> Callable[[Scalar], C]:
    def convert(s: Scalar) -> C:
        for option in options:
            if s.text == option:
                return option
        hint = did_you_mean(s.text, options)
        raise ValueError(f"expected one of {', '.join(options)}; got {show(s.text)}{hint}")

    return convert


def text(s: Scalar) -> str:
    """Any scalar as written: `2024-10-21` and `yes` stay text where text is expected."""
    return s.text


def line(s: Scalar) -> str:
    """One line of text, for values that go into HTTP headers. Never echoed: may be a secret."""
    if any(c in s.text for c in "\r\n\0"):
        raise ValueError("expected a single line of text (it has a line break or NUL)")
    return s.text


def _resolve(text: str) -> str:
    """The tag YAML gives `text` written plain: int, float, bool, null, ... or str."""
    tag: str = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    return tag


def _construct(construct: Callable[[yaml.ScalarNode], T], s: Scalar) -> T | None:
    try:  # a `!!int x` or `0b_` carries the tag but isn't a number
        return construct(yaml.ScalarNode(s.tag, s.text))
    except (ValueError, KeyError, IndexError, OverflowError):
        return None


# --- nodes ---------------------------------------------------------------------------------

Fields = dict[str, tuple[yaml.Node, yaml.Node]]  # name → (key node, value node), file order


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == NULL


def kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return show(node.value)


class Reader:
    """Reads nodes into values; a bad node records a Problem and yields the default."""

    def __init__(self, path: str, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []

    def _at(self, mark: yaml.Mark | None, message: str) -> Problem:
        if mark is not None and mark.line < 0:  # a node set from the environment
            return Problem(mark.name, 0, 0, message)
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        return Problem(self.path, line, col, message)

    def problem(self, node: yaml.Node, message: str) -> None:
        self.problems.append(self._at(node.start_mark, message))

    def warn(self, node: yaml.Node, message: str) -> None:
        self.warnings.append(self._at(node.start_mark, message))

    def compose(self, text: str) -> yaml.Node | None:
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as err:
            where = err.problem_mark or err.context_mark
            what = "; ".join(filter(None, (err.problem, err.context)))
            self.problems.append(self._at(where, f"invalid YAML: {what}"))
            return None
        except yaml.reader.ReaderError as err:  # a control character; no mark, but a position
            before = text[: err.position]
            at = yaml.Mark("", 0, before.count("\n"), len(before) - before.rfind("\n") - 1, "", 0)
            self.problems.append(self._at(at, f"invalid YAML: {err.reason}"))
            return None
        except (yaml.YAMLError, ValueError, OverflowError) as err:  # e.g. "\UFFFFFFFF"
            self.problems.append(self._at(None, f"invalid YAML: {type(err).__name__}"))
            return None
        except RecursionError:
            self.problems.append(self._at(None, "invalid YAML: nested too deeply"))
            return None
        if node is None:
            self.problems.append(self._at(None, "config is empty"))
        return node

    def entries(self, node: yaml.Node, what: str) -> Fields:
        """A mapping's entries, `<<` merges applied; {} for null. Duplicate keys are problems."""
        if is_null(node):
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"{what} must be a mapping, got {kind(node)}")
            return {}
        first: dict[str, yaml.Node] = {}
        for key, _ in node.value:
            if key.tag == _MERGE or not isinstance(key, yaml.ScalarNode):
                continue
            if key.value in first:  # PyYAML itself would silently keep the last one
                line = first[key.value].start_mark.line + 1
                self.problem(
                    key, f"duplicate key {show(key.value)} in {what} (first on line {line})"
                )
            first.setdefault(key.value, key)
        try:
            _CONSTRUCTOR.flatten_mapping(node)
        except yaml.MarkedYAMLError as err:
            self.problems.append(self._at(err.problem_mark, f"invalid merge (<<) in {what}"))
            return {}
        fields: Fields = {}
        for key, value in node.value:  # merged entries come first: the node's own ones win
            if isinstance(key, yaml.ScalarNode):
                fields[key.value] = (key, value)
            else:
                self.problem(key, f"expected a name in {what}, got {kind(key)}")
        return fields

    def fields(self, node: yaml.Node, what: str, known: Collection[str]) -> Fields:
        """`entries`, with each key outside `known` a problem (with a did-you-mean)."""
        fields = self.entries(node, what)
        for name, (key, _) in list(fields.items()):
            if name not in known:
                hint = did_you_mean(name, known) or f"; expected one of: {', '.join(known)}"
                self.problem(key, f"unknown key {show(name)} in {what}{hint}")
                del fields[name]
        return fields

    def items(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"{what} must be a list, got {kind(node)}")
            return []
        return list(node.value)

    def scalar(self, node: yaml.Node) -> Scalar | None:
        """The node's text, interpolated and re-typed; None (a problem recorded) if it can't be."""
        if not isinstance(node, yaml.ScalarNode):
            self.problem(node, f"expected a single value, got {kind(node)}")
            return None
        value: str = node.value
        tag: str = node.tag
        refs: tuple[str, ...] = ()
        errors: list[str] = []
        if "$" in value:
            value, refs, errors = interpolate(value, self.env)
            tag = _resolve(value)
        for error in errors:
            self.problem(node, error)
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                self.problem(node, "invalid text: a lone surrogate (\\uD800-\\uDFFF)")
                return None
        return None if errors else Scalar(value, tag, refs)

    def convert(self, node: yaml.Node, s: Scalar, convert: Callable[[Scalar], T]) -> T | None:
        try:
            return convert(s)
        except ValueError as err:
            self.problem(node, str(err))
            return None

    def one(self, node: yaml.Node, convert: Callable[[Scalar], T], default: T) -> T:
        s = self.scalar(node)
        if s is None or is_absent(s):
            return default
        value = self.convert(node, s, convert)
        return default if value is None else value

    def get(self, fields: Fields, name: str, convert: Callable[[Scalar], T], default: T) -> T:
        return self.one(fields[name][1], convert, default) if name in fields else default

    def need(
        self,
        fields: Fields,
        name: str,
        convert: Callable[[Scalar], T],
        owner: yaml.Node,
        missing: str,
    ) -> T | None:
        """A required value; a problem `missing` at `owner` when absent or null."""
        node = fields[name][1] if name in fields else None
        s = self.scalar(node) if node is not None else None
        if node is None or (s is not None and is_absent(s)):
            self.problem(owner, missing)
            return None
        return self.convert(node, s, convert) if s is not None else None

    def sorted(self, found: list[Problem]) -> tuple[Problem, ...]:
        """In file order, each once (an aliased node is read once per use)."""
        return tuple(sorted(dict.fromkeys(found), key=lambda p: (p.line, p.col)))
