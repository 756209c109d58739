"""The subset of Go's ``text/template`` that docker's ``--format`` scripts use.

:func:`parse` reads a template (``{{.State.Status}}``, ``{{json .State}}``,
``{{range $k, $v := .Labels}}...{{end}}``, ``{{if}}``/``{{else}}``,
``{{with}}``, variables, pipelines, parentheses, ``{{- trims -}}`` and
comments) into a :class:`Template`; :meth:`Template.execute` runs it on
plain data (dicts, lists, strings, numbers, booleans, None) or on an object
whose fields are :class:`Fields` (the ``ps`` context, where ``.Label "k"``
is a method). The functions are Go's builtins (``and or not len index
slice eq ne lt le gt ge print printf println``) and docker's (``json split
join title lower upper pad truncate``); :data:`FUNCTIONS` has them.

Errors read as Go's do (``template: :1: unclosed action``, ``template:
:1:2: executing "" at <.Foo>: map has no entry for key "Foo"``), so that a
CLI can wrap them as docker's does. A hostile template fails cleanly: the
nesting depth, the steps of an execution and the size of its output are
bounded (:class:`Limits`), and every failure is a :class:`TemplateError`.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from engine.gotemplate._exec import Template, parse
from engine.gotemplate._functions import FUNCTIONS, HEADER_FUNCTIONS, ArgError
from engine.gotemplate._values import (
    Fields,
    Limits,
    StringMap,
    TemplateError,
    go_string,
    go_type,
)

for _public in (Fields, Limits, Template, TemplateError, ArgError):
    _public.__module__ = __name__  # named where users import them from

__all__ = [
    "FUNCTIONS",
    "HEADER_FUNCTIONS",
    "ArgError",
    "Fields",
    "Limits",
    "StringMap",
    "Template",
    "TemplateError",
    "go_string",
    "go_type",
    "parse",
]
