#!/usr/bin/env bash
# `make test-airflow`: the example DAG run by Airflow's own `airflow dags test` (SQLite, a scratch
# AIRFLOW_HOME) on the bundled demo, twice: the first run mines (every stage a task), the second finds the run
# up to date and skips the stage tasks. Then the cron example on the same, up-to-date output.
set -euo pipefail
cd "$(dirname "$0")/../.."
airflow_venv=${1:?usage: dags_test.sh AIRFLOW_VENV}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export AIRFLOW_HOME=$scratch/home AIRFLOW__CORE__DAGS_FOLDER=$PWD/examples/airflow AIRFLOW__CORE__LOAD_EXAMPLES=False
export JUDGEMINE_BIN=$PWD/.venv/bin/judgemine JUDGEMINE_CONFIG=$PWD/examples/demo.yaml
export JUDGEMINE_OUTPUT=$scratch/run
airflow="$airflow_venv/bin/airflow"
"$airflow" db migrate >"$scratch/migrate.log" 2>&1 || { tail -20 "$scratch/migrate.log"; exit 1; }
"$airflow" dags reserialize >"$scratch/reserialize.log" 2>&1 || { tail -20 "$scratch/reserialize.log"; exit 1; }

finished() { grep -q "DagRun Finished: dag_id=judgemine_demo.*state=success" "$1" || { tail -40 "$1"; exit 1; }; }
"$airflow" dags test judgemine_demo >"$scratch/first.log" 2>&1 || { tail -40 "$scratch/first.log"; exit 1; }
finished "$scratch/first.log"
for task in status ingest embed index retrieve judge mine export; do
  grep -q "\[DAG TEST\] end task task_id=$task " "$scratch/first.log" || { echo "task $task did not run"; exit 1; }
done
"$JUDGEMINE_BIN" status --config "$JUDGEMINE_CONFIG" --output "$JUDGEMINE_OUTPUT"
test -s "$JUDGEMINE_OUTPUT/export/unime.json" && test -s "$JUDGEMINE_OUTPUT/manifest.json"
records() { sha256sum "$JUDGEMINE_OUTPUT"/stages/*/stage.json "$JUDGEMINE_OUTPUT"/shards/*.parquet; }
before=$(records)

"$airflow" dags test judgemine_demo >"$scratch/second.log" 2>&1 || { tail -40 "$scratch/second.log"; exit 1; }
finished "$scratch/second.log"
test "$before" = "$(records)" || { echo "an up-to-date run reran stages"; exit 1; }  # a stage task rewrites its record

JUDGEMINE_BIN=$JUDGEMINE_BIN examples/cron/judgemine-nightly.sh "$JUDGEMINE_CONFIG" "$JUDGEMINE_OUTPUT" | grep -q "up to date"
echo "airflow dags test: mined, then skipped when up to date; cron example: up to date"
