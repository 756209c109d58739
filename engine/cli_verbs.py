"""How a verb of ``chartd`` is declared, and the parser that reads a command line.

A :class:`Verb` is a name, a one-line help, its arguments (as
``argparse.ArgumentParser.add_argument`` takes them) and the function that
runs it with the parsed :class:`argparse.Namespace`. The parser is the
standard library's: it costs nothing to import, where a framework that
builds and validates its commands at every start would cost more than the
RPC a client verb sends. Usage errors print ``Error: <what>`` and the verb's
help hint on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

__all__ = ["Arg", "Parser", "Verb", "arg", "non_negative", "positive"]


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument: ``add_argument(*flags, **options)``."""

    flags: tuple[str, ...]
    options: dict[str, Any]


def arg(*flags: str, **options: Any) -> Arg:
    """An argument of a verb, as ``add_argument`` takes it."""
    return Arg(flags, options)


@dataclass(frozen=True, slots=True)
class Verb:
    """A command of ``chartd``: ``run(args)`` does it; ``args`` has ``host`` and ``tls_ca`` too."""

    name: str
    help: str
    run: Callable[[argparse.Namespace], None]
    args: Sequence[Arg] = ()
    description: str | None = None
    children: Sequence[Verb] = field(default_factory=tuple)


def _at_least(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{value} is less than {least}")
    return value


def positive(text: str) -> int:
    """An integer of at least 1 (an argparse ``type``)."""
    return _at_least(text, 1)


def non_negative(text: str) -> int:
    """An integer of at least 0 (an argparse ``type``)."""
    return _at_least(text, 0)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors read ``Error: ...``, as the CLI's other errors."""

    def error(self, message: str) -> NoReturn:
        """Print the error and where help is, then exit 2."""
        sys.stderr.write(f"Error: {message}\nSee '{self.prog} --help'.\n")
        raise SystemExit(2)

    def add_verbs(self, verbs: Sequence[Verb]) -> None:
        """A sub-command for each verb (and each verb's own sub-commands)."""
        sub = self.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
        for verb in verbs:
            parser = sub.add_parser(
                verb.name,
                help=verb.help,
                description=verb.description or verb.help,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
            for a in verb.args:
                parser.add_argument(*a.flags, **a.options)
            parser.set_defaults(run=verb.run, parser=parser)
            if verb.children:
                parser.add_verbs(verb.children)
