# Hung store (guest side): /snapshot on a dm-linear device over the store
# disk; during a written session the store device is suspended (its I/O
# queues and never completes). The module's watchdog must fail the session
# and release every held write: origin writes and fsyncs complete within
# watchdog + 30 s, the session is failed, the unmount returns, and no task
# is reported hung (the detector runs with a timeout shorter than our waits;
# the host's dmesg gate fails the boot on a report). Then the store resumes
# and everything is cleaned up. Every wait is bounded: on a module that
# blocks, this fails instead of hanging. One @@RUN line per round.
#   hung_store.sh ROUNDS   (HS_WATCHDOG: the watchdog to set, seconds)
. "$(dirname "$0")/_guest.sh"
dev=${DISKS[0]}
store=$BDSNAP_STORE_DISK
M=/mnt/hs
S=${BDSNAP_SLOW:-1}
PY="python3 $REL_DIR/hung_store.py"
mkdir -p $M

# The watchdog: the module parameter watchdog_secs (writable at run time), if
# this build has it; a module without it has a fixed 60 s.
W=$((${HS_WATCHDOG:-10} * S))
param=$(modinfo -F parm "$BDSNAP_MODULE" 2>/dev/null | sed -n 's/^\(watchdog_secs\):.*/\1/p' | head -1)
[ -n "$param" ] || param=$(modinfo -F parm "$BDSNAP_MODULE" 2>/dev/null |
	sed -n 's/^\([a-z_]*\(watchdog\|stall\)[a-z_]*\):.*/\1/p' | head -1)
if [ -z "$param" ]; then
	W=60
	note "the module has no watchdog parameter: its fixed 60 s applies"
fi
BOUND=$((W + 30 * S)) # origin writes must be through by then
# Hung-task reports for a task blocked longer than HT, checked every 2 s: a
# writer stuck for good is reported before BOUND; the store's own threads,
# blocked while it is suspended (about 2 x W when all goes well), are not.
HT=$((W + 22 * S))
# Under TCG on a starved host the TSC can be calibrated wrong at boot, and
# the guest's clock then runs many times too fast: every timing here is void.
dmesg | grep -q 'calibration deviates\|TSC.*unstable' &&
	note "the guest's clock is suspect (TSC calibration): $(dmesg | grep -m1 'calibration deviates\|TSC.*unstable' | cut -c1-120)"
if [ ! -w /proc/sys/kernel/hung_task_timeout_secs ]; then
	run_result 0 0 "this kernel has no hung-task detector (CONFIG_DETECT_HUNG_TASK)"
	exit 0
fi
echo "$HT" >/proc/sys/kernel/hung_task_timeout_secs
echo 2 >/proc/sys/kernel/hung_task_check_interval_secs 2>/dev/null
echo 10 >/proc/sys/kernel/hung_task_warnings

printf '%s\n' "$BDSNAP_PASSWORD" >"$PWFILE"
chmod 600 "$PWFILE"
[ -e "$BDSNAP_CONFIG_DIR/passwd.hash" ] || bdsnap setup --password-file "$PWFILE" >/dev/null || exit 1
insmod "$BDSNAP_MODULE" "passwd_hash=$(cat "$BDSNAP_CONFIG_DIR/passwd.hash")" ${param:+"$param=$W"} || exit 1
[ -n "$param" ] && note "$param=$(cat /sys/module/bdsnap/parameters/$param), hung_task_timeout_secs=$HT, writers' bound $BOUND s"
umount /snapshot || exit 1

# wait_bg PID SECONDS: wait for a background job at most that long (a task
# in D state cannot be killed, so `timeout` would not bound it); 0 if it ended.
wait_bg() {
	local pid=$1 end=$((SECONDS + $2))
	while kill -0 "$pid" 2>/dev/null; do
		[ $SECONDS -ge $end ] && return 124
		sleep 0.5
	done
	wait "$pid"
}

round() {
	local problems=() sectors state err w r sid pids=() umount_pid="" umounted=0 resumed=0
	sectors=$(blockdev --getsz "$store")
	mkfs.ext4 -q -F -E nodiscard "$store" || return 1
	dmsetup create hstore --table "0 $sectors linear $store 0" || return 1
	mount /dev/mapper/hstore /snapshot && chmod 0700 /snapshot || return 1
	mkfs.ext4 -q -F -E nodiscard "$dev" || return 1
	bdsnap activate "$dev" --password-file "$PWFILE" >/dev/null || return 1
	mount "$dev" $M || return 1
	sid=$(status_field 'd["sessions"][0]["id"] if d["sessions"] else ""')
	rm -f /tmp/hs.*
	for w in buffered fsync direct; do
		$PY writer $w $M/$w /tmp/hs.$w.log &
		pids+=($!)
	done
	sleep $((3 * S)) # the session is saving pre-images
	export HS_FAILED_BEFORE
	HS_FAILED_BEFORE=$(status_field 'd["counters"]["sessions_failed"]')
	bounded 60 dmsetup suspend --nolockfs hstore || problems+=("dmsetup suspend failed")
	s0=$SECONDS
	t0=$($PY now)
	note "store suspended; writers: $(for w in buffered fsync direct; do printf '%s %s ops, ' $w "$(wc -l </tmp/hs.$w.log)"; done)"
	r=$($PY watch "$t0" "$BOUND" /tmp/hs.buffered.log /tmp/hs.fsync.log /tmp/hs.direct.log)
	r=${r:-'{"all_through": false, "failed_after": null, "error": "the watcher failed"}'}
	echo "watch: $r"
	python3 -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1])["all_through"] else 1)' "$r" ||
		problems+=("origin writes not through within ${BOUND} s of the store's suspension: $r")
	[ "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["failed_after"])' "$r")" != None ] ||
		problems+=("no session failed")
	# Writers stop between operations; the unmount must return with the store
	# still suspended. The store is resumed at the latest HT - 4 s after its
	# suspension: the store's own worker waits on it all along, and must not
	# be what the hung-task detector reports.
	local deadline=$((s0 + HT - 4)) # bash's clock: no process start-up per check
	for w in buffered fsync direct; do touch $M/$w/stop 2>/dev/null & done
	for p in "${pids[@]}"; do
		wait_bg "$p" $((deadline > SECONDS ? deadline - SECONDS : 0)) || {
			problems+=("a writer did not stop while the store was suspended ($((SECONDS - s0)) s): $(tr '\n' ' ' </proc/$p/stack 2>/dev/null | cut -c1-300)")
			break
		}
	done
	note "writers stopped $((SECONDS - s0)) s after the suspension"
	if ! ((${#problems[@]})); then
		umount $M &
		umount_pid=$!
		if wait_bg $umount_pid $((deadline > SECONDS ? deadline - SECONDS : 0)); then
			umounted=1
			note "umount returned $((SECONDS - s0)) s after the suspension"
		else
			problems+=("umount did not return with the store suspended ($((SECONDS - s0)) s after the suspension; its stack: $(tr '\n' ' ' </proc/$umount_pid/stack 2>/dev/null | cut -c1-400))")
		fi
	fi
	bounded 60 dmsetup resume hstore && resumed=1 || problems+=("dmsetup resume failed")
	t1=$($PY now)
	note "store resumed $(python3 -c "print(round($t1 - $t0, 1))") s after its suspension"
	# Cleanup (the store answers again): everything bounded.
	for p in "${pids[@]}"; do wait_bg "$p" $((60 * S)) || problems+=("a writer still blocked 60 s after the resume"); done
	if [ -n "$umount_pid" ] && [ $umounted = 0 ]; then
		wait_bg $umount_pid $((60 * S)) || problems+=("umount still blocked 60 s after the resume")
	elif [ -z "$umount_pid" ]; then
		bounded 60 umount $M || problems+=("umount after the resume failed")
	fi
	state=$(bounded 60 bdsnap sessions "$dev" --json | python3 -c '
import json, sys
s = [x for x in json.load(sys.stdin)["sessions"] if x["id"] == sys.argv[1]]
print(s[0]["state"] if s else "missing")' "$sid")
	[ "$state" = failed ] || problems+=("the store says session $sid is ${state:-unreadable}, expected failed")
	err=$(dmesg | grep -m1 -o 'bdsnap: .*fail.*' | cut -c1-160)
	bounded 60 bdsnap deactivate "$dev" --password-file "$PWFILE" >/dev/null || problems+=("deactivate failed")
	bounded 60 umount /snapshot || problems+=("store umount failed")
	bounded 60 dmsetup remove hstore || problems+=("dmsetup remove failed")
	local IFS=';'
	run_result "$([ ${#problems[@]} = 0 ] && echo 1 || echo 0)" 0 \
		"${problems[*]:-session $sid failed ($err); writers through: $r}" \
		"$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["watchdog"]=int(sys.argv[2]); print(json.dumps(d))' "$r" "$W")"
	[ $resumed = 1 ]
}

for i in $(seq 1 "${1:-1}"); do
	round || {
		run_result 0 0 "round $i: setup or cleanup failed"
		dmsetup resume hstore 2>/dev/null
		break
	}
done
bounded 60 rmmod bdsnap || run_result 0 0 "rmmod failed after the rounds"
