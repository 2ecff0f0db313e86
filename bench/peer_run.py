"""The peer, as its users run it: sentence-transformers' `mine_hard_negatives` from the raw JSONL files to a
Parquet file, in its own process (bench/bench_peer.py times it and reads its peak memory from the kernel).
Prints one JSON line: its phases' seconds and the rows it wrote."""
from __future__ import annotations

import json
import sys
import time


def main(pairs: str, corpus: str, output: str, model_path: str, batch_size: int, top_k: int, m: int) -> None:
    t0 = time.monotonic()
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives
    with open(pairs, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    with open(corpus, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    dataset = Dataset.from_dict({"anchor": [r["query_text"] for r in rows],
                                 "positive": [r["pos_text"] for r in rows]})
    model = SentenceTransformer(model_path, device="cpu", local_files_only=True)
    t1 = time.monotonic()
    mined = mine_hard_negatives(dataset, model, corpus=texts, use_faiss=True, range_max=top_k, num_negatives=m,
                                sampling_strategy="top", relative_margin=0.05, output_format="n-tuple",
                                batch_size=batch_size, verbose=False)
    t2 = time.monotonic()
    mined.to_parquet(output)
    t3 = time.monotonic()
    print(json.dumps({"load": t1 - t0, "mine": t2 - t1, "write": t3 - t2, "rows": len(mined)}))


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], a[2], a[3], int(a[4]), int(a[5]), int(a[6]))
