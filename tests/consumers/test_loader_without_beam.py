"""The trainer-side loader and objective in an environment with torch, pyarrow and pillow only: no Beam, no
transformers (make test-consumers builds it as .venv-trainer), giving what the full environment gives."""
from __future__ import annotations

import json
import os
import subprocess

import pytest
import torch
from conftest import ROOT
from torch.utils.data import DataLoader

from judgemine.schemas.objective import alignment_loss
from judgemine.schemas.shard_dataset import ShardDataset, collate_shards

TRAINER = os.path.join(ROOT, ".venv-trainer", "bin", "python")
SCRIPT = """
import importlib.util, json, sys
import torch
from torch.utils.data import DataLoader
missing = [m for m in ("apache_beam", "transformers", "faiss") if importlib.util.find_spec(m)]
assert not missing, missing
from judgemine.schemas.objective import alignment_loss
from judgemine.schemas.shard_dataset import ShardDataset, collate_shards
ds = ShardDataset(sys.argv[1], k=4)
ids = [i for batch in DataLoader(ds, batch_size=8, num_workers=2, collate_fn=collate_shards)
       for i in batch["query_id"]]
losses = []
g = torch.Generator().manual_seed(0)
for batch in DataLoader(ds, batch_size=8, collate_fn=collate_shards):
    b = batch["scores"].shape[0]
    q, c = torch.randn(b, 8, generator=g), torch.randn(b, 5, 8, generator=g)
    losses.append(alignment_loss(q, c, batch["scores"]).item())
print(json.dumps({"ids": sorted(ids), "losses": losses, "skipped": ds.fallback_rows,
                  "beam": "apache_beam" in sys.modules}))
"""


def test_a_trainer_without_beam_reads_the_shards(e2e_run):
    assert os.path.exists(TRAINER), "make test-consumers builds .venv-trainer"
    shards = os.path.join(e2e_run, "shards")
    done = subprocess.run([TRAINER, "-c", SCRIPT, shards], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    ds = ShardDataset(shards, k=4)
    assert got["ids"] == sorted(i["query_id"] for i in ds) and got["skipped"] == ds.fallback_rows > 0
    assert not got["beam"] and all(loss >= 0 for loss in got["losses"])
    g = torch.Generator().manual_seed(0)
    here = []
    for batch in DataLoader(ds, batch_size=8, collate_fn=collate_shards):
        b = batch["scores"].shape[0]
        q, c = torch.randn(b, 8, generator=g), torch.randn(b, 5, 8, generator=g)
        here.append(alignment_loss(q, c, batch["scores"]).item())
    assert here == pytest.approx(got["losses"], abs=1e-6)
