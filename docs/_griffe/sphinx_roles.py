"""Griffe extension of the API reference: the Sphinx conventions of the package's docstrings.

- ``#:`` comments right above an attribute (Sphinx's attribute docs, which griffe ignores)
  become its docstring, so ``signals.tenant_created`` or ``conf.KNOWN_KEYS`` are documented.
- Sphinx roles (``:class:`TenantState```, ``:func:`~a.b.c```), which Markdown would print as
  they are, become *optional* autorefs links, ``<autoref identifier="..." optional>``. The
  name is looked up the way Python would from the documented object (its own members, then
  its parents', then the module's imports); an identifier that no page documents (Django's
  classes, a private helper) is rendered as plain code, without a warning.

Loaded by ``mkdocs.yml`` (``extensions:`` of the mkdocstrings Python handler); the package
itself is not changed.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|data|mod|meth|attr|exc|obj|const):`(~?)([^`<>\s]+)`")


def _resolve(name: str, obj: griffe.Object) -> str:
    """The full path ``name`` means inside ``obj``, or ``name`` itself when it is not found."""
    first, _, rest = name.partition(".")
    scope: Any = obj
    while scope is not None:
        members = getattr(scope, "members", {})
        if first in members:
            target = members[first]
            try:
                for part in rest.split(".") if rest else ():
                    target = target.members[part]
                if target.is_alias:
                    target = target.final_target
            except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                return name
            return str(target.path)
        scope = scope.parent
    return name


def _replace(match: re.Match[str], obj: griffe.Object) -> str:
    short, name = match.group(1), match.group(2)
    identifier = _resolve(name, obj)
    shown = name.rpartition(".")[2] if short else name
    return (
        f'<autoref identifier="{html.escape(identifier)}" optional>'
        f"<code>{html.escape(shown)}</code></autoref>"
    )


def _objects(obj: griffe.Object) -> Any:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)


def _comment_docstring(obj: griffe.Object) -> griffe.Docstring | None:
    """The ``#:`` comment lines right above an attribute, as its docstring."""
    if not obj.is_attribute or obj.lineno is None or obj.filepath is None:
        return None
    try:
        lines = obj.lines_collection[obj.filepath]
    except KeyError:
        return None
    comment: list[str] = []
    number = obj.lineno - 1  # the line above, 1-based
    while number >= 1 and lines[number - 1].strip().startswith("#:"):
        comment.insert(0, lines[number - 1].strip()[2:].strip())
        number -= 1
    if not comment:
        return None
    return griffe.Docstring("\n".join(comment), lineno=number + 1, parent=obj)


class SphinxRoles(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _objects(pkg):
            if obj.docstring is None:
                obj.docstring = _comment_docstring(obj)
            docstring = obj.docstring
            if docstring is not None and ":" in docstring.value:
                docstring.value = ROLE.sub(lambda m, o=obj: _replace(m, o), docstring.value)
