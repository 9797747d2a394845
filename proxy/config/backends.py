"""The `routes.yaml` fields of the second-round backends, read node by node like `config.py`:
`options` and `keep_alive` (ollama), `discover` and `prefix` (ollama and OpenAI-compatible
servers), `request` and `response` (type: http templates).

Pure: the environment is the Reader's. Invariant: every problem is reported at the LINE:COL
of the node that has it, and a template that reads without problems renders for every
request (its placeholders and paths were all checked here).
"""

from typing import Any, NamedTuple

import msgspec
import yaml

from proxy.config.yaml import NULL, Fields, Reader, Scalar, boolean, choice, duration, is_null, kind
from proxy.template import HttpTemplate, Path, StreamFormat, parse_path, problems

DISCOVER_DEFAULT = 60.0  # seconds between listings: `discover: true`, and ollama's default
OptionValue = int | float | bool | str

OLLAMA_FIELDS = ("options", "keep_alive")
DISCOVERY_FIELDS = ("discover", "prefix")
HTTP_FIELDS = ("request", "response")
FIELDS = (*OLLAMA_FIELDS, *DISCOVERY_FIELDS, *HTTP_FIELDS)
_DISCOVERS = ("ollama", "openai", "huggingface")
_REQUEST = ("method", "path", "stream_path", "body")
_RESPONSE = ("text", "usage", "finish", "stream")
_USAGE = ("prompt_tokens", "completion_tokens")
_STREAM = ("format", "text")
_METHODS = ("POST", "PUT")
_FORMATS: tuple[StreamFormat, ...] = ("ndjson", "sse")
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"


class Extra(NamedTuple):
    options: tuple[tuple[str, OptionValue], ...] = ()
    keep_alive: str | None = None
    discover: float = 0.0  # seconds between listings; 0: no discovery
    prefix: str = ""
    template: HttpTemplate | None = None


def read(r: Reader, name: str, backend_type: str | None, key: yaml.Node, f: Fields) -> Extra:
    """The new fields of backend `name`; each given where its type doesn't take it is a problem."""
    for field in OLLAMA_FIELDS:
        if field in f and backend_type not in (None, "ollama"):
            r.problem(f[field][0], f"{field} applies only to type: ollama backends")
    for field in DISCOVERY_FIELDS:
        if field in f and backend_type not in (None, *_DISCOVERS):
            r.problem(f[field][0], f"{field} applies only to type: ollama, openai or huggingface")
    for field in HTTP_FIELDS:
        if field in f and backend_type not in (None, "http"):
            r.problem(f[field][0], f"{field} applies only to type: http backends")
    default_interval = DISCOVER_DEFAULT if backend_type == "ollama" else 0.0
    discover = _discover(r, f["discover"][1]) if "discover" in f else default_interval
    default_prefix = "ollama" if backend_type == "ollama" else name if discover else ""
    prefix = r.get(f, "prefix", _prefix, default_prefix)
    template = None
    if backend_type == "http":
        template = _template(r, name, key, f)
    return Extra(
        options=_options(r, name, f["options"][1]) if "options" in f else (),
        keep_alive=r.get(f, "keep_alive", _keep_alive, None),
        discover=discover,
        prefix=prefix,
        template=template,
    )


def hf_token(
    r: Reader, name: str, key: yaml.Node, *, given_url: str
) -> tuple[str | None, str | None]:
    """A huggingface backend without api_key: the token from HF_TOKEN, and why the backend is
    disabled without one. Only HF's own router needs a token; a self-hosted TGI/TEI endpoint
    (base_url given) may take none."""
    token = r.env.get("HF_TOKEN", "")
    if token or given_url:
        return token or None, None
    why = "no token (set HF_TOKEN or api_key)"
    r.warn(key, f"backend {name!r} is disabled: {why}")
    return None, why


def _discover(r: Reader, node: yaml.Node) -> float:
    s = r.scalar(node)
    if s is None or is_null(node):
        return 0.0
    if s.tag == _BOOL:
        on = r.convert(node, s, boolean)
        return DISCOVER_DEFAULT if on else 0.0
    return r.convert(node, s, duration(positive=True)) or 0.0


def _prefix(s: Scalar) -> str:
    if not s.text or "*" in s.text or any(c.isspace() for c in s.text):
        raise ValueError("prefix must be a name without spaces or '*', like ollama")
    return s.text.rstrip("/")


def _keep_alive(s: Scalar) -> str:
    # Ollama takes a duration ("5m", "1h30m") or seconds; -1 keeps the model loaded for good.
    if s.tag == _INT or s.text == "-1":
        return s.text
    duration(positive=False)(s)  # raises ValueError with a readable message
    return s.text


def _options(r: Reader, name: str, node: yaml.Node) -> tuple[tuple[str, OptionValue], ...]:
    out: list[tuple[str, OptionValue]] = []
    for option, (_, value) in r.entries(node, f"options of backend {name!r}").items():
        v = json_value(r, value)
        if v is None:
            continue
        if not isinstance(v, int | float | bool | str):
            r.problem(value, f"option {option!r} must be a single value, got {kind(value)}")
            continue
        out.append((option, v))
    return tuple(out)


def json_value(r: Reader, node: yaml.Node) -> Any:
    """Any YAML node as a JSON value (scalars typed as YAML types them, `${VAR}`s applied)."""
    if isinstance(node, yaml.MappingNode):
        return {k: json_value(r, v) for k, (_, v) in r.entries(node, "a mapping").items()}
    if isinstance(node, yaml.SequenceNode):
        return [json_value(r, item) for item in node.value]
    s = r.scalar(node)
    if s is None or s.tag == NULL:
        return None
    if s.tag == _BOOL:
        return r.convert(node, s, boolean)
    if s.tag in (_INT, _FLOAT):
        number = yaml.safe_load(s.text)
        if isinstance(number, int | float) and not isinstance(number, bool):
            return number
    return s.text


def _template(r: Reader, name: str, key: yaml.Node, f: Fields) -> HttpTemplate:
    d = HttpTemplate()
    if "request" not in f:
        r.problem(key, f"http backend {name!r} needs request: {{path: /generate, body: {{...}}}}")
    if "response" not in f:
        r.problem(key, f"http backend {name!r} needs response: {{text: PATH like output.text}}")
    req = (
        r.fields(f["request"][1], f"request of backend {name!r}", _REQUEST)
        if "request" in f
        else {}
    )
    res = (
        r.fields(f["response"][1], f"response of backend {name!r}", _RESPONSE)
        if "response" in f
        else {}
    )
    body: Any = {}
    if "body" in req:
        _check_placeholders(r, req["body"][1])
        body = json_value(r, req["body"][1])
    text: Path = ()
    if "response" in f:
        missing = f"response of backend {name!r} needs text: PATH (like output.text)"
        text = r.need(res, "text", _path, f["response"][1], missing) or ()
    usage = (
        r.fields(res["usage"][1], f"usage of backend {name!r}", _USAGE) if "usage" in res else {}
    )
    stream = (
        r.fields(res["stream"][1], f"stream of backend {name!r}", _STREAM)
        if "stream" in res
        else {}
    )
    stream_format: StreamFormat | None = None
    if "stream" in res:
        missing = f"stream of backend {name!r} needs format: ndjson or sse"
        stream_format = r.need(stream, "format", choice(_FORMATS), res["stream"][1], missing)
    return HttpTemplate(
        method=r.get(req, "method", choice(_METHODS), d.method),
        path=r.get(req, "path", _url_path, d.path),
        stream_path=r.get(req, "stream_path", _url_path, None),
        body=msgspec.json.encode(body).decode(),
        text=text,
        prompt_tokens=r.get(usage, "prompt_tokens", _path, None),
        completion_tokens=r.get(usage, "completion_tokens", _path, None),
        finish=r.get(res, "finish", _path, None),
        stream_format=stream_format,
        stream_text=r.get(stream, "text", _path, None),
    )


def _section(r: Reader, f: Fields, field: str, name: str, known: tuple[str, ...]) -> Fields:
    return r.fields(f[field][1], f"{field} of backend {name!r}", known) if field in f else {}


def _check_placeholders(r: Reader, node: yaml.Node) -> None:
    """Every placeholder problem in the body template, each at its own string's LINE:COL."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            _check_placeholders(r, k)
            _check_placeholders(r, v)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_placeholders(r, item)
    elif isinstance(node, yaml.ScalarNode) and isinstance(node.value, str):
        for message in problems(node.value):
            r.problem(node, message)


def _path(s: Scalar) -> Path:
    return parse_path(s.text)


def _url_path(s: Scalar) -> str:
    if not s.text.startswith("/") or any(c.isspace() for c in s.text) or "#" in s.text:
        raise ValueError("expected a URL path starting with /, like /generate")
    return s.text
