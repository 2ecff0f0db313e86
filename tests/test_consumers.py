"""What the ML team gets: the shards through their own readers (datasets, pyarrow, the PyTorch loader), every
export loaded by its consumer's reader, the training objective, and the report page."""
from __future__ import annotations

import base64
import io
import json
import os
import re
from html.parser import HTMLParser

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import ROOT, head
from PIL import Image
from torch.utils.data import DataLoader

from judgemine.pipelines.cli.parser import main
from judgemine.schemas import SHARDS, list_parts, read_table
from judgemine.schemas.objective import alignment_loss
from judgemine.schemas.shard_dataset import ShardDataset, collate_shards


def _rows(run: str) -> list[dict]:
    return [r for p in list_parts(os.path.join(run, "shards")) for r in read_table(p, SHARDS).to_pylist()]


def test_the_shards_load_with_datasets_and_pyarrow_as_committed(e2e_run):
    """The README's loaders: the files the run committed (never a glob, which would take a stray file too)."""
    import pyarrow.parquet as pq
    from datasets import load_dataset

    from judgemine.schemas.commits import committed_shards
    files, _ = committed_shards(e2e_run)
    ds = load_dataset("parquet", data_files=files, split="train")
    rows = _rows(e2e_run)
    assert ds.num_rows == len(rows) == pq.read_table(files).num_rows and ds.column_names == SHARDS.names
    assert ds[0]["neg_scores"] == pytest.approx(rows[0]["neg_scores"]) and ds[0]["query_id"] == rows[0]["query_id"]


def test_the_loader_yields_float32_batches_and_skips_fallback_rows(e2e_run):
    rows = _rows(e2e_run)
    kept = [r for r in rows if not r["fallback"]]
    assert len(kept) < len(rows)  # the sample has fallback rows
    ds = ShardDataset(os.path.join(e2e_run, "shards"), k=3)
    assert (ds.rows, ds.fallback_rows, len(ds)) == (len(rows), len(rows) - len(kept), len(kept))
    batch = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate_shards)))
    assert batch["neg_scores"].shape == (4, 3) and batch["neg_scores"].dtype == torch.float32
    assert batch["scores"].shape == (4, 4) and batch["pos_score"].dtype == torch.float32
    assert batch["query_id"] == [r["query_id"] for r in kept[:4]]
    assert torch.equal(batch["neg_scores"], torch.tensor([r["neg_scores"][:3] for r in kept[:4]]))
    assert torch.equal(batch["scores"][:, 0], batch["pos_score"]) and len(batch["neg_texts"][0]) == 3
    assert len(list(ShardDataset(os.path.join(e2e_run, "shards"), skip_fallback=False))) == len(rows)
    with pytest.raises(ValueError, match="k = 6 negatives asked for, the shards store 5"):
        ShardDataset(os.path.join(e2e_run, "shards"), k=6)


@pytest.mark.parametrize("workers", [0, 2])
def test_the_loader_splits_rows_across_ranks_and_workers(e2e_run, workers):
    """Every row exactly once over 2 ranks x `workers` DataLoader workers (3 shard files: fewer than 4 slots, so
    rows are strided; with 0 workers whole files go to ranks)."""
    shards = os.path.join(e2e_run, "shards")
    seen = []
    for rank in range(2):
        ds = ShardDataset(shards, rank=rank, world_size=2, skip_fallback=False)
        ids = [b for batch in DataLoader(ds, batch_size=5, num_workers=workers, collate_fn=collate_shards)
               for b in batch["query_id"]]
        assert ids
        seen += ids
    assert sorted(seen) == sorted(r["query_id"] for r in _rows(e2e_run))


def test_the_loader_opens_images_against_the_root_recorded_in_the_shards(image_run, image_root):
    info = pq.ParquetFile(list_parts(os.path.join(image_run, "shards"))[0]).schema_arrow.metadata
    assert info[b"judgemine.image_root"].decode() == os.path.abspath(image_root)
    items = [i for i in ShardDataset(os.path.join(image_run, "shards"), k=2, load_images=True) if i["query_image"]]
    assert items and all(isinstance(i["query_image_pil"], Image.Image) for i in items)
    assert all((p is None) == (not path) for i in items for p, path in zip(i["neg_images_pil"], i["neg_images"]))


def test_the_alignment_loss_is_the_symmetric_kl_of_the_spec():
    g = torch.Generator().manual_seed(0)
    q, c = torch.randn(3, 16, generator=g), torch.randn(3, 9, 16, generator=g)
    s = torch.rand(3, 9, generator=g)
    cos = torch.nn.functional.cosine_similarity(q[:, None], c, dim=-1).double().numpy()
    p = np.exp(cos / 0.02) / np.exp(cos / 0.02).sum(1, keepdims=True)
    qq = np.exp(s.double().numpy() / 0.02) / np.exp(s.double().numpy() / 0.02).sum(1, keepdims=True)
    expected = np.mean(((p * np.log(p / qq)).sum(1) + (qq * np.log(qq / p)).sum(1)) / 2)
    assert alignment_loss(q, c, s).item() == pytest.approx(expected, rel=1e-4)
    assert alignment_loss(q, c, torch.from_numpy(cos).float()).item() == pytest.approx(0, abs=1e-5)
    c.requires_grad_(True)
    alignment_loss(q, c, s).backward()
    assert c.grad is not None and c.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="expected"):
        alignment_loss(q, c[:, :3], s)


def _export(run: str, dest: str, *args: str) -> None:
    assert main(["export", "--output", run, "--to", dest, *args]) == 0


def test_unime_export_streams_official_records_and_can_leave_fallback_rows_out(e2e_run, tmp_path):
    rows = _rows(e2e_run)
    official = json.load(open(os.path.join(ROOT, "tests", "data", "unime_v2_example_data.json")))[0]
    _export(e2e_run, str(tmp_path / "all.json"), "--format", "unime")
    _export(e2e_run, str(tmp_path / "some.json"), "--format", "unime", "--skip-fallback", "--num-negatives", "3")
    every, some = json.load(open(tmp_path / "all.json")), json.load(open(tmp_path / "some.json"))
    assert len(every) == len(rows) and len(some) == sum(not r["fallback"] for r in rows)
    for rec in every + some:
        assert {k: type(v) for k, v in rec.items()} == {k: type(v) for k, v in official.items()}
    assert all(len(r["hard_negatives"]) == len(r["hard_negatives_scores"]) == 3 for r in some)


def test_sentence_transformers_exports_match_what_mine_hard_negatives_writes(e2e_run, tmp_path):
    """The peer itself mines a few pairs in each output_format, with and without output_scores; ours have its
    columns and types, distinct negatives in every row, and datasets loads them."""
    from datasets import Dataset, load_dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    from judgemine.pipelines.settings import Settings
    pairs = head(os.path.join(ROOT, "examples", "sample", "geography_qa.jsonl"), 40)
    model = SentenceTransformer(Settings().resolved_embed_model, device="cpu")
    data = Dataset.from_dict({"anchor": [p["query_text"] for p in pairs], "positive": [p["pos_text"] for p in pairs]})
    rows = [r for r in _rows(e2e_run) if not r["fallback"]]
    for layout in ("triplet", "n-tuple", "labeled-pair", "labeled-list"):
        for scores in (False, True):
            peer = mine_hard_negatives(data, model, num_negatives=3, output_format=layout, output_scores=scores,
                                       verbose=False)
            dest = str(tmp_path / f"{layout}-{scores}.parquet")
            _export(e2e_run, dest, "--format", "sentence-transformers", "--layout", layout, "--num-negatives", "3",
                    *(["--scores"] if scores else []))
            ours = load_dataset("parquet", data_files=dest, split="train")
            assert ours.column_names == peer.column_names, (layout, scores)
            assert ours.features == peer.features, (layout, scores)
            distinct = [len(set(r["neg_ids"][:3])) for r in rows]
            if layout == "n-tuple":  # k distinct negatives or the row is dropped, as the peer drops it
                kept = [r for r, n in zip(rows, distinct) if n == 3]
                assert ours.num_rows == len(kept) < len(rows)
                assert all(len({ours[i][f"negative_{j}"] for j in (1, 2, 3)}) == 3 for i in range(ours.num_rows))
                if scores:
                    assert ours[0]["scores"] == pytest.approx([kept[0]["pos_score"], *kept[0]["neg_scores"][:3]])
            elif layout == "triplet":
                assert ours.num_rows == sum(distinct)
            elif layout == "labeled-pair":
                assert ours.num_rows == len(rows) + sum(distinct)
            else:
                assert ours.num_rows == len(rows)
                assert [len(r["positive"]) for r in ours] == [1 + n for n in distinct]


def test_the_n_tuple_export_trains_a_sentence_transformer(e2e_run, tmp_path):
    """Training steps on the export with sentence-transformers' own loss for it (MultipleNegativesRankingLoss takes
    anchor, positive, negative_1..k in column order, as its trainer feeds them; the trainer itself needs
    accelerate, which judgemine does not install): the loss falls on a batch it trains on."""
    import torch
    from datasets import load_dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    from judgemine.pipelines.settings import Settings
    dest = str(tmp_path / "n-tuple.parquet")
    _export(e2e_run, dest, "--format", "sentence-transformers", "--num-negatives", "3")
    batch = load_dataset("parquet", data_files=dest, split="train").select(range(8))
    model = SentenceTransformer(Settings().resolved_embed_model, device="cpu")
    loss = MultipleNegativesRankingLoss(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    losses = []
    for _ in range(3):
        features = [model.tokenize(batch[column]) for column in batch.column_names]
        value = loss(features, None)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        losses.append(value.item())
    assert losses[-1] < losses[0], losses


def test_flagembedding_export_is_its_jsonl(e2e_run, tmp_path):
    dest = str(tmp_path / "flag.jsonl")
    _export(e2e_run, dest, "--format", "flagembedding", "--prompt", "Represent this query: ")
    rows = [r for r in _rows(e2e_run) if not r["fallback"]]
    lines = [json.loads(line) for line in open(dest, encoding="utf-8")]
    assert len(lines) == len(rows)
    for line, row in zip(lines, rows):
        assert set(line) == {"query", "pos", "neg", "pos_scores", "neg_scores", "prompt", "type"}
        assert line["query"] == row["query_text"] and line["pos"] == [row["pos_text"]]
        assert len(line["neg"]) == len(line["neg_scores"]) == row["num_unique_negatives"]
        assert line["prompt"] == "Represent this query: " and line["type"] == "normal"
        assert all(isinstance(s, float) for s in line["pos_scores"] + line["neg_scores"])


def test_exports_refuse_what_they_cannot_carry(e2e_run, image_run, tmp_path, capsys):
    assert main(["export", "--output", e2e_run, "--format", "unime", "--num-negatives", "6",
                 "--to", str(tmp_path / "x.json")]) == 2
    assert "the shards store 5 negatives per row" in capsys.readouterr().err
    assert main(["export", "--output", image_run, "--format", "flagembedding", "--to", str(tmp_path / "x.jsonl")]) == 2
    assert "the flagembedding export is text-only" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x.jsonl") and not os.listdir(tmp_path)


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.images: list[str] = []
        self.thumbs = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "img":
            self.images.append(a["src"])
            self.thumbs += a.get("class") == "thumb"


@pytest.mark.parametrize("run", ["e2e_run", "image_run"])
def test_the_report_has_every_section_and_its_images_decode(run, request):
    from judgemine.pipelines.outputs.report import SECTIONS
    out = request.getfixturevalue(run)
    page = _Page()
    page.feed(open(os.path.join(out, "report", "index.html"), encoding="utf-8").read())  # written by `run`
    assert page.ids == list(SECTIONS)
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()
    assert len(page.images) >= 4 and (page.thumbs > 0) == (run == "image_run")
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    text = open(os.path.join(out, "report", "index.html"), encoding="utf-8").read()
    assert f"{manifest['scores']['negative_in_shards']['mean']:.4g}" in text


def test_the_report_answers_can_i_train_on_this_first_in_human_numbers(e2e_run):
    from judgemine.pipelines.outputs.health import findings, verdict
    from judgemine.pipelines.stages import STAGES
    text = open(os.path.join(e2e_run, "report", "index.html"), encoding="utf-8").read()
    manifest = json.load(open(os.path.join(e2e_run, "manifest.json")))
    found = findings(manifest)
    assert text.index('<h2 id="train">Can I train on this?</h2>') < text.index("<h2", text.index('id="train"') + 1)
    assert f"<b>{verdict(found)}</b>" in text and all(f.line().split(" (")[0] in text for f in found)
    assert any(f.level == "warning" and "random-weight demo model" in f.what for f in found)  # the tiny judge
    timings = text[text.index('id="timings"'):]
    assert [s.name for s in STAGES] == sorted((s.name for s in STAGES), key=lambda n: timings.index(f"<td>{n}</td>"))
    cells = re.findall(r"<td>(.*?)</td>", text)
    assert not [c for c in cells if c.startswith(("{", "[", "&quot;"))]  # no raw JSON
    assert "nan" not in cells and f"{manifest['accounting']['pairs_in']:,}" in cells
    settings = text[text.index('id="settings"'):text.index('id="timings"')]
    assert manifest["settings"]["beta"] is None and "<td>beta</td><td>0.01 (default)</td>" in settings  # not "-"


def test_score_histograms_normalise_each_group_to_its_own_share(monkeypatch):
    import matplotlib.axes

    from judgemine.pipelines.outputs.report import plots
    sums: list[float] = []
    real = matplotlib.axes.Axes.hist
    monkeypatch.setattr(matplotlib.axes.Axes, "hist",
                        lambda self, x, **kw: sums.append(float(np.sum(kw["weights"]))) or real(self, x, **kw))
    plots.score_histograms({"s": (np.full(3, 0.9), np.linspace(0, 0.5, 300))}, 0.0, 1.0)
    assert sums == pytest.approx([1.0, 1.0])  # 300 negatives and 3 positives, each summing to one


@pytest.mark.parametrize("run", ["e2e_run", "image_run"])
def test_the_beta_sweep_at_the_runs_beta_is_what_the_mine_stage_did(run, request):
    """The sweep recomputes the margin from the judge parts alone; at the run's own beta (the margin its only
    filter) it must remove, empty and shorten exactly what the mine stage counted."""
    from judgemine.pipelines.outputs.report.sweep import beta_sweep
    out = request.getfixturevalue(run)
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    rule = manifest["mining"]["rule"]
    assert rule["beta"] == 0.01 and rule["relative_margin"] is None and rule["range_min"] == 0
    sweep = {row["beta"]: row for row in beta_sweep(out, rule["num_negatives"])}
    here = sweep[0.01]
    assert here["removed"] == manifest["scores"]["false_negatives_filtered"] > 0
    assert here["no_negatives_left"] == manifest["mining"]["rows_fallback"]
    assert here["fewer_than_m"] == manifest["mining"]["rows_repeated"]
    removed = [row["removed"] for row in sweep.values()]
    assert removed == sorted(removed)  # a larger margin removes more


def test_report_command_and_no_report(e2e_run, small_pairs, tiny_judge, tmp_path, capsys):
    from conftest import run_args
    out = str(tmp_path / "out")
    assert main(["run", *run_args(out, small_pairs[:1], tiny_judge), "--no-report"]) == 0
    assert not os.path.exists(os.path.join(out, "report"))
    capsys.readouterr()
    assert main(["report", out]) == 0
    assert capsys.readouterr().out.strip() == os.path.join(out, "report", "index.html")
    assert main(["report", str(tmp_path / "nothing")]) == 2
