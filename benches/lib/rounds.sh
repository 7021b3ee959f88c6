# shellcheck shell=bash
# Interleaved hyperfine rounds, sourced by the bench scripts.
#
# hyperfine times one command's runs back to back, so a drift of the
# machine (another process, writeback, frequency changes) lands on
# whichever command ran then. hf_rounds runs ROUND_RUNS of every command
# per round, the order rotated round by round, and merges the rounds into
# one JSON in hyperfine's own export shape ({"results": [{"command",
# "times", "median", "mean", "stddev", "min", "max"}]}) plus "per_round":
# each round's median per command, so a script can also report ratios
# paired round by round. Drift then hits every command alike.
#
# Usage: hf_rounds OUT.json RUNS WARMUP NAME CMD [NAME CMD]...
#   RUNS per command in all (rounds of 5), WARMUP runs in the first round
#   (1 in each later one). Sets HF_PID while hyperfine runs, for the
#   caller's cleanup trap (hyperfine leads its own session: kill -- -PID).
hf_rounds() {
    local out="$1" runs="$2" warmup="$3"
    shift 3
    local -a names=() cmds=()
    while [ $# -ge 2 ]; do names+=("$1"); cmds+=("$2"); shift 2; done
    local n=${#names[@]} per=5
    [ "$runs" -lt "$per" ] && per="$runs"
    local rounds=$(( (runs + per - 1) / per )) round k i w
    local dir
    dir="$(mktemp -d "${TMPDIR:-/tmp}/hf-rounds.XXXXXX")"
    for round in $(seq 1 "$rounds"); do
        local -a args=()
        for k in $(seq 0 $((n - 1))); do
            i=$(( (k + round - 1) % n ))
            args+=(-n "${names[$i]}" "${cmds[$i]}")
        done
        w=1
        [ "$round" = 1 ] && w="$warmup"
        printf '\r==> round %d/%d (%d runs of each command)' "$round" "$rounds" "$per" >&2
        setsid hyperfine --warmup "$w" --runs "$per" --style none \
            --export-json "$dir/$(printf '%04d' "$round").json" "${args[@]}" >/dev/null &
        HF_PID=$!
        if ! wait "$HF_PID"; then HF_PID=""; rm -rf "$dir"; printf '\n' >&2; return 1; fi
        HF_PID=""
    done
    printf '\n' >&2
    python3 - "$out" "$dir"/*.json <<'EOF'
import json, statistics, sys
out, paths = sys.argv[1], sys.argv[2:]
times, per_round = {}, []
for p in paths:
    rnd = {r["command"]: r["times"] for r in json.load(open(p))["results"]}
    per_round.append({c: statistics.median(t) for c, t in rnd.items()})
    for c, t in rnd.items():
        times.setdefault(c, []).extend(t)
results = [{
    "command": c, "times": t, "median": statistics.median(t), "mean": statistics.mean(t),
    "stddev": statistics.stdev(t) if len(t) > 1 else 0.0, "min": min(t), "max": max(t),
} for c, t in times.items()]
json.dump({"results": results, "rounds": len(paths), "per_round": per_round}, open(out, "w"))
EOF
    local rc=$?
    rm -rf "$dir"
    return "$rc"
}
