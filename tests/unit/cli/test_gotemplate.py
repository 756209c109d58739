"""The Go template subset of ``--format``: what scripts write, Go's errors, hostile templates."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.gotemplate import HEADER_FUNCTIONS, Fields, Limits, StringMap, TemplateError, parse

INSPECT: dict[str, Any] = {
    "Id": "4f1c0ffee",
    "Name": "/web",
    "State": {"Status": "running", "Running": True, "Pid": 42, "ExitCode": 0, "Error": ""},
    "RestartCount": 3,
    "Config": {"Cmd": ["sh", "-c", "sleep 9"], "Labels": {"b": "2", "a": "1"}, "Env": []},
    "HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 5}},
    "StopTimeout": None,
}


def run(source: str, data: Any = INSPECT, **options: Any) -> str:
    return parse(source).execute(data, **options)


def error(source: str, data: Any = INSPECT, **options: Any) -> str:
    with pytest.raises(TemplateError) as caught:
        run(source, data, **options)
    return str(caught.value)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{.State.Status}}", "running"),
        ("{{.Name}}", "/web"),
        ("{{json .State}}", '{"Status":"running","Running":true,"Pid":42,"ExitCode":0,"Error":""}'),
        ("{{json .Config.Labels}}", '{"b":"2","a":"1"}'),
        ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}", "a=1 b=2 "),
        ("{{range .Config.Cmd}}[{{.}}]{{end}}", "[sh][-c][sleep 9]"),
        ("{{range $i, $a := .Config.Cmd}}{{$i}}{{end}}", "012"),
        ("{{range .Config.Env}}x{{else}}none{{end}}", "none"),
        ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
        ('{{if eq .State.Status "exited"}}a{{else if .State.Running}}b{{end}}', "b"),
        (
            "{{with .HostConfig.RestartPolicy}}{{.Name}}:{{.MaximumRetryCount}}{{end}}",
            "on-failure:5",
        ),
        ('{{index .Config.Labels "a"}}', "1"),
        ("{{index .Config.Cmd 2}}", "sleep 9"),
        ('{{join .Config.Cmd " "}}', "sh -c sleep 9"),
        (
            '{{upper .State.Status}} {{lower .Name}} {{title "hello world"}}',
            "RUNNING /web Hello World",
        ),
        ("{{.Name | upper}}", "/WEB"),
        ("{{len .Config.Cmd}} {{len .Name}}", "3 4"),
        ('{{split "a,b" ","}}', "[a b]"),
        ('{{pad "x" 2 1}}|{{pad "" 2 1}}|{{truncate .Id 4}}', "  x ||4f1c"),
        (
            "{{.Config.Cmd}} {{.Config.Labels}} {{.StopTimeout}}",
            "[sh -c sleep 9] map[a:1 b:2] <nil>",
        ),
        ('{{$n := .Name}}{{$n}}{{$n = "x"}}{{$n}}', "/webx"),
        ("a {{- .Name -}} b", "a/webb"),
        ("{{/* a comment */}}ok", "ok"),
        ("{{range 3}}{{.}}{{end}}", "012"),
        ('{{range .Config.Cmd}}{{if eq . "-c"}}{{continue}}{{end}}{{.}};{{end}}', "sh;sleep 9;"),
        ('{{range .Config.Cmd}}{{if eq . "-c"}}{{break}}{{end}}{{.}}{{end}}', "sh"),
        ('{{printf "%s=%d %5s|%-3s|%q" .Name .RestartCount "r" "l" "q"}}', '/web=3     r|l  |"q"'),
        ('{{print 1 2 "a" 3}} {{println "x"}}', "1 2a3 x\n"),
        ('{{and 1 0 2}} {{or 0 "" "z"}} {{not .State.Running}}', "0 z false"),
        ('{{lt 1 2}} {{ge .RestartCount 4}} {{ne .Name "/web"}}', "true false false"),
        ("{{(index .Config.Cmd 0) | upper}}", "SH"),
        ("{{1.5}} {{1e21}} {{0x10}} {{'a'}} {{true}} {{nil}}", "1.5 1e+21 16 97 true <nil>"),
        ('{{"tab\\there"}} {{`raw\\t`}}', "tab\there raw\\t"),
        ("{{slice .Config.Cmd 1 2}} {{slice .Name 1}}", "[-c] web"),
        ("{{.Missing}}", "<no value>"),
    ],
)
def test_what_scripts_write(source: str, expected: str) -> None:
    assert run(source) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{.ID", "template: :1: unclosed action"),
        ("{{nosuch .ID}}", 'template: :1: function "nosuch" not defined'),
        ("{{range}}{{end}}", "template: :1: missing value for range"),
        ("{{if .X}}", "template: :1: unexpected EOF"),
        ("{{end}}", "template: :1: unexpected {{end}}"),
        ("x\n{{else}}", "template: :2: unexpected {{else}}"),
        ("{{/* open", "template: :1: unclosed comment"),
        ('{{"open}}', "template: :1: unterminated quoted string"),
        ("{{break}}", "template: :1: {{break}} outside {{range}}"),
        ("{{(1}}", "template: :1: unclosed left paren"),
        ("{{1)}}", "template: :1: unexpected right paren"),
        ('{{define "x"}}{{end}}', "template: :1: {{define}} is not supported"),
        ("{{99999999999999999999}}", "template: :1: integer overflow: 99999999999999999999"),
        ("{{.A | }}", "template: :1: missing command"),
    ],
)
def test_parse_errors_read_as_go(source: str, message: str) -> None:
    assert error(source) == message


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{.Missing}}", 'executing "" at <.Missing>: map has no entry for key "Missing"'),
        ("{{.Name.Foo}}", "at <.Name.Foo>: can't evaluate field Foo in type string"),
        ("{{.StopTimeout.X}}", "nil pointer evaluating interface {}.X"),
        ("{{index .Config.Cmd 7}}", "error calling index: index out of range: 7"),
        ("{{upper .RestartCount}}", "wrong type for value; expected string; got int"),
        ('{{join .Config.Labels ","}}', "expected []string; got map[string]interface {}"),
        ("{{eq .Name 1}}", "error calling eq: incompatible types for comparison"),
        ("{{len 3}}", "error calling len: len of type int"),
        ("{{upper}}", "wrong number of args for upper: want 1 got 0"),
        ("{{.Name 1}}", "Name is not a method but has arguments"),
        ("{{range .Name}}{{end}}", "range can't iterate over /web"),
        ("{{$x}}", "undefined variable: $x"),
    ],
)
def test_execution_errors_read_as_go(source: str, message: str) -> None:
    found = error(source, missing_key_error=True)
    assert found.startswith("template: :1:") and found.endswith(message), found


def test_an_error_names_the_line_and_column() -> None:
    assert error("a\nbc {{.Nope}}", missing_key_error=True).startswith(
        'template: :2:5: executing "" at <.Nope>'
    )


class Row(Fields):
    """A ps-like context: fields are methods, Label takes an argument."""

    template_fields = ("ID", "Names", "Label", "Labels")
    type_name = "*formatter.ContainerContext"

    def ID(self) -> str:
        return "abc"

    def Names(self) -> str:
        return "web"

    def Labels(self) -> str:
        return "a=1"

    def Label(self, name: str) -> str:
        return {"a": "1"}.get(name, "")


def test_fields_and_methods_of_a_context() -> None:
    assert run('{{.ID}} {{.Names}} {{.Label "a"}}|{{.Label "b"}}|{{.Labels}}', Row()) == (
        "abc web 1||a=1"
    )
    assert run("{{json .}}", Row()) == '{"ID":"abc","Labels":"a=1","Names":"web"}'
    assert error("{{.Foo}}", Row()).endswith(
        "can't evaluate field Foo in type *formatter.ContainerContext"
    )
    assert error("{{.Label}}", Row()).endswith("wrong number of args for Label: want 1 got 0")


def test_header_functions_keep_the_column_names() -> None:
    header = {"ID": "CONTAINER ID", "Names": "NAMES"}
    tmpl = parse("{{upper .ID}}\t{{json .Names}}\t{{truncate .ID 3}}")
    assert tmpl.execute(header, functions=HEADER_FUNCTIONS) == "CONTAINER ID\tNAMES\tCONTAINER ID"


@pytest.mark.parametrize(
    "source",
    [
        "{{range 100000000}}x{{end}}",
        "{{range 1000}}{{range 1000}}{{range 1000}}x{{end}}{{end}}{{end}}",
        "{{range $i := 1000000000000}}{{end}}",
    ],
)
def test_a_runaway_template_stops_at_the_step_limit(source: str) -> None:
    assert "exceeded the limit of" in error(source)


def test_output_is_bounded() -> None:
    tmpl = parse('{{range 100}}{{pad "x" 9000 0}}{{end}}', Limits(output=100_000))
    with pytest.raises(TemplateError, match="output exceeds 100000 characters"):
        tmpl.execute({})


@pytest.mark.parametrize(
    "source",
    [
        "{{if 1}}" * 500 + "{{end}}" * 500,
        "{{" + "(" * 5000 + "1" + ")" * 5000 + "}}",
        '{{printf "%999999999d" 1}}',
        '{{pad "x" 0 999999999}}',
        "{{" * 1000,
        "{{" + "9" * 5000 + "}}",
    ],
)
def test_hostile_templates_fail_cleanly(source: str) -> None:
    with pytest.raises(TemplateError):
        run(source)


_PIECES = st.sampled_from(
    ["{{", "}}", "{{-", "-}}", ".", ".Name", ".State", "$", "$x", ":=", "=", "|", "(", ")",
     "range", "if", "else", "end", "with", "index", "json", "printf", '"', "`", "'", "%",
     " ", "1", "-1", "0x", "1e9", ",", "/*", "*/", "\n", "break", "len", "nil", "slice"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=30).map("".join))
def test_any_text_parses_or_fails_with_a_template_error(source: str) -> None:
    try:
        out = parse(source).execute(INSPECT, missing_key_error=True)
    except TemplateError as exc:
        assert str(exc).startswith("template: ")
    else:
        assert isinstance(out, str)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('{{"\\ud800"}}', 'template: :1: malformed string: "\\ud800"'),
        ('{{json "\\udcff"}}', 'template: :1: malformed string: "\\udcff"'),
        ('{{"\\U00110000"}}', 'template: :1: malformed string: "\\U00110000"'),
        ('{{print "\\400"}}', 'template: :1: malformed string: "\\400"'),
        ("{{'\\ud800'}}", "template: :1: malformed character constant: '\\ud800'"),
    ],
)
def test_escapes_go_refuses_are_refused(source: str, message: str) -> None:
    """A surrogate half or an octal escape past a byte is no rune in Go: refused when
    parsed, not written out as a string that no output can encode."""
    assert error(source) == message


def test_signed_and_trailing_dot_numbers_are_read_as_go() -> None:
    """Go's lexer takes ``-5`` after a space, and ``5.``, as numbers."""
    assert run('{{print -5 5. -1.5}}|{{print 1 -5}}|{{printf "%.1f" 2.}}') == "-5 5 -1.5|1 -5|2.0"
    assert error("{{.Name-5}}") == "template: :1: unexpected '-5' in operand"


def test_escapes_go_accepts_are_read_as_go() -> None:
    assert run('{{"\\u00e9\\U0001F600\\377\\x41"}}') == "\u00e9\U0001f600\u00ffA"
    assert run("{{'\\U0010FFFF'}}") == "1114111"


_FUNCTIONS = ["and", "or", "not", "len", "index", "slice", "eq", "ne", "lt", "le", "gt", "ge",
              "print", "printf", "println", "json", "split", "join", "title", "lower", "upper",
              "pad", "truncate", "call", "html", "define", "template", "block"]  # fmt: skip
_ARGUMENTS = ['"x"', '""', '"%d"', '"%s"', '"%v"', '"%x"', '"%q"', '"%*d"', '"%[2]d"', '"%!"',
              '"%-99d"', '"%c"', '"%%"', '"%5.2f"', '"%#v"', "1", "-1", "0", "99999999999999999999",
              "1.5", "1e308", "1e-400", "0x10", "'a'", "nil", "true", ".", ".Name", ".Config.Cmd",
              ".Config.Labels", ".State", ".StopTimeout", "$", "$x", "(len .Name)", ".Nope",
              "`raw`", "'\\u00e9'", '"\\u0000"', '"\\xff"', '"\\ud800"']  # fmt: skip


@st.composite
def _calls(draw: st.DrawFn) -> str:
    """Text and actions calling the functions with arguments of every kind."""
    out = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.integers(0, 2))
        args = draw(st.lists(st.sampled_from(_ARGUMENTS), max_size=4))
        if kind == 0:
            out.append("{{" + " ".join([draw(st.sampled_from(_FUNCTIONS)), *args]) + "}}")
        elif kind == 1:
            out.append("{{" + " | ".join([*args, draw(st.sampled_from(_FUNCTIONS))]) + "}}")
        else:
            out.append(draw(st.text(max_size=10)))
    return "".join(out)


@settings(max_examples=400, deadline=None)
@given(_calls())
def test_any_call_runs_or_fails_with_a_template_error_and_bounded_output(source: str) -> None:
    limits = Limits(steps=10_000, output=10_000)
    try:
        out = parse(source, limits).execute(INSPECT)
    except TemplateError as exc:
        assert str(exc).startswith("template: ")
    else:
        assert len(out) <= limits.output
        out.encode()  # what the CLI prints: no surrogate in it


def test_a_string_map_reads_a_missing_key_as_docker_s_typed_labels() -> None:
    data = {"Labels": StringMap({"a": "1"}), "Raw": {"a": "1"}}
    assert (
        run('{{.Labels.a}}|{{.Labels.b}}|{{index .Labels "b"}}|', data, missing_key_error=True)
        == "1|<no value>||"
    )
    assert run('{{index .Raw "b"}}', data) == "<nil>"
    assert error("{{.Raw.b}}", data, missing_key_error=True).endswith(
        'map has no entry for key "b"'
    )
