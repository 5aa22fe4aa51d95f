"""The Ansible filters and tests WoD templates may use, re-implemented (no Ansible import).

Each behaves like its ``ansible.builtin`` namesake for the inputs content uses: same JSON and
YAML layout, same regex flags, same boolean words.  Jinja's own filters (``default``/``d``,
``lower``, ``join``…) are kept as they are, as Ansible keeps them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import ntpath
import os.path
import re
import shlex
from collections.abc import Mapping
from typing import Any

import yaml
from jinja2 import Undefined
from jinja2.exceptions import FilterArgumentError, UndefinedError

_TRUE = {"yes", "on", "true", "1"}
_FALSE = {"no", "off", "false", "0"}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def to_bool(value: Any) -> bool:
    check = (
        value.lower()
        if isinstance(value, str)
        else (str(value).lower() if isinstance(value, int) else value)
    )
    if check in _TRUE:
        return True
    if check in _FALSE:
        return False
    try:
        return check == 1
    except TypeError:
        return False


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def to_json(value: Any, **kwargs: Any) -> str:
    return json.dumps(value, default=_json_default, **kwargs)


def to_nice_json(value: Any, indent: int = 4, sort_keys: bool = True, **kwargs: Any) -> str:
    kwargs.pop("separators", None)
    return to_json(value, indent=indent, sort_keys=sort_keys, separators=(",", ": "), **kwargs)


# Ansible dumps with libyaml's emitter when PyYAML has it, as here: no ``...`` document end
# after a lone scalar, unlike the pure-Python emitter.
_BaseDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_BaseDumper):  # type: ignore[valid-type,misc]
    pass


def _represent_str(dumper: yaml.SafeDumper, data: str) -> Any:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _represent_str)


def to_yaml(value: Any, *_args: Any, default_flow_style: bool | None = None, **kwargs: Any) -> str:
    return yaml.dump(
        value, Dumper=_Dumper, allow_unicode=True, default_flow_style=default_flow_style, **kwargs
    )


def to_nice_yaml(
    value: Any, indent: int = 4, *_args: Any, default_flow_style: bool = False, **kwargs: Any
) -> str:
    return to_yaml(value, indent=indent, default_flow_style=default_flow_style, **kwargs)


def from_json(value: str, **kwargs: Any) -> Any:
    return json.loads(value, **kwargs)


def from_yaml(value: Any) -> Any:
    return yaml.safe_load(value) if isinstance(value, str) else value


def b64encode(value: Any, encoding: str = "utf-8", urlsafe: bool = False) -> str:
    data = _text(value).encode(encoding, errors="surrogateescape")
    out = base64.urlsafe_b64encode(data) if urlsafe else base64.b64encode(data)
    return out.decode("ascii")


def b64decode(value: Any, encoding: str = "utf-8", urlsafe: bool = False) -> str:
    data = _text(value).encode("ascii")
    out = base64.urlsafe_b64decode(data) if urlsafe else base64.b64decode(data)
    return out.decode(encoding, errors="surrogateescape")


def _flags(ignorecase: bool, multiline: bool) -> int:
    return (re.I if ignorecase else 0) | (re.M if multiline else 0)


def regex_replace(
    value: Any = "",
    pattern: str = "",
    replacement: str = "",
    ignorecase: bool = False,
    multiline: bool = False,
    count: int = 0,
    mandatory_count: int = 0,
) -> str:
    out, subs = re.compile(pattern, _flags(ignorecase, multiline)).subn(
        replacement, _text(value), count=count
    )
    if mandatory_count and mandatory_count != subs:
        raise FilterArgumentError(
            f"'{pattern}' should match {mandatory_count} times, but matches {subs} times"
        )
    return out


def regex_search(
    value: Any, regex: str, *args: str, ignorecase: bool = False, multiline: bool = False
) -> Any:
    match = re.search(regex, _text(value), _flags(ignorecase, multiline))
    if not match:
        return None
    if not args:
        return match.group()
    items = []
    for arg in args:
        if arg.startswith("\\g<") and arg.endswith(">"):
            items.append(match.group(arg[3:-1]))
        elif arg.startswith("\\"):
            items.append(match.group(int(arg[1:])))
        else:
            raise FilterArgumentError("Unknown argument")
    return items


def regex_findall(
    value: Any, regex: str, multiline: bool = False, ignorecase: bool = False
) -> list[Any]:
    return re.findall(regex, _text(value), _flags(ignorecase, multiline))


def regex_escape(value: Any, re_type: str = "python") -> str:
    return re.escape(_text(value))


def mandatory(value: Any, msg: str | None = None) -> Any:
    if isinstance(value, Undefined):
        name = getattr(value, "_undefined_name", None)
        raise UndefinedError(
            msg
            or (
                f"Mandatory variable '{name}' not defined."
                if name
                else "Mandatory variable not defined."
            )
        )
    return value


def quote(value: Any) -> str:
    return shlex.quote("" if value is None else _text(value))


def ternary(value: Any, true_val: Any, false_val: Any, none_val: Any = None) -> Any:
    if value is None and none_val is not None:
        return none_val
    return true_val if bool(value) else false_val


def combine(*dicts: Any, recursive: bool = False, list_merge: str = "replace") -> dict:
    out: dict = {}
    for d in dicts:
        for item in d if isinstance(d, list) else [d]:
            out = _merge(out, item, recursive)
    return out


def _merge(a: dict, b: Mapping, recursive: bool) -> dict:
    out = dict(a)
    for key, value in b.items():
        if recursive and isinstance(out.get(key), Mapping) and isinstance(value, Mapping):
            out[key] = _merge(dict(out[key]), value, True)
        else:
            out[key] = value
    return out


def dict2items(value: Mapping, key_name: str = "key", value_name: str = "value") -> list[dict]:
    return [{key_name: k, value_name: v} for k, v in value.items()]


def items2dict(value: list, key_name: str = "key", value_name: str = "value") -> dict:
    return {item[key_name]: item[value_name] for item in value}


def hash_filter(value: Any, hashtype: str = "sha1") -> str:
    h = hashlib.new(hashtype)
    h.update(_text(value).encode("utf-8"))
    return h.hexdigest()


def checksum(value: Any) -> str:
    return hash_filter(value, "sha1")


def md5(value: Any) -> str:
    return hash_filter(value, "md5")


def flatten(value: list, levels: int | None = None, skip_nulls: bool = True) -> list:
    out: list = []
    for item in value:
        if item in (None, "None", "null") and skip_nulls:
            continue
        if isinstance(item, (list, tuple)) and (levels is None or levels > 0):
            out.extend(flatten(list(item), None if levels is None else levels - 1, skip_nulls))
        else:
            out.append(item)
    return out


def splitext(value: Any) -> tuple[str, str]:
    return os.path.splitext(_text(value))


FILTERS: dict[str, Any] = {
    "bool": to_bool,
    "to_json": to_json,
    "to_nice_json": to_nice_json,
    "from_json": from_json,
    "to_yaml": to_yaml,
    "to_nice_yaml": to_nice_yaml,
    "from_yaml": from_yaml,
    "b64encode": b64encode,
    "b64decode": b64decode,
    "regex_replace": regex_replace,
    "regex_search": regex_search,
    "regex_findall": regex_findall,
    "regex_escape": regex_escape,
    "mandatory": mandatory,
    "quote": quote,
    "basename": lambda p: os.path.basename(_text(p)),
    "dirname": lambda p: os.path.dirname(_text(p)),
    "win_basename": lambda p: ntpath.basename(_text(p)),
    "expanduser": lambda p: os.path.expanduser(_text(p)),
    "realpath": lambda p: os.path.realpath(_text(p)),
    "splitext": splitext,
    "ternary": ternary,
    "combine": combine,
    "dict2items": dict2items,
    "items2dict": items2dict,
    "hash": hash_filter,
    "checksum": checksum,
    "md5": md5,
    "sha1": checksum,
    "flatten": flatten,
    "type_debug": lambda v: type(v).__name__,
}


def _regex_test(
    value: Any,
    pattern: str = "",
    ignorecase: bool = False,
    multiline: bool = False,
    match_type: str = "search",
) -> bool:
    method = getattr(re.compile(pattern, _flags(ignorecase, multiline)), match_type)
    return method(_text(value)) is not None


TESTS: dict[str, Any] = {
    "match": lambda v, p="", ignorecase=False, multiline=False: _regex_test(
        v, p, ignorecase, multiline, "match"
    ),
    "search": lambda v, p="", ignorecase=False, multiline=False: _regex_test(
        v, p, ignorecase, multiline, "search"
    ),
    "regex": _regex_test,
    "truthy": lambda v, convert_bool=False: bool(to_bool(v) if convert_bool else v),
    "falsy": lambda v, convert_bool=False: not (to_bool(v) if convert_bool else v),
    "abs": os.path.isabs,
    "contains": lambda seq, item: item in seq,
    "subset": lambda a, b: set(a) <= set(b),
    "superset": lambda a, b: set(a) >= set(b),
}
