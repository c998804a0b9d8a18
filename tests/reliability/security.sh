# Security checks (guest side), one @@RUN line each:
#   unpriv   an unprivileged user gets EPERM from both system calls and every
#            ioctl (and cannot open /dev/bdsnap, 0600, at all)
#   params   no module parameter shows the password hash; what nobody can read
#   store    session directories 0700, files 0600, owned by root
#   dmesg    no raw kernel address in the module's log lines
#   rate     wrong-password attempts per second, one caller and four
. "$(dirname "$0")/_guest.sh"
dev=${DISKS[0]}
rel_load || exit 1
verdict() { [ "$1" = "" ] && echo 1 || echo 0; }
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups env -i PYTHONPATH=/tmp/sec PYTHONDONTWRITEBYTECODE=1 "$@"; }

# A session first, so that status would have a device name and a session to reveal.
mkfs.ext4 -q -F "$dev" && bdsnap activate "$dev" --password-file "$PWFILE" >/dev/null || exit 1
mkdir -p /mnt/sec && mount "$dev" /mnt/sec && echo data >/mnt/sec/f && sync || exit 1

mkdir -p /tmp/sec && cp "$REL_DIR/bdsnap_ctl.py" "$REL_DIR/security.py" /tmp/sec/ && chmod -R a+rX /tmp/sec
first=$(as_nobody /usr/bin/python3 /tmp/sec/security.py unpriv "$dev")
mode=$(stat -c %a /dev/bdsnap)
chmod 0666 /dev/bdsnap # test only: reach the ioctls' own capability check
second=$(as_nobody /usr/bin/python3 /tmp/sec/security.py unpriv "$dev")
chmod "$mode" /dev/bdsnap
p=$(python3 - "$first" "$second" "$mode" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
bad = []
if a["uid"] != 65534:
    bad.append(f"ran as uid {a['uid']}")
if sys.argv[3] != "600":
    bad.append(f"/dev/bdsnap mode {sys.argv[3]}")
if a["open"] not in ("EACCES", "EPERM"):
    bad.append(f"nobody could open /dev/bdsnap: {a['open']}")
for k, v in {**a["calls"], **b["calls"]}.items():
    if v != "EPERM":
        bad.append(f"{k}: {v}")
if b.get("list_leaked"):
    bad.append("LIST returned data to nobody")
print("; ".join(bad))
PY
)
run_result "$(verdict "$p")" 0 "${p:-unpriv: open /dev/bdsnap $(echo "$first" | python3 -c 'import json,sys; print(json.load(sys.stdin)["open"])'); $(echo "$second" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["calls"]))') entry points with the node opened up: all EPERM}" "{\"unpriv\": $second}"

# Parameters: no passwd_hash file, no hash text anywhere, and what nobody can read.
p=""
params=/sys/module/bdsnap/parameters
[ -e $params/passwd_hash ] && p="passwd_hash is visible in sysfs"
grep -rqs 'pbkdf2' $params /sys/module/bdsnap/ 2>/dev/null && p="$p hash text readable under /sys/module/bdsnap"
readable=$(for f in $params/*; do as_nobody /bin/cat "$f" >/dev/null 2>&1 && basename "$f"; done | tr '\n' ' ')
run_result "$(verdict "$p")" 0 "${p:-params: no passwd_hash entry; readable by nobody: ${readable}}" "{}"

# The store: 0700 directories, 0600 files, root's.
umount /mnt/sec
p=$(find /snapshot -mindepth 1 \( -type d ! -perm 0700 -o -type f ! -perm 0600 -o ! -user root \) \
	-printf '%p %m %u; ' | head -c 400)
n=$(find /snapshot -mindepth 1 | wc -l)
[ "$n" -ge 4 ] || p="$p only $n entries in the store"
run_result "$(verdict "$p")" 0 "${p:-store: $n entries, directories 0700, files 0600, owner root}" "{}"
bdsnap deactivate "$dev" --password-file "$PWFILE" >/dev/null

# The module's log lines carry no raw kernel address.
p=$(dmesg | grep -i bdsnap | grep -E '\b(0x)?ffff[0-9a-f]{12}\b' | head -3)
run_result "$(verdict "$p")" 0 "${p:-dmesg: $(dmesg | grep -ci bdsnap) module lines, no raw kernel address}" "{}"

# Rate limit of password failures.
r=$(python3 "$REL_DIR/security.py" rate 20)
p=$(python3 - "$r" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
bad = []
if r["single"]["errnos"] != ["EPERM"]:
    bad.append(f"wrong password gave {r['single']['errnos']}")
# 100 ms x consecutive failures, at most 2 s: about 20 attempts in the first 20 s.
if r["single"]["per_second"] > 2 or r["four_threads"]["per_second"] > 2:
    bad.append(f"not rate-limited: {r}")
print("; ".join(bad))
PY
)
summary=$(python3 - "$r" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
s, f, c = r["single"], r["four_threads"], r["correct_after"]
print(f"{s['per_second']}/s from one caller ({s['attempts']} in 20 s, last delay "
      f"{s['last_delay_s']} s), {f['per_second']}/s from four; next correct call {c['seconds']} s")
PY
)
run_result "$(verdict "$p")" 0 "${p:-password failures: $summary}" "{\"rate\": $r}"
rmmod bdsnap || exit 1
