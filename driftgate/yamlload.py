"""yamlload: the one way driftgate reads YAML, bounded against hostile input.

Everything driftgate parses itself goes through here: driftgate.yaml, the
Kubernetes manifests of a commit (and kustomize's or helm's output), and the
Ansible playbook, inventory and group/host vars files render checks (and the
playbooks the risk policy reads for task tags). Whoever can push to a watched
repository controls that input, so each limit below turns an attack into one
line naming the file, never a traceback or an exhausted machine:

- **size**: a file larger than `MAX_FILE_BYTES` is refused before it is read
  whole (render adds a total per environment, `MAX_RENDER_BYTES`);
- **aliases** ("billion laughs"): at most `MAX_ALIASES` alias uses per file,
  and expanding them may add at most `MAX_ALIAS_EXPANSION` nodes to what the
  file writes out. Both are counted on the composed node graph, in which an
  alias is a shared node, before any object is built: a bomb costs only its
  own size to refuse. An alias to a node that contains it (a cycle) is refused;
  JSON cannot hold one;
- **duplicate keys**: a mapping with one key twice is refused naming both
  lines (PyYAML silently keeps the last; kubectl refuses them, and in
  driftgate.yaml a second ``approval`` could silently switch a gate off);
- **encoding**: text must be UTF-8; the error names the file and the offset.

Built on libyaml's CSafeLoader when present (about 12x faster on big
manifests), else PyYAML's SafeLoader. Every error is a `YAMLInputError`, a
`yaml.YAMLError` whose message is one line that starts with the source's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_FILE_BYTES = 4 * 2**20  # a Kubernetes object is at most ~1.5 MiB (etcd's limit)
MAX_RENDER_BYTES = 16 * 2**20  # all YAML of one environment's render, or a tool's output
MAX_ALIASES = 1_000  # alias uses per file
MAX_ALIAS_EXPANSION = 100_000  # nodes aliases may add to a file when expanded

_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"


class YAMLInputError(yaml.YAMLError):
    """YAML driftgate refuses; the message is one line naming the source."""


class YAMLLimitError(YAMLInputError):
    """Over a limit: too big, too many aliases, an alias bomb or a cycle."""


def read_text(path: Path, *, source: str | None = None, limit: int = MAX_FILE_BYTES) -> str:
    """A file's text, at most ``limit`` bytes of UTF-8. ``source`` names it in errors."""
    name = source or str(path)
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)  # never more, whatever the file claims to be
    if len(data) > limit:
        raise YAMLLimitError(f"{name} is larger than {_size(limit)}: driftgate reads files up to that size")
    return decode(data, source=name)


def decode(data: bytes, *, source: str) -> str:
    """UTF-8 bytes as text, or an error naming ``source`` and the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YAMLInputError(
            f"{source} is not UTF-8 text (invalid byte at offset {exc.start}): save it as UTF-8"
        ) from None


def load(text: str, *, source: str, local_tags: bool = False) -> Any:
    """One YAML document (None for an empty one), checked as the module says.

    ``local_tags``: construct ``!name`` tagged nodes (Ansible's ``!vault``,
    ``!unsafe``) as their plain value instead of refusing them."""
    documents = load_all(text, source=source, local_tags=local_tags)
    if len(documents) > 1:
        raise YAMLInputError(f"{source} holds {len(documents)} YAML documents where one is expected")
    return documents[0] if documents else None


def check_limits(text: str, *, source: str) -> None:
    """Only the limits (aliases, cycles), for YAML another program parses next
    (kustomize, helm): whether it is valid is that program's to say, but it
    must not get a bomb (kubectl kustomize expands one until memory runs out)."""
    try:
        load_all(text, source=source, local_tags=True, allow_duplicate_keys=True)
    except YAMLLimitError:
        raise
    except YAMLInputError:
        pass


def load_all(text: str, *, source: str, local_tags: bool = False, allow_duplicate_keys: bool = False) -> list[Any]:
    """Every document of a YAML stream, checked as the module says.
    ``allow_duplicate_keys``: let them pass (the last one wins), for `check_limits`."""
    loader = (_AnsibleLoader if local_tags else _Loader)(text, source)
    loader.allow_duplicate_keys = allow_duplicate_keys
    try:
        documents = []
        while loader.check_data():
            documents.append(loader.get_data())
        return documents
    except YAMLInputError:
        raise
    except yaml.YAMLError as exc:
        raise YAMLInputError(f"{source} is not valid YAML: {_one_line(exc)}") from None
    except RecursionError:  # the pure-Python loader on deeply nested input
        raise YAMLLimitError(f"{source} is nested too deeply") from None
    finally:
        loader.dispose()


def load_file(path: Path, *, source: str | None = None, local_tags: bool = False) -> Any:
    """`read_text` then `load`."""
    name = source or str(path)
    return load(read_text(path, source=name), source=name, local_tags=local_tags)


class _Loader(_BASE_LOADER):  # type: ignore[misc,valid-type]
    """The safe loader, with every composed document checked before it is built."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self.source = source
        # No '&', no anchor, no alias: only keys need checking (the common case, ~3x cheaper).
        self.anchors = "&" in stream
        self.aliases = 0  # per file: documents share the budget
        self.expansion = 0
        self.allow_duplicate_keys = False

    def get_node(self) -> Node | None:  # load_all: BaseConstructor.get_data calls this
        node = super().get_node()
        if node is not None and self.anchors:
            self._check(node)
        elif node is not None and not self.allow_duplicate_keys:
            self._check_keys(node)
        return node

    def _check_keys(self, root: Node) -> None:
        """Duplicate keys in a tree without aliases (scalars are leaves: skipped)."""
        stack = [root]
        while stack:
            node = stack.pop()
            if type(node) is MappingNode:
                self._no_duplicate_keys(node)
                stack.extend(part for pair in node.value for part in pair if type(part) is not ScalarNode)
            elif type(node) is SequenceNode:
                stack.extend(item for item in node.value if type(item) is not ScalarNode)

    def _check(self, root: Node) -> None:
        """Walk the node graph once (iteratively: depth costs no stack): count
        aliases and what they expand to, refuse cycles and duplicate keys."""
        expanded: dict[int, int] = {}  # id(node) -> its size with aliases expanded
        on_path: set[int] = set()
        stack: list[tuple[Node, bool]] = [(root, False)]
        while stack:
            node, children_done = stack.pop()
            key = id(node)
            if children_done:
                on_path.discard(key)
                expanded[key] = 1 + sum(expanded[id(child)] for child in _children(node))
                continue
            if key in expanded:  # seen before: this is an alias
                self.aliases += 1
                self.expansion += expanded[key]
                self._within_limits(node)
                continue
            if key in on_path:
                raise YAMLLimitError(
                    f"{self.source} line {node.start_mark.line + 1}: an alias refers to a node that contains it"
                )
            if isinstance(node, MappingNode) and not self.allow_duplicate_keys:
                self._no_duplicate_keys(node)
            on_path.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(_children(node)))

    def _within_limits(self, node: Node) -> None:
        # CParser keeps no mark for the alias itself, only for what it refers to.
        anchor = f"an alias of the node on line {node.start_mark.line + 1}"
        if self.aliases > MAX_ALIASES:
            raise YAMLLimitError(
                f"{self.source}: more than {MAX_ALIASES:,} YAML aliases in one file ({anchor} is one too many): "
                "write the values out"
            )
        if self.expansion > MAX_ALIAS_EXPANSION:
            raise YAMLLimitError(
                f"{self.source}: YAML aliases expand to more than {MAX_ALIAS_EXPANSION:,} extra nodes "
                f"({anchor} goes over; an alias bomb?): write the values out"
            )

    def _no_duplicate_keys(self, node: MappingNode) -> None:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                continue  # merged keys may be overridden: that is what << is for
            if key_node.tag == _STR_TAG:
                key: Any = key_node.value  # nearly every key: no need to build it
            else:
                try:
                    key = self.construct_object(key_node)  # as a dict would see it: 1 and 1.0 collide
                    hash(key)
                except (yaml.YAMLError, TypeError):
                    key = (key_node.tag, key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise YAMLInputError(
                    f"{self.source}: key {key_node.value!r} appears twice in one mapping, on line {seen[key]} "
                    f"and line {line}: remove one (YAML would silently keep the last)"
                )
            seen[key] = line


class _AnsibleLoader(_Loader):
    """Also builds Ansible's local tags (``!vault``, ``!unsafe``) as plain values:
    driftgate only looks at structure; Ansible decrypts and marks them itself."""


def _plain(loader: yaml.BaseLoader, _suffix: str, node: Node) -> Any:
    if isinstance(node, ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


_AnsibleLoader.add_multi_constructor("!", _plain)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _one_line(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: the problem and where."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        if mark is not None:
            return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
        return problem
    return " ".join(str(exc).split())


def _size(limit: int) -> str:
    return f"{limit // 2**20} MiB" if limit >= 2**20 else f"{limit} bytes"
