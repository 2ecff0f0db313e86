"""An Airflow DAG running judgemine's stages as separate tasks, with `judgemine status` as the up-to-date
check: when every stage is up to date the stage tasks are skipped; otherwise each stage runs as its own task
(Airflow's retries rerun only the stage that failed; a killed task leaves nothing a reader would trust, see the
README's "Promises"). Exit codes: 2 (a user error) fails at once, 4 (another run holds the output) is retried.

Settings come from environment variables (or edit the defaults): JUDGEMINE_BIN (the `judgemine` executable),
JUDGEMINE_CONFIG (a YAML config), JUDGEMINE_OUTPUT (the run directory), JUDGEMINE_ARGS (extra flags).
Tested with `make test-airflow` (`airflow dags test` on the bundled demo).
"""
from __future__ import annotations

import os
import shlex
from datetime import datetime, timedelta

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("JUDGEMINE_BIN", os.path.join(ROOT, ".venv", "bin", "judgemine"))
CONFIG = os.environ.get("JUDGEMINE_CONFIG", os.path.join(ROOT, "examples", "demo.yaml"))
OUTPUT = os.environ.get("JUDGEMINE_OUTPUT", os.path.join(ROOT, "out", "airflow-demo"))
ARGS = " ".join(shlex.quote(a) for a in ["--config", CONFIG, "--output", OUTPUT]) + " " + \
    os.environ.get("JUDGEMINE_ARGS", "")
STAGES = ("ingest", "embed", "index", "retrieve", "judge", "mine")
UP_TO_DATE = 99  # the check's exit code for "nothing to do": the stage tasks are skipped

with DAG(dag_id="judgemine_demo", start_date=datetime(2026, 1, 1), schedule=None, catchup=False,
         default_args={"retries": 2, "retry_delay": timedelta(seconds=30)}, tags=["judgemine"]) as dag:
    check = BashOperator(
        task_id="status",
        bash_command=f"{shlex.quote(BIN)} status {ARGS}; rc=$?; "
                     f"if [ $rc -eq 0 ]; then exit {UP_TO_DATE}; elif [ $rc -eq 3 ]; then exit 0; else exit $rc; fi",
        skip_on_exit_code=UP_TO_DATE)
    previous = check
    for stage in STAGES:
        task = BashOperator(task_id=stage, bash_command=f"{shlex.quote(BIN)} {stage} {ARGS}")
        previous >> task
        previous = task
    export = BashOperator(task_id="export",
                          bash_command=f"{shlex.quote(BIN)} export --format unime --output {shlex.quote(OUTPUT)}")
    previous >> export
