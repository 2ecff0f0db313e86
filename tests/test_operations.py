"""What a scheduler and its operator see: exit codes, one-line errors, help, quiet logs, progress, records."""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest
from conftest import run_args

from judgemine.pipelines.cli.parser import main
from judgemine.transforms.common.progress import BEAT_SECONDS, MARKER, SUFFIX

JUDGEMINE = os.path.join(os.path.dirname(sys.executable), "judgemine")


@pytest.mark.parametrize("flag,suggestion", [("--num-negative", "--num-negatives"), ("--topk", "--top-k"),
                                             ("--judge-modle", "--judge-model")])
def test_a_misspelled_flag_is_an_error_naming_the_closest(tmp_path, capsys, flag, suggestion):
    assert main(["run", "--output", str(tmp_path / "out"), "--pairs", "x.jsonl", flag, "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"judgemine: unknown flag {flag}; did you mean {suggestion}?"]
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize("runner", [[], ["--runner", "DirectRunner"]])
def test_beam_options_still_pass_and_no_runner_means_no_prism_download(tmp_path, small_pairs, tiny_judge, caplog,
                                                                        runner):
    """Without --runner a stage runs in process, never trying the DirectRunner's Prism (a binary downloaded from
    GitHub when the network allows); a --runner given is Beam's to resolve (here Prism's download fails)."""
    caplog.set_level(logging.INFO, logger="apache_beam.runners.direct")
    out = str(tmp_path / "out")
    assert main(["ingest", *run_args(out, small_pairs[:1], tiny_judge), *runner,
                 "--direct_running_mode=in_memory"]) == 0
    tried = [r.getMessage() for r in caplog.records if "PrismRunner" in r.getMessage()]
    assert bool(tried) == bool(runner), tried


def test_a_missing_judge_fails_before_any_stage_runs(tmp_path, small_pairs, capsys):
    out = str(tmp_path / "out")
    assert main(["run", *run_args(out, small_pairs, str(tmp_path / "no-judge"))]) == 2
    assert capsys.readouterr().err.strip().startswith("judgemine: judge model folder not found")
    assert not os.path.exists(os.path.join(out, "stages"))


def test_version_and_help_show_one_spelling_with_defaults(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("judgemine ")
    assert main(["judge", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--judge-backend" in text and "--judge_backend" not in text and "(default: transformers)" in text
    assert "--top-k" not in text and "judge: openai settings" in text  # a stage shows its own settings


def test_a_run_from_the_command_prints_no_library_noise_and_records_its_counters(tmp_path, small_pairs,
                                                                                  tiny_judge):
    out = str(tmp_path / "out")
    done = subprocess.run([JUDGEMINE, "run", *run_args(out, small_pairs, tiny_judge)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    noise = [line for line in done.stderr.splitlines() if " judgemine " not in line]
    assert noise == [] and "accounted for:   yes" in done.stdout
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    judge = manifest["stages"]["judge"]
    assert judge["counters"]["pairs_judged"] == judge["counts"]["pairs_judged"] > 0
    assert judge["per_second"]["pairs_judged"] > 0 and judge["started_at"] <= judge["ended_at"]
    retrieve = manifest["stages"]["retrieve"]  # the search's own time, a part of the stage's
    assert retrieve["counters"]["queries"] == retrieve["counts"]["queries"] > 0
    assert 0 < retrieve["counters"]["search_ms"] <= 1000 * retrieve["seconds"]
    assert 0 < retrieve["counters"]["index_load_ms"] <= 1000 * retrieve["seconds"] - retrieve["counters"]["search_ms"]
    run = manifest["run"]
    assert run["device"] == "cpu" and run["models"]["judge"]["id"]
    assert run["runner_options"]["default_sdk_harness_log_level"] == "ERROR" and "top_k" not in run["runner_options"]


def _worker_file(folder, name: str, units: int, seq: int) -> None:
    (folder / f"{name}{SUFFIX}").write_text(f"{units} {seq}\n", encoding="utf-8")


def test_a_stage_counts_its_units_across_workers_with_a_rate_and_a_time_left(tmp_path, caplog):
    from judgemine.pipelines.run.progress import StageProgress
    with caplog.at_level(logging.INFO, logger="judgemine"):
        with StageProgress("judge", str(tmp_path), 1000, "pairs", every=0.3, first=0.05, poll=0.05):
            for seq in range(1, 9):  # two workers, 40 and 10 pairs each a tick
                _worker_file(tmp_path, "hostA-1-aa", 40 * seq, seq)
                _worker_file(tmp_path, "hostB-2-bb", 10 * seq, seq)
                time.sleep(0.1)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("judge: ")]
    assert lines[0].startswith("judge: ") and " of 1,000 pairs" in lines[0], lines
    assert any(re.fullmatch(r"judge: \d+ of 1,000 pairs, [\d,.]+/s, about \d+ s left", line) for line in lines), lines


def test_the_time_left_only_counts_down_and_the_rate_leaves_out_the_start():
    from judgemine.pipelines.run.progress import Lines
    lines = Lines("judge", 1000, "pairs")
    lines.see(10.0, 0)
    assert lines.line(10.0) == "judge: 0 of 1,000 pairs, rate known once work is seen twice"
    lines.see(70.0, 100)  # a minute of loading, then the first 100
    lines.see(80.0, 200)  # 10/s from then on, not 200 / 80 s
    assert lines.line(80.0) == "judge: 200 of 1,000 pairs, 10.0/s, about 80 s left"
    lines.see(100.0, 220)  # slower: 1/s since the first units would say 780 s; the time left does not grow
    assert lines.line(100.0).endswith("about 60 s left")
    lines.see(110.0, 400)
    assert lines.line(110.0).endswith("about 50 s left")
    rows = Lines("ingest", 0, "rows")
    rows.see(1.0, 50)
    rows.see(3.0, 250)
    assert rows.line(3.0) == "ingest: 250 rows, 100.0/s"


def test_a_worker_that_goes_silent_or_never_starts_fails_the_stage_in_one_line(tmp_path):
    from judgemine.pipelines.run.progress import StageProgress, WorkersFailed
    with pytest.raises(WorkersFailed, match=r"^no worker started within 1 s \(--worker-timeout\)"):
        with StageProgress("ingest", str(tmp_path / "a"), 0, "rows", timeout=1.0, poll=0.05):
            time.sleep(5)
    (tmp_path / "b").mkdir()
    with pytest.raises(WorkersFailed, match=r"^worker otherhost-7 stopped reporting 1 s ago"):
        with StageProgress("judge", str(tmp_path / "b"), 10, "pairs", timeout=1.0, poll=0.05):
            for seq in range(1, 100):
                _worker_file(tmp_path / "b", "livehost-6-aa", seq, seq)
                if seq < 5:
                    _worker_file(tmp_path / "b", "otherhost-7-bb", seq, seq)
                time.sleep(0.05)


def test_the_drivers_own_process_is_not_watched(tmp_path):
    from judgemine.pipelines.run.progress import StageProgress
    from judgemine.transforms.common.progress import worker_name
    with StageProgress("judge", str(tmp_path), 10, "pairs", timeout=0.5, poll=0.05):
        _worker_file(tmp_path, f"{worker_name()}-cc", 1, 1)  # the in-process runner: reported once, then busy
        time.sleep(1.5)


def test_a_workers_units_reach_its_file_until_the_stage_ends(tmp_path):
    from judgemine.transforms.common.progress import StageWork, read_work
    (tmp_path / MARKER).write_text("")
    work = StageWork(str(tmp_path))
    work.started()
    work.add(3)
    work.add(4)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and [u for u, _ in read_work(str(tmp_path)).values()] != [7]:
        time.sleep(0.1)
    assert [u for u, _ in read_work(str(tmp_path)).values()] == [7]
    (tmp_path / MARKER).unlink()
    time.sleep(2 * BEAT_SECONDS + 0.5)
    written = {p.name: p.read_text() for p in tmp_path.iterdir()}
    time.sleep(BEAT_SECONDS + 0.5)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == written  # the beat stopped with the marker


def test_status_says_running_while_a_run_holds_the_output(e2e_run, small_pairs, tiny_judge, capsys):
    """A sensor polling during a run learns that a run is under way (never "stale" from a half-committed state),
    and status is up to date again once the run ends."""
    from judgemine.pipelines.run.lock import run_lock
    results = []
    with run_lock(e2e_run, "run"):
        thread = threading.Thread(target=lambda: results.append(main(["status", *run_args(e2e_run, small_pairs,
                                                                                          tiny_judge)])))
        thread.start()
        thread.join(60)
    assert results == [4]
    assert capsys.readouterr().out.startswith(f"running   (pid {os.getpid()} on ")
    assert main(["status", *run_args(e2e_run, small_pairs, tiny_judge)]) == 0


def test_an_input_that_is_a_folder_is_a_user_error(tmp_path, capsys):
    assert main(["run", "--output", str(tmp_path / "out"), "--pairs", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"judgemine: input {tmp_path} is a folder, not a file"


def test_a_stage_logic_version_is_part_of_its_fingerprint(e2e_run, small_pairs, tiny_judge, monkeypatch):
    """An upgrade that changes a stage's output bumps its version: that stage and those after it rerun."""
    import dataclasses

    from judgemine.pipelines import stages
    from judgemine.pipelines.cli.parser import settings_from
    from judgemine.pipelines.run import runner
    settings, _ = settings_from(run_args(e2e_run, small_pairs, tiny_judge))
    assert {r["state"] for r in runner.stage_status(settings).values()} == {"up to date"}
    bumped = dataclasses.replace(stages.BY_NAME["judge"], version="999")
    monkeypatch.setattr(runner, "STAGES", tuple(bumped if s.name == "judge" else s for s in stages.STAGES))
    states = {name: row["state"] for name, row in runner.stage_status(settings).items()}
    assert states == {"ingest": "up to date", "embed": "up to date", "index": "up to date",
                      "retrieve": "up to date", "judge": "stale", "mine": "stale"}


def test_run_exits_1_when_the_accounting_does_not_balance(e2e_run, small_pairs, tiny_judge, tmp_path, capsys):
    """Ingest's record says one more pair was read than the shards and rejects hold (as a stage that lost a row
    would): a rerun (new margin, so mine and the manifest are rebuilt) reports it and exits 1, not 0."""
    out = str(tmp_path / "out")
    shutil.copytree(e2e_run, out)
    record = os.path.join(out, "stages", "ingest", "stage.json")
    with open(record, encoding="utf-8") as f:
        ingest = json.load(f)
    ingest["counts"]["pairs_in"] += 1
    with open(record, "w", encoding="utf-8") as f:
        json.dump(ingest, f)
    assert main(["run", *run_args(out, small_pairs, tiny_judge), "--beta", "0.02"]) == 1
    captured = capsys.readouterr()
    assert "accounted for:   NO" in captured.out
    assert captured.err.strip().splitlines()[-1].startswith("judgemine: the accounting does not balance")
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    acc = manifest["accounting"]
    assert not acc["balanced"] and acc["pairs_in"] == acc["rows_out"] + sum(acc["rejected"].values()) + 1
