"""Nothing served that was not computed for this request, the cases that need finished runs
(`make test-faults`), each through the real command or the real loader on real files: the score cache keyed by
exactly what the judge saw, a run handed over by cp -r, tar and rsync, every path to its shards through its
record, exports that touch nothing a run committed, a read-only run, raised image limits in every stage, no
credential in any output. tests/test_identity.py holds the quick ones."""
from __future__ import annotations

import os
import shutil
import subprocess
import tarfile

import pytest
from conftest import SAMPLE, copy_run, head, jm, manifest_of, status_of, write_jsonl
from PIL import Image


def _judge_counts(out: str) -> dict:
    return manifest_of(out)["stages"]["judge"]["counts"]


def _pairs(tmp_path, name: str, rows: list[dict]) -> str:
    return write_jsonl(str(tmp_path / name), rows)


def test_a_score_is_never_shared_between_texts_that_differ_in_case_or_spaces(tmp_path, tiny_judge):
    """Pool dedup folds case and spaces; the cache key does not: the changed pairs are judged afresh, the
    unchanged ones still come from the cache."""
    rows = head(os.path.join(SAMPLE, "geography_qa.jsonl"), 12)
    cache = str(tmp_path / "cache")
    first, again, changed = str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "c")
    base = ["--judge-model", tiny_judge, "--judge-cache", cache, "--top-k", "6", "--num-negatives", "2"]
    assert jm("run", "--output", first, "--pairs", _pairs(tmp_path, "p.jsonl", rows), *base).returncode == 0
    assert jm("run", "--output", again, "--pairs", _pairs(tmp_path, "same.jsonl", rows), *base).returncode == 0
    assert _judge_counts(again)["pairs_judged"] == 0 < _judge_counts(again)["pairs_cached"]  # the cache works
    upper = [{"query_text": r["query_text"].upper(), "pos_text": "  ".join(r["pos_text"].split())} for r in rows]
    assert jm("run", "--output", changed, "--pairs", _pairs(tmp_path, "upper.jsonl", upper), *base).returncode == 0
    counts = _judge_counts(changed)
    assert counts["pairs_cached"] == 0 and counts["pairs_judged"] + counts["pairs_repeated"] == counts["pairs"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_judge) -> tuple[str, list[str]]:
    """One finished run of the defaults (small K and m), read by every test here, copied by those that change it."""
    d = tmp_path_factory.mktemp("trust")
    args = ["--pairs", _pairs(d, "defs.jsonl", head(os.path.join(SAMPLE, "definitions.jsonl"), 16)),
            "--judge-model", tiny_judge, "--top-k", "6", "--num-negatives", "2"]
    out = str(d / "run")
    assert jm("run", "--output", out, *args).returncode == 0
    return out, args


def _run_for_copies(finished, tmp_path) -> tuple[str, list[str]]:
    """A copy of the finished run of its own (a test that changes it changes no other's)."""
    return copy_run(finished[0], tmp_path / "mine"), finished[1]


def _copied(run: str, dest: str, how: str) -> str:
    if how == "cp -r":
        subprocess.run(["cp", "-r", run, dest], check=True)
    elif how == "tar":
        archive = dest + ".tar"
        with tarfile.open(archive, "w") as t:
            t.add(run, arcname="run")
        os.makedirs(dest)
        with tarfile.open(archive) as t:
            t.extractall(dest, filter="tar")
        dest = os.path.join(dest, "run")
    else:
        subprocess.run(["rsync", "-a", run + "/", dest + "/"], check=True)
    subprocess.run(["chmod", "-R", "g+r", dest], check=True)
    return dest


def test_a_run_copied_by_cp_tar_or_rsync_loads_exports_and_is_up_to_date(tmp_path, finished):
    from judgemine.schemas.shard_dataset import ShardDataset
    run, args = _run_for_copies(finished, tmp_path)
    rows = len(list(ShardDataset(run, skip_fallback=False)))
    for how in ("cp -r", "tar", "rsync"):
        copy = _copied(run, str(tmp_path / how.split()[0]), how)
        assert len(list(ShardDataset(os.path.join(copy, "shards"), skip_fallback=False))) == rows, how
        done = jm("export", "--output", copy, "--format", "sentence-transformers")
        assert done.returncode == 0, (how, done.stderr)
        code, found, text = status_of(copy, *[copy if a == run else a for a in args])
        assert code == 0 and set(found.values()) == {"up to date"}, (how, text)


def test_every_path_to_a_runs_shards_goes_through_its_record(tmp_path, finished, monkeypatch):
    """Relative from inside the run, or through a link: the committed files only, never a foreign part."""
    from judgemine.schemas.shard_dataset import ShardDataset
    run, _ = _run_for_copies(finished, tmp_path)
    rows = len(list(ShardDataset(run, skip_fallback=False)))
    shard = sorted(p for p in os.listdir(os.path.join(run, "shards")) if p.endswith(".parquet"))[0]
    shutil.copy(os.path.join(run, "shards", shard), os.path.join(run, "shards", "part-00099-of-00100.parquet"))
    os.symlink(os.path.join(run, "shards"), tmp_path / "link")
    monkeypatch.chdir(run)
    for path in ("shards", str(tmp_path / "link")):
        dataset = ShardDataset(path, skip_fallback=False)
        assert len(list(dataset)) == rows and not any("part-00099" in p for p in dataset.paths), path


def test_a_rewritten_shard_is_still_refused_after_the_dataset_was_made(tmp_path, finished):
    """Content, not identity: a shard whose bytes change under a dataset is an error, a shard merely touched is not."""
    from judgemine.schemas.shard_dataset import ShardDataset
    run, _ = _run_for_copies(finished, tmp_path)
    dataset = ShardDataset(run, skip_fallback=False)
    first = dataset.paths[0]
    os.utime(first, None)
    os.chmod(first, 0o640)
    assert len(list(dataset)) > 0
    data = bytearray(open(first, "rb").read())
    data[100] ^= 0xFF
    open(first, "wb").write(bytes(data))
    with pytest.raises(RuntimeError, match="was replaced by another run"):
        list(dataset)


def test_export_refuses_links_into_a_run_devices_and_fifos(tmp_path, finished):
    run, _ = _run_for_copies(finished, tmp_path)
    shard = os.path.join(run, "shards", sorted(os.listdir(os.path.join(run, "shards")))[0])
    kept = open(shard, "rb").read()
    os.symlink(shard, tmp_path / "innocent.jsonl")
    os.mkfifo(tmp_path / "fifo.jsonl")
    for target, says in [(str(tmp_path / "innocent.jsonl"), "inside the run's committed files"),
                         (str(tmp_path / "fifo.jsonl"), "a FIFO"), ("/dev/null", "a character device")]:
        done = jm("export", "--output", run, "--format", "sentence-transformers", "--to", target)
        assert done.returncode == 2 and says in done.stderr, (target, done.stderr)
    assert open(shard, "rb").read() == kept and os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    assert jm("export", "--output", run, "--format", "sentence-transformers", "--to",
              str(tmp_path / "new.jsonl")).returncode == 0


def test_an_export_overwritten_by_another_run_is_not_called_up_to_date(tmp_path, finished):
    run, args = _run_for_copies(finished, tmp_path)
    other = copy_run(run, tmp_path / "o")  # a second run's folder with the same shards
    target = str(tmp_path / "train.jsonl")
    assert jm("export", "--output", run, "--format", "sentence-transformers", "--to", target).returncode == 0
    assert "export    up to date" in status_of(run, *args)[2]
    assert jm("export", "--output", other, "--format", "sentence-transformers", "--to", target,
              "--num-negatives", "1").returncode == 0
    assert "was overwritten since this run exported it" in status_of(run, *args)[2]


def test_raised_image_limits_reach_the_embedder_and_the_judge(tmp_path, tiny_clip, tiny_vlm):
    """A 7100x7100 picture (over the default 50M pixels) accepted by a raised --max-image-pixels is embedded and
    judged under the same limit."""
    Image.new("RGB", (7100, 7100), (200, 30, 30)).save(tmp_path / "big.png")
    rows = [{"query_text": "What colour is this?", "query_image": "big.png", "pos_text": "A red square."},
            {"query_text": "Name a primary colour.", "pos_text": "Red is a primary colour."},
            {"query_text": "Name a secondary colour.", "pos_text": "Green is a secondary colour."}]
    out = str(tmp_path / "out")
    done = jm("run", "--output", out, "--pairs", _pairs(tmp_path, "p.jsonl", rows), "--image-root", str(tmp_path),
              "--embed-backend", "clip", "--embed-model", tiny_clip, "--judge-model", tiny_vlm, "--top-k", "2",
              "--num-negatives", "1", "--max-image-pixels", "100000000", "--no-report")
    assert done.returncode == 0, done.stderr
    assert manifest_of(out)["stages"]["judge"]["counts"]["pairs"] > 0


def test_no_credential_reaches_any_output(tmp_path, tiny_judge):
    key, secret = "AKIAJUDGEMINETEST0001", "s3cr3t-judgemine-do-not-leak"
    run = str(tmp_path / "run")
    pairs = _pairs(tmp_path, "p.jsonl", head(os.path.join(SAMPLE, "definitions.jsonl"), 8))
    done = jm("run", "--output", run, "--pairs", pairs, "--judge-model", tiny_judge, "--s3_access_key_id", key,
              "--s3_secret_access_key", secret, "--s3_region_name", "us-east-1")
    assert done.returncode == 0, done.stderr
    assert manifest_of(run)["run"]["runner_options"]["s3_secret_access_key"] == "<redacted>"
    for folder, _, names in os.walk(run):
        for name in names:
            data = open(os.path.join(folder, name), "rb").read()
            assert key.encode() not in data and secret.encode() not in data, os.path.join(folder, name)
    assert key not in done.stdout + done.stderr and secret not in done.stdout + done.stderr


def test_readers_work_on_a_read_only_run(tmp_path, finished):
    from judgemine.schemas.shard_dataset import ShardDataset
    run, args = _run_for_copies(finished, tmp_path)
    mounted = tmp_path / "ro"
    mounted.mkdir()
    if subprocess.run(["mount", "--bind", run, str(mounted)], capture_output=True).returncode != 0:
        pytest.skip("no bind mounts here (needs CAP_SYS_ADMIN)")
    try:
        assert subprocess.run(["mount", "-o", "remount,ro,bind", str(mounted)]).returncode == 0
        target = str(tmp_path / "elsewhere.jsonl")
        done = jm("export", "--output", str(mounted), "--format", "sentence-transformers", "--to", target)
        assert done.returncode == 0 and os.path.getsize(target) > 0, done.stderr
        assert "not writable" in done.stderr
        page = str(tmp_path / "report.html")
        done = jm("report", str(mounted), "--to", page)
        assert done.returncode == 0 and "Can I train on this?" in open(page, encoding="utf-8").read(), done.stderr
        code, found, _ = status_of(str(mounted), *[str(mounted) if a == run else a for a in args])
        assert code == 0 and set(found.values()) == {"up to date"}
        assert len(list(ShardDataset(str(mounted), skip_fallback=False))) > 0
    finally:
        subprocess.run(["umount", str(mounted)])
