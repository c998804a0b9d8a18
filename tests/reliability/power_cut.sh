# Power cut, one boot (guest side). Disk 0 is the origin, disk 1 a scratch
# ext4 that keeps the cycle's state across boots.
#   CUT_VERIFY_CYCLE, CUT_SYNCED: verify and restore the session the last
#     power cut interrupted (K = last "synced" line the host received)
#   CUT_NEXT_CYCLE: then start the next session and write until the cut
#   CUT_SYSRQ_DELAY: the guest resets itself (sysrq b) that many seconds
#     after the raw writer's first flush; otherwise the host kills QEMU
. "$(dirname "$0")/_guest.sh"
set -o pipefail
export CUT_DEV=${DISKS[0]} CUT_STATE=/rel/state
scratch=${DISKS[1]}
mkdir -p /rel /mnt/cut
export BDSNAP_CONFIG_DIR=/rel/etc
if ! mount "$scratch" /rel 2>/dev/null; then
	mkfs.ext4 -q -F "$scratch" && mount "$scratch" /rel || exit 1
	# First boot: a filesystem smaller than the disk; the rest is the raw region.
	mkfs.ext4 -q -F -E nodiscard "$CUT_DEV" $((CUT_FS_BYTES / 1024))k || exit 1
fi

if [ -n "${CUT_VERIFY_CYCLE:-}" ]; then
	c=$CUT_VERIFY_CYCLE k=$CUT_SYNCED
	t0=$SECONDS
	# The module is not loaded yet: nothing is activated, the session reads as interrupted.
	origin=$(python3 "$REL_DIR/power_cut.py" verify "$c" "$k" origin) || exit 1
	echo "origin after the cut: $origin"
	sessions=$(bdsnap sessions "$CUT_DEV" --json) || exit 1
	read -r sid state <<<"$(python3 -c '
import json, sys
s = json.loads(sys.argv[1])["sessions"]
print(s[-1]["id"], s[-1]["state"]) if s else print("none none")' "$sessions")"
	echo "session $sid: $state"
	# Pre-images are written ahead of the origin writes they protect, so an
	# interrupted session restores exactly, without --accept-gap. A restorer
	# that refuses it is a failure; it is then restored with the flag anyway,
	# so the result says how far from exact the device is.
	restore_ok=0 refused=0
	if [ "$sid" != none ]; then
		if bdsnap restore "$CUT_DEV" --session "$sid" --yes 2>/tmp/restore.err; then
			restore_ok=1
		else
			cat /tmp/restore.err >&2
			if grep -q -- '--accept-gap' /tmp/restore.err; then
				refused=1
				bdsnap restore "$CUT_DEV" --session "$sid" --yes --accept-gap && restore_ok=1
			fi
		fi
	fi
	restored=$(python3 "$REL_DIR/power_cut.py" verify "$c" "$k" restored) || exit 1
	echo "restored: $restored"
	python3 - "$origin" "$restored" "$state" "$restore_ok" "$refused" "$((SECONDS - t0))" <<'PY'
import json, sys
o, r = json.loads(sys.argv[1]), json.loads(sys.argv[2])
state, restore_ok, refused = sys.argv[3], sys.argv[4] == "1", sys.argv[5] == "1"
problems = []
if o["lost"]:
    problems.append(f"{o['lost']} flushed origin writes missing after the cut ({o['bad']})")
if state != "interrupted":
    problems.append(f"session state {state}, expected interrupted")
if refused:
    problems.append("the restorer refused the interrupted session without --accept-gap")
if not restore_ok:
    problems.append("restore failed")
if not r["exact"]:
    problems.append(
        f"not exact: sha256 {r['sha256'][:12]} after the restore, {r['sha256_before'][:12]} "
        f"before the mount; {r['raw_blocks_differing']} raw blocks differ "
        f"({r['unflushed_new']} of them written after the last flush, {r['torn']} torn; "
        f"{r['bad']}), {r['fs_chunks_differing']} fs chunks differ {r['fs_chunks_first']}")
note = (f"cycle {r['cycle']}: synced {r['synced']} batches; restored exactly "
        f"(sha256 {r['sha256'][:12]})")
print("@@RUN " + json.dumps({
    "ok": not problems,
    "lost": o["lost"] + r["lost"],
    "note": f"cycle {r['cycle']}: " + "; ".join(problems) if problems else note,
    "metrics": {"synced": r["synced"], "exact": r["exact"],
                "fs_chunks_differing": r["fs_chunks_differing"],
                "raw_blocks_differing": r["raw_blocks_differing"],
                "unflushed_new": r["unflushed_new"], "refused": refused,
                "verify_seconds": int(sys.argv[6])},
}))
PY
	# Keep the store small across many cuts: this session is verified.
	[ "$sid" != none ] && rm -rf "/snapshot/$sid"
	sync
fi

if [ -n "${CUT_NEXT_CYCLE:-}" ]; then
	c=$CUT_NEXT_CYCLE
	rel_load || exit 1
	# The pre-mount state: recorded (and on disk, with the cycle's state) before the mount.
	premount=$(python3 "$REL_DIR/power_cut.py" prepare "$c") || exit 1
	echo "pre-mount sha256 of $CUT_DEV: $premount"
	sync
	# Writeback every 0.5 s: buffered writes reach the device without waiting for an fsync.
	echo 100 >/proc/sys/vm/dirty_expire_centisecs
	echo 50 >/proc/sys/vm/dirty_writeback_centisecs
	python3 -c 'import bdsnap_ctl as b, sys; e = b.activate(sys.argv[1]); print(f"activate: {b.errname(e)}") if e else None; sys.exit(e)' "$CUT_DEV" || exit 1
	mount -t ext4 "$CUT_DEV" /mnt/cut || exit 1
	python3 "$REL_DIR/power_cut.py" fsload /mnt/cut/load &
	python3 "$REL_DIR/power_cut.py" bufload /mnt/cut/buf &
	python3 "$REL_DIR/power_cut.py" directload /mnt/cut/direct &
	echo "@@SESSION-STARTED $c"
	python3 "$REL_DIR/power_cut.py" run "$c"
	exit 1 # the writer never returns: only the power cut ends this boot
fi
