"""The paper's ablation on text with real weights: does mining with the judge train a better embedder?

Data (testing/wordnet_synsets.py): WordNet noun synsets as gloss -> lemma; a synset's other lemmas are in the pool,
so they are known false negatives. The synsets are split into a mining/training part and a held-out part. The
training part is mined five ways, each giving one hard negative per query:
  1. plain top-K: sentence-transformers' `mine_hard_negatives` as its users run it (top 1 of K = 20);
  2. the same with NV-Retriever's relative margin 0.05;
  3. judgemine, the paper's rule (beta 0.01, cyclical), the similarity judge;
  4. judgemine, the paper's rule, the real judge (Qwen2.5-Coder-0.5B-Instruct, transformers backend, defaults);
  5. the same shards trained with the judge's soft scores (docs/SPEC.md section 7's loss, schemas/objective.py,
     read through the project's loader: ShardDataset + collate_shards, 8 negatives per query).
all-MiniLM-L6-v2 is fine-tuned the same way on each (same steps, batch, learning rate, 3 seeds; rows 1-4 with
in-batch + the hard negative, scale 20), beside the untouched model and in-batch negatives only. Evaluation:
each held-out gloss against the whole lemma pool, recall@1, recall@10 and MRR (a hit is any lemma of its
synset). Beside each row: the share of known false negatives among its negatives, the queries it trains on, and
for the judgemine rows the AUC of the scores separating known false negatives from the other retrieved
candidates, and the judge stage's time.

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
import torch

from bench.harness import save
from judgemine.testing.real_models import FOLDER

WORK = os.path.join("out", "bench-quality")

K, BATCH, LR, SCALE, SEEDS = 20, 32, 2e-5, 20.0, (0, 1, 2)


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


def auc(out: str, known: dict[str, set[str]]) -> float:
    """P(a known false negative's score > another retrieved candidate's), ties half, from the judge parts."""
    import pyarrow.parquet as pq

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


def train(kind: str, rows: list[Any], steps: int, seed: int) -> Any:
    """rows: (anchor, positive, negative) triplets, or shard items for the soft loss."""
    from sentence_transformers import SentenceTransformer

    from judgemine.schemas.objective import alignment_loss
    from judgemine.schemas.shard_dataset import collate_shards
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SentenceTransformer(minilm(), device="cpu")
    if kind == "untouched":
        return model
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    for _ in range(steps):
        batch = [rows[i] for i in rng.choice(len(rows), min(BATCH, len(rows)), replace=False)]
        if kind == "soft":
            b = collate_shards(batch)
            q = _embed(model, b["query_text"])
            c = _embed(model, [t for pos, negs in zip(b["pos_text"], b["neg_texts"]) for t in [pos, *negs]])
            loss = alignment_loss(q, c.view(len(batch), -1, c.shape[-1]), b["scores"])
        else:
            q = _embed(model, [r[0] for r in batch])
            c = _embed(model, [r[1] for r in batch] + ([r[2] for r in batch] if kind == "hard" else []))
            loss = torch.nn.functional.cross_entropy(SCALE * q @ c.T, torch.arange(len(batch)))
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


def main(argv: list[str]) -> None:
    args = argparse.ArgumentParser()
    args.add_argument("--train", type=int, default=500)
    args.add_argument("--held-out", type=int, default=400)
    args.add_argument("--steps", type=int, default=60)
    a = args.parse_args(argv)
    started = time.monotonic()
    data = build(a.train, a.held_out)
    known = data["known"]
    mined: dict[str, dict[str, Any]] = {}
    for name, margin in (("plain top-K (sentence-transformers)", None), ("relative margin 0.05", 0.05)):
        triplets = mine_peer(data, margin)
        mined[name] = {"kind": "hard", "rows": triplets}
    similarity, sim_manifest = mine_judgemine("similarity", "--judge-backend", "similarity")
    judged, judge_manifest = mine_judgemine("judge", "--judge-model", os.path.join(FOLDER, "judge"))
    for name, out, manifest in (("judgemine paper rule, similarity judge", similarity, sim_manifest),
                                ("judgemine paper rule, real judge", judged, judge_manifest)):
        items = shard_items(out, 1)
        mined[name] = {"kind": "hard", "rows": [(i["query_text"], i["pos_text"], i["neg_texts"][0]) for i in items],
                       "auc": auc(out, known), "judge_seconds": manifest["stages"]["judge"]["seconds"]}
    mined["judgemine real judge, soft scores (SPEC 7)"] = {"kind": "soft", "rows": shard_items(judged, 8),
                                                           "auc": mined["judgemine paper rule, real judge"]["auc"]}
    table: dict[str, Any] = {}
    plain = mined["plain top-K (sentence-transformers)"]["rows"]
    for name, kind, rows in (("untouched all-MiniLM-L6-v2", "untouched", []),
                             ("in-batch negatives only", "inbatch", plain),
                             *((n, m["kind"], m["rows"]) for n, m in mined.items())):
        seeds = [evaluate(train(kind, rows, a.steps, seed), data["held_out"], data["pool"])
                 for seed in (SEEDS if kind != "untouched" else SEEDS[:1])]
        row: dict[str, Any] = {k: float(np.mean([s[k] for s in seeds])) for k in seeds[0]}
        row.update({f"{k}_std": float(np.std([s[k] for s in seeds])) for k in seeds[0]})
        if name in mined:
            negs = [r["neg_texts"][0] if isinstance(r, dict) else r[2] for r in rows]
            glosses = [r["query_text"] if isinstance(r, dict) else r[0] for r in rows]
            row["known_false_negative_share"] = float(np.mean([n in known[g] for g, n in zip(glosses, negs)]))
            row["queries"] = len(rows)
            row.update({k: mined[name][k] for k in ("auc", "judge_seconds") if k in mined[name]})
        table[name] = row
        print(name, json.dumps(row), flush=True)
    save("bench_quality", {"train_queries": a.train, "held_out_queries": a.held_out, "pool": len(data["pool"]),
                           "k": K, "steps": a.steps, "batch": BATCH, "lr": LR, "seeds": len(SEEDS),
                           "minutes": round((time.monotonic() - started) / 60, 1), "rows": table})


if __name__ == "__main__":
    main(sys.argv[1:])
