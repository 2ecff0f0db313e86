"""Runs on an object store (`make test-faults`): a real S3-compatible server (moto in server mode) on
127.0.0.1, reached through Beam's own S3 filesystem by `judgemine` processes and through boto3 by the tests.
The demo writes to and reruns from it; a run there gives the same shards and rejects byte for byte as on the
local disk; a run killed with SIGKILL in the middle of a stage leaves nothing a reader trusts, and the next run
cleans up and completes; a second run is refused while the first holds the lease."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import Any

import pytest
from conftest import ROOT, run_args

from judgemine.testing.s3_server import BIN, local_s3

boto3 = pytest.importorskip("boto3")

JUDGEMINE = os.path.join(BIN, "judgemine")
BUCKET = "judgemine-runs"


@pytest.fixture(scope="module")
def s3() -> Any:
    """A moto S3 server on loopback with one bucket: (boto3 client, Beam's options for it)."""
    with local_s3(BUCKET) as server:
        yield server


def _keys(client: Any, prefix: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        out.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    return out


def _get(client: Any, key: str) -> bytes:
    return client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def _judgemine(*args: str, fault: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "JUDGEMINE_FAULT_AT": fault}
    return subprocess.run([JUDGEMINE, *args], env=env, capture_output=True, text=True, timeout=900)


def _published_local(out: str) -> dict[str, bytes]:
    return {os.path.relpath(os.path.join(d, name), out): open(os.path.join(d, name), "rb").read()
            for folder in ("shards", "rejects") for d, _, names in os.walk(os.path.join(out, folder))
            for name in sorted(names)}


def _published_s3(client: Any, prefix: str) -> dict[str, bytes]:
    return {key[len(prefix) + 1:]: _get(client, key) for key in sorted(_keys(client, prefix))
            if key[len(prefix) + 1:].split("/")[0] in ("shards", "rejects")}


def _temporary(client: Any, prefix: str) -> list[str]:
    return [k for k in _keys(client, prefix) if ".tmp-" in k or ".old-" in k]


def test_storage_on_both_filesystems(s3, tmp_path) -> None:
    """The same calls on a local folder and on an S3 prefix give the same answers, through one boto3 client."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    from judgemine.schemas import storage
    client, options = s3
    FileSystems.set_options(PipelineOptions(options))
    for base in (str(tmp_path / "run"), f"s3://{BUCKET}/unit/run"):
        storage.write_text(os.path.join(base, "a", "x.txt"), "hello")
        storage.write_bytes(os.path.join(base, "a", "b", "y.bin"), b"12345")
        storage.write_text(os.path.join(base, "a.tmp-1", "z.txt"), "zz")
        assert storage.children(base) == ["a", "a.tmp-1"]
        assert storage.children(os.path.join(base, "a")) == ["b", "x.txt"]
        found = {storage.relative(p, base): n for p, n in storage.files(os.path.join(base, "a")).items()}
        assert found == {"a/x.txt": 5, "a/b/y.bin": 5}
        assert storage.is_file(os.path.join(base, "a", "x.txt")) and not storage.is_file(os.path.join(base, "a"))
        assert storage.exists(os.path.join(base, "a")) and not storage.exists(os.path.join(base, "nothing"))
        storage.move(os.path.join(base, "a"), os.path.join(base, "c"))
        assert storage.children(base) == ["a.tmp-1", "c"]
        assert storage.read_text(os.path.join(base, "c", "x.txt")) == "hello"
        storage.remove(os.path.join(base, "a.tmp-1"))
        storage.remove(os.path.join(base, "missing"))
        assert storage.children(base) == ["c"]
    assert set(_keys(client, "unit/")) == {"unit/run/c/x.txt", "unit/run/c/b/y.bin"}
    from judgemine.schemas import s3_clients  # every call above went through one boto3 client (Beam makes one a call)
    assert [key[0] for key in s3_clients._clients] == [os.getpid()]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, small_pairs, tiny_judge) -> str:
    out = str(tmp_path_factory.mktemp("local") / "out")
    done = _judgemine("run", *run_args(out, small_pairs, tiny_judge))
    assert done.returncode == 0, done.stderr[-3000:]
    return out


KEY, SECRET = "AKIAJUDGEMINES3TEST01", "s3-secret-judgemine-never-written"


@pytest.fixture(scope="module")
def s3_run(s3, small_pairs, tiny_judge) -> list[str]:
    """The small run with --output on S3, through Beam's own S3 options with a distinctive key and secret (one run
    that the tests below share: it takes minutes on the object store); its arguments."""
    _, options = s3
    creds = [o for o in options if not o.startswith(("--s3_access_key_id", "--s3_secret_access_key"))]
    args = [*run_args(f"s3://{BUCKET}/run", small_pairs, tiny_judge), *creds,
            f"--s3_access_key_id={KEY}", f"--s3_secret_access_key={SECRET}"]
    done = _judgemine("run", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    return args


def test_run_on_s3_equals_the_local_run(s3, s3_run, local_run) -> None:
    client, _ = s3
    assert _published_s3(client, "run") == _published_local(local_run)
    assert not _temporary(client, "run")
    assert ".judgemine.lock" not in {k.rsplit("/", 1)[-1] for k in _keys(client, "run")}  # released


def test_credentials_reach_no_object_and_the_loader_reads_s3_through_the_record(s3, s3_run) -> None:
    """No object of the run holds the key or the secret (manifest, records, the lease while it lived), and the
    trainer's loader reads the s3:// shards the record lists."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    from judgemine.schemas.shard_dataset import ShardDataset
    client, _ = s3
    objects = _keys(client, "run/")
    assert "run/manifest.json" in objects
    for name in objects:
        data = _get(client, name)
        assert KEY.encode() not in data and SECRET.encode() not in data, name
    FileSystems.set_options(PipelineOptions([o for o in s3_run if o.startswith("--s3_")]))
    rows = json.loads(_get(client, "run/manifest.json"))["accounting"]["rows_out"]
    out = f"s3://{BUCKET}/run"
    dataset = ShardDataset(out + "/shards", skip_fallback=False)
    assert len(list(dataset)) == rows and all(p.startswith(out + "/shards/part-") for p in dataset.paths)


def _demo(out: str, options: list[str]) -> list[str]:
    return ["--config", os.path.join(ROOT, "examples", "demo.yaml"), "--output", out, *options]


@pytest.fixture(scope="module")
def demo_on_s3(s3) -> dict[str, bytes]:
    """The README's demo run with --output on S3; its shards and rejects."""
    client, options = s3
    first = _judgemine("run", *_demo(f"s3://{BUCKET}/demo", options))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "accounted for:   yes" in first.stdout
    return _published_s3(client, "demo")


def test_demo_writes_to_and_reruns_from_s3(s3, demo_on_s3) -> None:
    """The demo's run on S3, its status, a rerun that skips every stage, an export to S3 and the report, all
    through the object store."""
    client, options = s3
    out = f"s3://{BUCKET}/demo"
    keys = _keys(client, "demo/")
    assert {"demo/manifest.json", "demo/report/index.html", "demo/stages/mine/stage.json"} <= set(keys)
    assert sum(k.startswith("demo/shards/part-") for k in keys) == 3
    status = _judgemine("status", *_demo(out, options))
    assert status.returncode == 0, status.stdout + status.stderr
    again = _judgemine("run", *_demo(out, options))
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("up to date, skipped") == 6
    exported = _judgemine("export", "--format", "unime", "--output", out, *options)
    assert exported.returncode == 0, exported.stderr[-3000:]
    records = json.loads(_get(client, "demo/export/unime.json"))
    assert f"{len(records)} records -> {out}/export/unime.json" in exported.stdout
    assert len(records) == 279 and all(len(r["hard_negatives"]) == 10 for r in records)  # every shard row
    assert not _temporary(client, "demo/")


def test_kill_mid_stage_on_s3_leaves_nothing_trusted(s3, demo_on_s3) -> None:
    """The demo again, its stages up to retrieve copied from the demo's prefix (a copied run loads as it is),
    SIGKILLed while its judge stage is writing parts under its temporary prefix (a chunk of the demo takes seconds
    to judge, so the first part comes well before the commit): the stage is missing for every reader, a second
    run meanwhile was refused, and the next run removes the leftovers and ends with the same shards and rejects
    as the uninterrupted demo."""
    client, options = s3
    prefix = "killed"
    args = _demo(f"s3://{BUCKET}/{prefix}", options)
    copied = ("stages/ingest/", "stages/embed/", "stages/index/", "stages/retrieve/", ".judgemine-run")
    for key in _keys(client, "demo/"):  # server-side copies: the kill hits the judge stage, the first to run
        if key.startswith(tuple(f"demo/{c}" for c in copied)):
            client.copy_object(Bucket=BUCKET, Key=prefix + key[len("demo"):], CopySource={"Bucket": BUCKET, "Key": key})
    run = subprocess.Popen([JUDGEMINE, "run", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while f"{prefix}/.judgemine.lock" not in _keys(client, prefix):
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()[1][-3000:]
            time.sleep(0.1)
        second = _judgemine("run", *args)
        assert second.returncode == 4, second.stderr
        assert "in use by another judgemine run" in second.stderr
        while not any(k.startswith(f"{prefix}/stages/judge.tmp-") and k.endswith(".parquet")
                      for k in _keys(client, f"{prefix}/stages/")):
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()[1][-3000:]
            time.sleep(0.1)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.communicate()
    assert run.returncode == -signal.SIGKILL
    assert _temporary(client, prefix)  # the killed stage's partial output is there ...
    status = _judgemine("status", *args)
    assert status.returncode == 3
    states = {line.split()[0]: line.split()[1] for line in status.stdout.splitlines() if line.strip()}
    assert states["retrieve"] == "up" and states["judge"] == "missing" and states["mine"] == "missing"
    refused = _judgemine("export", "--format", "unime", "--output", f"s3://{BUCKET}/{prefix}", *options)
    assert refused.returncode == 2 and "has no committed mine stage" in refused.stderr  # ... or trusts
    rerun = _judgemine("run", *args)  # the lease names a dead process of this host: taken over at once
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "removed what a killed run left" in rerun.stderr
    assert not _temporary(client, prefix)
    assert _published_s3(client, prefix) == demo_on_s3


def test_kill_between_commit_steps_on_s3(s3, s3_run, local_run) -> None:
    """Killed after a rerun of mine deleted the old shards and before it copied the new ones in: no shards, no
    record, so no reader trusts the stage; the next run restores it (last in this file: it rewrites the shared
    run, and leaves it as it found it)."""
    client, _ = s3
    prefix = "run"
    killed = _judgemine("mine", *s3_run, "--beta", "0.3", fault="mine:shards:old-moved")
    assert killed.returncode == -signal.SIGKILL
    assert not any(k.startswith(f"{prefix}/shards/") for k in _keys(client, prefix))
    assert f"{prefix}/stages/mine/stage.json" not in _keys(client, prefix)
    status = _judgemine("status", *s3_run)
    assert status.returncode == 3 and "mine      missing" in status.stdout
    assert _judgemine("run", *s3_run).returncode == 0
    assert not _temporary(client, prefix)
    assert _published_s3(client, prefix) == _published_local(local_run)
