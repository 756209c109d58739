"""Running parsed nodes on data: Go's evaluation rules, bounded."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.gotemplate._functions import ARITY, FUNCTIONS, ArgError, CallError
from engine.gotemplate._parse import (
    Action,
    Branch,
    Command,
    Loop,
    Node,
    Operand,
    Pipeline,
    Text,
    line_of,
    parse_nodes,
)
from engine.gotemplate._values import (
    Fields,
    Limits,
    StringMap,
    TemplateError,
    arity,
    go_string,
    go_type,
    truth,
)

# -- execution -----------------------------------------------------------------------


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _ExecError(Exception):
    def __init__(self, node: Node, text: str, message: str) -> None:
        super().__init__(message)
        self.node, self.text, self.message = node, text, message


@dataclass
class _State:
    limits: Limits
    missing_error: bool
    functions: Mapping[str, Callable[..., Any]]
    out: list[str] = field(default_factory=list)
    size: int = 0
    steps: int = 0
    scopes: list[dict[str, Any]] = field(default_factory=list)

    def step(self, node: Node) -> None:
        self.steps += 1
        if self.steps > self.limits.steps:
            raise _ExecError(node, "", f"exceeded the limit of {self.limits.steps} steps")

    def write(self, node: Node, text: str) -> None:
        self.size += len(text)
        if self.size > self.limits.output:
            raise _ExecError(node, "", f"output exceeds {self.limits.output} characters")
        self.out.append(text)

    def lookup(self, node: Node, name: str) -> Any:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        raise _ExecError(node, name, f"undefined variable: {name}")

    def assign(self, name: str, value: Any, declare: bool) -> None:
        if not declare:
            for scope in reversed(self.scopes):
                if name in scope:
                    scope[name] = value
                    return
        self.scopes[-1][name] = value


class Template:
    """A parsed template; :meth:`execute` runs it."""

    def __init__(self, source: str, nodes: list[Node], limits: Limits) -> None:
        self.source = source
        self._nodes = nodes
        self.limits = limits

    def execute(
        self,
        data: Any,
        *,
        missing_key_error: bool = False,
        functions: Mapping[str, Callable[..., Any]] | None = None,
    ) -> str:
        """The template's output for ``data``; TemplateError with Go's message on failure.

        ``missing_key_error`` is Go's ``missingkey=error`` option (a missing
        map key fails instead of printing ``<no value>``); ``functions``
        replaces :data:`FUNCTIONS` (a table header's, :data:`HEADER_FUNCTIONS`).
        """
        state = _State(self.limits, missing_key_error, functions or FUNCTIONS)
        state.scopes.append({"$": data})
        try:
            self._run(state, self._nodes, data)
        except _ExecError as exc:
            raise TemplateError(self._where(exc), "".join(state.out)) from None
        except (_Break, _Continue):  # pragma: no cover - the parser keeps them in ranges
            raise TemplateError("template: break or continue outside range") from None
        except RecursionError:
            raise TemplateError("template: nested too deeply") from None
        return "".join(state.out)

    def _where(self, exc: _ExecError) -> str:
        pos = exc.node.pos
        line = line_of(self.source, pos)
        column = pos - (self.source.rfind("\n", 0, pos) + 1)
        shown = exc.text or (
            exc.node.kind if isinstance(exc.node, Branch) else self._node_text(exc.node)
        )
        return f'template: :{line}:{column}: executing "" at <{shown}>: {exc.message}'

    def _node_text(self, node: Node) -> str:
        if isinstance(node, Text):
            return node.text[:40]
        end = self.source.find("}}", node.pos)
        text = self.source[node.pos : end if end >= 0 else len(self.source)].strip()
        return text.removesuffix("-").rstrip()

    def _run(self, state: _State, nodes: Sequence[Node], dot: Any) -> None:
        for node in nodes:
            state.step(node)
            if isinstance(node, Text):
                state.write(node, node.text)
            elif isinstance(node, Action):
                value = self._pipeline(state, node.pipe, dot)
                if not node.pipe.decl:
                    state.write(node, _printable(node, value))
            elif isinstance(node, Branch):
                self._branch(state, node, dot)
            elif isinstance(node, Loop):
                raise _Break() if node.kind == "break" else _Continue()

    def _scoped(
        self, state: _State, nodes: Sequence[Node], dot: Any, names: Mapping[str, Any] = {}
    ) -> None:
        state.scopes.append(dict(names))
        try:
            self._run(state, nodes, dot)
        finally:
            state.scopes.pop()

    def _branch(self, state: _State, node: Branch, dot: Any) -> None:
        state.scopes.append({})
        try:
            value = self._pipeline(state, node.pipe, dot)
            if node.kind == "range":
                self._range(state, node, value, dot)
            elif truth(value):
                self._scoped(state, node.body, value if node.kind == "with" else dot)
            else:
                self._scoped(state, node.orelse, dot)
        finally:
            state.scopes.pop()

    def _range(self, state: _State, node: Branch, value: Any, dot: Any) -> None:
        names = node.pipe.decl
        if isinstance(value, Mapping):
            items: Iterator[tuple[Any, Any]] | list[tuple[Any, Any]] = [
                (k, value[k]) for k in sorted(value)
            ]
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            if len(names) > 1:
                raise _ExecError(node, "", "can't use range over int with two variables")
            items = ((i, i) for i in range(max(0, value)))
        elif value is None:
            items = []
        else:
            raise _ExecError(node.pipe, "", f"range can't iterate over {go_string(value)}")
        empty = True
        for key, element in items:
            empty = False
            state.step(node)
            bound = {}
            if len(names) == 1:
                bound[names[0]] = element if not isinstance(value, int) else key
            elif len(names) == 2:
                bound = {names[0]: key, names[1]: element}
            try:
                self._scoped(state, node.body, element, bound)
            except _Break:
                break
            except _Continue:
                continue
        if empty:
            self._scoped(state, node.orelse, dot)

    def _pipeline(self, state: _State, pipe: Pipeline, dot: Any) -> Any:
        value: Any = NO_PIPE
        for command in pipe.commands:
            value = self._command(state, command, dot, value)
        for name in pipe.decl:
            state.assign(name, value, not pipe.assign)
        if pipe.assign:
            for name in pipe.decl:
                state.lookup(pipe, name)
        return value

    def _command(self, state: _State, command: Command, dot: Any, piped: Any) -> Any:
        state.step(command)
        head, args = command.args[0], command.args[1:]
        if head.kind == "ident":
            return self._call(state, command, head.text, args, dot, piped)
        if head.kind in ("field", "var", "pipeline", "dot") and (args or piped is not NO_PIPE):
            if head.kind in ("field", "var", "pipeline") and head.chain:
                return self._field_call(state, head, args, dot, piped)
            raise _ExecError(command, head.text, f"can't give argument to non-function {head.text}")
        if args:
            raise _ExecError(command, head.text, f"can't give argument to non-function {head.text}")
        if piped is not NO_PIPE:
            raise _ExecError(command, head.text, f"can't give argument to non-function {head.text}")
        return self._operand(state, head, dot)

    def _operand(self, state: _State, op: Operand, dot: Any) -> Any:
        if op.kind == "literal":
            return op.value
        if op.kind == "dot":
            return dot
        if op.kind == "ident":
            return self._call(state, Command(op.pos, [op]), op.text, [], dot, NO_PIPE)
        if op.kind == "field":
            return self._chain(state, op, dot, op.chain)
        if op.kind == "var":
            return self._chain(state, op, state.lookup(op, op.text), op.chain)
        assert op.pipe is not None
        return self._chain(state, op, self._pipeline(state, op.pipe, dot), op.chain)

    def _chain(
        self,
        state: _State,
        op: Operand,
        value: Any,
        chain: Sequence[str],
        args: Sequence[Any] = (),
    ) -> Any:
        for i, name in enumerate(chain):
            last = i == len(chain) - 1
            value = self._field(state, op, value, name, args if last else (), last)
        return value

    def _field(
        self, state: _State, op: Operand, value: Any, name: str, args: Sequence[Any], last: bool
    ) -> Any:
        shown = "." + name if op.kind == "field" else op.text
        if isinstance(value, Fields):
            method = value.template_field(name)
            if method is None:
                raise _ExecError(
                    op,
                    shown if op.kind != "field" else op.text,
                    f"can't evaluate field {name} in type {value.type_name}",
                )
            want = arity(value, name)
            if want != len(args):
                raise _ExecError(
                    op, op.text, f"wrong number of args for {name}: want {want} got {len(args)}"
                )
            try:
                return method(*args)
            except ArgError as exc:
                raise _ExecError(op, op.text, str(exc)) from None
        if args:
            raise _ExecError(op, op.text, f"{name} is not a method but has arguments")
        if isinstance(value, Mapping):
            if name in value:
                return value[name]
            # A typed map (docker's map[string]string) is read with the default option.
            if state.missing_error and not isinstance(value, StringMap):
                raise _ExecError(op, op.text, f'map has no entry for key "{name}"')
            return MISSING
        if value is None or value is MISSING:
            raise _ExecError(op, op.text, f"nil pointer evaluating interface {{}}.{name}")
        raise _ExecError(op, op.text, f"can't evaluate field {name} in type {go_type(value)}")

    def _field_call(
        self, state: _State, head: Operand, args: Sequence[Operand], dot: Any, piped: Any
    ) -> Any:
        values = [self._arg(state, a, dot) for a in args]
        if piped is not NO_PIPE:
            values.append(piped)
        if head.kind == "field":
            receiver = dot
        elif head.kind == "var":
            receiver = state.lookup(head, head.text)
        else:
            assert head.pipe is not None
            receiver = self._pipeline(state, head.pipe, dot)
        receiver = self._chain(state, head, receiver, head.chain[:-1])
        return self._field(state, head, receiver, head.chain[-1], values, True)

    def _arg(self, state: _State, op: Operand, dot: Any) -> Any:
        value = self._operand(state, op, dot)
        return None if value is MISSING else value

    def _call(
        self,
        state: _State,
        command: Command,
        name: str,
        args: Sequence[Operand],
        dot: Any,
        piped: Any,
    ) -> Any:
        fn = state.functions[name]
        if name in ("and", "or"):
            return self._logic(state, command, name, args, dot, piped)
        values = [self._arg(state, a, dot) for a in args]
        if piped is not NO_PIPE:
            values.append(None if piped is MISSING else piped)
        least, most = ARITY.get(name, (0, None))
        if len(values) < least or (most is not None and len(values) > most):
            want = least if most == least else f"at least {least}" if most is None else least
            raise _ExecError(
                command, name, f"wrong number of args for {name}: want {want} got {len(values)}"
            )
        try:
            return fn(*values)
        except ArgError as exc:
            raise _ExecError(command, "", str(exc)) from None
        except CallError as exc:
            raise _ExecError(command, "", f"error calling {name}: {exc}") from None
        except (TypeError, ValueError, OverflowError, MemoryError) as exc:
            raise _ExecError(command, "", f"error calling {name}: {exc}") from None

    def _logic(
        self,
        state: _State,
        command: Command,
        name: str,
        args: Sequence[Operand],
        dot: Any,
        piped: Any,
    ) -> Any:
        if not args and piped is NO_PIPE:
            raise _ExecError(
                command, name, f"wrong number of args for {name}: want at least 1 got 0"
            )
        value: Any = None
        thunks: list[Callable[[], Any]] = [lambda a=a: self._arg(state, a, dot) for a in args]  # type: ignore[misc]
        if piped is not NO_PIPE:
            thunks.append(lambda: piped)
        for thunk in thunks:
            value = thunk()
            if truth(value) == (name == "or"):
                return value
        return value


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NO_PIPE: Any = _Sentinel("no pipe")
MISSING: Any = _Sentinel("<no value>")


def _printable(node: Node, value: Any) -> str:
    if value is MISSING:
        return "<no value>"
    if isinstance(value, Fields):
        return go_string(value)
    return go_string(value)


def parse(source: str, limits: Limits | None = None) -> Template:
    """The template ``source``; TemplateError with Go's message if it does not parse."""
    chosen = limits or Limits()
    return Template(source, parse_nodes(source, chosen), chosen)
