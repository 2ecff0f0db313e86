""""Can I train on this?": what a run's manifest says of its shards, as findings with their likely cause and the
setting to change. The summary `judgemine run` prints and the report's first section both read them, so the
two never disagree. The shares that make a finding a warning are named here, once."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from judgemine.transforms.common.model_kinds import random_weights

if TYPE_CHECKING:
    from judgemine.pipelines.settings import Settings

REJECTED_SHARE = 0.05  # of the pair rows read
FALLBACK_SHARE = 0.10  # of the shard rows: no negative survived the rule, random ones stand in
SHORT_OF_M_SHARE = 0.20  # of the shard rows: fewer distinct negatives than num_negatives, repeated to fill m


@dataclass(frozen=True)
class Finding:
    """One line of the verdict: `level` "warning" when a share passes its threshold, pairs were read more than
    once or the scores say the judge did not separate positives from negatives, "ok" otherwise."""
    level: Literal["ok", "warning"]
    what: str
    fix: str = ""

    def line(self) -> str:
        return f"{'WARNING' if self.level == 'warning' else 'ok'}: {self.what}" + (f" ({self.fix})" if self.fix
                                                                                  else "")


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


DEMO_FIX = {"judge": "pass a real model folder with --judge-model, or --judge-backend similarity (the embedder's "
                     "similarity as the score: no model to run)",
            "embedder": "pass a real model folder with --embed-model"}


def demo_models(models: dict[str, dict[str, Any]]) -> list[Finding]:
    """A warning for each model with random weights ({role: {"path", "random_weights"}}, as the manifest keeps
    them): its scores or vectors mean nothing. The run's summary, `plan`, `run`'s first lines and `export` say it."""
    return [Finding("warning", f"the {role} {models[role]['path']} is a random-weight demo model: its {made} mean "
                               "nothing", DEMO_FIX[role])
            for role, made in (("judge", "scores"), ("embedder", "vectors"))
            if models.get(role, {}).get("random_weights")]


def models_of(settings: Settings) -> dict[str, dict[str, Any]]:
    """The run's models as the manifest will name them, from its settings (before anything runs)."""
    from judgemine.pipelines.judge.stage import needs_model
    from judgemine.pipelines.settings import given
    judge = settings.judge_model if needs_model(given("judge", settings)) else ""
    return {"judge": {"path": judge or "none", "backend": settings.judge_backend,
                      "random_weights": random_weights(judge)},
            "embedder": {"path": settings.resolved_embed_model, "backend": settings.embed_backend,
                         "random_weights": random_weights(settings.resolved_embed_model)}}


def model_lines(models: dict[str, dict[str, Any]]) -> list[str]:
    """The judge and embedder named, then a warning line for each demo one."""
    return [f"judge {models['judge']['path']} ({models['judge']['backend']}), embedder {models['embedder']['path']} "
            f"({models['embedder']['backend']})", *(f.line() for f in demo_models(models))]


def findings(manifest: dict[str, Any]) -> list[Finding]:
    acc, mining, scores = manifest["accounting"], manifest.get("mining", {}), manifest["scores"]
    rows, pairs_in = acc["rows_out"], acc["pairs_in"]
    m = mining.get("rule", {}).get("num_negatives", 0)
    out = demo_models(manifest.get("run", {}).get("models", {}))
    rejected = sum(acc["rejected"].values())
    reasons = manifest.get("rejects_by_reason", {})
    top = max(((n, f"{stage}: {reason}") for stage, by in reasons.items() for reason, n in by.items()), default=None)
    out.append(Finding(
        "warning" if _share(rejected, pairs_in) > REJECTED_SHARE else "ok",
        f"{rejected:,} of {pairs_in:,} pair rows rejected ({_share(rejected, pairs_in):.0%})"
        + (f", mostly {top[1]}" if top else ""), "see rejects/ for each row and its reason" if rejected else ""))
    again = acc.get("repeated_pairs", 0)
    if again:
        out.append(Finding(
            "warning", f"{again:,} of {pairs_in:,} pair rows repeat a (query, positive) pair read before: each pair "
            "was mined once", "a triplet or n-tuple file lists its pair once per negative; its negatives are not "
            "read: ingest's log line names the fields it did not read"))
    fallback = mining.get("rows_fallback", scores.get("fallback_rows", 0))
    out.append(Finding(
        "warning" if _share(fallback, rows) > FALLBACK_SHARE else "ok",
        f"{fallback:,} of {rows:,} rows are fallback rows ({_share(fallback, rows):.0%}): no candidate scored below "
        "the positive minus beta, so random negatives scored 1.0 stand in",
        "a weak judge or near-duplicates in the pool; try a smaller --beta (a larger one drops more candidates: "
        "the report's beta table shows how many queries each beta leaves with none) or a larger --top-k, or "
        "--on-no-negatives reject"
        if _share(fallback, rows) > FALLBACK_SHARE else ""))
    repeated = mining.get("rows_repeated", 0)
    out.append(Finding(
        "warning" if _share(repeated, rows) > SHORT_OF_M_SHARE else "ok",
        f"{repeated:,} of {rows:,} rows have fewer than m = {m} distinct negatives ({_share(repeated, rows):.0%}), "
        "repeated to fill m", "raise --top-k or lower --num-negatives" if _share(repeated, rows) > SHORT_OF_M_SHARE
        else ""))
    removed = mining.get("skipped", {})
    out.append(Finding("ok", f"{sum(removed.values()):,} candidates dropped as likely false negatives by the rule"))
    pos, neg = scores["positive"].get("mean"), scores["negative"].get("mean")
    if pos is not None and neg is not None:
        separated = pos > neg
        out.append(Finding("ok" if separated else "warning",
                           f"judge score: positives {pos:.3f} on average, kept negatives {neg:.3f}",
                           "" if separated else "the judge does not rank positives above negatives: check the "
                                                "judge model and --judge-prompt"))
    return out


def verdict(found: list[Finding]) -> str:
    warnings = sum(1 for f in found if f.level == "warning")
    return "yes: nothing to warn about" if not warnings else f"look first: {warnings} warning(s) below"
