"""Command-line flags checked before anything runs: judgemine's settings and Beam's own pipeline options are
the only ones accepted. Beam alone warns about an unknown flag and drops it, so a misspelled `--num-negative 5`
would run with the default; here it is an error naming the closest valid flag."""
from __future__ import annotations

import difflib
from typing import Iterator

from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

from judgemine.pipelines.errors import UserError
from judgemine.pipelines.options import JudgemineOptions


class UnknownFlag(UserError):
    """A flag no judgemine setting and no Beam pipeline option has."""


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _parser(classes: list[type]) -> _BeamArgumentParser:
    parser = _BeamArgumentParser(allow_abbrev=False)
    for cls in {str(c): c for c in classes}.values():
        cls._add_argparse_args(parser)  # the classes' own registration, as Beam does
    return parser


def _names(parser: _BeamArgumentParser) -> list[str]:
    return [name for action in parser._actions for name in action.option_strings if name.startswith("--")]


def storage_options(argv: list[str], prog: str) -> None:
    """The arguments a command's own parser left: only Beam's options may be among them (for an s3:// or
    gs:// run, its filesystem options); they configure Beam's FileSystems for this process."""
    from apache_beam.io.filesystems import FileSystems
    beam_classes = [c for c in _subclasses(PipelineOptions) if c is not JudgemineOptions]
    _, unknown = _parser(beam_classes).parse_known_args(argv)
    if unknown:
        raise UnknownFlag(f"{prog}: unknown argument {unknown[0].split('=', 1)[0]}")
    FileSystems.set_options(PipelineOptions(argv))


def check_flags(argv: list[str]) -> None:
    """Raises UnknownFlag for the first argument neither judgemine nor Beam knows."""
    everything = _parser([JudgemineOptions, *_subclasses(PipelineOptions)])
    _, unknown = everything.parse_known_args(argv)
    if not unknown:
        return
    arg = unknown[0]
    if not arg.startswith("-"):
        raise UnknownFlag(f"unexpected argument {arg!r} (settings are flags: --name value)")
    name = arg.split("=", 1)[0]
    ours = [n for n in _names(_parser([JudgemineOptions])) if "_" not in n]  # one spelling of each setting
    close = difflib.get_close_matches(name, ours, n=1) or difflib.get_close_matches(name, _names(everything), n=1)
    hint = f"; did you mean {close[0]}?" if close else "; `judgemine run --help` lists the settings"
    raise UnknownFlag(f"unknown flag {name}{hint}")
