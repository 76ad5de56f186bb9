#!/usr/bin/env bash
# Media relay benchmark: N concurrent calls at 50 packets/s per direction (172-byte RTP) through
# sipborder (calls set up over SIP) and, in the same run, through rtpengine in userspace
# (--table=-1, calls created over its ng protocol). bench/rtp_loadgen.rs drives the load and
# measures; this script builds, starts each system under test fresh for every run, and collects
# one result line per run.
#
#   bench/rtp_bench.sh                          # 500 1000 2000 calls, sipborder 1 and 2 relay
#                                               # threads, rtpengine; 20 s each
#   CALLS="500 2000" THREADS=1 SECS=10 bench/rtp_bench.sh
#   DATAPATH=epoll bench/rtp_bench.sh           # sipborder's epoll datapath instead of auto
#   PIN_GEN=0 bench/rtp_bench.sh                # pin the generator thread to CPU 0
#   PERF=1 bench/rtp_bench.sh                   # perf profile of each system at the largest N
#   NO_RTPENGINE=1 bench/rtp_bench.sh           # sipborder only
#
# The machine is shared: before every run the script waits (at most LOAD_WAIT seconds) for the
# 1-minute load average to drop below MAX_LOAD, and every result line carries the load average
# before and after. Everything is bounded: each run is warmup + SECS seconds plus setup, and the
# processes it starts are stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a CALLS <<<"${CALLS:-500 1000 2000}"
read -r -a THREADS <<<"${THREADS:-1 2}"
SECS=${SECS:-20}
WARMUP=${WARMUP:-3}
DATAPATH=${DATAPATH:-auto}
OUT=${OUT:-bench/results/media}
MAX_LOAD=${MAX_LOAD:-1.0}
LOAD_WAIT=${LOAD_WAIT:-600}
PIN_GEN=${PIN_GEN:-}
PERF=${PERF:-}
LAN=15060 TRUNK=15080 ITSP=15090 NG=22223
mkdir -p "$OUT"
RESULTS=$OUT/results.txt

cargo build --release -q --bin sipborder --example rtp_loadgen
BIN=target/release/sipborder
GEN=target/release/examples/rtp_loadgen

SUT_PID=
cleanup() {
  if [ -n "$SUT_PID" ] && kill -0 "$SUT_PID" 2>/dev/null; then
    kill "$SUT_PID" 2>/dev/null || true
    wait "$SUT_PID" 2>/dev/null || true
  fi
  SUT_PID=
}
trap cleanup EXIT

wait_quiet() {
  local deadline=$((SECONDS + LOAD_WAIT)) load
  while :; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    if awk -v l="$load" -v m="$MAX_LOAD" 'BEGIN { exit !(l < m) }'; then return 0; fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "# load average still $load after waiting ${LOAD_WAIT}s; running anyway" | tee -a "$RESULTS"
      return 0
    fi
    sleep 10
  done
}

gen_args() { # calls label
  local a=(--calls "$1" --secs "$SECS" --warmup "$WARMUP" --label "$2")
  if [ -n "$PIN_GEN" ]; then a+=(--pin-gen "$PIN_GEN"); fi
  echo "${a[@]}"
}

# Profiles the running system under test for 10 s of the measured window (PERF=1, largest N).
PERF_PID=
maybe_perf() { # name calls
  PERF_PID=
  if [ -z "$PERF" ] || [ "$2" != "${CALLS[-1]}" ]; then return 0; fi
  (
    sleep $((WARMUP + 8))
    timeout 30 perf record -F 2000 -g -p "$SUT_PID" -o "$OUT/perf-$1.data" -- sleep 10 \
      >/dev/null 2>&1 || true
    timeout 120 perf report -i "$OUT/perf-$1.data" --no-children --percent-limit 1 \
      --sort dso,symbol --stdio 2>/dev/null | grep -v '^$' | head -80 >"$OUT/perf-$1.txt" || true
  ) &
  PERF_PID=$!
}

run_sipborder() { # threads calls
  local t=$1 n=$2 cfg=$OUT/sipborder-bench.yaml
  cat >"$cfg" <<YAML
zones:
  - name: lan
    udp: 127.0.0.1:$LAN
    media: { ports: 10000-19999 }
  - name: trunk
    kind: trunk
    udp: 127.0.0.1:$TRUNK
    media: { ports: 20000-29999 }
trunks:
  - name: itsp
    zone: trunk
    address: 127.0.0.1:$ITSP
routes:
  - name: out
    from: lan
    targets: [itsp]
media:
  threads: $t
  datapath: $DATAPATH
  timeout: 120s
runtime:
  shards: 2
  worker_threads: 2
YAML
  wait_quiet
  $BIN run -c "$cfg" --log-level warn >"$OUT/sipborder-t$t-$n.log" 2>&1 &
  SUT_PID=$!
  sleep 1
  maybe_perf "sipborder-t$t" "$n"
  # shellcheck disable=SC2046
  timeout $((SECS + WARMUP + 120)) $GEN --target sipborder --pid "$SUT_PID" \
    --lan 127.0.0.1:$LAN --itsp-port $ITSP $(gen_args "$n" "sipborder-$DATAPATH-t$t") \
    2>>"$OUT/details.txt" | tee -a "$RESULTS" || true
  wait_perf
  cleanup
}

run_rtpengine() { # calls
  local n=$1
  wait_quiet
  rtpengine --table=-1 --interface=127.0.0.1 --listen-ng=127.0.0.1:$NG \
    --port-min=30000 --port-max=39999 --foreground --log-stderr --log-level=3 \
    >"$OUT/rtpengine-$n.log" 2>&1 &
  SUT_PID=$!
  sleep 1
  maybe_perf rtpengine "$n"
  # shellcheck disable=SC2046
  timeout $((SECS + WARMUP + 120)) $GEN --target rtpengine --pid "$SUT_PID" \
    --ng 127.0.0.1:$NG $(gen_args "$n" "rtpengine-userspace") \
    2>>"$OUT/details.txt" | tee -a "$RESULTS" || true
  wait_perf
  cleanup
}

wait_perf() { # the background profiler, if any (bounded by its own timeouts)
  if [ -n "$PERF_PID" ]; then wait "$PERF_PID" 2>/dev/null || true; fi
  PERF_PID=
}

{
  echo "# $(date -u +%FT%TZ) $(nproc) cores, kernel $(uname -r), ${SECS}s per run (+${WARMUP}s warmup)"
  echo "# rtpengine $(rtpengine --version 2>&1 | head -1), sipborder datapath $DATAPATH"
} | tee -a "$RESULTS"
for n in "${CALLS[@]}"; do
  for t in "${THREADS[@]}"; do run_sipborder "$t" "$n"; done
  if [ -z "${NO_RTPENGINE:-}" ]; then run_rtpengine "$n"; fi
done
