#!/usr/bin/env bash
# How cryptvol's cost grows with the work (docs/PERFORMANCE.md, "How the cost
# grows"), each figure a ratio or a curve measured in one run on this machine:
#   iops    4 KiB random read and write through a mounted filesystem, fio with
#           libaio at iodepth 1 and 32, direct I/O: cryptvol open --via loop,
#           a plaintext image on a loop device and qemu-storage-daemon's FUSE
#           export of a LUKS image on a loop device (peers.sh's setups), all
#           ext4 and mounted at once; ROUNDS rounds, the order rotating each
#           round; medians, and ratios to the plain loop device. The files
#           stay in the page cache (warm): this is the CPU path, not the disk;
#   cores   `cryptvol serve` pinned (taskset) to one CPU and to two, nbdcopy
#           of SIZE out of it (read) and into it (write), with many requests
#           in flight (nbdcopy's default) and with one at a time of 256 KiB
#           and of 16 MiB: does one request's decryption use both CPUs?
#           nbdkit serving a plaintext file, pinned the same way, for context;
#   vaults  1, 4 and 16 vaults open at once (--via loop, ext4, VSIZE each):
#           the time of each open and close, and each server's VmRSS and
#           VmLck right after opening and after 32 MiB written and read back;
#   big     a sparse 1 TiB vault beside a 1 GiB one, both ext4: create,
#           open, the first write (fio, 1 MiB, fsync), close; the vault file's
#           allocated size; the server's VmRSS and VmLck after the write.
#
# Times are wall clock, so they move with the machine's other load: the script
# prints the load average before and after each part, and compares figures of
# one run only. Small Argon2id parameters throughout: unlocking at the default
# cost (1 GiB, about 2 s, on purpose) would hide everything else in open times.
#
# Usage: sudo bench/scale.sh [iops|cores|vaults|big]...   (default: all)
#   ROUNDS=5 RUNTIME=5 (s per fio run) SIZE=1G VSIZE=64M FIOFILE=256M
#   CRYPTVOL_BIN=path to measure another build.
# Needs root, go, fio, nbdkit, libnbd-bin, qemu-utils, qemu-system-common
# (qemu-storage-daemon), fuse3, e2fsprogs, util-linux (taskset). Everything
# lives in one directory under /tmp, removed with every mount, loop device and
# server on exit or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
RUNTIME=${RUNTIME:-5}
SIZE=${SIZE:-1G}
VSIZE=${VSIZE:-64M}
FIOFILE=${FIOFILE:-256M}
ARGS="$*"
want() { [ -z "$ARGS" ] && return 0; for a in $ARGS; do [ "$a" = "$1" ] && return 0; done; return 1; }

if [ "$(id -u)" != 0 ]; then
	echo "bench/scale.sh: needs root (loop devices, mounts, drop_caches)" >&2
	exit 1
fi

tmp=$(mktemp -d /tmp/cryptvol-scale.XXXXXX)
BIN=$tmp/cryptvol
export CRYPTVOL_RUN_DIR=$tmp/run
pids=()

cleanup() {
	set +e
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	for p in "$tmp"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done
	[ -x "$BIN" ] && [ -d "$CRYPTVOL_RUN_DIR" ] && "$BIN" close --all --force >/dev/null 2>&1
	findmnt -rn -o TARGET | grep "^$tmp/" | sort -r | while read -r m; do umount -l "$m"; done
	losetup -n -l -O NAME,BACK-FILE | awk -v d="$tmp/" 'index($2, d) == 1 {print $1}' |
		while read -r l; do losetup -d "$l"; done
	sleep 0.5
	findmnt -rn -o TARGET | grep "^$tmp/" | sort -r | while read -r m; do umount -l "$m"; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${CRYPTVOL_BIN:-}" ]; then
	cp "$CRYPTVOL_BIN" "$BIN"
	built="$CRYPTVOL_BIN"
else
	go build -o "$BIN" ./cmd/cryptvol
	built="this tree, $(git describe --always --dirty 2>/dev/null || echo 'not a git checkout')"
fi
echo hunter2 >"$tmp/pw"
cv() { "$BIN" "$@" --passphrase-file "$tmp/pw"; }
KDF=(--kdf-memory 8M --kdf-iterations 1)

now() { date +%s.%N; }
since() { awk -v t0="$1" -v t1="$(now)" 'BEGIN {printf "%.3f", t1 - t0}'; }
load() { echo "load $1 $(cut -d' ' -f1-3 /proc/loadavg)"; }
# status FIELD PID: a /proc/PID/status field, KiB.
status() { awk -v f="$1:" '$1 == f {print $2}' "/proc/$2/status"; }
# open_pids: the pids of the open vaults' servers, in list order.
open_pids() { "$BIN" list --json | awk -F': ' '/"pid"/ {sub(/,$/, "", $2); print $2}'; }
median() { sort -n | awk '{a[NR] = $1} END {if (NR) print a[int((NR + 1) / 2)]; else print 0}'; }

echo "machine:$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2), $(nproc) CPUs," \
	"$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); Linux $(uname -r);" \
	"$(go env GOVERSION); vault files on $(findmnt -n -o FSTYPE -T "$tmp") ($(findmnt -n -o SOURCE -T "$tmp"))"
echo "cryptvol: $built"

# ---- iops ----------------------------------------------------------------
# fio_iops FILE RW DEPTH: the IOPS of one run.
fio_iops() {
	local f
	f=$(fio --name=x --filename="$1" --rw="$2" --bs=4k --size="$FIOFILE" --direct=1 --ioengine=libaio \
		--iodepth="$3" --runtime="$RUNTIME" --time_based --output-format=terse --terse-version=3 2>/dev/null)
	case $2 in randread) echo "$f" | awk -F';' '{print $8}' ;; *) echo "$f" | awk -F';' '{print $49}' ;; esac
}
iops() {
	local img=$tmp/plain.img luks=$tmp/q.luks names=(cryptvol plain-loop qsd-luks) n i rw d name L
	mkdir -p "$tmp/m-cryptvol" "$tmp/m-plain-loop" "$tmp/m-qsd-luks" "$tmp/qsd"
	cv create "$tmp/i.cv" --size "$SIZE" --filesystem ext4 "${KDF[@]}" -q >/dev/null
	cv open "$tmp/i.cv" "$tmp/m-cryptvol" --via loop >/dev/null
	truncate -s "$SIZE" "$img"
	L=$(losetup -f --show "$img")
	mkfs.ext4 -q -F "$L"
	mount "$L" "$tmp/m-plain-loop"
	qemu-img create -q -f luks --object secret,id=s,data=pass -o key-secret=s,cipher-alg=aes-256,cipher-mode=xts,iter-time=10 "$luks" "$SIZE"
	touch "$tmp/qsd/disk"
	qemu-storage-daemon --daemonize --pidfile "$tmp/qsd.pid" --object secret,id=s,data=pass \
		--blockdev driver=file,node-name=f,filename="$luks" --blockdev driver=luks,node-name=l,file=f,key-secret=s \
		--export type=fuse,id=e,node-name=l,mountpoint="$tmp/qsd/disk",writable=on
	L=$(losetup -f --show "$tmp/qsd/disk")
	mkfs.ext4 -q -F "$L"
	mount "$L" "$tmp/m-qsd-luks"
	for name in "${names[@]}"; do # lay the files out once
		fio --name=lay --filename="$tmp/m-$name/f" --rw=write --bs=1M --size="$FIOFILE" --end_fsync=1 >/dev/null 2>&1
	done
	sync
	load iops-start
	for n in $(seq "$ROUNDS"); do
		for rw in randread randwrite; do
			for d in 1 32; do
				for i in 0 1 2; do # the order rotates every round
					name=${names[$(((i + n) % 3))]}
					echo "iops $name $rw $d $(fio_iops "$tmp/m-$name/f" "$rw" "$d")"
				done
			done
		done
	done
	load iops-end
	"$BIN" close "$tmp/m-cryptvol" >/dev/null
	for name in plain-loop qsd-luks; do
		L=$(findmnt -n -o SOURCE "$tmp/m-$name")
		umount "$tmp/m-$name"
		losetup -d "$L"
	done
	kill "$(cat "$tmp/qsd.pid")"
	rm -f "$tmp/qsd.pid" "$tmp/i.cv" "$img" "$luks"
}

# ---- cores ---------------------------------------------------------------
secs() { local t0; t0=$(now); "$@" >/dev/null 2>&1; since "$t0"; }
mbps() { awk -v s="$1" -v b="$BYTES" 'BEGIN {printf "%.0f", b / 1048576 / s}'; }
cores() {
	local v=$tmp/c.cv sock=$tmp/c.sock psock=$tmp/p.sock n cpus shape sp w r
	local shapes=("many:" "one-256K:--connections=1 --requests=1 --request-size=262144" "one-16M:--connections=1 --requests=1 --request-size=16777216")
	head -c "$SIZE" /dev/urandom >"$tmp/rnd.bin"
	BYTES=$(stat -c %s "$tmp/rnd.bin")
	cv create "$v" --size "$SIZE" --filesystem none "${KDF[@]}" -q >/dev/null
	truncate -s "$SIZE" "$tmp/plain.img"
	load cores-start
	for n in $(seq "$ROUNDS"); do
		local order=(0 0,1)
		[ $((n % 2)) = 0 ] && order=(0,1 0)
		for cpus in "${order[@]}"; do
			for shape in "${shapes[@]}"; do
				rm -f "$sock"
				taskset -c "$cpus" "$BIN" serve "$v" --listen "unix:$sock" --passphrase-file "$tmp/pw" >"$tmp/serve.out" 2>&1 &
				sp=$!
				pids+=("$sp")
				for _ in $(seq 100); do grep -q '^serving' "$tmp/serve.out" && break; sleep 0.1; done
				# shellcheck disable=SC2086 # the shape's options are words
				w=$(secs nbdcopy ${shape#*:} "$tmp/rnd.bin" "nbd+unix:///?socket=$sock")
				# shellcheck disable=SC2086
				r=$(secs nbdcopy ${shape#*:} "nbd+unix:///?socket=$sock" null:)
				kill -INT "$sp"
				wait "$sp"
				pids=()
				echo "cores cryptvol ${shape%%:*} cpus=$cpus $(mbps "$w") $(mbps "$r")"
			done
			rm -f "$psock"
			taskset -c "$cpus" nbdkit -U "$psock" -P "$tmp/p.pid" file "$tmp/plain.img"
			for _ in $(seq 50); do [ -S "$psock" ] && break; sleep 0.1; done
			w=$(secs nbdcopy "$tmp/rnd.bin" "nbd+unix:///?socket=$psock")
			r=$(secs nbdcopy "nbd+unix:///?socket=$psock" null:)
			kill "$(cat "$tmp/p.pid")"
			rm -f "$tmp/p.pid"
			echo "cores plain-nbdkit many cpus=$cpus $(mbps "$w") $(mbps "$r")"
			sleep 0.5
		done
	done
	load cores-end
	rm -f "$v" "$tmp/plain.img" "$tmp/rnd.bin"
}

# ---- vaults --------------------------------------------------------------
vaults() {
	local n i t0 p
	load vaults-start
	for n in 1 4 16; do
		for i in $(seq "$n"); do
			cv create "$tmp/v$i.cv" --size "$VSIZE" --filesystem ext4 "${KDF[@]}" -q >/dev/null
			mkdir -p "$tmp/v$i"
		done
		sync
		for i in $(seq "$n"); do
			t0=$(now)
			cv open "$tmp/v$i.cv" "$tmp/v$i" --via loop >/dev/null
			echo "vaults $n open_s $(since "$t0")"
		done
		sleep 1
		for p in $(open_pids); do echo "vaults $n idle rss_kib=$(status VmRSS "$p") lck_kib=$(status VmLck "$p")"; done
		for i in $(seq "$n"); do
			dd if=/dev/urandom of="$tmp/v$i/f" bs=1M count=32 oflag=direct conv=fsync status=none
			dd if="$tmp/v$i/f" of=/dev/null bs=1M iflag=direct status=none
		done
		for p in $(open_pids); do echo "vaults $n used rss_kib=$(status VmRSS "$p") lck_kib=$(status VmLck "$p")"; done
		for i in $(seq "$n"); do
			t0=$(now)
			"$BIN" close "$tmp/v$i" >/dev/null
			echo "vaults $n close_s $(since "$t0")"
		done
		rm -f "$tmp"/v*.cv
	done
	load vaults-end
}

# ---- big -----------------------------------------------------------------
big() {
	local size t0 p
	load big-start
	for size in 1G 1T; do
		mkdir -p "$tmp/b"
		t0=$(now)
		cv create "$tmp/b.cv" --size "$size" --filesystem ext4 "${KDF[@]}" -q >/dev/null
		echo "big $size create_s $(since "$t0")"
		echo "big $size allocated_kib $(du -k "$tmp/b.cv" | cut -f1)"
		sync
		t0=$(now)
		cv open "$tmp/b.cv" "$tmp/b" --via loop >/dev/null
		echo "big $size open_s $(since "$t0")"
		p=$(open_pids)
		echo "big $size opened rss_kib=$(status VmRSS "$p") lck_kib=$(status VmLck "$p")"
		t0=$(now)
		fio --name=w --filename="$tmp/b/f" --rw=write --bs=1M --size=64M --direct=1 --end_fsync=1 >/dev/null 2>&1
		echo "big $size first_write_64M_s $(since "$t0")"
		echo "big $size written rss_kib=$(status VmRSS "$p") lck_kib=$(status VmLck "$p") hwm_kib=$(status VmHWM "$p")"
		t0=$(now)
		"$BIN" close "$tmp/b" >/dev/null
		echo "big $size close_s $(since "$t0")"
		echo "big $size allocated_after_kib $(du -k "$tmp/b.cv" | cut -f1)"
		rm -f "$tmp/b.cv"
	done
	load big-end
}

emit() { tee -a "$tmp/samples" | sed 's/^/sample: /' >&2; }
for part in iops cores vaults big; do
	want "$part" || continue
	sync
	sleep 2
	"$part" >"$tmp/part.out"
	emit <"$tmp/part.out"
done

awk -v rounds="$ROUNDS" -v runtime="$RUNTIME" -v fiofile="$FIOFILE" -v vsize="$VSIZE" -v size="$SIZE" '
	function val(f, s) { split(f, s, "="); return s[2] + 0 }
	function sort(a, n,   i, j, t) { for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t } }
	# med(key): the median of the values collected under key
	function med(k,   i, a) { for (i = 1; i <= cnt[k]; i++) a[i] = vals[k, i]; sort(a, cnt[k]); return cnt[k] ? a[int((cnt[k] + 1) / 2)] : 0 }
	function add(k, v) { vals[k, ++cnt[k]] = v }
	$1 == "load" { loads = loads sprintf("  %-13s %s %s %s\n", $2, $3, $4, $5) }
	$1 == "iops" { add("iops " $2 " " $3 " " $4, $5) }
	$1 == "cores" { add("cw " $2 " " $3 " " $4, $5); add("cr " $2 " " $3 " " $4, $6) }
	$1 == "vaults" && ($3 == "open_s" || $3 == "close_s") { add("v " $2 " " $3, $4 * 1000) }
	$1 == "vaults" && ($3 == "idle" || $3 == "used") { add("v " $2 " " $3 " rss", val($4) / 1024); add("v " $2 " " $3 " lck", val($5) / 1024) }
	$1 == "big" { big[$2, $3] = $4 }
	END {
		if (loads != "") printf "load average (1, 5, 15 min) at the start and end of each part:\n%s\n", loads
		if (cnt["iops cryptvol randread 1"]) {
			print "4 KiB random I/O through ext4, fio libaio direct, " fiofile " file (warm), " runtime " s per run; IOPS, median of " rounds " rotating rounds"
			printf "  %-10s %5s %10s %10s %10s %9s %9s\n", "", "depth", "cryptvol", "plain-loop", "qsd-luks", "cv/plain", "cv/qsd"
			split("randread randwrite", rws, " ")
			for (i = 1; i <= 2; i++) for (d = 1; d <= 32; d += 31) {
				c = med("iops cryptvol " rws[i] " " d); p = med("iops plain-loop " rws[i] " " d); q = med("iops qsd-luks " rws[i] " " d)
				printf "  %-10s %5d %10d %10d %10d %8.2fx %8.2fx\n", rws[i], d, c, p, q, p ? c / p : 0, q ? c / q : 0
			}
			print ""
		}
		if (cnt["cw cryptvol many cpus=0"]) {
			print "NBD with the server pinned to 1 and 2 CPUs, nbdcopy of " size "; MiB/s, median of " rounds " alternating rounds"
			printf "  %-24s %8s %8s %7s %8s %8s %7s\n", "", "write 1", "write 2", "2/1", "read 1", "read 2", "2/1"
			split("cryptvol many,cryptvol one-256K,cryptvol one-16M,plain-nbdkit many", rows, ",")
			for (i = 1; i <= 4; i++) {
				w1 = med("cw " rows[i] " cpus=0"); w2 = med("cw " rows[i] " cpus=0,1"); r1 = med("cr " rows[i] " cpus=0"); r2 = med("cr " rows[i] " cpus=0,1")
				printf "  %-24s %8d %8d %6.2fx %8d %8d %6.2fx\n", rows[i], w1, w2, w1 ? w2 / w1 : 0, r1, r2, r1 ? r2 / r1 : 0
			}
			print ""
		}
		if (cnt["v 1 open_s"]) {
			print "Vaults open at once (" vsize ", ext4, --via loop): open and close ms (median over the vaults), per-server MiB (median)"
			printf "  %6s %8s %8s %9s %9s %9s %9s\n", "vaults", "open ms", "close ms", "rss idle", "lck idle", "rss used", "lck used"
			for (n = 1; n <= 16; n *= 4)
				printf "  %6d %8.0f %8.0f %9.1f %9.1f %9.1f %9.1f\n", n, med("v " n " open_s"), med("v " n " close_s"),
					med("v " n " idle rss"), med("v " n " idle lck"), med("v " n " used rss"), med("v " n " used lck")
			print "  (used: after 32 MiB written and read back through each)"
			print ""
		}
		if (("1T", "create_s") in big) {
			print "A sparse 1 TiB vault beside a 1 GiB one (ext4, --via loop); seconds, MiB"
			printf "  %-34s %10s %10s %8s\n", "", "1 GiB", "1 TiB", "1T/1G"
			split("create_s open_s first_write_64M_s close_s", ks, " ")
			for (i = 1; i <= 4; i++) printf "  %-34s %10.3f %10.3f %7.2fx\n", ks[i], big["1G", ks[i]], big["1T", ks[i]], big["1G", ks[i]] ? big["1T", ks[i]] / big["1G", ks[i]] : 0
			split("allocated_kib allocated_after_kib", ks, " ")
			for (i = 1; i <= 2; i++) printf "  %-34s %10.1f %10.1f %7.2fx\n", "vault file " ks[i] " (MiB)", big["1G", ks[i]] / 1024, big["1T", ks[i]] / 1024, big["1G", ks[i]] ? big["1T", ks[i]] / big["1G", ks[i]] : 0
			split("opened written", ks, " ")
			for (i = 1; i <= 2; i++) {
				a = val(big["1G", ks[i]]); b = val(big["1T", ks[i]])
				printf "  %-34s %10.1f %10.1f %7.2fx\n", "server VmRSS " ks[i] " (MiB)", a / 1024, b / 1024, a ? b / a : 0
			}
		}
	}' "$tmp/samples"
