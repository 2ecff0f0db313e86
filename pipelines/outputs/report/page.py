"""The report page: one self-contained HTML file (figures and thumbnails as data URLs, no script, no network)."""
from __future__ import annotations

import base64
import html
import io
import logging
from typing import Any

import numpy as np
import pyarrow.compute as pc

from judgemine.pipelines.outputs.health import findings, verdict
from judgemine.pipelines.outputs.report import plots
from judgemine.pipelines.outputs.report.data import ReportData

log = logging.getLogger(__name__)
THUMBNAIL = 112  # pixels, longest side
SECTIONS = ("train", "summary", "scores", "false-negatives", "rates", "beta", "unique-negatives", "retrieval",
            "suspicious", "settings", "timings")
STYLE = """body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;vertical-align:top;
font-size:13px;text-align:left}th{background:#f3f3f3}img.fig{max-width:100%}td.text{max-width:260px}
.note{color:#555;font-size:13px}li.warning{color:#a40000;font-weight:bold}li.ok{color:#225522}"""


def _img(png: bytes, alt: str, cls: str = "fig") -> str:
    return f'<img class="{cls}" alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, _Raw) else html.escape(_fmt(c))}</td>" for c in r)
                   + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


class _Raw(str):
    """Markup that _table does not escape (a thumbnail)."""


def _fmt(value: Any) -> str:
    """A cell as a person reads it: thousands separated, 4 significant digits, lists as lists, no JSON."""
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "-"}[value]
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "-" if value != value else f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value) or "-"
    if isinstance(value, dict):
        return "; ".join(f"{k} {_fmt(v)}" for k, v in value.items()) or "-"
    return str(value)


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def _thumbnail(path: str, root: str) -> _Raw:
    if not path:
        return _Raw("")
    from judgemine.transforms.common.images import load
    try:
        image = load(path, root)
    except Exception as e:  # noqa: BLE001 - a missing picture is shown as such, not a failed report
        log.info("report: no thumbnail for %s: %s", path, e)
        return _Raw(f"<em>{html.escape(path)}: not readable</em>")
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return _Raw(f"{_img(buf.getvalue(), path, 'thumb')}<br>{html.escape(path)}")


def _cell(text: str, image: str, root: str) -> _Raw:
    return _Raw(html.escape(text) + ("<br>" + _thumbnail(image, root) if image else ""))


def _per_subset(d: ReportData, m: int) -> dict[str, dict[str, Any]]:
    t = d.shards
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(set(t.column("dataset").to_pylist())):
        s = t.filter(pc.equal(t.column("dataset"), name))
        real = s.filter(pc.invert(s.column("fallback")))
        candidates = pc.sum(s.column("num_candidates")).as_py() or 0
        out[name] = {"rows": s.num_rows, "pos": s.column("pos_score").to_numpy(),
                     "neg": pc.list_flatten(real.column("neg_scores")).to_numpy(),
                     "candidates": candidates, "false_negatives": pc.sum(s.column("num_false_negatives")).as_py() or 0,
                     "fallback": s.num_rows - real.num_rows,
                     "repeats": int(np.sum(real.column("num_unique_negatives").to_numpy() < m))}
    return out


def _train_on_it(d: ReportData, subsets: dict[str, dict[str, Any]]) -> str:
    """The first section: the verdict and its findings (pipelines/outputs/health.py, as the summary prints them), then
    how far the judge puts each positive above its kept negatives."""
    found = findings(d.manifest)
    items = "".join(f'<li class="{f.level}">{html.escape(f.line())}</li>' for f in found)
    t = d.shards.filter(pc.invert(d.shards.column("fallback")))
    best = pc.list_value_length(t.column("neg_scores"))
    rows = t.filter(pc.greater(best, 0))
    above, gap = 0, float("nan")
    if rows.num_rows:
        highest = np.array([max(v) for v in rows.column("neg_scores").to_pylist()], np.float64)
        pos = rows.column("pos_score").to_numpy().astype(np.float64)
        above, gap = int(np.sum(pos > highest)), float(np.median(pos - highest))
    return (f'<h2 id="train">Can I train on this?</h2><p><b>{html.escape(verdict(found))}</b></p><ul>{items}</ul>'
            + _table(["separation of positives from negatives", "value"], [
                ["rows whose positive scores above every kept negative",
                 f"{above:,} of {rows.num_rows:,} ({_share(above, rows.num_rows)})"],
                ["positive minus highest kept negative, median", gap],
                ["subsets", len(subsets)]]))


def render(d: ReportData) -> str:
    m = d.manifest
    m_neg = int(m["settings"]["num_negatives"])
    subsets = _per_subset(d, m_neg)
    acc, scores = m["accounting"], m["scores"]
    parts = [f"<h1>judgemine run report</h1><p class=note>{html.escape(m['settings']['output'])} &middot; "
             f"{html.escape(str(m['run'].get('started_at')))} to {html.escape(str(m['run'].get('ended_at')))}</p>"]
    parts.append(_train_on_it(d, subsets))
    parts.append('<h2 id="summary">Summary</h2>' + _table(["what", "value"], [
        ["pairs in", acc["pairs_in"]], ["pairs read again (read once)", acc.get("repeated_pairs", 0)],
        ["shard rows", acc["rows_out"]],
        ["rejected", sum(acc["rejected"].values())],
        *[[f"rejected by {stage}: {reason}", n] for stage, by in sorted(m["rejects_by_reason"].items())
          for reason, n in sorted(by.items(), key=lambda kv: -kv[1])],
        ["accounted for", "yes" if acc["balanced"] else "NO"],
        ["positive score, mean", scores["positive"].get("mean")],
        ["negative score, mean (judged rows)", scores["negative"].get("mean")],
        ["negative score, mean (every shard row, fallback 1.0s included)", scores["negative_in_shards"].get("mean")],
        ["fallback rows", scores["fallback_rows"]]]))
    all_scores = np.concatenate([np.concatenate([v["pos"], v["neg"]]) for v in subsets.values()] or [np.zeros(0)])
    low, high = (min(0.0, float(all_scores.min())), max(1.0, float(all_scores.max()))) if all_scores.size else (0, 1)
    parts.append('<h2 id="scores">Judge scores per subset</h2><p class=note>Negatives of fallback rows are left '
                 'out (the rule scores them 1.0).</p>'
                 + _img(plots.score_histograms({k: (v["pos"], v["neg"]) for k, v in subsets.items()}, low, high),
                        "judge score histograms"))
    share = {k: v["false_negatives"] / v["candidates"] if v["candidates"] else 0.0 for k, v in subsets.items()}
    parts.append('<h2 id="false-negatives">Retrieved candidates removed as false negatives</h2>'
                 + _img(plots.bars(list(share), list(share.values()), "share removed by the margin"),
                        "false-negative share per subset")
                 + _table(["subset", "retrieved and judged", "removed", "share"],
                          [[k, v["candidates"], v["false_negatives"], _share(v["false_negatives"], v["candidates"])]
                           for k, v in subsets.items()]))
    parts.append('<h2 id="rates">Fallback and repeat rates</h2><p class=note>fallback: the filter left nothing, '
                 'negatives are random candidates scored 1.0 (a trainer should skip them); repeat: fewer than m '
                 'left, repeated to fill m.</p>'
                 + _table(["subset", "rows", "fallback rows", "fallback rate", "rows with repeats", "repeat rate"],
                          [[k, v["rows"], v["fallback"], _share(v["fallback"], v["rows"]), v["repeats"],
                            _share(v["repeats"], v["rows"])] for k, v in subsets.items()]))
    beta = m["mining"]["rule"]["beta"]
    parts.append('<h2 id="beta">What another beta would keep</h2><p class=note>The paper\'s beta (0.01) is tuned to '
                 'its 7B judge. From this run\'s judge scores, without judging again: each beta\'s absolute margin '
                 '(drop a candidate scored above s_pos - beta) applied alone to every judged query. Pick the one '
                 'that removes what your judge calls false negatives without leaving queries empty, then rerun with '
                 '--beta (only the mine stage reruns).</p>'
                 + _table(["beta", "removed as false negatives", "share of judged", "queries left with none",
                           f"queries left with fewer than m = {m_neg}", "kept per query, mean"],
                          [[f"{s['beta']:g}" + (" (this run)" if beta is not None and s["beta"] == beta else ""),
                            s["removed"], f"{s['removed_share']:.1%}", s["no_negatives_left"], s["fewer_than_m"],
                            s["mean_kept"]] for s in d.sweep]))
    parts.append('<h2 id="unique-negatives">Distinct negatives per row</h2>'
                 + _img(plots.unique_negatives(d.shards.column("num_unique_negatives").to_numpy(), m_neg),
                        "distinct negatives per row"))
    r = d.retrieved
    parts.append(f'<h2 id="retrieval">Retrieval against the judge</h2><p class=note>{r["score"].size} of '
                 f'{d.retrieved_total} retrieved (query, candidate) pairs (judged ones, seeded sample).</p>'
                 + _img(plots.against_score(r["rank"], r["similarity"], r["score"]), "rank and similarity vs score"))
    parts.append(f'<h2 id="suspicious">The {len(d.suspicious)} rows to look at first</h2>'
                 + _table(["why", "subset", "query", "positive", "pos score", "highest negative", "neg score",
                           "neg rank"],
                          [[s["why"], s["dataset"], _cell(s["query_text"], s["query_image"], d.image_root),
                            _cell(s["pos_text"], s["pos_image"], d.image_root), s["pos_score"],
                            _cell(s["neg_text"], s["neg_image"], d.image_root), s["neg_score"], s["neg_rank"]]
                           for s in d.suspicious]))
    run = m["run"]
    parts.append('<h2 id="settings">Settings and models</h2>'
                 + _table(["model", "value"], [[k, v] for k, v in run["models"].items()]
                          + [["host", run["host"]], ["device", run["device"]], ["code", m.get("code_version")]])
                 + _table(["setting", "value"], _settings_applied(m)))
    from judgemine.pipelines.stages import STAGES  # the table's order is the pipeline's
    in_order = [(stage.name, m["stages"][stage.name]) for stage in STAGES if stage.name in m["stages"]]
    parts.append('<h2 id="timings">Time per stage</h2><p class=note>In pipeline order.</p>'
                 + _table(["stage", "seconds", "rate"],
                          [[k, f"{v.get('seconds', 0):,.2f} s",
                            "; ".join(f"{rate:,.1f} {what.replace('_', ' ')}/s"
                                      for what, rate in v.get("per_second", {}).items())]
                           for k, v in in_order]))
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>judgemine report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n")


def _settings_applied(m: dict[str, Any]) -> list[list[Any]]:
    """The run's settings as given, a rule setting left to its default shown with the value the rule applied
    (beta unset is the paper's 0.01, not "-")."""
    rule = m.get("mining", {}).get("rule", {})
    return [[k, f"{rule[k]:g} (default)" if v is None and isinstance(rule.get(k), float) else v]
            for k, v in sorted(m["settings"].items())]
