#!/usr/bin/env bash
# The main job on the embedded default: a home in ./.sheratan, a mission with a few jobs,
# the jobs and the last events shown, and the hash chain verified.
set -euo pipefail
cd "$(dirname "$0")/.."
sheratan() { .venv/bin/python cli.py "$@"; }

sheratan init
mission=$(sheratan mission create "Quickstart mission" --description "created by scripts/quickstart.sh")
task=$(sheratan task create "$mission" "Read the project files")
first=$(sheratan job create file_read --task "$task" --payload '{"path": "README.md"}' --priority high)
sheratan job create file_read --task "$task" --payload '{"path": "pyproject.toml"}' --depends-on "$first" >/dev/null
sheratan job create noop --task "$task" --idempotency-key quickstart-noop >/dev/null
echo; echo "== jobs (queued, in dispatch order)"
sheratan job list --status queued
echo; echo "== the last events"
sheratan events tail -n 6
echo; echo "== the chain"
sheratan audit checkpoint
sheratan audit verify
