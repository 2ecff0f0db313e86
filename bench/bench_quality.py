"""The paper's ablation on text with real weights: does mining with the judge train a better embedder?

Data (testing/wordnet_synsets.py): WordNet noun synsets as gloss -> lemma; a synset's other lemmas are in the pool,
so they are known false negatives. The synsets are split into a mining/training part and a held-out part; nothing
is tuned (beta is the paper's 0.01 for both judges; no setting was chosen on the held-out set). The training part
is mined by sentence-transformers' `mine_hard_negatives` (plain top 1 of K = 20, and NV-Retriever's relative margin
0.05) and by judgemine under the paper's rule (beta 0.01, cyclical) with three judges: MiniLM's similarity and the
two real chat judges (Qwen2.5-Coder-0.5B- and 1.5B-Instruct, transformers backend, defaults, with
--false-negatives-as-positives). Each judge's run trains six ways:
  - in-batch negatives only, in judgemine's batches (export --format batches, B3: judged hard negatives share a
    batch, a judged false negative never does);
  - in-batch + judged hard negatives, k = 1 and k = 8 per query;
  - the judge's soft scores alone (docs/SPEC.md section 7's loss, schemas/objective.py, through ShardDataset);
  - soft + contrastive together (the paper's combination: InfoNCE over in-batch and k = 8 hard negatives, plus
    the soft loss);
  - false negatives kept as positives (RLHN): each judged extra positive is one more (query, positive) row, k = 1.
all-MiniLM-L6-v2 is fine-tuned on each (same steps, batch, learning rate, 3 seeds; InfoNCE at scale 20), beside the
untouched model and in-batch negatives only in random batches. Evaluation: each held-out gloss against the whole
lemma pool, recall@1, recall@10 and MRR (a hit is any lemma of its synset). Beside each row: the share of known
false negatives among its negatives, the queries it trains on, and for judge rows the AUC of the scores separating
known false negatives from the other retrieved candidates and the judge stage's hours.

    python -m bench.bench_quality [--train N] [--held-out N] [--steps N]     (make bench-quality)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

from bench.harness import save
from judgemine.testing.real_models import FOLDER

WORK = os.path.join("out", "bench-quality")

K, BATCH, LR, SCALE, SEEDS = 20, 32, 2e-5, 20.0, (0, 1, 2)
JUDGES = {"0.5B judge": "judge", "1.5B judge": "judge-1.5b"}  # row label -> real-models folder (and run name)


def minilm() -> str:
    from judgemine.pipelines.settings import Settings
    return Settings().resolved_embed_model


def build(train: int, held_out: int) -> dict[str, Any]:
    from judgemine.testing.wordnet_synsets import split, synsets
    tr, ho, pool = split(synsets(), train, held_out, distractors=6000)
    os.makedirs(WORK, exist_ok=True)
    with open(os.path.join(WORK, "train.jsonl"), "w", encoding="utf-8") as f:
        for i, s in enumerate(tr):
            f.write(json.dumps({"query_id": f"q{i}", "query_text": s.gloss, "pos_text": s.lemmas[0]}) + "\n")
    with open(os.path.join(WORK, "pool.jsonl"), "w", encoding="utf-8") as f:
        for i, lemma in enumerate(pool):
            f.write(json.dumps({"id": f"l{i}", "text": lemma}) + "\n")
    return {"train": tr, "held_out": ho, "pool": pool,
            "known": {s.gloss: set(s.lemmas[1:]) for s in tr}}


def mine_peer(data: dict[str, Any], relative_margin: float | None) -> list[tuple[str, str, str]]:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives
    pairs = Dataset.from_dict({"anchor": [s.gloss for s in data["train"]],
                               "positive": [s.lemmas[0] for s in data["train"]]})
    mined = mine_hard_negatives(pairs, SentenceTransformer(minilm(), device="cpu"), corpus=data["pool"],
                                range_max=K, num_negatives=1, sampling_strategy="top",
                                relative_margin=relative_margin, batch_size=64, verbose=False)
    return [(r["anchor"], r["positive"], r["negative"]) for r in mined]


def mine_judgemine(name: str, *judge: str) -> tuple[str, dict[str, Any]]:
    """A judgemine run (resumed where its stages are committed: the judge's scores are kept across runs)."""
    out = os.path.join(WORK, name)
    cmd = [os.path.join(os.path.dirname(sys.executable), "judgemine"), "run", "--pairs",
           os.path.join(WORK, "train.jsonl"), "--corpus", os.path.join(WORK, "pool.jsonl"), "--output", out,
           "--top-k", str(K), "--no-report", *judge]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
        return out, json.load(f)


def shard_items(out: str, k: int) -> list[dict[str, Any]]:
    from judgemine.schemas.shard_dataset import ShardDataset
    return list(ShardDataset(out, k=k))  # fallback rows skipped (their negatives are random, scored 1.0)


def graph_batches(out: str) -> list[list[dict[str, Any]]]:
    """The run's batches export at the training batch size, read by ShardDataset in its order; full batches only."""
    from judgemine.schemas.shard_dataset import ShardDataset
    to = os.path.join(WORK, f"{os.path.basename(out)}-batches.parquet")
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "judgemine"), "export", "--output", out,
                    "--format", "batches", "--batch-size", str(BATCH), "--to", to],
                   check=True, capture_output=True, text=True)
    by_batch: dict[int, list[dict[str, Any]]] = {}
    for item, batch in zip(ShardDataset([to]), pq.read_table(to, columns=["batch"])["batch"].to_pylist()):
        by_batch.setdefault(batch, []).append(item)
    return [rows for rows in by_batch.values() if len(rows) == BATCH]


def as_items(triplets: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    return [{"query_text": q, "pos_text": p, "neg_texts": [n]} for q, p, n in triplets]


def with_extra_positives(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """RLHN: each judged extra positive (scored at or above the positive) is one more row of its query."""
    return [{**i, "pos_text": p} for i in items for p in [i["pos_text"], *i.get("extra_pos_texts", [])]]


def auc(out: str, known: dict[str, set[str]]) -> float:
    """P(a known false negative's score > another retrieved candidate's), ties half, from the judge parts."""
    from judgemine.schemas import list_parts
    stages = os.path.join(out, "stages")
    texts = {r["candidate_id"]: r["text"] for p in list_parts(os.path.join(stages, "ingest", "candidates"))
             for r in pq.read_table(p, columns=["candidate_id", "text"]).to_pylist()}
    glosses = {r["query_id"]: r["query_text"] for p in list_parts(os.path.join(stages, "ingest", "queries"))
               for r in pq.read_table(p, columns=["query_id", "query_text"]).to_pylist()}
    fn: list[float] = []
    other: list[float] = []
    for p in list_parts(os.path.join(stages, "judge")):
        for r in pq.read_table(p).to_pylist():
            if not r["is_positive"] and np.isfinite(r["score"]):
                (fn if texts[r["candidate_id"]] in known[glosses[r["query_id"]]] else other).append(r["score"])
    a, b = np.asarray(fn)[:, None], np.asarray(other)[None, :]
    return float(((a > b).sum() + 0.5 * (a == b).sum()) / (a.size * b.size)) if a.size and b.size else float("nan")


def _embed(model: Any, texts: list[str]) -> torch.Tensor:
    return torch.nn.functional.normalize(model(model.tokenize(texts))["sentence_embedding"], dim=-1)


def _contrastive(batch: list[dict[str, Any]], q: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """InfoNCE at scale 20 over `c`, the batch's positives then its rows' negatives; another row of the same query
    (a false negative kept as a positive) is not a negative of it."""
    logits = SCALE * q @ c.T
    same = torch.tensor([[a["query_text"] == b["query_text"] and i != j for j, b in enumerate(batch)]
                         for i, a in enumerate(batch)])
    logits[:, :len(batch)] = logits[:, :len(batch)].masked_fill(same, float("-inf"))
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(batch)))


def train(kind: str, rows: list[Any], steps: int, seed: int, k: int = 0) -> Any:
    """kind: untouched, contrastive (in-batch + k hard negatives a row; random batches of `rows`), batches (`rows`
    are batches, read in order, their order shuffled each pass), soft (8 negatives), or soft+contrastive (k = 8)."""
    from sentence_transformers import SentenceTransformer

    from judgemine.schemas.objective import K as SOFT_K
    from judgemine.schemas.objective import alignment_loss
    from judgemine.schemas.shard_dataset import collate_shards
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SentenceTransformer(minilm(), device="cpu")
    if kind == "untouched":
        return model
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    passes: list[int] = []
    negatives = SOFT_K if kind.startswith("soft") else k
    for _ in range(steps):
        if kind == "batches":
            if not passes:
                passes = rng.permutation(len(rows)).tolist()
            batch = rows[passes.pop()]
        else:
            batch = [rows[i] for i in rng.choice(len(rows), min(BATCH, len(rows)), replace=False)]
        q = _embed(model, [r["query_text"] for r in batch])
        c = _embed(model, [r["pos_text"] for r in batch] + [n for r in batch for n in r["neg_texts"][:negatives]])
        loss = _contrastive(batch, q, c) if kind != "soft" else torch.zeros(())
        if kind.startswith("soft"):
            per_row = torch.cat([c[:len(batch), None], c[len(batch):].view(len(batch), negatives, -1)], dim=1)
            loss = loss + alignment_loss(q, per_row, collate_shards(batch)["scores"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return model


@torch.no_grad()
def evaluate(model: Any, held_out: list[Any], pool: list[str]) -> dict[str, float]:
    q = torch.from_numpy(model.encode([s.gloss for s in held_out], batch_size=128, normalize_embeddings=True))
    p = torch.from_numpy(model.encode(pool, batch_size=256, normalize_embeddings=True))
    order = torch.argsort(q @ p.T, dim=1, descending=True).numpy()
    index = {lemma: i for i, lemma in enumerate(pool)}
    ranks = []
    for s, row in zip(held_out, order):
        hits = np.isin(row, [index[lemma] for lemma in s.lemmas])
        ranks.append(int(np.argmax(hits)) + 1)
    r = np.asarray(ranks)
    return {"recall@1": float((r <= 1).mean()), "recall@10": float((r <= 10).mean()), "mrr": float((1 / r).mean())}


def experiments(data: dict[str, Any], judges: list[str]) -> dict[str, dict[str, Any]]:
    """Each row's training: kind, rows, k, and what its mining cost and knew; the shared rows only when every judge
    is asked for (a judge's rows alone can run in a process of their own beside the others)."""
    rows: dict[str, dict[str, Any]] = {}
    if len(judges) == len(JUDGES):
        rows.update(_shared_rows(data))
    for label in judges:
        rows.update(_judge_rows(data, label, JUDGES[label]))
    return rows


def _shared_rows(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    known = data["known"]
    plain = mine_peer(data, None)
    rows: dict[str, dict[str, Any]] = {
        "untouched all-MiniLM-L6-v2": {"kind": "untouched", "rows": []},
        "in-batch negatives only (random batches)": {"kind": "contrastive", "rows": as_items(plain), "k": 0},
        "plain top-K (sentence-transformers)": {"kind": "contrastive", "rows": as_items(plain), "k": 1},
        "relative margin 0.05": {"kind": "contrastive", "rows": as_items(mine_peer(data, 0.05)), "k": 1}}
    similarity, manifest = mine_judgemine("similarity", "--judge-backend", "similarity")
    rows["similarity judge: paper rule, k = 1"] = {"kind": "contrastive", "rows": shard_items(similarity, 1), "k": 1,
                                                   "auc": auc(similarity, known),
                                                   "judge_hours": manifest["stages"]["judge"]["seconds"] / 3600}
    return rows


def _judge_rows(data: dict[str, Any], label: str, folder: str) -> dict[str, dict[str, Any]]:
    known = data["known"]
    out, manifest = mine_judgemine(folder, "--judge-model", os.path.join(FOLDER, folder),
                                   "--false-negatives-as-positives")
    cost = {"auc": auc(out, known), "judge_hours": manifest["stages"]["judge"]["seconds"] / 3600}
    items = shard_items(out, 8)
    batches = graph_batches(out)
    rng = np.random.default_rng(0)
    random_batches = [[items[i] for i in rng.choice(len(items), BATCH, replace=False)] for _ in range(len(batches))]
    positives = {i["pos_text"] for i in items}
    rows: dict[str, dict[str, Any]] = {
        f"{label}: in-batch only, judgemine's batches": {
            "kind": "batches", "rows": batches, "k": 0, "in_batch_graph": in_batch_shares(batches, known),
            "in_batch_random": in_batch_shares(random_batches, known),
            "rows_with_an_edge": float(np.mean([bool(positives & set(i["neg_texts"])) for i in items]))},
        f"{label}: paper rule, k = 1": {"kind": "contrastive", "rows": items, "k": 1},
        f"{label}: paper rule, k = 8": {"kind": "contrastive", "rows": items, "k": 8},
        f"{label}: soft scores alone (SPEC 7)": {"kind": "soft", "rows": items},
        f"{label}: soft + contrastive, k = 8 (the paper's)": {"kind": "soft+contrastive", "rows": items, "k": 8},
        f"{label}: false negatives as positives, k = 1": {"kind": "contrastive", "rows": with_extra_positives(items),
                                                         "k": 1}}
    for row in rows.values():
        row.update(cost)
    return rows


def in_batch_shares(batches: list[list[dict[str, Any]]], known: dict[str, set[str]]) -> dict[str, float]:
    """Of the in-batch negatives (each row against the other rows' positives): the share that are known false
    negatives, and the share that are the row's own judged hard negatives (its first 8)."""
    pairs = [(a, b) for batch in batches for a in batch for b in batch if a is not b]
    return {"known_false_negatives": float(np.mean([b["pos_text"] in known[a["query_text"]] for a, b in pairs])),
            "judged_hard_negatives": float(np.mean([b["pos_text"] in a["neg_texts"] for a, b in pairs]))}


def _negatives_share(rows: list[Any], k: int, known: dict[str, set[str]]) -> float | None:
    flat = [r for b in rows for r in (b if isinstance(b, list) else [b])]
    pairs = [(r["query_text"], n) for r in flat for n in r["neg_texts"][:k]]
    return float(np.mean([n in known[g] for g, n in pairs])) if pairs else None


def main(argv: list[str]) -> None:
    args = argparse.ArgumentParser()
    args.add_argument("--train", type=int, default=500)
    args.add_argument("--held-out", type=int, default=400)
    args.add_argument("--steps", type=int, default=60)
    args.add_argument("--judges", nargs="+", choices=list(JUDGES), default=list(JUDGES),
                      help="only these judges' rows (the shared rows need every judge): a judge's rows can run in a "
                           "process of their own, beside the others")
    args.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args.add_argument("--rows", nargs="+", default=[], help="only the rows whose name holds one of these, in order")
    a = args.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    started = time.monotonic()
    data = build(a.train, a.held_out)
    table: dict[str, Any] = {}
    found = experiments(data, a.judges)
    chosen = [n for want in a.rows for n in found if want in n] if a.rows else list(found)
    for name, m in ((n, found[n]) for n in dict.fromkeys(chosen)):
        seeds = [evaluate(train(m["kind"], m["rows"], a.steps, seed, m.get("k", 0)), data["held_out"], data["pool"])
                 for seed in (SEEDS if m["kind"] != "untouched" else SEEDS[:1])]
        row: dict[str, Any] = {k: float(np.mean([s[k] for s in seeds])) for k in seeds[0]}
        row.update({f"{k}_std": float(np.std([s[k] for s in seeds])) for k in seeds[0]})
        if m["rows"]:
            k = 8 if m["kind"] == "soft" else m.get("k", 0)
            row["known_false_negative_share"] = _negatives_share(m["rows"], k, data["known"])
            row["queries"] = len({r["query_text"] for b in m["rows"] for r in (b if isinstance(b, list) else [b])})
            row["train_rows"] = sum(len(b) if isinstance(b, list) else 1 for b in m["rows"])
        row.update({key: m[key] for key in ("auc", "judge_hours", "in_batch_graph", "in_batch_random",
                                            "rows_with_an_edge") if key in m})
        table[name] = row
        print(name, json.dumps(row), flush=True)
    result = "bench_quality" if a.judges == list(JUDGES) else "bench_quality_part"
    save(result, {"judges": a.judges, "train_queries": a.train, "held_out_queries": a.held_out,
                  "pool": len(data["pool"]), "k": K, "steps": a.steps, "batch": BATCH, "lr": LR, "seeds": len(SEEDS),
                  "minutes": round((time.monotonic() - started) / 60, 1), "rows": table})


if __name__ == "__main__":
    main(sys.argv[1:])
