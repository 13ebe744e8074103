#!/usr/bin/env bash
# VeraCrypt volumes: how long a wrong passphrase takes to be told wrong, with
# every PRF tried (a plain `open --type veracrypt`) and with --prf naming one,
# and the speed of each sector cipher VeraCrypt volumes use, measured in one
# run on this machine.
#
# For each case it prints the best wall time of ROUNDS runs (other load only
# slows a run down) and the CPU time (user + system) of that run, which the
# load on a shared machine moves much less: the derivations of one unlock run
# on every CPU at once, so wall time is about CPU time / CPUs when the machine
# is otherwise idle. Then `cryptvol benchmark`'s sector-cipher table, with each
# cipher's ratio to AES (the fast path) from the same run.
#
# Usage: bench/veracrypt.sh         ROUNDS=3 by default
# Needs: go, tar, xz; ../shared/interop/tcrypt-images.tar.xz.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
IMAGES=${IMAGES:-../shared/interop/tcrypt-images.tar.xz}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/cryptvol" ./cmd/cryptvol
tar -xJf "$IMAGES" -C "$tmp" vc_1-sha512-xts-aes
echo "not the passphrase" >"$tmp/wrong"

cases=(
	"--type veracrypt"
	"--type veracrypt --prf sha512"
	"--type veracrypt --prf argon2id"
	"--type veracrypt --prf streebog"
	"--type truecrypt"
)
declare -A best cpu
for _ in $(seq "$ROUNDS"); do
	for c in "${cases[@]}"; do
		# shellcheck disable=SC2086
		out=$( { TIMEFORMAT='%R %U %S'; time "$tmp/cryptvol" open $c --test-passphrase \
			"$tmp/vc_1-sha512-xts-aes" --passphrase-file "$tmp/wrong" >/dev/null 2>&1; } 2>&1 || true)
		read -r wall user sys <<<"$out"
		if [ -z "${best[$c]:-}" ] || awk -v a="$wall" -v b="${best[$c]}" 'BEGIN{exit !(a < b)}'; then
			best[$c]=$wall
			cpu[$c]=$(awk -v u="$user" -v s="$sys" 'BEGIN{printf "%.2f", u + s}')
		fi
	done
done
echo "wrong passphrase, $(nproc) CPUs, best of $ROUNDS:"
printf '  %-34s %8s %8s\n' "open --test-passphrase" "wall s" "CPU s"
for c in "${cases[@]}"; do
	printf '  %-34s %8s %8s\n' "$c" "${best[$c]}" "${cpu[$c]}"
done
echo
"$tmp/cryptvol" benchmark --seconds 1 --json | awk '
	/"impl"/ { gsub(/[",]/, "", $2); impl = $2 }
	/"op"/ { gsub(/[",]/, "", $2); op = $2 }
	/"cipher"/ { gsub(/[",]/, "", $2); c = $2 }
	/"mib_per_s"/ { gsub(/,/, "", $2); if (c != "") { v[c, op] = $2; if (!(c in seen)) { seen[c] = 1; order[n++] = c } } }
	/}/ { c = "" }
	END {
		printf "sector ciphers, one core, 128 KiB requests of 512-byte units (MiB/s, ratio to AES):\n"
		for (i = 0; i < n; i++) {
			k = order[i]
			printf "  %-24s encrypt %8.0f (%.3fx)  decrypt %8.0f (%.3fx)\n", k,
				v[k, "encrypt"], v[k, "encrypt"] / v[order[0], "encrypt"],
				v[k, "decrypt"], v[k, "decrypt"] / v[order[0], "decrypt"]
		}
	}'
