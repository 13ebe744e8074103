#!/usr/bin/env bash
# Cipher throughput of cryptvol beside OpenSSL's aes-256-xts, measured in one run
# on this machine, as ratios. For 512-byte and 4 KiB sectors, encrypt and decrypt,
# it prints MiB/s of OpenSSL (openssl speed, as ../shared/bench/peers.sh cipher
# runs it), of every cryptvol implementation this CPU runs, and each one's ratio
# to OpenSSL.
#
# The machine may be shared and noisy: other load only ever slows a measurement
# down, so the script alternates cryptvol and OpenSSL ROUNDS times and keeps each
# one's best figure, the same rule for both. Compare ratios from one run, not
# absolute figures across runs.
#
# TIMING says what a figure is divided by:
#   cpu   (default) the CPU time the measured process used (user + system), so
#         that other work on the machine does not count: OpenSSL's speed without
#         -elapsed does this itself; for cryptvol the test binary runs a fixed
#         number of iterations (about BENCHCPU seconds' worth, BENCHCPU=2 by
#         default) and its CPU time, less that of a one-iteration run (start-up,
#         some 10 ms), is divided into the bytes. On a machine loaded by other
#         jobs this is the only way to measure the cores, since a 1 s wall-clock
#         window then holds a fraction of a second of work.
#   wall  elapsed time: go test's own MB/s with BENCHTIME (1s by default) and
#         ../shared/bench/peers.sh cipher (openssl speed -elapsed). Right on a
#         quiet machine, meaningless on a loaded one.
#
# Usage: bench/cipher.sh            ROUNDS=3 TIMING=cpu by default
# Needs: go, openssl, awk, bash; for TIMING=wall ../shared/bench/peers.sh
# (PEERS=path to override). Also prints the machine, the core clock and the AES
# instruction rate (bench/aesrate).
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-../shared/bench/peers.sh}
ROUNDS=${ROUNDS:-3}
TIMING=${TIMING:-cpu}
BENCHTIME=${BENCHTIME:-1s}
BENCHCPU=${BENCHCPU:-2}
OSSLSECONDS=${OSSLSECONDS:-6}
case $TIMING in cpu | wall) ;; *) echo "cipher.sh: TIMING must be cpu or wall" >&2; exit 2 ;; esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/cipher.test" ./cipher
cases='^BenchmarkXTS$/.*/.*/(512|4096)$'

# gobench ARGS...: "name sector MiB/s" lines from go test's benchmark output
# (BenchmarkXTS/<impl>/<op>/<size>-N  iters  ns/op  MB/s, 10^6 bytes).
gobench() {
	"$tmp/cipher.test" -test.run '^$' "$@" |
		awk '$1 ~ /^BenchmarkXTS\// && $(NF) == "MB/s" {
			split($1, p, "/"); sub(/-[0-9]+$/, "", p[4])
			printf "%s/%s %s %.0f\n", p[2], p[3], p[4], $(NF-1) * 1e6 / 1048576 }'
}

# cpusecs CMD...: the user + system CPU seconds CMD used.
cpusecs() {
	local TIMEFORMAT='%3U %3S' t
	t=$({ time "$@" >/dev/null 2>&1; } 2>&1)
	echo "$t" | awk '{ print $1 + $2 }'
}

if [ "$TIMING" = cpu ]; then
	# Iterations per case: about BENCHCPU seconds at the speed of a short
	# wall-clock run (which load can only make look slower, so fewer).
	gobench -test.bench "$cases" -test.benchtime 0.05s |
		awk -v s="$BENCHCPU" '{ n = int(s * $3 * 1048576 / $2); print $1, $2, (n < 100 ? 100 : n) }' >"$tmp/cases"
fi

# Collect "name sector MiB/s" lines, name being an implementation/operation or
# openssl/operation, one set per round.
for _ in $(seq "$ROUNDS"); do
	if [ "$TIMING" = wall ]; then
		gobench -test.bench "$cases" -test.benchtime "$BENCHTIME"
		# cipher openssl-aes-256-xts -encrypt sector=512 MiBps=4841
		bash "$PEERS" cipher |
			awk '$1 == "cipher" {
				op = ($2 ~ /-decrypt$/) ? "decrypt" : "encrypt"
				for (i = 1; i <= NF; i++) {
					if ($i ~ /^sector=/) { split($i, s, "="); sector = s[2] }
					if ($i ~ /^MiBps=/) { split($i, m, "="); mibps = m[2] }
				}
				printf "openssl/%s %s %s\n", op, sector, mibps }'
		continue
	fi
	# Start-up: the least CPU time of three one-iteration runs.
	start=$(for _ in 1 2 3; do
		cpusecs "$tmp/cipher.test" -test.run '^$' -test.bench '^BenchmarkXTS$/^generic$/^encrypt$/^512$' -test.benchtime 1x
	done | sort -g | head -1)
	while read -r name sector n; do
		t=$(cpusecs "$tmp/cipher.test" -test.run '^$' -test.bench "^BenchmarkXTS\$/^${name%/*}\$/^${name#*/}\$/^$sector\$" -test.benchtime "${n}x")
		awk -v name="$name" -v sector="$sector" -v n="$n" -v t="$t" -v t0="$start" \
			'BEGIN { if (t > t0) printf "%s %s %.0f\n", name, sector, (n - 1) * sector / (t - t0) / 1048576 }'
	done <"$tmp/cases"
	# The command of peers.sh cipher without -elapsed: the figures are per
	# second of user CPU time, which openssl counts in 10 ms ticks, so it
	# runs OSSLSECONDS (6) instead of 2 for enough ticks on a loaded machine.
	for b in 512 4096; do
		for dir in "" -decrypt; do
			openssl speed -seconds "$OSSLSECONDS" -bytes "$b" $dir -evp aes-256-xts 2>/dev/null | tail -1 |
				awk -v b="$b" -v op="${dir:+decrypt}" '{ printf "openssl/%s %s %.0f\n", op ? op : "encrypt", b, $2 * 1000 / 1048576 }'
		done
	done
done >"$tmp/samples"

cpuinfo() { grep -m1 "^$1[[:space:]]*:" /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'; }
echo "machine: $(cpuinfo 'model name'), family $(cpuinfo 'cpu family') model $(cpuinfo model)" \
	"stepping $(cpuinfo stepping), $(nproc) CPUs; $(go env GOVERSION); $(openssl version | cut -d' ' -f1-2)"
echo "flags: $(cpuinfo flags | tr ' ' '\n' | grep -xE 'aes|pclmulqdq|avx2|avx512(f|bw|vl)|vaes|vpclmulqdq|hypervisor' | tr '\n' ' ')"
# The ceiling: core clock and AES issue rate, to turn MiB/s into cycles per block.
go run ./bench/aesrate || true

# Best figure per name and sector, then one line per operation and sector size;
# columns in the order the benchmarks ran: cipher.Implementations(), the one
# New selects first.
awk -v rounds="$ROUNDS" -v timing="$TIMING" '
	{
		key = $1 " " $2
		if (!(key in best) || $3 > best[key]) best[key] = $3
		split($1, b, "/")
		if (b[1] != "openssl" && !(b[1] in isimpl)) { isimpl[b[1]]; impls[++m] = b[1] }
	}
	END {
		printf "XTS-AES-256, one core, MiB/s of %s time (best of %d rounds); ratio = cryptvol / OpenSSL\n", timing, rounds
		printf "%-8s %6s %8s", "op", "sector", "openssl"
		for (j = 1; j <= m; j++) printf "  %18s", impls[j]
		printf "\n"
		split("encrypt decrypt", ops, " "); split("512 4096", sizes, " ")
		for (s = 1; s <= 2; s++) for (o = 1; o <= 2; o++) {
			ref = best["openssl/" ops[o] " " sizes[s]]
			printf "%-8s %6s %8.0f", ops[o], sizes[s], ref
			for (j = 1; j <= m; j++) {
				x = best[impls[j] "/" ops[o] " " sizes[s]]
				if (x == "") printf "  %18s", "-"
				else printf "  %8.0f (%5.2fx)", x, (ref > 0) ? x / ref : 0
			}
			printf "\n"
		}
	}' "$tmp/samples"
