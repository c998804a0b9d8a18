# Sourced by the guest-side scenario scripts (inside the VM, as root).
# Password, module, the run protocol (@@RUN/@@NOTE lines the host parses),
# and a bounded-time wrapper for steps that must not hang.
set -u
REL_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export REL_DIR
# Same cheap KDF and password as tests/vm/_bdsnap.ts: the guest is emulated.
export BDSNAP_KDF_ITERATIONS=1000
export BDSNAP_CONFIG_DIR=${BDSNAP_CONFIG_DIR:-/run/bdsnap-etc}
export BDSNAP_PASSWORD='correct horse battery staple'
export PWFILE=/run/bdsnap-test-password
export PYTHONPATH="$REL_DIR${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
read -r -a DISKS <<<"${BDSNAP_TEST_DISKS:-}"

# `bdsnap setup` (once per config dir), then load the module with that hash
# the way `bdsnap load` does (finit_module with passwd_hash=), without
# another Deno start-up: under TCG each costs seconds, and tests/vm covers
# `bdsnap load` itself.
rel_load() {
	printf '%s\n' "$BDSNAP_PASSWORD" >"$PWFILE"
	chmod 600 "$PWFILE"
	[ -e "$BDSNAP_CONFIG_DIR/passwd.hash" ] || bdsnap setup --password-file "$PWFILE" >/dev/null || return 1
	[ -d /sys/module/bdsnap ] ||
		insmod "$BDSNAP_MODULE" "passwd_hash=$(cat "$BDSNAP_CONFIG_DIR/passwd.hash")" || return 1
}

note() { echo "@@NOTE $*"; }

# run_result OK LOST NOTE [METRICS_JSON]
run_result() {
	python3 -c 'import json,sys; print("@@RUN " + json.dumps({"ok": sys.argv[1] == "1", "lost": int(sys.argv[2]), "note": sys.argv[3], "metrics": json.loads(sys.argv[4])}))' \
		"$1" "$2" "$3" "${4:-{\}}"
}

# bounded SECONDS CMD...: run CMD, fail (124) if it takes longer (times
# BDSNAP_SLOW, which the host sets for slower kernels).
bounded() {
	local t=$(($1 * ${BDSNAP_SLOW:-1}))
	shift
	timeout -k 5 "$t" "$@"
}

# The module's state as `bdsnap status --json` shows it, one field.
status_field() {
	bdsnap status --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {}, {"d": d}))' "$1"
}
