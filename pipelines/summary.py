"""The lines `judgemine run` prints when it ends: what the run read, wrote, rejected and judged, from its
manifest.json."""
from __future__ import annotations

import json
from typing import Any


def summary(manifest: dict[str, Any], report: dict[str, dict[str, Any]] | None) -> str:
    acc, scores = manifest["accounting"], manifest["scores"]
    lines = [f"queries in:      {acc['pairs_in']}",
             f"shards written:  {len(manifest['shards'])} ({acc['rows_out']} rows) under "
             f"{manifest['settings']['output']}/shards",
             f"rejected:        {sum(acc['rejected'].values())} "
             + json.dumps(manifest["rejects_by_reason"], sort_keys=True),
             f"corpus rows:     {acc['corpus']['rows_in']} in, {acc['corpus']['kept']} kept, "
             f"{acc['corpus']['rejected']} rejected",
             f"accounted for:   {'yes' if acc['balanced'] else 'NO'}",
             f"judge score:     positive mean {scores['positive'].get('mean', float('nan')):.3f}, "
             f"negative mean {scores['negative'].get('mean', float('nan')):.3f} "
             f"({scores['negative_in_shards'].get('mean', float('nan')):.3f} with the fallback rows' 1.0s), "
             f"{scores['false_negatives_filtered']} false negatives filtered, "
             f"{scores['fallback_rows']} fallback rows",
             "time per stage:  " + ", ".join(
                 f"{s} {r['seconds']:.2f}s" + (" (up to date)" if report and report[s]["skipped"] else "")
                 for s, r in (report or manifest["stages"]).items())]
    return "\n".join(lines)
