# Control-interface fuzzing (guest side): control_fuzz.py, then the module
# must still unload.   control_fuzz.sh CASES
. "$(dirname "$0")/_guest.sh"
rel_load || exit 1
out=$(python3 "$REL_DIR/control_fuzz.py" "$1" "${DISKS[0]}" "$BDSNAP_STORE_DISK") || { echo "$out"; exit 1; }
echo "$out"
rm_ok=1
bounded 60 rmmod bdsnap || rm_ok=0
python3 - "$out" "$rm_ok" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
problems = list(r["problems"])
if sys.argv[2] != "1":
    problems.append("rmmod failed after fuzzing")
errnos = sorted({k.split(":")[1] for k in r["errnos"] if ":" in k})
note = (f"{r['cases']} calls in {r['seconds']} s from 4 threads; errnos seen: {', '.join(errnos)}; "
        f"slowest {r['slowest'][1]} {r['slowest'][0]} s; real activations alongside: "
        f"{r['legit'].get('activate:OK', 0)}")
print("@@RUN " + json.dumps({"ok": not problems, "lost": 0, "note": "; ".join(problems) or note,
                            "metrics": {"cases": r["cases"], "errnos": r["errnos"]}}))
PY
