# Control under stress (guest side): control_stress.py on 4 ext4 disks, then
# the end state: nothing mounted, nothing activated, status consistent, no
# session left open or damaged in the store, each filesystem clean, and the
# module unloads.   control_stress.sh SECONDS
. "$(dirname "$0")/_guest.sh"
rel_load || exit 1
for d in "${DISKS[@]}"; do mkfs.ext4 -q -F "$d" || exit 1; done
out=$(python3 "$REL_DIR/control_stress.py" "$1" "${DISKS[@]}") || { echo "$out"; exit 1; }
echo "$out"
problems=()
for d in "${DISKS[@]}"; do
	grep -q "^$d " /proc/mounts && problems+=("$d still mounted")
	e2fsck -fn "$d" >/tmp/fsck.out 2>&1 || problems+=("fsck $d: $(tail -2 /tmp/fsck.out)")
done
status=$(bdsnap status --json)
bad_sessions=$(bdsnap sessions --json | python3 -c '
import json, sys
s = json.load(sys.stdin)["sessions"]
print(len(s), sum(1 for x in s if x["state"] not in ("closed",)))')
bounded 60 rmmod bdsnap || problems+=("rmmod failed at the end")
python3 - "$out" "$status" "$bad_sessions" "${problems[@]}" <<'PY'
import json, sys
r, st = json.loads(sys.argv[1]), json.loads(sys.argv[2])
total, bad = map(int, sys.argv[3].split())
problems = list(sys.argv[4:]) + r["unexpected"]
if st["devices"] or st["sessions"] or st["counters"]["devices"] or st["counters"]["sessions"]:
    problems.append(f"status --json not empty at the end: {st['devices']} {st['sessions']}")
if bad:
    problems.append(f"{bad} of {total} sessions in the store not closed")
if r["counts"].get("rmmod:EAGAIN", 0) == 0:
    problems.append("no refused rmmod attempt was seen")
c = r["counts"]
note = (f"{r['ops']} operations; mounts {c.get('mount:OK', 0)}, "
        f"activations {c.get('activate:OK', 0)}, rmmod refused {c.get('rmmod:EAGAIN', 0)}x, "
        f"{total} sessions all closed; slowest {r['slowest']['op']} {r['slowest']['seconds']} s")
print("@@RUN " + json.dumps({"ok": not problems, "lost": 0, "note": "; ".join(problems) or note,
                            "metrics": {"ops": r["ops"], "sessions": total,
                                        "counts": c, "slowest": r["slowest"]}}))
PY
