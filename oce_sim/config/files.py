"""Bounded reading of input files: a scenario, portfolio or suite file (YAML) is read within size, depth and
structure limits before anything is built from it (an alias bomb is refused after a few hundred bytes); the small
JSON files oce-sim writes and reads back (a run's ``args.json``, a sweep's cache entries, a model file's
description) are read within a size limit."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from oce_sim.config.errors import ScenarioError, _clip, _excerpt

# Limits on a scenario file: a page of YAML is a few KB; these are far above any real scenario and far below
# what could exhaust memory or time.
MAX_SCENARIO_BYTES = 64 * 1024  # the pure-Python parser reads ~60 KB/s on a busy core
MAX_YAML_DEPTH = 20  # the deepest real path is pipeline.levels[i].covered_channels[j] (depth 5)
MAX_COLLECTION_ITEMS = 1000  # entries of one mapping or list
MAX_YAML_NODES = 20_000  # nodes after alias expansion: refuses an alias bomb before it is built


class ScenarioLimitError(yaml.YAMLError):
    """A scenario file breaks a size, depth or structure limit."""


# YAML 1.1 reads ``1e-3`` as a string; read it as the number everyone means (YAML 1.2 floats).
_FLOAT_12 = re.compile(r"^[-+]?(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)[eE][-+]?\d+$")


class BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys, deep nesting, long collections and alias bombs.

    It weighs every node by its size once aliases are expanded, while composing (aliases are still shared
    references then), so a bomb is refused after reading a few hundred bytes, in bounded memory.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._weight: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        if parent is not None and len(parent.value) >= MAX_COLLECTION_ITEMS:  # counted as it grows, not after
            line = parent.start_mark.line + 1
            raise ScenarioLimitError(f"more than {MAX_COLLECTION_ITEMS} entries in one collection (line {line})")
        alias = self.check_event(yaml.AliasEvent)
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            line = self.peek_event().start_mark.line + 1
            raise ScenarioLimitError(f"nested deeper than {MAX_YAML_DEPTH} levels (line {line})")
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if alias:
            if id(node) not in self._weight:
                raise ScenarioLimitError(f"recursive alias (line {node.start_mark.line + 1})")
            return node
        children = node.value if isinstance(node, yaml.SequenceNode) else \
            [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else []
        weight = 1 + sum(self._weight.get(id(child), 1) for child in children)
        if weight > MAX_YAML_NODES:
            raise ScenarioLimitError(f"more than {MAX_YAML_NODES} values once aliases are expanded "
                                     f"(line {node.start_mark.line + 1})")
        self._weight[id(node)] = weight
        return node

    # The scanner is quadratic in flow nesting ("[[[["): refuse depth as soon as it is scanned, before composing.
    def fetch_flow_collection_start(self, token_class: Any) -> None:
        if self.flow_level >= MAX_YAML_DEPTH:
            raise ScenarioLimitError(f"nested deeper than {MAX_YAML_DEPTH} levels (line {self.line + 1})")
        super().fetch_flow_collection_start(token_class)

    def add_indent(self, column: int) -> bool:
        if len(self.indents) >= MAX_YAML_DEPTH:
            raise ScenarioLimitError(f"nested deeper than {MAX_YAML_DEPTH} levels (line {self.line + 1})")
        return super().add_indent(column)

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        seen: set[tuple[str, str]] = set()
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            if (key.tag, key.value) in seen:
                raise ScenarioLimitError(f"duplicate key {_excerpt(key.value)} (line {key.start_mark.line + 1})")
            seen.add((key.tag, key.value))
        return node


BoundedLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def parse_yaml(raw: bytes) -> Any:
    """Scenario YAML bytes -> Python data, within the limits above; raises ``yaml.YAMLError`` or
    ``UnicodeDecodeError``."""
    if len(raw) > MAX_SCENARIO_BYTES:
        raise ScenarioLimitError(f"larger than {MAX_SCENARIO_BYTES // 1024} KiB")
    text = raw.decode("utf-8-sig")  # strict: Latin-1 from a Windows editor is an error, not mojibake
    loader = BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_SCENARIO_BYTES + 1)
        data = parse_yaml(raw)
    except UnicodeDecodeError as exc:
        raise ScenarioError(str(path), [f"(file): {_not_utf8(exc)}; save the file as UTF-8"]) from None
    except ScenarioLimitError as exc:
        raise ScenarioError(str(path), [f"(file): {exc}"]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(str(path), [f"(file): not valid YAML: {_clip(str(exc), 200)}"]) from None
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. a date 2024-13-45, a 5,000-digit integer
        raise ScenarioError(str(path), [f"(file): unreadable value: {_clip(str(exc), 160)}"]) from None
    except OSError as exc:
        raise ScenarioError(str(path), [f"(file): cannot read: {exc.strerror}"]) from None
    if data is None:  # an empty file (or only comments) is a mistake more often than a wish for every default
        raise ScenarioError(str(path), ["(file): empty; it must hold a mapping of keys (a scenario file holding "
                                        "just 'extends: default' runs the defaults)"])
    if not isinstance(data, dict):
        raise ScenarioError(str(path), ["(top level): a scenario must be a mapping of keys"])
    return data


def _not_utf8(exc: UnicodeDecodeError) -> str:
    return f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"


def parse_json(raw: bytes | str, max_bytes: int) -> Any:
    """JSON text -> Python data, refused when longer than ``max_bytes``; every problem (too large, not UTF-8, not
    JSON, nested too deeply for the parser, a number with thousands of digits) is a ``ValueError`` saying which."""
    if len(raw) > max_bytes:
        raise ValueError(f"larger than {max_bytes:,} bytes")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise ValueError(_not_utf8(exc)) from None
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {_clip(str(exc), 120)}") from None


def read_json(path: Path, max_bytes: int) -> Any:
    """A JSON file read within ``max_bytes`` (no more is read); ``ValueError`` as :func:`parse_json`, or ``OSError``."""
    with Path(path).open("rb") as stream:
        return parse_json(stream.read(max_bytes + 1), max_bytes)
