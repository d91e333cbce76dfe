"""The one YAML loader of gasworks: safe tags only, and no anchors or aliases.

An alias makes the parser hand out the same node again, so a few hundred bytes of ``&a`` /
``*a`` nesting expand into millions of values ("billion laughs"): a 449-byte workflow became a
4.7 MB document, past every size limit checked on the *text*. None of gasworks' own files
(workflows, prompt files, models, secrets, configuration) needs them, so every anchor and alias
is refused while composing, before anything is built, rather than bounding the expansion
afterwards. Every YAML input goes through :func:`load_yaml`; JSON has no aliases.

PyYAML's ``SafeLoader`` is kept (well-kept, and what ``yaml.safe_load`` used before); only its
composer step is overridden, which costs nothing measurable on documents without aliases.
"""

from __future__ import annotations

import json
from typing import IO, Any

import yaml
from yaml.events import AliasEvent, CollectionStartEvent, ScalarEvent
from yaml.nodes import Node


class YamlAliasRefused(yaml.MarkedYAMLError):
    """An anchor (``&name``) or alias (``*name``): refused in every gasworks YAML input."""


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        what = None
        if isinstance(event, AliasEvent):
            what = f"alias *{event.anchor}"
        elif isinstance(event, ScalarEvent | CollectionStartEvent) and event.anchor is not None:
            what = f"anchor &{event.anchor}"
        if what is not None:
            raise YamlAliasRefused(
                None,
                None,
                f"YAML anchors and aliases are not accepted ({what}): write the value out",
                event.start_mark,
            )
        return super().compose_node(parent, index)


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(data: Any) -> str:
    """YAML text that :func:`load_yaml` reads back: a value used twice is written out twice
    (``yaml.safe_dump`` would write an anchor and an alias, which gasworks refuses)."""
    return yaml.dump(data, Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True)


def load_yaml(stream: str | bytes | IO[str]) -> Any:
    """Parse one YAML document with safe tags, refusing anchors and aliases
    (:class:`YamlAliasRefused`, a ``yaml.YAMLError``)."""
    loader = _NoAliasLoader(stream)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class DataParseError(ValueError):
    """JSON or YAML text that does not parse (or uses an anchor or alias): ``reason`` is one
    line naming the problem and where it is; ``alias`` says whether an alias was refused."""

    def __init__(
        self,
        reason: str,
        *,
        alias: bool = False,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.alias = alias
        #: where the parser stopped (1-based), when it says
        self.line, self.column = line, column


def load_data(text: str, *, json_only: bool = False) -> Any:
    """JSON (``json_only``) or YAML text, a superset of JSON, as plain data; any failure is a
    :class:`DataParseError`."""
    try:
        return json.loads(text) if json_only else load_yaml(text)
    except yaml.YAMLError as exc:
        mark = exc.problem_mark if isinstance(exc, yaml.MarkedYAMLError) else None
        raise DataParseError(
            first_line(exc),
            alias=isinstance(exc, YamlAliasRefused),
            line=mark.line + 1 if mark is not None else None,
            column=mark.column + 1 if mark is not None else None,
        ) from None
    except json.JSONDecodeError as exc:
        raise DataParseError(
            f"{exc.msg} (line {exc.lineno}, column {exc.colno})",
            line=exc.lineno,
            column=exc.colno,
        ) from None
    except ValueError as exc:
        raise DataParseError(str(exc).splitlines()[0]) from None


def first_line(exc: yaml.YAMLError) -> str:
    """A YAML error as one line for an error message (the problem and where it is)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        return f"{exc.problem}{where}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


__all__ = [
    "DataParseError",
    "YamlAliasRefused",
    "dump_yaml",
    "first_line",
    "load_data",
    "load_yaml",
]
