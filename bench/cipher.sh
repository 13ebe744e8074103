#!/usr/bin/env bash
# Cipher throughput of cryptvol beside OpenSSL's aes-256-xts, measured in one run
# on this machine, as ratios. For 512-byte and 4 KiB sectors, encrypt and decrypt,
# it prints MiB/s of OpenSSL (from ../shared/bench/peers.sh cipher), of every
# cryptvol implementation this CPU runs, and each one's ratio to OpenSSL.
#
# The machine may be shared and noisy: other load only ever slows a measurement
# down, so the script alternates cryptvol and OpenSSL ROUNDS times and keeps each
# one's best figure, the same rule for both. Compare ratios from one run, not
# absolute figures across runs.
#
# Usage: bench/cipher.sh            ROUNDS=3 BENCHTIME=1s by default
# Needs: go, openssl, awk; ../shared/bench/peers.sh (PEERS=path to override).
# Also prints the core clock and AES instruction rate (bench/aesrate).
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-../shared/bench/peers.sh}
ROUNDS=${ROUNDS:-3}
BENCHTIME=${BENCHTIME:-1s}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/cipher.test" ./cipher

# Collect "name sector MiB/s" lines, name being an implementation/operation or
# openssl/operation, one set per round.
for _ in $(seq "$ROUNDS"); do
	# BenchmarkXTS/<impl>/<op>/<size>-N  iters  ns/op  MB/s (10^6 bytes)
	"$tmp/cipher.test" -test.run '^$' -test.bench '^BenchmarkXTS$/.*/.*/(512|4096)$' \
		-test.benchtime "$BENCHTIME" |
		awk '$1 ~ /^BenchmarkXTS\// && $(NF) == "MB/s" {
			split($1, p, "/"); sub(/-[0-9]+$/, "", p[4])
			printf "%s/%s %s %.0f\n", p[2], p[3], p[4], $(NF-1) * 1e6 / 1048576 }'
	# cipher openssl-aes-256-xts -encrypt sector=512 MiBps=4841
	bash "$PEERS" cipher |
		awk '$1 == "cipher" {
			op = ($2 ~ /-decrypt$/) ? "decrypt" : "encrypt"
			for (i = 1; i <= NF; i++) {
				if ($i ~ /^sector=/) { split($i, s, "="); sector = s[2] }
				if ($i ~ /^MiBps=/) { split($i, m, "="); mibps = m[2] }
			}
			printf "openssl/%s %s %s\n", op, sector, mibps }'
done >"$tmp/samples"

echo "machine:$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2), $(nproc) CPUs;" \
	"$(go env GOVERSION); $(openssl version | cut -d' ' -f1-2)"
# The ceiling: core clock and AES issue rate, to turn MiB/s into cycles per block.
go run ./bench/aesrate || true

# Best figure per name and sector, then one line per operation and sector size;
# columns in the order the benchmarks ran (fastest implementation first).
awk -v rounds="$ROUNDS" '
	{
		key = $1 " " $2
		if (!(key in best) || $3 > best[key]) best[key] = $3
		split($1, b, "/")
		if (b[1] != "openssl" && !(b[1] in isimpl)) { isimpl[b[1]]; impls[++m] = b[1] }
	}
	END {
		printf "XTS-AES-256, one core, MiB/s (best of %d rounds); ratio = cryptvol / OpenSSL\n", rounds
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
