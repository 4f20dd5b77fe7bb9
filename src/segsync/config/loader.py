"""Read a rules file into a validated :class:`Rules`, or fail with located, readable issues.

Admins edit YAML by hand; every problem is reported as ``file:line:col: key.path: what is wrong``
and *all* problems are reported at once, so one fix-and-retry loop is enough.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from segsync.config.models import Rules, rules_model
from segsync.errors import ConfigError, ConfigIssue
from segsync.logs import register_secret
from segsync.secrets import SecretError, lookup_secret

Path_ = tuple[str | int, ...]
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECRETISH = re.compile(r"(token|secret|password|webhook|key|code|dsn|store)", re.IGNORECASE)


class _Positions:
    """Line/column (1-based) of every key and value in the parsed document."""

    def __init__(self) -> None:
        self.values: dict[Path_, tuple[int, int]] = {}
        self.keys: dict[Path_, tuple[int, int]] = {}

    def of(self, path: Path_, *, key: bool = False) -> tuple[int | None, int | None]:
        table = self.keys if key else self.values
        probe = path
        while True:
            if probe in table:
                return table[probe]
            if key and probe in self.values:
                return self.values[probe]
            if not probe:
                return (None, None)
            probe = probe[:-1]
            table = self.keys if probe in self.keys else self.values


def _plain(node: Any, path: Path_, pos: _Positions) -> Any:
    """Turn ruamel's round-trip nodes into builtins, recording positions on the way."""
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for key in node:
            child = (*path, str(key))
            kl, kc = node.lc.key(key)
            vl, vc = node.lc.value(key)
            pos.keys[child] = (kl + 1, kc + 1)
            pos.values[child] = (vl + 1, vc + 1)
            out[str(key)] = _plain(node[key], child, pos)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for i, item in enumerate(node):
            line, col = node.lc.item(i)
            pos.values[(*path, i)] = (line + 1, col + 1)
            items.append(_plain(item, (*path, i), pos))
        return items
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, datetime | date):
        return node.isoformat()
    return node


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _Interpolator:
    def __init__(self, env: Mapping[str, str] | None, issue) -> None:
        self.env = env
        self.issue = issue

    def __call__(self, data: Any, path: Path_) -> Any:
        if isinstance(data, dict):
            return {k: self(v, (*path, k)) for k, v in data.items()}
        if isinstance(data, list):
            return [self(v, (*path, i)) for i, v in enumerate(data)]
        if isinstance(data, str) and "$" in data:
            return self._expand(data, path)
        return data

    def _expand(self, text: str, path: Path_) -> str:
        secretish = bool(path) and isinstance(path[-1], str) and bool(_SECRETISH.search(path[-1]))

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            try:
                value = lookup_secret(name, self.env)
            except SecretError as exc:
                self.issue(path, str(exc))
                return ""
            if value is None:
                if default is not None:
                    return default
                self.issue(path, f"environment variable {name} is not set (set {name} or {name}_FILE)")
                return ""
            if secretish or _SECRETISH.search(name):
                register_secret(value)
            return value

        return _VAR.sub(replace, text)


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types a (possibly Annotated/Optional/Union) annotation can take."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _unwrap(arg)]
    return [annotation]


def _model_at(model: type[BaseModel], data: Any, path: Path_) -> type[BaseModel] | None:
    """Follow ``path`` through ``data`` and the model tree; return the model that owns the last dict."""
    current: Any = model
    node = data
    for part in path:
        candidates = _unwrap(current)
        chosen: Any = None
        for cand in candidates:
            origin = typing.get_origin(cand)
            if isinstance(part, int) and origin is list:
                chosen = typing.get_args(cand)[0]
                break
            if isinstance(part, str) and origin is dict:
                chosen = typing.get_args(cand)[1]
                break
            if isinstance(part, str) and isinstance(cand, type) and issubclass(cand, BaseModel):
                field = cand.model_fields.get(part) or next(
                    (f for f in cand.model_fields.values() if f.alias == part), None
                )
                if field is not None:
                    chosen = field.annotation
                    break
        if chosen is None:
            return None
        current = chosen
        node = node[part] if isinstance(node, dict | list) and _has(node, part) else None
    models = [c for c in _unwrap(current) if isinstance(c, type) and issubclass(c, BaseModel)]
    if len(models) > 1 and isinstance(node, dict):
        kind = node.get("kind")
        models = [m for m in models if m.model_fields.get("kind") and _kind_of(m) == kind] or models
    return models[0] if models else None


def _kind_of(model: type[BaseModel]) -> Any:
    field = model.model_fields["kind"]
    args = typing.get_args(field.annotation)
    return args[0] if args else field.default


def _has(node: Any, part: str | int) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(part, int) and 0 <= part < len(node)


def _data_path(data: Any, loc: tuple[Any, ...], etype: str) -> tuple[Path_, bool]:
    """Map a pydantic ``loc`` onto the document, skipping union tags; True if it fully exists."""
    path: list[str | int] = []
    node = data
    exists = True
    for i, part in enumerate(loc):
        if isinstance(node, dict | list) and _has(node, part):
            path.append(part)
            node = node[part]
        elif i == len(loc) - 1 and isinstance(node, dict) and etype in ("missing", "extra_forbidden"):
            path.append(part)  # a missing key
            exists = False
        # else: a union tag or validator name that is not in the document
    return tuple(path), exists


_TYPE_WORDS = {
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping (key: value)",
    "model_type": "must be a mapping (key: value)",
    "model_attributes_type": "must be a mapping (key: value)",
}


def _message(error: Mapping[str, Any], allowed: list[str] | None) -> str:
    etype = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if etype == "extra_forbidden":
        key = str(error["loc"][-1])
        msg = f"unknown key {key!r}"
        if allowed:
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            msg += f"; did you mean {close[0]!r}?" if close else f" (allowed: {', '.join(sorted(allowed))})"
        return msg
    if etype == "missing":
        return f"required key {error['loc'][-1]!r} is missing"
    if etype in ("union_tag_invalid", "union_tag_not_found"):
        from segsync.registry import connector_specs

        kinds = ", ".join(sorted(connector_specs())) or "none installed"
        got = ctx.get("tag")
        return f"unknown source kind {got!r} (installed: {kinds})" if got else f"needs 'kind' (one of: {kinds})"
    if etype == "value_error":
        msg = str(ctx.get("error") or error["msg"]).removeprefix("Value error, ")
    elif etype == "literal_error":
        expected = str(ctx.get("expected", ""))
        msg = f"must be {expected}" if "," not in expected and " or " not in expected else f"must be one of {expected}"
    elif etype in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        sign = {"greater_than": ">", "greater_than_equal": "≥", "less_than": "<", "less_than_equal": "≤"}[etype]
        bound = next(iter(ctx.values()), "")
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        msg = f"must be {sign} {bound}"
    elif etype in _TYPE_WORDS:
        msg = _TYPE_WORDS[etype]
    elif etype == "string_pattern_mismatch":
        msg = f"must match {ctx.get('pattern')}"
    elif etype == "string_too_short":
        msg = "must not be empty" if ctx.get("min_length") == 1 else f"must be at least {ctx.get('min_length')} chars"
    else:
        msg = str(error["msg"])
        msg = msg.replace("Input should be", "must be").replace("Value error, ", "")
    if isinstance(value, str | int | float | bool) and not isinstance(value, dict):
        shown = value if not isinstance(value, str) or len(value) < 60 else value[:57] + "..."
        msg += f" (got {shown!r})" if isinstance(shown, str) else f" (got {shown})"
    return msg


def _unique(data: Any, section: str, key: str, issue) -> None:
    items = data.get(section) if isinstance(data, dict) else None
    if not isinstance(items, list):
        return
    seen: dict[Any, int] = {}
    for i, item in enumerate(items):
        if isinstance(item, dict) and key in item:
            name = item[key]
            if name in seen:
                issue((section, i, key), f"{name!r} is already used by {section}[{seen[name]}]")
            else:
                seen[name] = i


def _check_source_refs(data: Any, issue) -> None:
    """Actions may be limited to sources; a typo there would silently disable the action."""
    if not isinstance(data, dict) or not isinstance(data.get("actions"), list):
        return
    known = {s.get("name") for s in data.get("sources") or [] if isinstance(s, dict)}
    for i, action in enumerate(data["actions"]):
        names = action.get("sources") if isinstance(action, dict) else None
        for j, name in enumerate(names if isinstance(names, list) else []):
            if name not in known:
                issue(
                    ("actions", i, "sources", j),
                    f"unknown source {name!r} (known: {', '.join(sorted(map(str, known))) or 'none'})",
                )


def parse_rules(text: str, filename: str = "<rules>", env: Mapping[str, str] | None = None) -> Rules:
    """Parse and validate rules text; raise :class:`ConfigError` listing every issue."""
    issues: list[ConfigIssue] = []
    pos = _Positions()

    def issue(path: Path_, message: str, *, key: bool = False) -> None:
        line, col = pos.of(path, key=key)
        issues.append(ConfigIssue(filename, line, col, format_path(path), message))

    yaml = YAML(typ="rt")
    try:
        doc = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        raise ConfigError(
            [ConfigIssue(filename, mark.line + 1 if mark else None, mark.column + 1 if mark else None, "", problem)]
        ) from None
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise ConfigError([ConfigIssue(filename, 1, 1, "", "the rules file must be a mapping (key: value) at the top")])
    data = _plain(doc, (), pos)
    data = _Interpolator(env if env is not None else os.environ, issue)(data, ())
    for section, key in (("sources", "name"), ("actions", "name")):
        _unique(data, section, key, issue)
    _check_source_refs(data, issue)

    model = rules_model()
    try:
        rules = model.model_validate(data)
    except ValidationError as exc:
        # One message per key path: a union reports every alternative, and a value that already failed
        # interpolation fails validation again; the first message is the useful one.
        seen = {i.path for i in issues}
        for error in exc.errors(include_url=False):
            path, _exists = _data_path(data, tuple(error["loc"]), error["type"])
            allowed = None
            if error["type"] == "extra_forbidden":
                owner = _model_at(model, data, path[:-1])
                allowed = [f.alias or n for n, f in owner.model_fields.items()] if owner else None
            if format_path(path) in seen or (not path and issues):
                continue
            seen.add(format_path(path))
            issue(path, _message(error, allowed), key=error["type"] == "extra_forbidden")
        raise ConfigError(issues) from None
    if issues:
        raise ConfigError(issues)
    return rules


def load_rules(path: Path | str, env: Mapping[str, str] | None = None) -> Rules:
    """Read the rules file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(str(path), None, None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(str(path), None, None, "", f"cannot read: {exc}")]) from None
    return parse_rules(text, str(path), env)
