#!/usr/bin/env bash
# Soak: sipborder (release build, media anchored) carries a steady SIPp call load with RTP and
# random hang-up times on both sides for SOAK_SECONDS (default 1800 = 30 min), optionally under a
# periodic flood from an untrusted source, while a sampler records every SAMPLE seconds: RSS, open file descriptors, threads,
# active calls, dialogs, transactions, relay ports in use. What it shows: nothing grows with time
# (no leak of memory, fds, dialogs or ports), and after the load stops everything returns to its
# idle value.
#
#   bench/soak.sh                              # 30 min, 10 calls/s, calls of 2-30 s with RTP
#   SOAK_SECONDS=300 RATE=20 bench/soak.sh     # shorter, busier
#   FLOOD=1 bench/soak.sh                      # plus a 20 s INVITE flood from 127.0.0.2
#                                              # at the trunk zone (outside its ACL: dropped)
#                                              # every 5 minutes (bounded)
#
# Output: bench/results/soak/samples.csv (one row per sample) and summary.txt (first, peak and
# last of each column, and the idle values after the drain). Everything runs on 127.0.0.x and is
# bounded: SIPp places exactly RATE*SOAK_SECONDS calls, every process is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK_SECONDS=${SOAK_SECONDS:-1800}
RATE=${RATE:-10}
SAMPLE=${SAMPLE:-10}
FLOOD=${FLOOD:-}
OUT=${OUT:-bench/results/soak}
LAN=25060 TRUNK=25080 ITSP=25090 ITSP2=25091 METRICS=29100
mkdir -p "$OUT"
rm -f "$OUT"/*.csv "$OUT"/summary.txt

cargo build --release -q --bin sipborder
BIN=target/release/sipborder

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

cat >"$OUT/sipborder.yaml" <<YAML
zones:
  - name: lan
    udp: 127.0.0.1:$LAN
    media: { ports: 30000-39999 }
  - name: trunk
    kind: trunk
    udp: 127.0.0.1:$TRUNK
    media: { ports: 40000-49999 }
trunks:
  - name: itsp
    zone: trunk
    address: 127.0.0.1:$ITSP
  - name: itsp2
    zone: trunk
    address: 127.0.0.1:$ITSP2
routes:
  - name: callee-hangs-up
    from: lan
    match: { prefix: "2" }
    targets: [itsp2]
  - name: caller-hangs-up
    from: lan
    targets: [itsp]
media:
  timeout: 60s
metrics:
  listen: 127.0.0.1:$METRICS
security:
  zones:
    lan: { trusted: true }
    trunk: { acl: [127.0.0.1] }
YAML
$BIN run -c "$OUT/sipborder.yaml" --log-level warn >"$OUT/sipborder.log" 2>&1 &
SB=$!
PIDS+=("$SB")
sleep 1

# Half the calls (number 1...): the caller plays 8 s of G.711 (SIPp's own pcap), stays a random
# 0-22 s more and hangs up; the callee echoes RTP back. The other half (number 2...): the same
# caller waits, the callee hangs up after a random 2-30 s.
# (sipp -sd exits non-zero after printing the scenario)
{ sipp -sd uac_pcap || true; } | sed 's#pcap/g711a.pcap#/usr/share/sip-tester/g711a.pcap#;
  s#pcap/dtmf_2833_1.pcap#/usr/share/sip-tester/dtmf_2833_1.pcap#;
  s#<pause milliseconds="1000"/>#<pause distribution="uniform" min="0" max="22000"/>#' \
  >"$OUT/uac_caller_hangs_up.xml"
cp tests/sipp/uac_wait_bye.xml "$OUT/uac_callee_hangs_up.xml"
sed 's#<pause milliseconds="200"/>#<pause distribution="uniform" min="2000" max="30000"/>#' \
  tests/sipp/uas_hangup.xml >"$OUT/uas_hangs_up.xml"
(cd "$OUT" && exec sipp -sn uas -i 127.0.0.1 -p $ITSP -mi 127.0.0.1 -rtp_echo -nostdin \
  >/dev/null 2>&1) &
PIDS+=("$!")
(cd "$OUT" && exec sipp -sf uas_hangs_up.xml -i 127.0.0.1 -p $ITSP2 -mi 127.0.0.1 -mp 26000 \
  -rtp_echo -nostdin >/dev/null 2>&1) &
PIDS+=("$!")
sleep 0.5

metric() { # exposition name-prefix: the sum of every series starting with it
  awk -v m="$2" 'index($0, m) == 1 { s += $NF } END { printf "%d", s }' <<<"$1"
}
sample() { # label
  local m rss fds thr
  m=$(curl -s --max-time 5 "http://127.0.0.1:$METRICS/metrics" || true)
  rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$SB/status")
  fds=$(find "/proc/$SB/fd" -mindepth 1 -maxdepth 1 | wc -l)
  thr=$(awk '/^Threads/ { print $2 }' "/proc/$SB/status")
  printf '%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$(date +%s)" "$1" "$rss" "$fds" "$thr" \
    "$(metric "$m" sipborder_calls_active)" "$(metric "$m" "sipborder_dialogs")" \
    "$(metric "$m" "sipborder_transactions")" "$(metric "$m" sipborder_relay_ports_in_use)" \
    >>"$OUT/samples.csv"
}
echo "time,phase,rss_kib,fds,threads,calls,dialogs,transactions,relay_ports_in_use" >"$OUT/samples.csv"
sample idle-before

flood() { # 20 s of INVITEs from outside the trunk zone's ACL, bounded in count and time
  timeout 25 sipp 127.0.0.1:$TRUNK -sn uac -i 127.0.0.2 -p 25061 -r 2000 -m 40000 -d 0 \
    -nostdin -recv_timeout 1000 >/dev/null 2>&1 || true
}

calls=$((RATE * SOAK_SECONDS / 2))
rate2=$(((RATE + 1) / 2))
(cd "$OUT" && exec timeout $((SOAK_SECONDS + 120)) sipp 127.0.0.1:$LAN -sf uac_caller_hangs_up.xml \
  -s 1000 -i 127.0.0.1 -p 25062 -mi 127.0.0.1 -mp 27000 -r "$rate2" -m "$calls" -l 2000 -nostdin \
  -trace_stat -stf stat.csv -fd 10 >/dev/null 2>&1) &
UAC=$!
PIDS+=("$UAC")
(cd "$OUT" && exec timeout $((SOAK_SECONDS + 120)) sipp 127.0.0.1:$LAN -sf uac_callee_hangs_up.xml \
  -s 2000 -i 127.0.0.1 -p 25063 -mi 127.0.0.1 -mp 28000 -r "$rate2" -m "$calls" -l 2000 -nostdin \
  -trace_stat -stf stat2.csv -fd 10 >/dev/null 2>&1) &
UAC2=$!
PIDS+=("$UAC2")
start=$SECONDS next_flood=$((SECONDS + 300))
while kill -0 "$UAC" 2>/dev/null && [ $((SECONDS - start)) -lt $((SOAK_SECONDS + 120)) ]; do
  sleep "$SAMPLE"
  sample load
  if [ -n "$FLOOD" ] && [ "$SECONDS" -ge "$next_flood" ]; then
    flood & next_flood=$((SECONDS + 300))
  fi
done
wait "$UAC" "$UAC2" 2>/dev/null || true
# Drain: media timeouts and transaction timers run out, then the idle values are taken.
for _ in $(seq 1 "${DRAIN_SAMPLES:-9}"); do sleep 10; sample drain; done

ok=$(( $(tail -1 "$OUT/stat.csv" | cut -d';' -f16) + $(tail -1 "$OUT/stat2.csv" | cut -d';' -f16) ))
failed=$(( $(tail -1 "$OUT/stat.csv" | cut -d';' -f18) + $(tail -1 "$OUT/stat2.csv" | cut -d';' -f18) ))
{
  echo "# $(date -u +%FT%TZ) soak ${SOAK_SECONDS}s, $RATE calls/s, flood=${FLOOD:-0}; calls ok=$ok failed=$failed"
  awk -F, 'NR == 1 { for (i = 3; i <= NF; i++) name[i] = $i; next }
    $2 == "idle-before" { for (i = 3; i <= NF; i++) idle[i] = $i; next }
    $2 == "load" { n++; for (i = 3; i <= NF; i++) { if (n == 1) first[i] = $i; if ($i > peak[i]) peak[i] = $i; last[i] = $i } }
    $2 == "drain" { for (i = 3; i <= NF; i++) after[i] = $i }
    END { printf "%-20s %10s %10s %10s %10s %10s\n", "", "idle", "first", "peak", "last", "after";
          for (i = 3; i <= 10; i++) printf "%-20s %10s %10s %10s %10s %10s\n", name[i], idle[i], first[i], peak[i], last[i], after[i] }' \
    "$OUT/samples.csv"
} | tee "$OUT/summary.txt"
