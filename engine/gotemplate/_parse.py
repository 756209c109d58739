"""Go template source to nodes: the lexer and the parser."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from engine.gotemplate._functions import FUNCTIONS
from engine.gotemplate._values import Limits, TemplateError

# -- lexing ------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<decl>:=)|(?P<assign>=)
    |(?P<pipe>\|)|(?P<lparen>\()|(?P<rparen>\))|(?P<comma>,)
    |(?P<string>"(?:[^"\\\n]|\\.)*")
    |(?P<raw>`[^`]*`)
    |(?P<char>'(?:[^'\\\n]|\\.)+')
    |(?P<number>[+-]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?))
    |(?P<variable>\$[A-Za-z0-9_]*)
    |(?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
    |(?P<dot>\.)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"if", "else", "end", "range", "with", "break", "continue", "define", "template"}
_KEYWORDS |= {"block"}


@dataclass(frozen=True, slots=True)
class Tok:
    kind: str
    text: str
    pos: int


def line_of(source: str, pos: int) -> int:
    return source.count("\n", 0, pos) + 1


def _lex(source: str) -> Iterator[tuple[str, Any, int]]:
    """("text", str, pos) and ("action", [tokens], pos) items."""
    i = 0
    trim_next = False
    while i < len(source):
        start = source.find("{{", i)
        text = source[i:] if start < 0 else source[i:start]
        if trim_next:
            text = text.lstrip(" \t\r\n")
        trim_left = (start >= 0 and source.startswith("{{- ", start)) or (
            start >= 0 and source[start + 2 : start + 4] in ("-\t", "-\n", "-\r")
        )
        if trim_left:
            text = text.rstrip(" \t\r\n")
        if text:
            yield "text", text, i
        if start < 0:
            return
        inner = start + (4 if trim_left else 2)
        if source.startswith("/*", inner):
            close = source.find("*/", inner + 2)
            if close < 0:
                raise TemplateError(f"template: :{line_of(source, start)}: unclosed comment")
            end = close + 2
            trim_next = source.startswith(" -}}", end)
            if not (trim_next or source.startswith("}}", end)):
                raise TemplateError(
                    f"template: :{line_of(source, start)}: comment ends before closing delimiter"
                )
            i = end + (4 if trim_next else 2)
            continue
        tokens, i, trim_next = _lex_action(source, inner, start)
        yield "action", tokens, start


def _lex_action(source: str, i: int, start: int) -> tuple[list[Tok], int, bool]:
    tokens: list[Tok] = []
    while True:
        if (
            source.startswith(" -}}", i)
            or source.startswith("\t-}}", i)
            or source.startswith("\n-}}", i)
        ):
            return tokens, i + 4, True
        if source.startswith("}}", i):
            return tokens, i + 2, False
        if i >= len(source):
            raise TemplateError(f"template: :{line_of(source, start)}: unclosed action")
        m = _TOKEN.match(source, i)
        if m is None or m.end() == i:
            ch = source[i]
            if ch in {'"', "`"}:
                raise TemplateError(f"template: :{line_of(source, i)}: unterminated quoted string")
            raise TemplateError(
                f"template: :{line_of(source, i)}: unexpected {json.dumps(ch)} in command"
            )
        kind = m.lastgroup or ""
        if (
            kind == "number"
            and m.group().startswith(("+", "-"))
            and tokens
            and tokens[-1].kind not in ("lparen", "pipe")
            and not source[i - 1].isspace()  # spaces are not kept as tokens
        ):
            raise TemplateError(
                f"template: :{line_of(source, i)}: unexpected {m.group()!r} in operand"
            )
        if kind != "space":
            tokens.append(Tok(kind, m.group(), i))
        elif source.startswith("}}", m.end()) or source.startswith("-}}", m.end()):
            pass
        i = m.end()


# -- parsing -----------------------------------------------------------------------


@dataclass
class Node:
    pos: int


@dataclass
class Text(Node):
    text: str


@dataclass
class Operand(Node):
    kind: str  # field, dot, var, literal, ident, pipeline
    text: str
    value: Any = None
    chain: tuple[str, ...] = ()
    pipe: Pipeline | None = None


@dataclass
class Command(Node):
    args: list[Operand]


@dataclass
class Pipeline(Node):
    commands: list[Command]
    decl: list[str] = field(default_factory=list)
    assign: bool = False


@dataclass
class Action(Node):
    pipe: Pipeline


@dataclass
class Branch(Node):
    kind: str  # if, range, with
    pipe: Pipeline
    body: list[Node]
    orelse: list[Node]


@dataclass
class Loop(Node):
    kind: str  # break, continue


class Parser:
    def __init__(self, source: str, limits: Limits) -> None:
        self.source = source
        self.limits = limits
        self.items = list(_lex(source))
        self.at = 0

    def error(self, pos: int, message: str) -> TemplateError:
        return TemplateError(f"template: :{line_of(self.source, pos)}: {message}")

    def nodes(self, depth: int, in_range: bool) -> tuple[list[Node], str, list[Tok], int]:
        """Nodes up to an {{else}} or {{end}} (which it returns) or the end ("")."""
        if depth > self.limits.depth:
            raise self.error(0, f"max nesting depth exceeded ({self.limits.depth})")
        out: list[Node] = []
        while self.at < len(self.items):
            kind, value, pos = self.items[self.at]
            self.at += 1
            if kind == "text":
                out.append(Text(pos, value))
                continue
            tokens: list[Tok] = value
            if not tokens:
                raise self.error(pos, "missing value for command")
            head = tokens[0]
            if head.kind == "ident" and head.text in ("end", "else"):
                return out, head.text, tokens[1:], pos
            if head.kind == "ident" and head.text in ("if", "range", "with"):
                out.append(self.branch(head.text, tokens[1:], pos, depth, in_range))
            elif head.kind == "ident" and head.text in ("break", "continue"):
                if not in_range:
                    raise self.error(pos, f"{{{{{head.text}}}}} outside {{{{range}}}}")
                if len(tokens) > 1:
                    raise self.error(pos, f"unexpected {tokens[1].text} in {head.text}")
                out.append(Loop(pos, head.text))
            elif head.kind == "ident" and head.text in ("define", "template", "block"):
                raise self.error(pos, f"{{{{{head.text}}}}} is not supported")
            else:
                out.append(Action(pos, self.pipeline(tokens, pos, "command", depth)))
        return out, "", [], len(self.source)

    def branch(self, kind: str, tokens: list[Tok], pos: int, depth: int, in_range: bool) -> Branch:
        pipe = self.pipeline(tokens, pos, kind, depth, decl_ok=True, two=kind == "range")
        body, stop, rest, stop_pos = self.nodes(depth + 1, in_range or kind == "range")
        orelse: list[Node] = []
        if stop == "else":
            if (
                rest
                and rest[0].kind == "ident"
                and rest[0].text in ("if", "with")
                and kind != "range"
            ):
                # {{else if x}} / {{else with x}}: a nested branch that shares this {{end}}
                orelse = [self.branch(rest[0].text, rest[1:], stop_pos, depth + 1, in_range)]
                return Branch(pos, kind, pipe, body, orelse)
            if rest:
                raise self.error(stop_pos, f"unexpected {rest[0].text!r} in else")
            orelse, stop, rest, stop_pos = self.nodes(depth + 1, in_range)
        if stop != "end":
            raise self.error(stop_pos, "unexpected EOF")
        if rest:
            raise self.error(stop_pos, f"unexpected {rest[0].text!r} in end")
        return Branch(pos, kind, pipe, body, orelse)

    def pipeline(
        self,
        tokens: list[Tok],
        pos: int,
        context: str,
        depth: int,
        *,
        decl_ok: bool = True,
        two: bool = False,
    ) -> Pipeline:
        decl: list[str] = []
        assign = False
        names = list(tokens[:4])
        if decl_ok and names and names[0].kind == "variable":
            if len(names) > 1 and names[1].kind in ("decl", "assign"):
                decl, assign, tokens = [names[0].text], names[1].kind == "assign", tokens[2:]
            elif (
                two
                and len(names) > 3
                and names[1].kind == "comma"
                and names[2].kind == "variable"
                and names[3].kind in ("decl", "assign")
            ):
                decl, assign, tokens = (
                    [names[0].text, names[2].text],
                    names[3].kind == "assign",
                    tokens[4:],
                )
        commands: list[Command] = []
        current: list[Operand] = []
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok.kind == "pipe":
                if not current:
                    raise self.error(tok.pos, "missing command")
                commands.append(Command(current[0].pos, current))
                current = []
                i += 1
                continue
            operand, i = self.operand(tokens, i, depth)
            current.append(operand)
        if current:
            commands.append(Command(current[0].pos, current))
        elif commands:
            raise self.error(pos, "missing command")
        if not commands:
            raise self.error(pos, f"missing value for {context}")
        return Pipeline(pos, commands, decl, assign)

    def operand(self, tokens: list[Tok], i: int, depth: int) -> tuple[Operand, int]:
        tok = tokens[i]
        kind = tok.kind
        if kind == "lparen":
            level, j = 1, i + 1
            while j < len(tokens) and level:
                level += {"lparen": 1, "rparen": -1}.get(tokens[j].kind, 0)
                j += 1
            if level:
                raise self.error(tok.pos, "unclosed left paren")
            if depth > self.limits.depth:
                raise self.error(tok.pos, "max expression depth exceeded")
            inner = self.pipeline(
                tokens[i + 1 : j - 1], tok.pos, "parenthesized pipeline", depth + 1, decl_ok=False
            )
            chain: tuple[str, ...] = ()
            if (
                j < len(tokens)
                and tokens[j].kind == "field"
                and tokens[j].pos == tokens[j - 1].pos + 1
            ):
                chain = tuple(tokens[j].text[1:].split("."))
                j += 1
            return Operand(tok.pos, "pipeline", tok.text, pipe=inner, chain=chain), j
        if kind == "rparen":
            raise self.error(tok.pos, "unexpected right paren")
        if kind in ("decl", "assign", "comma"):
            raise self.error(tok.pos, f"unexpected {tok.text!r} in command")
        if kind == "field":
            return Operand(tok.pos, "field", tok.text, chain=tuple(tok.text[1:].split("."))), i + 1
        if kind == "dot":
            return Operand(tok.pos, "dot", "."), i + 1
        if kind == "variable":
            chain = ()
            j = i + 1
            if (
                j < len(tokens)
                and tokens[j].kind == "field"
                and tokens[j].pos == tok.pos + len(tok.text)
            ):
                chain = tuple(tokens[j].text[1:].split("."))
                j += 1
            return Operand(tok.pos, "var", tok.text, chain=chain), j
        if kind == "ident":
            if tok.text in ("true", "false"):
                return Operand(tok.pos, "literal", tok.text, tok.text == "true"), i + 1
            if tok.text == "nil":
                return Operand(tok.pos, "literal", tok.text, None), i + 1
            if tok.text in _KEYWORDS:
                raise self.error(tok.pos, f"unexpected <{tok.text}> in command")
            if tok.text not in FUNCTIONS:
                raise self.error(tok.pos, f'function "{tok.text}" not defined')
            return Operand(tok.pos, "ident", tok.text), i + 1
        return Operand(tok.pos, "literal", tok.text, self.literal(tok)), i + 1

    def literal(self, tok: Tok) -> Any:
        text = tok.text
        if tok.kind == "raw":
            return text[1:-1]
        if tok.kind in ("string", "char"):
            what = "character constant" if tok.kind == "char" else "string"
            try:
                value = unquote(text[1:-1])
            except ValueError:
                raise self.error(tok.pos, f"malformed {what}: {text[:40]}") from None
            if tok.kind == "char":
                if len(value) != 1:
                    raise self.error(tok.pos, f"malformed {what}: {text[:40]}")
                return ord(value)
            return value
        digits = text.replace("_", "")
        if len(digits) > 40:
            raise self.error(tok.pos, f"number too long: {text[:40]}")
        try:
            if re.fullmatch(r"[+-]?0[xX][0-9a-fA-F]+", digits):
                return _int64(int(digits, 16), tok, self)
            if re.fullmatch(r"[+-]?\d+", digits):
                return _int64(int(digits), tok, self)
            return float(digits)
        except ValueError:
            raise self.error(tok.pos, f"illegal number syntax: {text!r}") from None


def _int64(value: int, tok: Tok, parser: Parser) -> int:
    if not -(2**63) <= value < 2**63:
        raise parser.error(tok.pos, f"integer overflow: {tok.text}")
    return value


_ESCAPE = re.compile(
    r"\\(?:([abfnrtv\\'\"])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([0-7]{3})|(.))"
)
_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def unquote(body: str) -> str:
    """The value of a Go string or character literal's body (ValueError if malformed)."""

    def one(m: re.Match[str]) -> str:
        simple, hex2, hex4, hex8, octal, bad = m.groups()
        if bad is not None:
            raise ValueError(bad)
        if simple is not None:
            return _SIMPLE.get(simple, simple)
        code = int(hex2 or hex4 or hex8 or "0", 16) if octal is None else int(octal, 8)
        # As Go's strconv: an octal escape is one byte, and a \u or \U escape a valid
        # rune (no surrogate half, which no output could encode).
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF or (octal is not None and code > 0o377):
            raise ValueError(code)
        return chr(code)

    return _ESCAPE.sub(one, body)


def parse_nodes(source: str, limits: Limits) -> list[Node]:
    """The nodes of template ``source``; TemplateError with Go's message if it does not parse."""
    parser = Parser(source, limits)
    nodes, stop, _, pos = parser.nodes(0, False)
    if stop:
        raise parser.error(pos, f"unexpected {{{{{stop}}}}}")
    return nodes
