#!/usr/bin/env bash
# The fuse path, what an ordinary user gets from `cryptvol open` (FUSE file +
# fuse2fs), beside root's loop path (FUSE file + loop device + the kernel's
# ext4), measured in one run on this machine (docs/PERFORMANCE.md, "Without
# root"). For each path, a vault made by `cryptvol create` (ext4) and opened
# by `cryptvol open`, then fio on a file in it:
#   seqwrite  FIOSZ sequential 1 MiB direct writes, end_fsync
#   seqread   the same file read back in 1 MiB direct reads, after drop_caches
#   randread  4 KiB direct random reads of it for RANDTIME seconds, after
#             drop_caches (one job, queue depth 1: the latency of one read)
# The user is made for the run (useradd) and removed after; the fuse path runs
# as that user, with the RLIMIT_MEMLOCK root has here. Besides MiB/s (IOPS for
# randread), it records the CPU seconds the server, the filesystem driver
# (fuse2fs) and fio spent in each phase, from /proc: where the time goes.
#
# The machine may be shared and noisy: the paths take turns ROUNDS times (the
# first path alternating), and the table shows each figure's median.
#
# Usage: sudo bench/user.sh
#   ROUNDS=5 SIZE=1G FIOSZ=512M RANDTIME=10 by default; CRYPTVOL_BIN=path
#   measures that binary instead of building this tree. PATHS="loop fuse
#   plain" by default: plain is fuse2fs on a plaintext image file, without
#   cryptvol, the driver's own ceiling.
# Needs: root, go, fio, fuse3, fuse2fs, e2fsprogs. If /dev/fuse is not open
# to other users (Debian makes it 0666), it is for the run, and set back.
# Everything lives in one directory under /tmp, removed on exit with every
# mount and server in it, also after a failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
SIZE=${SIZE:-1G}
FIOSZ=${FIOSZ:-512M}
RANDTIME=${RANDTIME:-10}
SETTLE=${SETTLE:-2}
PATHS=${PATHS:-loop fuse plain}

if [ "$(id -u)" != 0 ]; then
	echo "bench/user.sh: needs root (a user for the fuse path, the loop path, drop_caches)" >&2
	exit 1
fi

tmp=$(mktemp -d /tmp/cryptvol-userbench.XXXXXX)
chmod 755 "$tmp"
BIN=$tmp/cryptvol
USERNAME=cvbench$$
fuse_mode=
made_user=

as_user() {
	setpriv --reuid="$USERNAME" --regid="$USERNAME" --clear-groups \
		env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$tmp/home" XDG_RUNTIME_DIR="$tmp/xdg" "$@"
}

cleanup() {
	set +e
	[ -x "$BIN" ] && CRYPTVOL_RUN_DIR=$tmp/run "$BIN" close --all --force >/dev/null 2>&1
	[ -n "$made_user" ] && [ -x "$BIN" ] && as_user "$BIN" close --all --force >/dev/null 2>&1
	sleep 0.5
	findmnt -rn -o TARGET | grep "^$tmp/" | sort -r | while read -r m; do umount -l "$m"; done
	[ -n "$fuse_mode" ] && chmod "$fuse_mode" /dev/fuse
	if [ -n "$made_user" ]; then
		pkill -KILL -u "$USERNAME" 2>/dev/null
		sleep 0.2
		userdel "$USERNAME" 2>/dev/null
	fi
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
chmod 755 "$BIN"
useradd --no-create-home --shell /usr/sbin/nologin "$USERNAME"
made_user=1
mkdir -p "$tmp/home" "$tmp/xdg" "$tmp/u"
chown "$USERNAME:" "$tmp/home" "$tmp/xdg" "$tmp/u"
chmod 700 "$tmp/xdg"
echo hunter2 >"$tmp/pw"
chmod 644 "$tmp/pw"
if ! as_user test -r /dev/fuse -a -w /dev/fuse; then
	fuse_mode=$(stat -c %a /dev/fuse)
	chmod 666 /dev/fuse
fi
KDF=(--kdf-memory 8M --kdf-iterations 1 --passphrase-file "$tmp/pw" -q)

# cpu PID: user+system CPU ticks of a process, 0 if it is gone.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
TICK=$(getconf CLK_TCK)
# fio_run NAME FILE ARGS...: one fio job; prints "MiB/s IOPS cpu_s" (fio's
# own user+system time).
fio_run() {
	local f=$2
	shift 2
	fio --name=j --filename="$f" --output-format=terse --terse-version=3 "$@" 2>/dev/null |
		awk -F';' '{bw = $7 + $48; iops = $8 + $49; rt = ($9 > $50 ? $9 : $50) / 1000;
			printf "%.1f %.0f %.3f\n", bw / 1024, iops, (($88 + $89) / 100) * rt}'
}

# phase PATH ROUND NAME SRVPID DRVPID RUN...: run a phase as RUN... says,
# and print a sample line with its figures and the CPU seconds of the server
# and the driver in it.
phase() {
	local path=$1 round=$2 name=$3 spid=$4 dpid=$5 s0 d0 out
	shift 5
	s0=$(cpu "$spid"); d0=$(cpu "$dpid")
	out=$("$@")
	echo "$path $round $name $out $(awk -v a="$s0" -v b="$(cpu "$spid")" -v t="$TICK" 'BEGIN{printf "%.3f", (b-a)/t}') \
$(awk -v a="$d0" -v b="$(cpu "$dpid")" -v t="$TICK" 'BEGIN{printf "%.3f", (b-a)/t}')"
}

drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# one PATH ROUND: create, open, the three phases, close.
one() {
	local path=$1 round=$2 v mnt run=() spid dpid json
	case $path in
	loop)
		v=$tmp/l.cv mnt=$tmp/lm
		run=(env CRYPTVOL_RUN_DIR="$tmp/run")
		"${run[@]}" "$BIN" create "$v" --size "$SIZE" "${KDF[@]}" >/dev/null
		"${run[@]}" "$BIN" open "$v" "$mnt" --via loop --passphrase-file "$tmp/pw" >/dev/null
		;;
	plain)
		# The driver's own ceiling: fuse2fs on a plaintext image file,
		# no cryptvol.
		v=$tmp/u/p.img mnt=$tmp/u/pm
		run=(as_user)
		as_user truncate -s "$SIZE" "$v"
		as_user /usr/sbin/mkfs.ext4 -q -F -E root_owner="$(id -u "$USERNAME"):$(id -g "$USERNAME")" "$v"
		as_user mkdir -p "$mnt"
		as_user fuse2fs "$v" "$mnt" -f -o rw >/dev/null 2>&1 &
		for _ in $(seq 100); do findmnt -rn "$mnt" >/dev/null && break; sleep 0.1; done
		;;
	fuse)
		v=$tmp/u/f.cv mnt=$tmp/u/fm
		run=(as_user)
		as_user "$BIN" create "$v" --size "$SIZE" "${KDF[@]}" >/dev/null
		as_user "$BIN" open "$v" "$mnt" --passphrase-file "$tmp/pw" >/dev/null 2>&1
		;;
	*)
		echo "bench/user.sh: unknown path $path" >&2
		return 1
		;;
	esac
	spid=0
	if [ "$path" != plain ]; then
		json=$("${run[@]}" "$BIN" list --json)
		spid=$(echo "$json" | awk -F': ' '/"pid"/ {sub(/,$/, "", $2); print $2}')
	fi
	dpid=$(pgrep -f "^fuse2fs .*$mnt" || echo 0)
	phase "$path" "$round" seqwrite "$spid" "$dpid" \
		"${run[@]}" bash -c "$(declare -f fio_run); fio_run w '$mnt/f' --rw=write --bs=1M --size=$FIOSZ --direct=1 --end_fsync=1"
	drop
	phase "$path" "$round" seqread "$spid" "$dpid" \
		"${run[@]}" bash -c "$(declare -f fio_run); fio_run r '$mnt/f' --rw=read --bs=1M --size=$FIOSZ --direct=1"
	drop
	phase "$path" "$round" randread "$spid" "$dpid" \
		"${run[@]}" bash -c "$(declare -f fio_run); fio_run rr '$mnt/f' --rw=randread --bs=4k --size=$FIOSZ --direct=1 --runtime=$RANDTIME --time_based"
	if [ "$path" = plain ]; then
		as_user fusermount3 -u "$mnt"
		wait
	else
		"${run[@]}" "$BIN" close "$mnt" >/dev/null
	fi
	rm -f "$v"
}

echo "machine:$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2), $(nproc) CPUs," \
	"$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); Linux $(uname -r);" \
	"vault files on $(findmnt -n -o FSTYPE -T "$tmp") ($(findmnt -n -o SOURCE -T "$tmp"))"
echo "cryptvol: $built; $(fio --version); fuse2fs $(dpkg-query -W -f '${Version}' fuse2fs 2>/dev/null); RLIMIT_MEMLOCK $(ulimit -l) KiB"

read -r -a paths <<<"$PATHS"
for round in $(seq "$ROUNDS"); do
	# Rotate the order each round, so that no path always goes first.
	n=${#paths[@]}
	for i in $(seq 0 $((n - 1))); do
		p=${paths[$(((i + round) % n))]}
		sync
		sleep "$SETTLE"
		one "$p" "$round" | tee -a "$tmp/samples" | sed 's/^/sample: /' >&2
	done
done

# Medians per path and phase; ratios to the loop path.
awk -v rounds="$ROUNDS" -v fiosz="$FIOSZ" -v randtime="$RANDTIME" '
	function median(k, n,   i, j, t, a) {
		n = cnt[k]
		for (i = 1; i <= n; i++) a[i] = v[k, i]
		for (i = 2; i <= n; i++)
			for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
		return n ? (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2) : 0
	}
	{
		if (!($1 in seen)) { seen[$1]; order[++np] = $1 }
		for (f = 4; f <= 8; f++) { k = $1 SUBSEP $3 SUBSEP f; v[k, ++cnt[k]] = $f }
	}
	END {
		print ""
		print "fio on ext4 in a vault, median of " rounds " rounds (paths alternating); " fiosz " file, randread " randtime " s"
		printf "  %-10s %9s %9s %10s %6s %6s %6s   %s\n", "path", "write", "read", "randread", "", "", "", "CPU s per phase: server / driver / fio"
		printf "  %-10s %9s %9s %10s %6s %6s %6s\n", "", "MiB/s", "MiB/s", "IOPS", "w x", "r x", "rr x"
		lw = median("loop" SUBSEP "seqwrite" SUBSEP 4); lr = median("loop" SUBSEP "seqread" SUBSEP 4); lrr = median("loop" SUBSEP "randread" SUBSEP 5)
		for (i = 1; i <= np; i++) {
			p = order[i]
			w = median(p SUBSEP "seqwrite" SUBSEP 4); r = median(p SUBSEP "seqread" SUBSEP 4); rr = median(p SUBSEP "randread" SUBSEP 5)
			line[i] = sprintf("  %-10s %9.0f %9.0f %10.0f", p, w, r, rr)
			ratio[i] = (lw && lr && lrr) ? sprintf(" %5.2fx %5.2fx %5.2fx", w / lw, r / lr, rr / lrr) : "      -      -      -"
			cpus[i] = ""
			split("seqwrite seqread randread", ph, " ")
			for (j = 1; j <= 3; j++)
				cpus[i] = cpus[i] sprintf("   %s %.2f/%.2f/%.2f", ph[j], median(p SUBSEP ph[j] SUBSEP 7), median(p SUBSEP ph[j] SUBSEP 8), median(p SUBSEP ph[j] SUBSEP 6))
		}
		for (i = 1; i <= np; i++) print line[i] ratio[i] cpus[i]
	}' "$tmp/samples"
