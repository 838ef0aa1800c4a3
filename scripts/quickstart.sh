#!/usr/bin/env bash
# The main job on the embedded default: a home in ./.sheratan, a simulation with the three
# example workers (real engine and store, virtual time), what was decided and learned, a real
# job read by a local worker, why/what-if/replay answers, and the hash chain verified.
set -euo pipefail
cd "$(dirname "$0")/.."
sheratan() { .venv/bin/python cli.py "$@"; }

sheratan init
echo "== 2,000 simulated jobs: every dispatch is a decision (gates, UCB, a logged random step)"
sheratan simulate --workers policies/workers.example.json --jobs 2000 --seed 1
echo; echo "== what was learned (priors of dispatch_job)"
sheratan policy show --intent dispatch_job
echo; echo "== a real job: a local worker reads README.md"
sheratan worker register local-reader --kinds file_read,noop --transport local 2>/dev/null || true
mission=$(sheratan mission create "Quickstart mission")
task=$(sheratan task create "$mission" "Read the project's README")
job=$(sheratan job create file_read --task "$task" --payload '{"path": "README.md"}' --priority high)
sheratan dispatch --until-idle
job_pos=$(sheratan sql "SELECT min(pos) AS p FROM events WHERE topic = 'job.created'" --format csv | tail -1)
sheratan job show "$job" | grep -E '^(status|worker|result) '
echo; echo "== a worker daemon and a following dispatcher, each a process of its own"
workspace=$(mktemp -d)
# (not through the sheratan function: $! must be the process itself, which SIGTERM stops)
.venv/bin/python cli.py worker run quickstart-daemon --kinds file_write --workspace "$workspace" >/dev/null &
daemon=$!
.venv/bin/python cli.py dispatch --follow --name quickstart --workspace "$workspace" >/dev/null &
follower=$!
trap 'kill -TERM $daemon $follower 2>/dev/null || true' EXIT
written=$(sheratan job create file_write --payload '{"path": "hello.txt", "content": "hello"}')
for _ in $(seq 100); do
  sheratan job show "$written" | grep -q '^status  *completed' && break
  sleep 0.1
done
sheratan job show "$written" | grep -E '^(status|worker|attempt) '
kill -TERM $daemon $follower && wait $daemon $follower
trap - EXIT
echo; echo "== why the last dispatch went where it went (read-only, redacted)"
sheratan why latest --intent dispatch_job
echo; echo "== what if every job had gone to fast-cheap? (off-policy, doubly robust)"
sheratan replay --counterfactual --policy always:fast-cheap
echo; echo "== does the engine decide the same again? (exact replay; exit 1 on major drift)"
sheratan replay --exact
echo; echo "== ad-hoc SQL over the log (read-only views)"
sheratan sql "SELECT chosen_key, count(*) AS n, round(avg(score), 3) AS mean_score FROM decisions GROUP BY 1 ORDER BY n DESC"
echo; echo "== the last events"
sheratan events tail -n 5
echo; echo "== the chain"
sheratan audit checkpoint
sheratan audit verify
echo; echo "== history provable to an outsider: a signed Merkle checkpoint and a proof of one event"
keys=.sheratan-keys  # outside the home: whoever holds the home must not hold the signing key
[ -f "$keys/sheratan-signing.key" ] || sheratan audit keygen --out "$keys"
sheratan audit checkpoint --sign "$keys/sheratan-signing.key" --export "$keys/checkpoint.json"
sheratan audit prove "$job_pos" --json > "$keys/proof.json"
sheratan audit verify-proof "$keys/proof.json" --pubkey "$keys/sheratan-signing.pub"
