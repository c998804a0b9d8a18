# Power cut, one boot (guest side). Disk 0 is the origin, disk 1 a scratch
# ext4 that keeps the cycle's state across boots.
#   CUT_VERIFY_CYCLE, CUT_SYNCED: verify and restore the session the last
#     power cut interrupted (K = last "synced" line the host received)
#   CUT_NEXT_CYCLE: then start the next session and write until killed
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
	# The module is not loaded yet: nothing is activated, the session reads as interrupted.
	origin=$(python3 "$REL_DIR/power_cut.py" verify "$c" "$k" origin) || exit 1
	echo "origin after the cut: $origin"
	sessions=$(bdsnap sessions "$CUT_DEV" --json) || exit 1
	read -r sid state <<<"$(python3 -c '
import json, sys
s = json.loads(sys.argv[1])["sessions"]
print(s[-1]["id"], s[-1]["state"]) if s else print("none none")' "$sessions")"
	echo "session $sid: $state"
	restore_ok=0
	# An interrupted session is not provably exact (pre-images are durable
	# only at origin flushes today): the restorer refuses it without the flag.
	if [ "$sid" != none ] && bdsnap restore "$CUT_DEV" --session "$sid" --yes --accept-gap; then restore_ok=1; fi
	restored=$(python3 "$REL_DIR/power_cut.py" verify "$c" "$k" restored) || exit 1
	echo "restored: $restored"
	python3 - "$origin" "$restored" "$state" "$restore_ok" <<'PY'
import json, sys
o, r = json.loads(sys.argv[1]), json.loads(sys.argv[2])
state, restore_ok = sys.argv[3], sys.argv[4] == "1"
problems = []
if o["lost"]:
    problems.append(f"{o['lost']} flushed origin writes missing after the cut ({o['bad']})")
if r["lost"]:
    problems.append(f"{r['lost']} blocks not rolled back ({r['bad']})")
if state != "interrupted":
    problems.append(f"session state {state}, expected interrupted")
if not restore_ok:
    problems.append("restore failed")
note = (f"cycle {r['cycle']}: synced {r['synced']} batches; "
        f"{r['unflushed_not_rolled_back']} unflushed raw blocks kept their new content; "
        f"{r['fs_chunks_differing']} fs chunks differ from pre-mount")
print("@@RUN " + json.dumps({
    "ok": not problems,
    "lost": o["lost"] + r["lost"],
    "note": "; ".join(problems) or note,
    "metrics": {"synced": r["synced"], "fs_chunks_differing": r["fs_chunks_differing"],
                "unflushed_new": r["unflushed_not_rolled_back"]},
}))
PY
	# Keep the store small across many cuts: this session is verified.
	[ "$sid" != none ] && rm -rf "/snapshot/$sid"
	sync
fi

if [ -n "${CUT_NEXT_CYCLE:-}" ]; then
	c=$CUT_NEXT_CYCLE
	rel_load || exit 1
	python3 "$REL_DIR/power_cut.py" prepare "$c" || exit 1
	# The power is cut soon: the hash file and the state must be on disk first.
	sync
	python3 -c 'import bdsnap_ctl as b, sys; e = b.activate(sys.argv[1]); print(f"activate: {b.errname(e)}") if e else None; sys.exit(e)' "$CUT_DEV" || exit 1
	mount -t ext4 "$CUT_DEV" /mnt/cut || exit 1
	python3 "$REL_DIR/power_cut.py" fsload /mnt/cut/load &
	python3 "$REL_DIR/power_cut.py" fsload /mnt/cut/load2 &
	echo "@@SESSION-STARTED $c"
	python3 "$REL_DIR/power_cut.py" run "$c"
	exit 1 # the writer never returns: only the power cut ends this boot
fi
