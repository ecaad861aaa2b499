"""The command line of a hyperparameter dataclass, without torch: one `--field-name` option per field (also
`--field_name`, the field's own spelling, left out of --help; no abbreviations), its help text the field's
trailing comment.

`fast_help()` answers `python Chapter_14_<script>.py --help` before torch is imported (importing torch, and
learn2learn for the MAML script, takes 3 to 10 s): `common/__init__.py` calls it, and it reads the script's
`Config` (and its base classes) from the source files with `ast`, builds the same parser `cli` builds, prints the
same help and exits. Where a class cannot be read that way, it returns and the script's own `cli` prints the help.
tests/test_scripts.py checks that both helps are identical for every script.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import re
import sys
import typing
from pathlib import Path
from typing import Any, get_type_hints

REPO = Path(__file__).resolve().parent.parent  # the folder holding the scripts
KINDS = {"int": int, "float": float, "str": str, "bool": bool}
COMMENT = re.compile(r"\s+(\w+)\s*:[^=#]+=[^#]*#\s*(.*)$")  # `name: type = default  # comment`


@dataclasses.dataclass
class Option:
    name: str
    kind: type
    default: Any
    help: str


class OneLineParser(argparse.ArgumentParser):
    """argparse, but an error is one line (problem and fix) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def field_comments(config_cls: type) -> dict[str, str]:
    """The trailing `# comment` of each field line in the dataclass source (and its bases): the help texts."""
    comments: dict[str, str] = {}
    for cls in reversed(config_cls.__mro__):
        if not dataclasses.is_dataclass(cls) or cls is object:
            continue
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        for line in source.splitlines():
            m = COMMENT.match(line)
            if m:
                comments[m.group(1)] = m.group(2).strip()
    return comments


def optional_kind(hint: Any) -> Any:
    """`float | None` (a field whose default the script fills in, e.g. per mode) reads as float on the command
    line; any other hint as itself."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 and len(typing.get_args(hint)) == 2 else hint


def dataclass_options(config_cls: type) -> list[Option]:
    hints = get_type_hints(config_cls)
    comments = field_comments(config_cls)
    options = []
    for field in dataclasses.fields(config_cls):
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc]
        options.append(Option(field.name, optional_kind(hints[field.name]), default, comments.get(field.name, "")))
    return options


def build_parser(config_cls: type, description: str | None = None, prog: str | None = None) -> argparse.ArgumentParser:
    return options_parser(dataclass_options(config_cls), description, prog)


def options_parser(options: list[Option], description: str | None, prog: str | None) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=prog,
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,  # --num 5 is an error, not --num-bits 5
    )
    for option in options:
        help_text = option.help.replace("%", "%%")  # argparse formats help with %
        if option.kind is bool:
            kwargs = dict(action=argparse.BooleanOptionalAction)
        elif option.kind in (int, float, str):
            kwargs = dict(type=option.kind, metavar=option.kind.__name__.upper())
        else:
            raise TypeError(f"{option.name}: unsupported type {option.kind!r} for the command line")
        parser.add_argument(
            "--" + option.name.replace("_", "-"), dest=option.name, default=option.default, help=help_text, **kwargs
        )
        if "_" in option.name:  # the field's own spelling works too (--max_frames), left out of --help
            parser.add_argument(
                "--" + option.name, dest=option.name, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs
            )
    return parser


def description_of(doc: str | None) -> str | None:
    """The first paragraph of a script's docstring: the description --help shows."""
    return doc.strip().split("\n\n")[0] if doc else None


def source_options(path: Path, class_name: str) -> list[Option] | None:
    """The fields of dataclass `class_name` defined in `path`, its bases first (followed through `from module
    import name` inside this repository), as a dataclass orders them; None where the source cannot say."""
    try:
        source = path.read_text()
        tree = ast.parse(source)
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    lines = source.splitlines()
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    imports = {
        alias.asname or alias.name: (node.module, alias.name)
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module and not node.level
        for alias in node.names
    }
    node = classes.get(class_name)
    if node is None:
        return None
    options: list[Option] = []
    for base in node.bases:
        if not isinstance(base, ast.Name):
            return None
        if base.id in classes:
            inherited = source_options(path, base.id)
        elif base.id in imports:
            module, name = imports[base.id]
            inherited = source_options(REPO / (module.replace(".", "/") + ".py"), name)
        else:
            return None
        if inherited is None:
            return None
        options += [o for o in inherited if o.name not in {x.name for x in options}]
    for statement in node.body:
        if not isinstance(statement, ast.AnnAssign) or not isinstance(statement.target, ast.Name):
            continue
        kind = KINDS.get(ast.unparse(statement.annotation).strip("'\"").removesuffix(" | None"))
        if kind is None or statement.value is None:
            return None
        try:
            default = ast.literal_eval(statement.value)
        except ValueError:
            return None
        m = COMMENT.match(lines[statement.lineno - 1])
        option = Option(statement.target.id, kind, default, m.group(2).strip() if m else "")
        for i, known in enumerate(options):  # a field redefined keeps its place, as in a dataclass
            if known.name == option.name:
                options[i] = option
                break
        else:
            options.append(option)
    return options


def fast_help() -> None:
    """`python Chapter_14_<script>.py --help`: print the help from the script's source and exit, before torch
    is imported. Anything else (or a source this cannot read) returns, and the script runs as usual."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is None or not script.name.startswith("Chapter_14_") or script.suffix != ".py":
        return
    main = sys.modules.get("__main__")
    if main is None or Path(getattr(main, "__file__", "") or "").resolve() != script.resolve():
        return
    args = sys.argv[1:]
    if "--" in args:
        args = args[: args.index("--")]
    if not {"-h", "--help"} & set(args):
        return
    options = source_options(script, "Config")
    if options is None:
        return
    try:
        doc = ast.get_docstring(ast.parse(script.read_text()), clean=False)
    except (OSError, SyntaxError):
        return
    options_parser(options, description_of(doc), script.name).print_help()
    sys.exit(0)
