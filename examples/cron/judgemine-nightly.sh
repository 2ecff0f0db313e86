#!/usr/bin/env bash
# A cron job for judgemine: mine only when something changed, keep a log per run, and pass judgemine's exit
# code on (0 done or already up to date, 1 failed, 2 a user error, 4 another run holds the output).
#   crontab: 15 2 * * * /path/to/judgemine-nightly.sh /path/to/run.yaml /data/runs/nightly >> /var/log/jm.log 2>&1
set -uo pipefail
config=${1:?usage: judgemine-nightly.sh CONFIG OUTPUT}
output=${2:?usage: judgemine-nightly.sh CONFIG OUTPUT}
bin=${JUDGEMINE_BIN:-judgemine}
stamp() { date -u +%Y-%m-%dT%H:%M:%SZ; }

"$bin" status --config "$config" --output "$output" >/dev/null
case $? in
  0) echo "$(stamp) up to date: nothing to do"; exit 0 ;;
  3) ;;  # something to (re)do
  *) echo "$(stamp) status failed"; exit 2 ;;
esac
echo "$(stamp) mining into $output"
"$bin" run --config "$config" --output "$output"
rc=$?
echo "$(stamp) judgemine run exited $rc"
exit $rc
