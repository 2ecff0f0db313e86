"""The lines `judgemine run` prints when it ends: what the run read, wrote, rejected and judged, from its
manifest.json, then the verdict on whether to train on it (pipelines/outputs/health.py)."""
from __future__ import annotations

from typing import Any

from judgemine.pipelines.outputs.health import findings, verdict
from judgemine.schemas.layout import RunLayout


def _mean(stats: dict[str, Any]) -> str:
    return f"{stats['mean']:.3f}" if stats.get("mean") is not None else "none"


def summary(manifest: dict[str, Any], report: dict[str, dict[str, Any]] | None) -> str:
    acc, scores = manifest["accounting"], manifest["scores"]
    reasons = ", ".join(f"{stage} {reason} {n}" for stage, by in sorted(manifest["rejects_by_reason"].items())
                        for reason, n in sorted(by.items(), key=lambda kv: -kv[1]))
    found = findings(manifest)
    repeated = acc.get("repeated_pairs", 0)
    lines = [f"queries in:      {acc['pairs_in']}" + (f" ({repeated} of them a pair read before)" if repeated else ""),
             f"shards written:  {len(manifest['shards'])} ({acc['rows_out']} rows) under "
             f"{RunLayout(manifest['settings']['output']).shards}",
             f"rejected:        {sum(acc['rejected'].values())}" + (f" ({reasons})" if reasons else ""),
             f"corpus rows:     {acc['corpus']['rows_in']} in, {acc['corpus']['kept']} kept, "
             f"{acc['corpus']['rejected']} rejected",
             f"accounted for:   {'yes' if acc['balanced'] else 'NO'}",
             f"judge score:     positive mean {_mean(scores['positive'])}, "
             f"negative mean {_mean(scores['negative'])} "
             f"({_mean(scores['negative_in_shards'])} with the fallback rows' 1.0s), "
             f"{scores['false_negatives_filtered']} false negatives filtered, "
             f"{scores['fallback_rows']} fallback rows",
             "time per stage:  " + ", ".join(
                 f"{s} {r['seconds']:.2f}s" + (" (up to date)" if report and report[s]["skipped"] else "")
                 for s, r in (report or manifest["stages"]).items()),
             f"train on it?     {verdict(found)}",
             *[f"  {f.line()}" for f in found if f.level == "warning"]]
    return "\n".join(lines)
