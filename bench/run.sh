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
# RATES (ladder, default 250,500,1000,1500,2000,3000,4000,5000,6000), RUNS
# (runs per ladder step and stack, default 3), DURATION (per step, default
# 4s),
# IDLE_CALLS (10000), REG_UAS (10000), REG_EXPIRES (60; 600 makes the
# register step last about 10 minutes), REG_MODE (stack; ua: a UserAgent and
# socket per account, the way before the Stack, for comparison), REG_AUTH (1:
# the registrar challenges with digest; 0: it does not), LOAD_ARGS (more
# flags for `load all`), QUICK=1 (a smoke run: 1 benchmark run, one low
# ladder step, 500 idle calls, 200 registrations; no results file).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

command -v sipp >/dev/null || { echo "sipp not found: apt-get install sip-tester (or ../interop/install.sh)" >&2; exit 1; }

COUNT="${COUNT:-6}"
RATES="${RATES:-250,500,1000,1500,2000,3000,4000,5000,6000}"
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
	COUNT=1 RATES=200 RUNS=1 DURATION=2s IDLE_CALLS=500 REG_UAS=200
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

echo "==> load: ladder $RATES x $RUNS runs of $DURATION, $IDLE_CALLS idle calls, $REG_UAS registrations" >&2
"$work/load" all -micro "$work/micro.txt" -rates "$RATES" -runs "$RUNS" -duration "$DURATION" \
	-idle-calls "$IDLE_CALLS" -reg-uas "$REG_UAS" -reg-expires "$REG_EXPIRES" -dir "$work/traces" \
	-json "$work/results.json" "${reg[@]}" "${extra[@]+"${extra[@]}"}" ${LOAD_ARGS:-} | tee "$work/table.md"

if [[ "${QUICK:-}" != 1 ]]; then
	mkdir -p results
	out="results/$(date -u +%Y-%m-%dT%H%M)Z.md"
	{
		echo "# sipua vs sipgo v1.7.2 — $(date -u '+%Y-%m-%d %H:%M UTC')"
		echo
		echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr)"
		echo "- $(go version)"
		echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other jobs share the machine: compare ratios)"
		echo "- settings: COUNT=$COUNT RATES=$RATES RUNS=$RUNS DURATION=$DURATION IDLE_CALLS=$IDLE_CALLS REG_UAS=$REG_UAS REG_EXPIRES=$REG_EXPIRES REG_MODE=$REG_MODE REG_AUTH=$REG_AUTH"
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
