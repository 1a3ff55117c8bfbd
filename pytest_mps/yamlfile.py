"""Reading the project's YAML files (model YAMLs, audit files) strictly and with one-line errors.

YAML forbids a key twice in one mapping, but PyYAML silently keeps the last value, so a
setting written twice would be half ignored. `load_yaml` refuses it instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pytest_mps.errors import MPSInputError, first_line

_MERGE_TAG = "tag:yaml.org,2002:merge"  # ``<<: *anchor`` may be overridden by explicit keys


def load_yaml(path: str | Path) -> Any:
    """The data of a YAML file, like ``yaml.safe_load``, but strict and with one-line errors.

    Every problem is an `MPSInputError` naming the file: ``file not found``, ``cannot read
    file (...)``, ``invalid YAML (...)`` (syntax, or not UTF-8), or ``duplicate key 'k' on
    line 7 (first on line 3)`` for a key given twice in one mapping. An empty file gives
    ``None``; callers check the type they expect.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MPSInputError(path, "file not found") from None
    except UnicodeDecodeError as exc:
        raise MPSInputError(path, f"invalid YAML ({first_line(exc)})") from None
    except OSError as exc:
        raise MPSInputError(path, f"cannot read file ({first_line(exc)})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
    except _DuplicateKeyError as exc:
        raise MPSInputError(path, str(exc)) from None
    except yaml.YAMLError as exc:
        raise MPSInputError(path, f"invalid YAML ({first_line(exc)})") from None


class _DuplicateKeyError(Exception):
    """A key given twice in one mapping (the loader does not know the file's path)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = first_lines.get(key)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if first is not None:
                raise _DuplicateKeyError(
                    f"duplicate key {key!r} on line {line} (first on line {first})"
                )
            first_lines[key] = line
        return super().construct_mapping(node, deep=deep)
