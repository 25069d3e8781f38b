"""Every config key with its meaning, read from the config dataclasses' own source
(``cyclevae config``).

A key's meaning is the ``#:`` comment above its field and any ``#`` comment on its line; a
field without one is described by the sentences of its class docstring that name it
(````field````). Nothing is written twice: a key documented in the code is documented here.
The output is YAML with the meanings as comments, so it is also a config file to start from.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import re
import textwrap
import tokenize
from functools import cache
from typing import Any

import yaml

__all__ = ["commented_yaml", "field_docs"]

_WIDTH = 96


def _docstring_sentences(doc: str) -> list[str]:
    text = " ".join(inspect.cleandoc(doc).split())
    return [s.strip() for s in re.split(r"(?<=[.;])\s+(?=[A-Z`(])|(?<=:)\s+(?=``\w+``:)",
                                        text)]


def field_docs(cls: type) -> dict[str, str]:
    """``{field: meaning}`` for the fields of dataclass ``cls`` and of the dataclasses it
    inherits from (module docstring); a field with nothing written about it maps to ``""``."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update({k: v for k, v in _own_field_docs(klass).items() if v or k not in docs})
    return {f.name: docs.get(f.name, "") for f in dataclasses.fields(cls)}


@cache
def _own_field_docs(cls: type) -> dict[str, str]:
    """The meanings of the fields defined in ``cls``'s own body."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (e.g. a frozen build): names and values only
        return {f.name: "" for f in dataclasses.fields(cls)}
    comments: dict[int, str] = {}  # line -> comment text
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                              tokenize.ENDMARKER):
            code_lines.add(tok.start[0])
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.ClassDef)
    sentences = _docstring_sentences(ast.get_docstring(node) or "")
    docs: dict[str, str] = {}
    for item in node.body:
        if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
            continue
        name = item.target.id
        above: list[str] = []
        line = item.lineno - 1
        while line in comments and line not in code_lines and comments[line].startswith("#:"):
            above.insert(0, comments[line][2:].strip())
            line -= 1
        inline = [comments[n].lstrip("#").strip() for n in range(item.lineno,
                                                                  (item.end_lineno or 0) + 1)
                  if n in comments and not comments[n].startswith("# noqa")]
        text = " ".join(above + inline)
        if not text:  # the docstring's definition (```name``: ...``), else where it is named
            defined = [s for s in sentences if s.startswith((f"``{name}``", f"``{name} "))]
            text = " ".join(defined or [s for s in sentences if f"``{name}``" in s])
        docs[name] = text.replace("``", "`")
    return docs


def _scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...").strip()


def _lines(obj: Any, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    docs = field_docs(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        meaning = docs.get(f.name, "")
        if dataclasses.is_dataclass(value):
            summary = (inspect.getdoc(type(value)) or "").split("\n\n")[0]
            meaning = meaning or " ".join(summary.split()).replace("``", "`")
        if meaning:
            out += textwrap.wrap(meaning, _WIDTH - indent, initial_indent=f"{pad}# ",
                                 subsequent_indent=f"{pad}# ", break_on_hyphens=False)
        if dataclasses.is_dataclass(value):
            out.append(f"{pad}{f.name}:")
            out += _lines(value, indent + 2)
        else:
            out.append(f"{pad}{f.name}: {_scalar(value)}")
    return out


def commented_yaml(config: Any, *, title: str = "") -> str:
    """``config`` (a :class:`~cyclevae.config.Config`) as YAML, every key preceded by its
    meaning as comments; loading the text back gives the same config."""
    lines = textwrap.wrap(title, _WIDTH, initial_indent="# ", subsequent_indent="# ",
                          break_on_hyphens=False, break_long_words=False)
    for section in dataclasses.fields(config):
        value = getattr(config, section.name)
        summary = " ".join((inspect.getdoc(type(value)) or "").split("\n\n")[0].split())
        lines.append("")
        lines += textwrap.wrap(summary.replace("``", "`"), _WIDTH, initial_indent="# ",
                               subsequent_indent="# ", break_on_hyphens=False)
        lines.append(f"{section.name}:")
        lines += _lines(value, 2)
    return "\n".join(lines).lstrip("\n") + "\n"
