"""What a command's own parser leaves must be Beam's pipeline options, parsed by Beam itself (its public
`get_all_options`). Beam alone warns about an unknown flag and drops it, so a misspelled `--num-negative 5` would
run with the default; here it is an error naming the closest valid flag, judgemine's or Beam's."""
from __future__ import annotations

import difflib
import functools

from apache_beam.options.pipeline_options import PipelineOptions

from judgemine.pipelines.run.errors import UserError


class UnknownFlag(UserError):
    """A flag no judgemine setting and no Beam pipeline option has."""


@functools.lru_cache(maxsize=1)
def beam_option_names() -> frozenset[str]:
    """Every pipeline option Beam (and any installed runner or IO) declares, by its name."""
    return frozenset(PipelineOptions([]).get_all_options())


def beam_options(leftover: list[str], ours: list[str], prog: str) -> PipelineOptions:
    """Beam's options from the arguments judgemine's parser did not take; the first that Beam does not know
    either is an UnknownFlag naming the closest flag (`ours` first: most typos are of judgemine's settings)."""
    parsed = PipelineOptions(leftover).get_all_options(retain_unknown_options=True)
    unknown = [name for name in parsed if name not in beam_option_names()]
    stray = [a for i, a in enumerate(leftover) if not a.startswith("-")
             and (i == 0 or not leftover[i - 1].startswith("-") or "=" in leftover[i - 1])]
    if stray:
        raise UnknownFlag(f"{prog}: unexpected argument {stray[0]!r} (settings are flags: --name value)")
    if not unknown:
        return PipelineOptions(leftover)
    given = next((a.split("=", 1)[0] for a in leftover if a.startswith("-")
                  and a.split("=", 1)[0].lstrip("-").replace("-", "_") == unknown[0]), f"--{unknown[0]}")
    close = (difflib.get_close_matches(given, ours, n=1)
             or difflib.get_close_matches(given.lstrip("-"), sorted(beam_option_names()), n=1))
    hint = (f"; did you mean {close[0] if close[0].startswith('-') else '--' + close[0]}?" if close
            else f"; `{prog} --help` lists the settings")
    raise UnknownFlag(f"unknown flag {given}{hint}")
