#!/usr/bin/env bash
# cryptvol's end-to-end throughput beside its peers, measured in one run on this
# machine, as ratios (docs/PERFORMANCE.md):
#   cipher  bench/cipher.sh: XTS-AES-256 against OpenSSL;
#   nbd     `cryptvol serve` on a unix socket, nbdcopy of SIZE random bytes into
#           it (write) and out of it to null: (read), of a cryptvol vault and of a
#           LUKS2 volume (create --type luks2), beside nbdkit's luks filter,
#           qemu-nbd on a LUKS image and nbdkit serving a plaintext file; and,
#           for context, that plaintext file written with nbdcopy --flush;
#   fs      a vault made by `cryptvol create` and mounted by `cryptvol open
#           --via loop` (FUSE file + loop device, ext4), fio sequential 1 MiB
#           direct write (end_fsync) and read, beside a plaintext file on a loop
#           device and qemu-storage-daemon's FUSE export of a LUKS image on loop;
#   fsread  (only when named) the loop path's reads alone, beside a plain
#           loop-mounted file: READROUNDS (12) alternating cold reads (fio as in
#           fs, after drop_caches) and as many warm ones (the files already in
#           the page cache: the CPU path without the disk), medians. With
#           CRYPTVOL_BIN_B=path, a second cryptvol binary takes turns too, to
#           compare two builds in one run;
#   tls     `cryptvol serve` on loopback TCP with TLS (client certificates
#           verified, as by default) against the same server in plaintext
#           (--insecure-no-tls): TLSROUNDS (6) alternating rounds of nbdcopy of
#           SIZE random bytes in and out, each with a fresh server; medians
#           and the ratio TLS / plaintext;
#   mem     the memory of cryptvol's servers under sustained load: one `cryptvol
#           serve` moving SIZE in and out MEMPASSES times, one vault opened via
#           loop taking MEMPASSES fio write and read passes; VmRSS after every
#           pass, VmHWM at the end. The nbd and fs runs also report VmRSS
#           before, during and after their load.
#
# The peers are measured by ../shared/bench/peers.sh and cryptvol by the same
# method (its nbdcopy and fio command lines, copied here). The machine may be
# shared and noisy: the script alternates peers and cryptvol ROUNDS times and
# keeps each figure's best, the same rule for both sides; other load only ever
# slows a measurement down. Compare ratios from one run, not MiB/s across runs.
#
# Usage: sudo bench/run.sh [cipher|nbd|fs|tls|mem|fsread]...
#   (default: all of them but fsread)
#   ROUNDS=3 SIZE=1G FIOSZ=512M MEMPASSES=10 PEERTRIES=8 by default; PEERS=path to
#   override peers.sh; CRYPTVOL_BIN=path measures that cryptvol binary (say,
#   one built from an older commit) instead of building this tree.
# Needs: root, go, and the peers' packages: nbdkit fio qemu-utils
# qemu-system-common libnbd-bin fuse3 e2fsprogs openssl.
# Everything it makes lives in one directory under /tmp, removed on exit, with
# every mount, loop device and server in it, also after a failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=$(realpath "${PEERS:-../shared/bench/peers.sh}")
ROUNDS=${ROUNDS:-3}
SIZE=${SIZE:-1G}
FIOSZ=${FIOSZ:-512M}
MEMPASSES=${MEMPASSES:-10}
READROUNDS=${READROUNDS:-12}
TLSROUNDS=${TLSROUNDS:-6}
SETTLE=${SETTLE:-3}
ARGS="$*"
want() { [ -z "$ARGS" ] && [ "$1" != fsread ] && return 0; for a in $ARGS; do [ "$a" = "$1" ] && return 0; done; return 1; }

if [ "$(id -u)" != 0 ]; then
	echo "bench/run.sh: needs root (loop devices, mounts, drop_caches)" >&2
	exit 1
fi

tmp=$(mktemp -d /tmp/cryptvol-bench.XXXXXX)
BIN=$tmp/cryptvol
# cryptvol's registry and FUSE mounts go here, not in /run/cryptvol.
export CRYPTVOL_RUN_DIR=$tmp/run
serve_pid=

cleanup() {
	set +e
	[ -n "$serve_pid" ] && kill -INT "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
	[ -x "$BIN" ] && [ -d "$CRYPTVOL_RUN_DIR" ] && "$BIN" close --all --force >/dev/null 2>&1
	# What peers.sh left if it was interrupted: servers from its pid files,
	# then mounts and loop devices of files in our directory.
	for p in "$tmp"/peers/*.pid "$tmp"/flushed.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done
	findmnt -rn -o TARGET | grep "^$tmp/" | sort -r | while read -r m; do umount -l "$m"; done
	losetup -n -l -O NAME,BACK-FILE | awk -v d="$tmp/" 'index($2, d) == 1 {print $1}' |
		while read -r l; do losetup -d "$l"; done
	sleep 0.5
	findmnt -rn -o TARGET | grep "^$tmp/" | sort -r | while read -r m; do umount -l "$m"; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if want cipher; then
	ROUNDS=$ROUNDS bench/cipher.sh
	echo
fi
want nbd || want fs || want tls || want mem || want fsread || exit 0

if [ -n "${CRYPTVOL_BIN:-}" ]; then
	cp "$CRYPTVOL_BIN" "$BIN"
	built="$CRYPTVOL_BIN"
else
	go build -o "$BIN" ./cmd/cryptvol
	built="this tree, $(git describe --always --dirty 2>/dev/null || echo 'not a git checkout')"
fi
echo hunter2 >"$tmp/pw"
cv() { "$BIN" "$@" --passphrase-file "$tmp/pw"; }
# Small Argon2id parameters: unlocking is not what is measured.
KDF=(--kdf-memory 8M --kdf-iterations 1)

# The peers' timing and rates (peers.sh).
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); echo "$t0 $t1" | awk '{printf "%.3f", $2-$1}'; }
mbps() { awk -v s="$1" -v b="$2" 'BEGIN{printf "%.0f", b/1048576/s}'; }

# Memory of a server process: samples "VmRSS VmHWM" (KiB) every 0.1 s into a
# file while the process lives, from "mem_start pid file" until "mem_stop".
mem_now() { awk '/^VmRSS/ {r = $2} /^VmHWM/ {h = $2} END {print r, h}' "/proc/$1/status"; }
mem_start() { (while mem_now "$1" >>"$2" 2>/dev/null; do sleep 0.1; done) & sampler=$!; }
mem_stop() { kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true; }
# mem_report NAME BEFORE AFTER SAMPLES: one line, in MiB.
mem_report() {
	awk -v name="$1" -v before="$2" -v after="$3" '
		{ if ($1 > peak) peak = $1; hwm = $2 }
		END {
			split(before, b, " "); split(after, a, " ")
			if (a[2] > hwm) hwm = a[2]
			printf "mem %s rss_before_MiB=%.1f rss_max_during_MiB=%.1f rss_after_MiB=%.1f hwm_MiB=%.1f\n",
				name, b[1] / 1024, peak / 1024, a[1] / 1024, hwm / 1024 }' "$4"
}

# The peers' fio command lines (peers.sh fio_pair); KiB/s.
fio_write() { fio --name=w --filename="$1" --rw=write --bs=1M --size="$FIOSZ" --direct=1 --end_fsync=1 --output-format=terse --terse-version=3 2>/dev/null | awk -F';' '{print $48}'; }
fio_read() { fio --name=r --filename="$1" --rw=read --bs=1M --size="$FIOSZ" --direct=1 --output-format=terse --terse-version=3 2>/dev/null | awk -F';' '{print $7}'; }

# serve_start VAULT SOCKET [ARGS...]: start `cryptvol serve` on SOCKET (a
# unix socket path, or tcp:HOST:PORT) and wait until it listens; serve_uri is
# then the URI it prints.
serve_start() {
	local v=$1 listen=$2
	shift 2
	case $listen in tcp:*) ;; *) listen=unix:$listen ;; esac
	"$BIN" serve "$v" --listen "$listen" "$@" --passphrase-file "$tmp/pw" >"$tmp/serve.out" 2>&1 &
	serve_pid=$!
	for _ in $(seq 100); do
		serve_uri=$(sed -n 's/^serving .* on //p' "$tmp/serve.out")
		[ -n "$serve_uri" ] && return
		sleep 0.1
	done
	cat "$tmp/serve.out" >&2
	return 1
}
serve_stop() {
	kill -INT "$serve_pid"
	wait "$serve_pid" || { cat "$tmp/serve.out" >&2; return 1; }
	serve_pid=
}
# open_pid: the pid of the background server of the one open vault.
open_pid() { "$BIN" list --json | awk -F': ' '/"pid"/ {sub(/,$/, "", $2); print $2}'; }

nbd_ours() { # round
	local v=$tmp/n.cv sock=$tmp/n.sock w r before after
	rm -f "$v"
	cv create "$v" --size "$SIZE" --filesystem none "${KDF[@]}" -q >/dev/null
	serve_start "$v" "$sock"
	before=$(mem_now "$serve_pid")
	mem_start "$serve_pid" "$tmp/mem.nbd"
	local uri="nbd+unix:///?socket=$sock"
	w=$(secs nbdcopy "$tmp/rnd.bin" "$uri")
	r=$(secs nbdcopy "$uri" null:)
	sleep 1
	mem_stop
	after=$(mem_now "$serve_pid")
	serve_stop
	echo "nbd cryptvol-serve write_MiBps=$(mbps "$w" "$BYTES") read_MiBps=$(mbps "$r" "$BYTES")"
	mem_report "serve-round$1" "$before" "$after" "$tmp/mem.nbd"
	rm -f "$v" "$tmp/mem.nbd"
	# The same through a LUKS2 volume (4096-byte sectors, IVs in 512-byte units).
	v=$tmp/n.luks
	cv create "$v" --type luks2 --size "$SIZE" --filesystem none "${KDF[@]}" -q >/dev/null
	serve_start "$v" "$sock"
	w=$(secs nbdcopy "$tmp/rnd.bin" "$uri")
	r=$(secs nbdcopy "$uri" null:)
	serve_stop
	echo "nbd cryptvol-serve-luks2 write_MiBps=$(mbps "$w" "$BYTES") read_MiBps=$(mbps "$r" "$BYTES")"
	rm -f "$v"
}

fs_ours() { # round
	local v=$tmp/f.cv mnt=$tmp/fs w r pid before after
	rm -f "$v"
	mkdir -p "$mnt"
	cv create "$v" --size "$SIZE" --filesystem ext4 "${KDF[@]}" -q >/dev/null
	cv open "$v" "$mnt" --via loop >/dev/null
	pid=$(open_pid)
	before=$(mem_now "$pid")
	mem_start "$pid" "$tmp/mem.fs"
	w=$(fio_write "$mnt/f")
	sync
	echo 3 >/proc/sys/vm/drop_caches
	r=$(fio_read "$mnt/f")
	sleep 1
	mem_stop
	after=$(mem_now "$pid")
	"$BIN" close "$mnt" >/dev/null
	echo "fs cryptvol-loop write_MiBps=$((w / 1024)) read_MiBps=$((r / 1024))"
	mem_report "open-loop-round$1" "$before" "$after" "$tmp/mem.fs"
	rm -f "$v" "$tmp/mem.fs"
}

# tls_ours: the tls part (see the top). The certificates are made with
# openssl as docs/GUIDE.md shows; the client's directory is the server's,
# which holds the client's certificate too.
tls_ours() {
	local v=$tmp/t.cv pki=$tmp/pki n mode w r
	mkdir -p "$pki"
	local ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2)
	openssl req -x509 "${ec[@]}" -subj /CN=bench-ca -keyout "$pki/ca-key.pem" -out "$pki/ca-cert.pem" 2>/dev/null
	openssl req -x509 "${ec[@]}" -subj /CN=localhost -addext subjectAltName=DNS:localhost -addext basicConstraints=CA:FALSE \
		-addext extendedKeyUsage=serverAuth -CA "$pki/ca-cert.pem" -CAkey "$pki/ca-key.pem" \
		-keyout "$pki/server-key.pem" -out "$pki/server-cert.pem" 2>/dev/null
	openssl req -x509 "${ec[@]}" -subj /CN=bench -addext basicConstraints=CA:FALSE -addext extendedKeyUsage=clientAuth \
		-CA "$pki/ca-cert.pem" -CAkey "$pki/ca-key.pem" -keyout "$pki/client-key.pem" -out "$pki/client-cert.pem" 2>/dev/null
	cv create "$v" --size "$SIZE" --filesystem none "${KDF[@]}" -q >/dev/null
	for n in $(seq "$TLSROUNDS"); do
		# Alternate which goes first, so that neither always follows the other.
		local order=(plain tls)
		[ $((n % 2)) = 0 ] && order=(tls plain)
		for mode in "${order[@]}"; do
			settle
			if [ "$mode" = tls ]; then
				serve_start "$v" tcp:localhost:0 --tls-certificates "$pki"
			else
				serve_start "$v" tcp:localhost:0 --insecure-no-tls
			fi
			w=$(secs nbdcopy "$tmp/rnd.bin" "$serve_uri")
			r=$(secs nbdcopy "$serve_uri" null:)
			serve_stop
			echo "tls $mode $(mbps "$w" "$BYTES") $(mbps "$r" "$BYTES")"
		done
	done
	rm -f "$v"
}

# nbd_flushed: nbdkit's plaintext file again, written with nbdcopy --flush,
# which makes the data durable before nbdcopy exits, as cryptvol serve does
# when a client that wrote disconnects. Not a peers.sh figure: context for
# the write ratio, which compares against nbdkit leaving the data dirty in the
# page cache.
nbd_flushed() {
	local img=$tmp/flushed.img sock=$tmp/flushed.sock w
	rm -f "$img" "$sock"
	truncate -s "$SIZE" "$img"
	nbdkit -U "$sock" -P "$tmp/flushed.pid" file "$img"
	sleep 0.5
	w=$(secs nbdcopy --flush "$tmp/rnd.bin" "nbd+unix:///?socket=$sock")
	kill "$(cat "$tmp/flushed.pid")"
	rm -f "$img" "$tmp/flushed.pid"
	echo "nbdflush plain-nbdkit+flush write_MiBps=$(mbps "$w" "$BYTES")"
}

# mem_ours: both servers under sustained load, VmRSS and VmHWM (KiB) after
# every pass, pass 0 being before any.
mem_ours() {
	local v=$tmp/m.cv sock=$tmp/m.sock mnt=$tmp/fs pid i
	rm -f "$v"
	cv create "$v" --size "$SIZE" --filesystem none "${KDF[@]}" -q >/dev/null
	serve_start "$v" "$sock"
	echo "memsus serve 0 $(mem_now "$serve_pid")"
	for i in $(seq "$MEMPASSES"); do
		nbdcopy "$tmp/rnd.bin" "nbd+unix:///?socket=$sock"
		nbdcopy "nbd+unix:///?socket=$sock" null:
		echo "memsus serve $i $(mem_now "$serve_pid")"
	done
	serve_stop
	rm -f "$v"
	mkdir -p "$mnt"
	cv create "$v" --size "$SIZE" --filesystem ext4 "${KDF[@]}" -q >/dev/null
	cv open "$v" "$mnt" --via loop >/dev/null
	pid=$(open_pid)
	echo "memsus open-loop 0 $(mem_now "$pid")"
	for i in $(seq "$MEMPASSES"); do
		fio_write "$mnt/f" >/dev/null
		fio_read "$mnt/f" >/dev/null
		echo "memsus open-loop $i $(mem_now "$pid")"
	done
	"$BIN" close "$mnt" >/dev/null
	rm -f "$v"
}

# fsread_ours: the fsread part (see the top). Each side gets a mounted
# filesystem with one FIOSZ file written by fio; then the reads take turns.
fsread_ours() {
	local names=(plain cryptvol) bins=("" "$BIN") name i n mnt
	[ -n "${CRYPTVOL_BIN_B:-}" ] && cp "$CRYPTVOL_BIN_B" "$tmp/cryptvol-b" && names+=(cryptvol-b) bins+=("$tmp/cryptvol-b")
	for i in "${!names[@]}"; do
		name=${names[$i]} mnt=$tmp/fr-${names[$i]}
		mkdir -p "$mnt"
		if [ "$name" = plain ]; then
			truncate -s "$SIZE" "$tmp/fr-plain.img"
			mkfs.ext4 -q "$tmp/fr-plain.img"
			mount -o loop "$tmp/fr-plain.img" "$mnt"
		else
			"${bins[$i]}" create "$tmp/fr-$name.cv" --size "$SIZE" --filesystem ext4 "${KDF[@]}" -q --passphrase-file "$tmp/pw" >/dev/null
			"${bins[$i]}" open "$tmp/fr-$name.cv" "$mnt" --via loop --passphrase-file "$tmp/pw" >/dev/null
		fi
		fio_write "$mnt/f" >/dev/null
	done
	settle
	# The order turns by one each round, so that no side always follows
	# the same other one (the read right after the plain loop device's
	# measured slower than the one after that, whichever build it was).
	local k
	for n in $(seq "$READROUNDS"); do
		for k in "${!names[@]}"; do
			name=${names[$(((k + n) % ${#names[@]}))]}
			sync
			echo 3 >/proc/sys/vm/drop_caches
			sleep 1
			echo "fsread $name cold $(($(fio_read "$tmp/fr-$name/f") / 1024))"
		done
	done
	for name in "${names[@]}"; do cat "$tmp/fr-$name/f" >/dev/null; done
	for n in $(seq "$READROUNDS"); do
		for name in "${names[@]}"; do
			echo "fsread $name warm $(($(fio_read "$tmp/fr-$name/f") / 1024))"
		done
	done
	for i in "${!names[@]}"; do
		if [ "${names[$i]}" = plain ]; then umount "$tmp/fr-plain"; else "${bins[$i]}" close "$tmp/fr-${names[$i]}" >/dev/null; fi
	done
	rm -f "$tmp"/fr-*.cv "$tmp/fr-plain.img"
}

echo "machine:$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2), $(nproc) CPUs," \
	"$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); Linux $(uname -r);" \
	"$(go env GOVERSION); vault files on $(findmnt -n -o FSTYPE -T "$tmp") ($(findmnt -n -o SOURCE -T "$tmp"))"
echo "cryptvol: $built"
echo "peers: $(nbdkit --version 2>/dev/null | head -1), $(qemu-nbd --version | head -1 | awk '{print $1, $2}'), $(fio --version), $(qemu-storage-daemon --version | head -1 | awk '{print $1, $3}')"

head -c "$SIZE" /dev/urandom >"$tmp/rnd.bin"
BYTES=$(stat -c %s "$tmp/rnd.bin")
# Samples: "nbd|fs NAME write_MiBps=W read_MiBps=R" per round, and mem lines,
# collected in a file and shown on stderr as they come. The functions run in
# this shell (not in a pipeline) so that cleanup knows the server they start.
emit() { tee -a "$tmp/samples" | sed 's/^/sample: /' >&2; }
# Before each side's turn: the other side's deleted files are discarded and
# its dirty pages written, so that neither measures the other's cleanup.
settle() { sync; sleep "$SETTLE"; }
# peers.sh does not check its steps: when one fails (qemu-img create of the
# LUKS image now and then fails with "Unable to get accurate CPU usage": qemu
# times 2^15 PBKDF2 iterations with the thread's CPU clock, which on a fast,
# quiet machine can read no time at all), it still prints a figure, timed on
# nothing. Such a run is retried, up to PEERTRIES times, and its figures are
# never used.
PEERTRIES=${PEERTRIES:-8}
peers() { # nbd|fs
	local try
	for try in $(seq "$PEERTRIES"); do
		W=$tmp/peers SIZE=$SIZE FIOSZ=$FIOSZ bash "$PEERS" "$1" >"$tmp/peers.out" 2>"$tmp/peers.err" || true
		if ! grep -qiE 'error|fail|could not|unable|no such file|usage' "$tmp/peers.err" "$tmp/peers.out"; then
			emit <"$tmp/peers.out"
			return
		fi
		echo "bench/run.sh: peers.sh $1 went wrong (try $try of $PEERTRIES): $(grep -m1 -ihE 'error|fail|could not|unable|no such file|usage' "$tmp/peers.err" "$tmp/peers.out")" >&2
	done
	echo "bench/run.sh: no peer figures for $1 in this round" >&2
}
# ours KIND ROUND: cryptvol's turn. It goes first in even rounds, so that
# neither side always follows the other.
ours() {
	settle
	"$1_ours" "$2" >"$tmp/round.out"
	emit <"$tmp/round.out"
}
for round in $(seq "$ROUNDS"); do
	for kind in nbd fs; do
		want "$kind" || continue
		if [ $((round % 2)) = 0 ]; then
			ours "$kind" "$round"
			settle
			peers "$kind"
		else
			settle
			peers "$kind"
			ours "$kind" "$round"
		fi
		if [ "$kind" = nbd ]; then
			settle
			nbd_flushed | emit
		fi
	done
done
if want tls; then
	tls_ours | emit
fi
if want mem; then
	settle
	mem_ours >"$tmp/round.out"
	emit <"$tmp/round.out"
fi
if want fsread; then
	settle
	fsread_ours | emit
fi

# Best figure per name and direction; each peer's row carries cryptvol's ratio
# to it and the issue's target for that ratio.
awk -v rounds="$ROUNDS" -v size="$SIZE" -v fiosz="$FIOSZ" '
	function val(f, s) { split(f, s, "="); return s[2] + 0 }
	$1 == "nbd" || $1 == "fs" {
		k = $1 " " $2
		if (!(k in seen)) { seen[k]; order[$1, ++n[$1]] = $2 }
		w = val($3); r = val($4)
		nv[k]++; vw[k, nv[k]] = w; vr[k, nv[k]] = r
		if (w > bw[k]) bw[k] = w
		if (r > br[k]) br[k] = r
	}
	$1 == "nbdflush" { w = val($3); if (w > flushed) flushed = w }
	$1 == "mem" { mem[++nm] = $0 }
	$1 == "fsread" {
		if (!($2 in frseen)) { frseen[$2]; frorder[++nfr] = $2 }
		frv[$2, $3, ++frn[$2, $3]] = $4 + 0
	}
	$1 == "tls" {
		tlsw[$2, ++tlsn[$2]] = $3 + 0; tlsr[$2, tlsn[$2]] = $4 + 0
	}
	$1 == "memsus" {
		if (!($2 in sus)) susorder[++ns] = $2
		sus[$2] = sus[$2] sprintf(" %6.1f", $4 / 1024); hwm[$2] = $5
	}
	function table(kind, ours, title,   i, name, k, o, rw, rr, t, ok, mw, mr, pw, pr) {
		if (!(kind SUBSEP 1 in order)) return
		print title ", MiB/s, best of " rounds " rounds; ratio = cryptvol / peer"
		printf "  %-20s %7s %7s %10s %10s %8s\n", "", "write", "read", "write x", "read x", "target"
		o = kind " " ours
		printf "  %-20s %7d %7d\n", ours, bw[o], br[o]
		for (i = 1; i <= n[kind]; i++) {
			name = order[kind, i]; k = kind " " name
			if (name == ours) continue
			if (name ~ /^cryptvol-/) { # another format through cryptvol: context, no target
				printf "  %-20s %7d %7d %9.2fx %9.2fx  (cryptvol, another format)\n", name, bw[k], br[k], bw[o] / bw[k], br[o] / br[k]
				continue
			}
			t = (name ~ /^plain/) ? 0.7 : 2
			if (!bw[k] || !br[k] || !bw[o] || !br[o]) {
				printf "  %-20s %7d %7d %10s %10s  >=%.1fx no figure\n", name, bw[k], br[k], "-", "-", t
				continue
			}
			rw = bw[o] / bw[k]; rr = br[o] / br[k]
			ok = (rw >= t && rr >= t) ? "met" : "MISSED"
			printf "  %-20s %7d %7d %9.2fx %9.2fx  >=%.1fx %s\n", name, bw[k], br[k], rw, rr, t, ok
		}
		if (kind == "nbd" && flushed)
			printf "  %-20s %7d %7s %9.2fx %10s  (not a target: nbdcopy --flush, durable as cryptvol serve makes it)\n",
				"plain-nbdkit+flush", flushed, "-", bw[o] / flushed, "-"
		# The same as medians of the rounds, which one lucky or unlucky
		# round does not move.
		print "  medians of the rounds (n = rounds with a figure):"
		mw = med(vw, o, nv[o]); mr = med(vr, o, nv[o])
		printf "  %-20s %7d %7d %10s %10s  n=%d\n", ours, mw, mr, "", "", nv[o]
		for (i = 1; i <= n[kind]; i++) {
			name = order[kind, i]; k = kind " " name
			if (name == ours || !nv[k]) continue
			pw = med(vw, k, nv[k]); pr = med(vr, k, nv[k])
			printf "  %-20s %7d %7d %9.2fx %9.2fx  n=%d\n", name, pw, pr, pw ? mw / pw : 0, pr ? mr / pr : 0, nv[k]
		}
		print ""
	}
	# median of the fsread samples of name and kind (sorted in place)
	function median(name, kind,   n, i, j, t) {
		n = frn[name, kind]
		for (i = 2; i <= n; i++)
			for (j = i; j > 1 && frv[name, kind, j - 1] > frv[name, kind, j]; j--) {
				t = frv[name, kind, j]; frv[name, kind, j] = frv[name, kind, j - 1]; frv[name, kind, j - 1] = t
			}
		return n ? frv[name, kind, int((n + 1) / 2)] : 0
	}
	# median of the n values a[name, 1..n] (sorted in place)
	function med(a, name, cnt,   i, j, t) {
		for (i = 2; i <= cnt; i++)
			for (j = i; j > 1 && a[name, j - 1] > a[name, j]; j--) {
				t = a[name, j]; a[name, j] = a[name, j - 1]; a[name, j - 1] = t
			}
		return cnt ? a[name, int((cnt + 1) / 2)] : 0
	}
	END {
		print ""
		if (tlsn["tls"] && tlsn["plain"]) {
			tn = tlsn["tls"]
			pw = med(tlsw, "plain", tlsn["plain"]); pr = med(tlsr, "plain", tlsn["plain"])
			tw = med(tlsw, "tls", tn); tr = med(tlsr, "tls", tn)
			print "cryptvol serve on loopback TCP, TLS against plaintext: nbdcopy of " size " in (write) and out (read),"
			print "  MiB/s, median of " tn " alternating rounds (min-max); ratio = TLS / plaintext"
			printf "  %-10s %7s %13s %7s %13s\n", "", "write", "", "read", ""
			printf "  %-10s %7d %6d-%-6d %7d %6d-%-6d\n", "plaintext", pw, tlsw["plain", 1], tlsw["plain", tlsn["plain"]], pr, tlsr["plain", 1], tlsr["plain", tlsn["plain"]]
			printf "  %-10s %7d %6d-%-6d %7d %6d-%-6d\n", "TLS", tw, tlsw["tls", 1], tlsw["tls", tn], tr, tlsr["tls", 1], tlsr["tls", tn]
			printf "  %-10s %6.2fx %13s %6.2fx\n", "ratio", tw / pw, "", tr / pr
			print ""
		}
		table("nbd", "cryptvol-serve", "NBD over a unix socket: nbdcopy of " size " random bytes in (write) and out to null: (read)")
		table("fs", "cryptvol-loop", "Mounted ext4 on a loop device: fio " fiosz " sequential 1 MiB direct write (end_fsync) and read")
		if (nm) {
			print "Server memory in the runs above, MiB: VmRSS before the load, its peak during (sampled every 0.1 s), after; VmHWM"
			for (i = 1; i <= nm; i++) {
				split(mem[i], f, " ")
				printf "  %-20s before %6.1f  during <= %6.1f  after %6.1f  hwm %6.1f\n",
					f[2], val(f[3]), val(f[4]), val(f[5]), val(f[6])
			}
			print ""
		}
		if (nfr) {
			print "Loop path reads alone: fio " fiosz " sequential 1 MiB direct read, MiB/s, median of " frn[frorder[1], "cold"] " alternating rounds; ratio = x / plain"
			print "  (cold: after drop_caches; warm: the file already in the page cache, the CPU path without the disk)"
			printf "  %-12s %7s %7s %7s %7s %7s %7s\n", "", "cold", "min", "max", "ratio", "warm", "ratio"
			pc = median("plain", "cold"); pw = median("plain", "warm")
			for (i = 1; i <= nfr; i++) {
				name = frorder[i]; c = median(name, "cold"); w = median(name, "warm")
				printf "  %-12s %7d %7d %7d %6.2fx %7d %6.2fx\n", name, c, frv[name, "cold", 1], frv[name, "cold", frn[name, "cold"]], c / pc, w, w / pw
			}
			print ""
		}
		if (ns) {
			print "Server memory under sustained load, MiB: VmRSS before pass 1 and after each pass; VmHWM at the end"
			print "  (a pass: serve, nbdcopy of " size " in and out; open-loop, fio " fiosz " write and read)"
			for (i = 1; i <= ns; i++)
				printf "  %-12s%s   hwm %6.1f\n", susorder[i], sus[susorder[i]], hwm[susorder[i]] / 1024
		}
	}' "$tmp/samples"
