"""Read YAML (and JSON, which is YAML) keeping where every value came from.

`load(text, path)` returns plain Python data in which every mapping is a `Map` (a dict) and
every sequence a `Seq` (a list); both know the 1-based line and column of themselves, of each
key and of each value or item, so a loader built on top can report `FILE:LINE: message` for a
value of the wrong type as precisely as for a syntax error. Scalars are plain `str`, `int`,
`bool` or `None`, and floats are `Float`s: a float that keeps the text it was written as
(`2.4`, `1e400`, `.nan`), so that a reader can take the exact decimal the file shows
(`units.exact`) rather than the nearest binary float. Timestamps stay text (`"2025-01-06"`): the caller parses dates and
reports a bad one where it stands, instead of the YAML library failing on `2025-13-45`.

Anchors, aliases and merge keys (`<<: *base`) work; a duplicate key, a recursive alias, a
non-scalar key or an application tag (`!foo`) is a `YamlError` with its position. ruamel.yaml
does the parsing; none of its types escape this module.
"""

from __future__ import annotations

import functools
import json
import re
import weakref
from typing import Any

from rxwatch.compiler import collector_paused

_STR = "tag:yaml.org,2002:str"
_FLOAT = "tag:yaml.org,2002:float"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_INT = "tag:yaml.org,2002:int"
_PLAIN_FLOAT = re.compile(r"-?[0-9]{1,20}\.[0-9]{1,20}")
_PLAIN_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")
_SCALARS = {_STR, _INT, _FLOAT,
            "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"}

Pos = tuple[int, int]
"""(line, column), both 1-based; (0, 0) when unknown."""


class YamlError(Exception):
    """The text is not YAML this reader accepts; `line`/`column` are 1-based (0 when unknown)."""

    def __init__(self, path: str, line: int, column: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.column = column
        self.message = message


class Float(float):
    """A float that remembers the text it was read from (`Float("2.4").text == "2.4"`).

    It is a float in every way (arithmetic gives plain floats); `units.exact` reads `.text`,
    so that `2.4` is exactly 12/5 and `1e400` is 10**400, not infinity."""

    __slots__ = ("text",)

    def __new__(cls, text: str, value: float | None = None) -> "Float":
        self = super().__new__(cls, float(text) if value is None else value)
        self.text = text
        return self

    def __reduce__(self) -> tuple:
        return (Float, (self.text, float(self)))


class Map(dict):
    """A YAML mapping: a dict that also knows where it, its keys and its values stand."""

    __slots__ = ("pos", "_keys", "_values", "__weakref__")

    def __init__(self, pos: Pos = (0, 0)) -> None:
        super().__init__()
        self.pos = pos
        self._keys: dict[Any, Pos] = {}
        self._values: dict[Any, Pos] = {}

    def key_pos(self, key: Any) -> Pos:
        """Where `key` is written (the mapping's own position when unknown)."""
        return self._keys.get(key, self.pos)

    def value_pos(self, key: Any) -> Pos:
        """Where the value of `key` starts (the key's position when unknown)."""
        return self._values.get(key) or self.key_pos(key)


class Seq(list):
    """A YAML sequence: a list that also knows where it and each of its items stand."""

    __slots__ = ("pos", "_items")

    def __init__(self, pos: Pos = (0, 0)) -> None:
        super().__init__()
        self.pos = pos
        self._items: list[Pos] = []

    def item_pos(self, index: int) -> Pos:
        """Where item `index` starts (the sequence's own position when unknown)."""
        if 0 <= index < len(self._items):
            return self._items[index]
        return self.pos


def pos_of(value: Any) -> Pos:
    """The position of a `Map` or `Seq`; (0, 0) for anything else."""
    return getattr(value, "pos", (0, 0))


def load(text: str, path: str = "<string>") -> Any:
    """Parse one YAML document (JSON included) from `text`; an empty document gives None.

    Raises YamlError, located where the parser stopped, for anything it cannot read.

    The same text read again from the same path while the mapping read the first time is still
    held gives that mapping (a command that looks into a file, then hands the file to a reader,
    parses it once). Callers read documents and never change them.

    The cyclic collector is paused meanwhile: every node made stays alive, and its full
    collections over them made reading a big file three times slower."""
    held = _held(path, text)
    if held is not None:
        return held
    with collector_paused():
        return _load(text, path)


def _load(text: str, path: str) -> Any:
    fast = _load_c(text, path)
    if fast is not _DECLINED:
        return _hold(path, text, fast)
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="safe", pure=True)
    try:
        root = yaml.compose(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        raise YamlError(path, line, column, _describe(exc)) from None
    except YAMLError as exc:  # unmarked: e.g. a character YAML forbids
        offset = getattr(exc, "position", None)  # ReaderError: a character offset, no mark
        line = text.count("\n", 0, offset) + 1 if isinstance(offset, int) else 0
        raise YamlError(path, line, 0, f"invalid YAML: {_one_line(exc)}") from None
    except RecursionError:
        raise YamlError(path, 0, 0, "invalid YAML: nested too deeply") from None
    if root is None:
        return None
    return _hold(path, text, _Builder(yaml.constructor, path).build(root))


_last: list = []  # [path, text, weakref to the Map read from it] while that Map is alive


def _held(path: str, text: str) -> Map | None:
    if _last and _last[0] == path and _last[1] == text:
        return _last[2]()
    return None


def _hold(path: str, text: str, doc: Any) -> Any:
    if isinstance(doc, Map):
        _last[:] = [path, text, weakref.ref(doc, lambda _: _last.clear())]
    return doc


_DECLINED = object()


def _load_c(text: str, path: str) -> Any:
    """`load` through libyaml (PyYAML's C parser and composer, with ruamel's YAML 1.2 tag
    resolution): the same document, several times faster; `_DECLINED` when PyYAML's C parser
    is not installed, when the text holds what the two parsers could read differently
    (directives, line breaks other than \\n and \\r\\n), or on any error (ruamel then reads
    the text again, to report it as it always has)."""
    loader_class = _c_loader_class()
    if loader_class is None or "%" in text[:1] or "\n%" in text or _declined(text) or _deep(text):
        return _DECLINED
    try:
        loader = loader_class(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
        if root is None:
            return None
        return _Builder(_ruamel_constructor(), path, c_nodes=True).build(root)
    except Exception:  # noqa: BLE001 - anything at all: ruamel reads it and says what it is
        return _DECLINED


_MAX_FLOW_DEPTH = 100
_BRACKETS = re.compile(r"[\[\]{}]")


def _deep(text: str) -> bool:
    """Flow collections may nest deeper than _MAX_FLOW_DEPTH (brackets in quoted text count too:
    a cautious bound). PyYAML's C composer recurses on the C stack without a limit: a text of
    100,000 `[` would crash the process, where ruamel says "nested too deeply". Block
    collections nest only as deep as their indentation, which _DECLINE bounds."""
    if text.count("[") + text.count("{") <= _MAX_FLOW_DEPTH:
        return False
    depth = 0
    for m in _BRACKETS.finditer(text):
        if m.group() in "[{":
            depth += 1
            if depth > _MAX_FLOW_DEPTH:
                return True
        elif depth:
            depth -= 1
    return False


@functools.cache
def _c_loader_class() -> Any:
    try:
        import yaml
        from yaml import _yaml
    except ImportError:  # PyYAML without libyaml, or not installed: ruamel alone
        return None
    from ruamel.yaml.resolver import VersionedResolver

    class Resolver(yaml.resolver.BaseResolver):
        """ruamel's YAML 1.2 implicit tags (PyYAML's own are YAML 1.1: `yes`, `08:30`...)."""

    Resolver.yaml_implicit_resolvers = {
        first: [(tag, re.compile(regexp.pattern, regexp.flags)) for tag, regexp in resolvers]
        for first, resolvers in VersionedResolver(version=(1, 2)).versioned_resolver.items()
    }

    class Loader(_yaml.CParser, yaml.constructor.BaseConstructor, Resolver):
        def __init__(self, stream: str) -> None:
            _yaml.CParser.__init__(self, stream)
            yaml.constructor.BaseConstructor.__init__(self)
            Resolver.__init__(self)

    return Loader


@functools.cache
def _ruamel_constructor() -> Any:
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).constructor


def _describe(exc: Any) -> str:
    problem = (exc.problem or "").strip() or "syntax error"
    context = (exc.context or "").strip()
    cmark = exc.context_mark
    if context and cmark is not None and exc.problem_mark is not None and cmark.line != exc.problem_mark.line:
        context = f"{context} at line {cmark.line + 1}"
    if not context:
        return f"invalid YAML: {problem}"
    if context.startswith("while"):
        return f"invalid YAML: {problem} ({context})"
    return f"invalid YAML: {context}, {problem}"


def _one_line(exc: Any) -> str:
    return " ".join(str(exc).split())


def _pos(node: Any) -> Pos:
    mark = node.start_mark
    return (mark.line + 1, mark.column + 1)


class _Builder:
    """Turns ruamel's composed node graph into Map/Seq/scalars, one node at a time."""

    def __init__(self, constructor: Any, path: str, c_nodes: bool = False) -> None:
        self.constructor = constructor
        self.path = path
        self.c_nodes = c_nodes  # PyYAML's nodes: a scalar is made a ruamel node for ruamel's constructor
        self.done: dict[int, Any] = {}  # id(node) -> built value: aliases share, never re-expand
        self.active: set[int] = set()  # nodes being built: meeting one again is a recursive alias

    def fail(self, node: Any, message: str) -> YamlError:
        line, column = _pos(node)
        return YamlError(self.path, line, column, message)

    def build(self, node: Any) -> Any:
        key = id(node)
        if key in self.done:
            return self.done[key]
        if key in self.active:
            raise self.fail(node, "a recursive alias: this anchor refers to itself")
        self.active.add(key)
        try:
            kind = type(node).__name__
            if kind == "MappingNode":
                value = self._mapping(node)
            elif kind == "SequenceNode":
                value = self._sequence(node)
            else:
                value = self._scalar(node)
        except RecursionError:
            raise self.fail(node, "nested too deeply") from None
        finally:
            self.active.discard(key)
        self.done[key] = value
        return value

    def _scalar(self, node: Any) -> Any:
        if node.tag == _TIMESTAMP:
            return node.value
        if node.tag not in _SCALARS:
            raise self.fail(node, f"unsupported YAML tag '{node.tag}'")
        if self.c_nodes and not node.value and not node.style:
            raise _NotHere  # an empty value: libyaml places it after the ':', ruamel at what follows
        if node.tag == _STR:
            return node.value
        if node.tag == _FLOAT and _PLAIN_FLOAT.fullmatch(node.value):
            return Float(node.value)  # what ruamel gives for the common spelling, without it
        if node.tag == _INT and _PLAIN_INT.fullmatch(node.value):
            return int(node.value)
        try:
            if self.c_nodes:  # ruamel's own function for the tag (int, float, bool, null), uncached
                from ruamel.yaml.nodes import ScalarNode

                node = ScalarNode(node.tag, node.value, style=node.style)
                value = self.constructor.yaml_constructors[node.tag](self.constructor, node)
            else:
                value = self.constructor.construct_object(node, deep=True)
        except (ValueError, TypeError, OverflowError, ArithmeticError) as exc:
            shown = node.value if len(node.value) <= 40 else f"{node.value[:40]}... ({len(node.value)} characters)"
            raise self.fail(node, f"invalid value '{shown}': {exc}") from None
        if node.tag == _FLOAT and isinstance(value, float):
            return Float(node.value, value)
        return value

    def _sequence(self, node: Any) -> Seq:
        if node.tag != _SEQ:
            raise self.fail(node, f"unsupported YAML tag '{node.tag}'")
        seq = Seq(_pos(node))
        for item in node.value:
            seq.append(self.build(item))
            seq._items.append(_pos(item))
        return seq

    def _mapping(self, node: Any) -> Map:
        if node.tag != _MAP:
            raise self.fail(node, f"unsupported YAML tag '{node.tag}'")
        out = Map(_pos(node))
        merged: list[Map] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged.extend(self._merge_sources(value_node))
                continue
            if type(key_node).__name__ != "ScalarNode":
                raise self.fail(key_node, "a key must be a plain value, not a list or a mapping")
            key = self._scalar(key_node)
            try:
                hash(key)
            except TypeError:
                raise self.fail(key_node, "a key must be a plain value") from None
            if key in out._keys:
                first = out._keys[key][0]
                raise self.fail(key_node, f"duplicate key '{key}' (first at line {first})")
            out[key] = self.build(value_node)
            out._keys[key] = _pos(key_node)
            out._values[key] = _pos(value_node)
        for source in merged:  # YAML merge: keys written in this mapping win, then earlier sources
            for key, value in source.items():
                if key not in out:
                    out[key] = value
                    out._keys[key] = source.key_pos(key)
                    out._values[key] = source.value_pos(key)
        return out

    def _merge_sources(self, node: Any) -> list[Map]:
        value = self.build(node)
        sources = value if isinstance(value, Seq) else [value]
        if not all(isinstance(s, Map) for s in sources):
            raise self.fail(node, "'<<' merges a mapping or a list of mappings")
        return sources


# ---------------------------------------------------------------------------- JSON, fast

class _NotHere(Exception):
    """The fast JSON reader declines: the text is for `load` (which reads or refuses it)."""


# what makes the fast reader decline, so that it accepts only texts `load` reads the same way:
# a character the YAML reader refuses, a line break other than \n and \r\n (lines would count
# differently), a long run of white space (a key and its ':' more than 1024 characters apart is
# not YAML)
_DECLINE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\x85\u2028\u2029]|\r(?!\n)|\\s{256,}")
_ASCII_DECLINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # _DECLINE's first part, in ASCII text
_LONE_CR = re.compile("\r(?!\n)")
_LONG_SPACE = re.compile("\\s{256}")


def _declined(text: str) -> bool:
    """`_DECLINE.search(text)`, three times faster for ASCII text (three simple searches)."""
    if text.isascii():
        return bool(_ASCII_DECLINE.search(text) or ("\r" in text and _LONE_CR.search(text))
                    or _LONG_SPACE.search(text))
    return _DECLINE.search(text) is not None


_MAX_KEY = 512  # a longer key: declined (YAML caps an implicit key at 1024 characters)
_JSON_WS = re.compile(r"[ \t\n\r]*")
_JSON_COMMA = re.compile(r"[ \t\n\r]*,[ \t\n\r]*")


def load_json(text: str, path: str = "<string>", *, list_key: str = "events") -> Map | None:
    """A JSON object read by the json module, as `load` would read it, or None when it is not
    one (or holds something `load` reads differently): then call `load`.

    Fast, and located only in part: the top-level mapping, its keys and values, the list under
    `list_key` and each of its items know where they stand; the mappings inside know nothing
    (their positions are the top-level mapping's). For a reader that needs positions only to
    report mistakes: when it finds one, it reads the text again with `load` and reports from
    that. Numbers are as `load` gives them (a float keeps its text)."""
    start = _JSON_WS.match(text).end()
    if not text.startswith("{", start) or _declined(text):
        return None
    decoder = json.JSONDecoder(object_pairs_hook=_json_map, parse_float=Float, parse_int=_json_int,
                               parse_constant=_json_constant)
    where = _Where(text)
    try:
        return _json_top(text, start, decoder, where, list_key)
    except (_NotHere, ValueError, RecursionError):  # JSONDecodeError is a ValueError
        return None


class _Where:
    """Offsets to (line, column), for offsets asked in increasing order (O(1) memory)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.offset = 0
        self.line = 1
        self.line_start = 0

    def __call__(self, offset: int) -> Pos:
        if offset < self.offset:
            raise _NotHere
        breaks = self.text.count("\n", self.offset, offset)
        if breaks:
            self.line += breaks
            self.line_start = self.text.rfind("\n", self.offset, offset) + 1
        self.offset = offset
        return (self.line, offset - self.line_start + 1)


def _json_top(text: str, i: int, decoder: json.JSONDecoder, where: _Where, list_key: str) -> Map:
    skip = _JSON_WS.match
    top = Map(where(i))
    i = skip(text, i + 1).end()
    if text.startswith("}", i):
        i += 1
    else:
        while True:
            if not text.startswith('"', i):
                raise _NotHere
            key_pos = where(i)
            key, i = decoder.raw_decode(text, i)
            if len(key) > _MAX_KEY or key in top:
                raise _NotHere
            i = skip(text, i).end()
            if not text.startswith(":", i):
                raise _NotHere
            i = skip(text, i + 1).end()
            value_pos = where(i)
            if key == list_key and text.startswith("[", i):
                value, i = _json_list(text, i, decoder, where, value_pos)
            else:
                value, i = decoder.raw_decode(text, i)
                value = _json_seq(value) if type(value) is list else value
            top[key] = value
            top._keys[key] = key_pos
            top._values[key] = value_pos
            i = skip(text, i).end()
            if text.startswith("}", i):
                i += 1
                break
            if not text.startswith(",", i):
                raise _NotHere
            i = skip(text, i + 1).end()
    if skip(text, i).end() != len(text):
        raise _NotHere
    return top


def _json_list(text: str, i: int, decoder: json.JSONDecoder, where: _Where, pos: Pos) -> tuple[Seq, int]:
    skip = _JSON_WS.match
    comma = _JSON_COMMA.match
    scan = decoder.scan_once  # raw_decode without its frame: StopIteration where it raises
    seq = Seq(pos)
    items = seq._items
    i = skip(text, i + 1).end()
    if text.startswith("]", i):
        return seq, i + 1
    while True:
        items.append(where(i))
        try:
            value, i = scan(text, i)
        except StopIteration:
            raise _NotHere from None
        seq.append(_json_seq(value) if type(value) is list else value)
        m = comma(text, i)  # the usual: white space, a comma, white space
        if m is not None:
            i = m.end()
            continue
        i = skip(text, i).end()
        if text.startswith("]", i):
            return seq, i + 1
        raise _NotHere


def _json_map(pairs: list) -> Map:
    out = Map()
    out.update(pairs)
    if len(out) != len(pairs):
        raise _NotHere  # a duplicate key: `load` says where
    for key, value in pairs:
        if len(key) > _MAX_KEY:
            raise _NotHere
        if type(value) is list:
            out[key] = _json_seq(value)
    return out


def _json_seq(items: list) -> Seq:
    out = Seq()
    out.extend(_json_seq(v) if type(v) is list else v for v in items)
    return out


def _json_int(text: str) -> int:
    return int(text)  # over 4,300 digits: ValueError, and `load` reports it


def _json_constant(text: str) -> Any:
    raise _NotHere  # NaN, Infinity: not JSON, and text to YAML
