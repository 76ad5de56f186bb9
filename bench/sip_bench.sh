#!/usr/bin/env bash
# Signalling benchmark: SIPp UAC -> {sipborder | Kamailio} -> SIPp UAS at rising call rates,
# both in the same run. For each rate: calls attempted, successful, failed, and the CPU time of
# the system under test per call (utime+stime of all its processes from /proc, divided by calls).
#
#   bench/sip_bench.sh [RATES...]          (default: 500 1000 1500 2000 2500)
#   SECONDS_PER_RATE=10 bench/sip_bench.sh
#
# Bounded: every SIPp run places exactly rate*SECONDS_PER_RATE calls and is killed after a
# timeout. Everything runs on 127.0.0.1. Needs sip-tester and kamailio (apt-get install -y ...).
set -euo pipefail
cd "$(dirname "$0")/.."
RATES=("${@:-500 1000 1500 2000 2500}")
read -r -a RATES <<<"${RATES[*]}"
SECS=${SECONDS_PER_RATE:-10}
OUT=${OUT:-bench/results}
mkdir -p "$OUT"
CLK=$(getconf CLK_TCK)

cargo build --release -q
BIN=target/release/sipborder
CFG=$OUT/sipborder-bench.yaml
cat >"$CFG" <<YAML
zones:
  - name: lan
    udp: 127.0.0.1:5060
    media: { ports: 10000-39999 }
  - name: trunk
    udp: 127.0.0.1:5080
    media: { ports: 40000-64999 }
trunks:
  - name: itsp
    zone: trunk
    address: 127.0.0.1:5090
routes:
  - name: out
    from: lan
    targets: [itsp]
runtime:
  shards: 2
  worker_threads: 2
YAML
# Port pools sized for the rate: a call's ports rest 2 s (quarantine) after it ends, so 2000
# calls/s hold ~4000 pairs per zone. SIPp's UAC is told not to abort a call on an unexpected
# message: a proxy with several worker processes (Kamailio, children=2) may forward a 180
# after the 200, which a real UA ignores but SIPp would count as a failed call.
# Signalling only (what a proxy like Kamailio does): media flows around sipborder.
CFG_BYPASS=$OUT/sipborder-bench-bypass.yaml
sed 's/^runtime:/media:\n  mode: bypass\nruntime:/' "$CFG" >"$CFG_BYPASS"

cpu_ticks() { # sum utime+stime over the given pids
  local t=0
  for p in "$@"; do
    if [ -r "/proc/$p/stat" ]; then
      # fields 14 and 15 after the command name (which may contain spaces)
      t=$((t + $(awk '{sub(/^.*\) /,""); print $12 + $13}' "/proc/$p/stat")))
    fi
  done
  echo "$t"
}

run_rate() { # name rate pids...
  local name=$1 rate=$2; shift 2
  local calls=$((rate * SECS))
  local stf="$OUT/$name-$rate.csv"
  rm -f "$stf"
  sipp -sn uas -i 127.0.0.1 -p 5090 -nostdin -bg >/dev/null 2>&1 || true
  sleep 0.5
  local before; before=$(cpu_ticks "$@")
  timeout $((SECS * 3 + 30)) sipp 127.0.0.1:5060 -sn uac -i 127.0.0.1 -p 5061 -nostdin \
    -r "$rate" -m "$calls" -d 0 -l $((rate * 4)) -default_behaviors all,-abortunexp -trace_stat -stf "$stf" -fd 1 >/dev/null 2>&1 || true
  local after; after=$(cpu_ticks "$@")
  pkill -f "sipp -sn uas" || true
  sleep 0.5
  local ok failed
  ok=$(tail -1 "$stf" | cut -d';' -f16)
  failed=$(tail -1 "$stf" | cut -d';' -f18)
  local us=$(( (after - before) * 1000000 / CLK / (ok > 0 ? ok : 1) ))
  printf '%-10s rate=%-5s calls=%-6s ok=%-6s failed=%-6s cpu_us_per_call=%s\n' "$name" "$rate" "$calls" "$ok" "$failed" "$us" | tee -a "$OUT/summary.txt"
}

: >"$OUT/summary.txt"
echo "# $(date -u +%FT%TZ) $(nproc) cores, ${SECS}s per rate" | tee -a "$OUT/summary.txt"

# sipborder, media anchored (4 relay sockets bound per call) and media bypassed
for mode in anchored bypass; do
  cfg=$CFG
  [ "$mode" = bypass ] && cfg=$CFG_BYPASS
  $BIN run -c "$cfg" --log-level warn >"$OUT/sipborder-$mode.log" 2>&1 &
  SB=$!
  sleep 1
  for r in "${RATES[@]}"; do run_rate "sb-$mode" "$r" "$SB"; done
  kill "$SB"; wait "$SB" 2>/dev/null || true
  sleep 1
done

# Kamailio (stateful proxy, fast allocator: its default debugging allocator costs it 3x): all
# its processes count. 1 GiB of shared memory: with the default 64 MiB its transaction table
# runs out above ~700 calls/s (5 s wait timer per transaction) and calls fail.
kamailio -f bench/kamailio.cfg -x fm -m 1024 -M 32 -DD -E >"$OUT/kamailio.log" 2>&1 &
KAM=$!
sleep 2
PIDS=$(pgrep -f "kamailio -f bench/kamailio.cfg" | tr '\n' ' ')
for r in "${RATES[@]}"; do run_rate kamailio "$r" $PIDS; done
kill $PIDS 2>/dev/null || true
wait "$KAM" 2>/dev/null || true
