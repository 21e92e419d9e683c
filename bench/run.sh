#!/usr/bin/env bash
# Runs every sipua-vs-sipgo comparison and prints ONE table with both
# stacks: the micro benchmarks of this package (parse, write, response,
# transaction), then the sipp load harness (bench/load): the UAS call-rate
# ladder, 10 000 idle calls, 10 000 registrations kept fresh by one process
# (all accounts on one sip.Stack, against a sipp registrar that challenges
# with digest; CPU measured over one whole refresh period). Takes 10 to 15
# minutes. Needs sipp (apt-get install sip-tester; interop/install.sh
# installs it).
#
# The table is also written to results/<UTC date>.md with the machine
# noted. Knobs (environment): COUNT (micro benchmark rounds, default 6),
# BENCHTIME (per benchmark and round, default 300ms),
# RATES (first ladder steps, default 1000,2000,4000,6000), STEP (then the
# ladder steps up by this, default 2000, until sipua breaks: no fixed top),
# MAX_RATE (60000), TWO_SIPP_FROM (from this rate on two sipp UACs share
# the rate, default 8000: one sipp runs short of CPU near 10 000 calls/s),
# CPU_RATE (both stacks' CPU per call is reported at this rate, default
# 8000), RUNS (runs per ladder step and stack, default 3), DURATION (per
# step, default 4s),
# IDLE_CALLS (10000), REG_UAS (10000), REG_EXPIRES (60; 600 makes the
# register step last about 10 minutes), REG_MODE (stack; ua: a UserAgent and
# socket per account, the way before the Stack, for comparison), REG_AUTH (1:
# the registrar challenges with digest; 0: it does not), LOAD_ARGS (more
# flags for `load all`), QUICK=1 (a smoke run: 1 benchmark run, one low
# ladder step, 500 idle calls, 200 registrations; no results file).
# STEADY_RATES (default 4000,6000,8000; empty: skip) and STEADY_DURATION
# (45s): the call ladder once more with steps longer than 64*T1 (32 s), so
# that each step reaches the steady state of a server that has run a while:
# transactions and their timers expire as fast as new calls make them, and
# the heap is that of 32 s of calls. The short steps above never see one
# transaction end. FLOOR=0 skips the Go floor: `load floor` (a Go UDP
# responder with no SIP stack, plain and with recvmmsg/sendmmsg) at
# CPU_RATE, the CPU per call under which no Go UAS on this machine goes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

command -v sipp >/dev/null || { echo "sipp not found: apt-get install sip-tester (or ../interop/install.sh)" >&2; exit 1; }

COUNT="${COUNT:-6}"
RATES="${RATES:-1000,2000,4000,6000}"
STEP="${STEP:-2000}"
MAX_RATE="${MAX_RATE:-60000}"
TWO_SIPP_FROM="${TWO_SIPP_FROM:-8000}"
CPU_RATE="${CPU_RATE:-8000}"
RUNS="${RUNS:-3}"
DURATION="${DURATION:-4s}"
IDLE_CALLS="${IDLE_CALLS:-10000}"
REG_UAS="${REG_UAS:-10000}"
REG_EXPIRES="${REG_EXPIRES:-60}"
REG_MODE="${REG_MODE:-stack}"
REG_AUTH="${REG_AUTH:-1}"
reg=(-reg-mode "$REG_MODE" -reg-period)
if [[ "$REG_AUTH" == 1 ]]; then
	reg+=(-reg-auth)
fi
extra=()
if [[ "${QUICK:-}" == 1 ]]; then
	COUNT=1 RATES=200 STEP=0 CPU_RATE=0 RUNS=1 DURATION=2s IDLE_CALLS=500 REG_UAS=200
	extra=(-idle-rate 250 -timer-wait 1s -reg-expires 3600 -reg-window 2s -reg-rate 200)
	reg=(-reg-mode "$REG_MODE") # a 2 s window, not a refresh period
	if [[ "$REG_AUTH" == 1 ]]; then
		reg+=(-reg-auth)
	fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/load" ./load

# The benchmarks run COUNT rounds of one run each, so that sipua and sipgo
# alternate every few hundred milliseconds: with other jobs on the machine
# the speed changes by the minute, and ratios of far-apart runs drift.
echo "==> micro benchmarks ($COUNT interleaved rounds)" >&2
go test -c -o "$work/bench.test" .
for ((i = 0; i < COUNT; i++)); do
	"$work/bench.test" -test.run '^$' -test.bench . -test.benchmem -test.benchtime "${BENCHTIME:-300ms}"
done | tee "$work/micro.txt" | grep -E '^Benchmark' >&2

echo "==> load: ladder $RATES then +$STEP until sipua breaks, x $RUNS runs of $DURATION, $IDLE_CALLS idle calls, $REG_UAS registrations" >&2
"$work/load" all -micro "$work/micro.txt" -rates "$RATES" -step "$STEP" -max-rate "$MAX_RATE" \
	-two-sipp-from "$TWO_SIPP_FROM" -cpu-rate "$CPU_RATE" -runs "$RUNS" -duration "$DURATION" \
	-idle-calls "$IDLE_CALLS" -reg-uas "$REG_UAS" -reg-expires "$REG_EXPIRES" -dir "$work/traces" \
	-json "$work/results.json" "${reg[@]}" "${extra[@]+"${extra[@]}"}" ${LOAD_ARGS:-} | tee "$work/table.md"

if [[ "${QUICK:-}" != 1 && -n "${STEADY_RATES-4000,6000,8000}" ]]; then
	echo "==> steady state: ${STEADY_RATES-4000,6000,8000} for ${STEADY_DURATION:-45s} each" >&2
	{
		echo
		echo "## Steady state: each step ${STEADY_DURATION:-45s} (longer than 64*T1), one run per stack"
		echo
		"$work/load" calls -rates "${STEADY_RATES-4000,6000,8000}" -step 0 -runs 1 -duration "${STEADY_DURATION:-45s}" \
			-two-sipp-from "$TWO_SIPP_FROM" -cpu-rate 0 -dir "$work/steady"
	} | tee -a "$work/table.md"
fi
if [[ "${QUICK:-}" != 1 && "${FLOOR:-1}" == 1 && "$CPU_RATE" -gt 0 ]]; then
	echo "==> Go floor at $CPU_RATE calls/s" >&2
	{
		echo
		echo "## Go floor at $CPU_RATE calls/s: no SIP stack (load floor)"
		echo
		echo '```'
		"$work/load" floor -rates "$CPU_RATE" -duration "$DURATION" -two-sipp-from "$TWO_SIPP_FROM" -dir "$work/floor" 2>&1 | grep '^calls floor' | sed 's/^/plain: /'
		FLOOR_BATCH=1 "$work/load" floor -rates "$CPU_RATE" -duration "$DURATION" -two-sipp-from "$TWO_SIPP_FROM" -dir "$work/floor" 2>&1 | grep '^calls floor' | sed 's/^/recvmmsg\/sendmmsg: /'
		echo '```'
	} | tee -a "$work/table.md"
fi

if [[ "${QUICK:-}" != 1 ]]; then
	mkdir -p results
	out="results/$(date -u +%Y-%m-%dT%H%M)Z.md"
	{
		echo "# sipua vs sipgo v1.7.2 — $(date -u '+%Y-%m-%d %H:%M UTC')"
		echo
		echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr)"
		echo "- $(go version)"
		echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other jobs share the machine: compare ratios)"
		echo "- settings: COUNT=$COUNT RATES=$RATES STEP=$STEP MAX_RATE=$MAX_RATE TWO_SIPP_FROM=$TWO_SIPP_FROM CPU_RATE=$CPU_RATE RUNS=$RUNS DURATION=$DURATION IDLE_CALLS=$IDLE_CALLS REG_UAS=$REG_UAS REG_EXPIRES=$REG_EXPIRES REG_MODE=$REG_MODE REG_AUTH=$REG_AUTH"
		echo
		cat "$work/table.md"
		echo
		echo '<details><summary>benchmark output</summary>'
		echo
		echo '```'
		grep -E '^(Benchmark|cpu:|goos|goarch)' "$work/micro.txt"
		echo '```'
		echo '</details>'
	} >"$out"
	echo "==> written to bench/$out" >&2
fi
