"""Reads a task file's text into plain data, within limits a hostile file cannot get round.

``yaml.safe_load`` alone builds a YAML alias bomb (an anchor holding nine aliases of an anchor
holding nine aliases...) as a small graph of shared objects, and the first copy of it (the
JSON stored in the bookkeeping) expands it to gigabytes. So the text is bounded, and the
composed YAML graph is measured as it would expand before anything is built from it.
"""
from __future__ import annotations

import json
import json.decoder
import json.scanner
import logging
from pathlib import Path
from typing import Any

import yaml

from gridhpo.errors import ConfigError

log = logging.getLogger(__name__)

#: a task file is a few kilobytes; a file larger than this is refused unread
MAX_FILE_BYTES = 1 << 20
#: values (mappings, lists, scalars) a task file may hold once its YAML aliases are expanded
MAX_NODES = 200_000
#: mappings and lists inside one another
MAX_DEPTH = 32


def read_text(path: Path) -> str:
    """The file's text, refused when larger than ``MAX_FILE_BYTES`` (read no further)."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the task file ({exc.strerror})") from exc
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: the task file is larger than {MAX_FILE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def parse_text(text: str, path: Path) -> Any:
    """Plain data (dicts, lists, scalars) from YAML, or JSON for a ``.json`` file."""
    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        return _json(text) if kind == "JSON" else yaml.load(text, Loader=_Loader)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid {kind}: nested more than {MAX_DEPTH} levels") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML: {where}{exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: not valid YAML: {first}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a document expanding beyond the limits, a key given
    twice (PyYAML keeps the last silently) and a key that is not a string (``1:`` and ``"1":``
    would become the same parameter)."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[str, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # ``<<: *base`` overrides on purpose
            line = key_node.start_mark.line + 1
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise ConfigError(f"line {line}: key {key!r} is not a string; quote it (\"{key}\": ...)")
            if key in first:
                raise ConfigError(f"line {line}: duplicate key {key!r} (first given on line {first[key]})")
            first[key] = line
        return super().construct_mapping(node, deep)


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes the graph holds with every alias copied out (each shared node is measured
    once, so a bomb is refused in time linear in its text)."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise ConfigError(f"line {node.start_mark.line + 1}: nested more than {MAX_DEPTH} levels")
        known = sizes.get(id(node))
        if known is not None:
            return known
        total = 1
        if isinstance(node, yaml.MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(v, depth + 1) for v in node.value)
        if total > MAX_NODES:
            raise ConfigError(f"line {node.start_mark.line + 1}: the document expands to more than {MAX_NODES} "
                              f"values (aliases of aliases?)")
        sizes[id(node)] = total
        return total

    return size(root, 0)


def _json(text: str) -> Any:
    """``json.loads`` that refuses a key given twice (naming its line) and NaN or Infinity."""
    decoder = json.JSONDecoder(parse_constant=_no_constant)
    decoder.parse_object = _json_object  # type: ignore[attr-defined]
    # the C scanner ignores parse_object; the Python one calls it (a task file is small)
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # type: ignore[attr-defined]
    return decoder.decode(text)


def _no_constant(name: str) -> Any:
    raise ConfigError(f"{name} is not a number a task file may hold")


def _json_object(s_and_end: tuple[str, int], strict: bool, scan_once: Any, object_hook: Any,
                 object_pairs_hook: Any, memo: Any = None) -> tuple[dict[str, Any], int]:
    text = s_and_end[0]
    value_at: list[int] = []  # where each value starts: the n-th scanned belongs to the n-th key

    def scan(string: str, idx: int) -> Any:
        value_at.append(idx)
        return scan_once(string, idx)

    pairs, end = json.decoder.JSONObject(s_and_end, strict, scan, None, list, memo)  # type: ignore[attr-defined]
    first: dict[str, int] = {}
    for n, (key, _) in enumerate(pairs):
        if key in first:
            line = text.count("\n", 0, value_at[n]) + 1
            raise ConfigError(f"line {line}: duplicate key {key!r} (first given on line "
                              f"{text.count(chr(10), 0, value_at[first[key]]) + 1})")
        first[key] = n
    return dict(pairs), end
