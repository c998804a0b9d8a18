# Store faults (guest side): /snapshot on a device-mapper target over the
# store disk, switched live from linear to `error` (or `flakey`) in the
# middle of a session. One @@RUN line per variant.
#   store_faults.sh VARIANT...   (error | flakey)
. "$(dirname "$0")/_guest.sh"
dev=${DISKS[0]}
store=$BDSNAP_STORE_DISK
M=/mnt/sf
mkdir -p $M
modprobe -q dm-flakey
rel_load || exit 1
dd if=/dev/urandom of=/tmp/new bs=1M count=32 status=none
umount /snapshot || exit 1

variant_run() {
	local variant=$1 problems=() lost=0 sectors table state
	sectors=$(blockdev --getsz "$store")
	mkfs.ext4 -q -F -E nodiscard "$store"
	dmsetup create bstore --table "0 $sectors linear $store 0" || return 1
	mount /dev/mapper/bstore /snapshot && chmod 0700 /snapshot || return 1

	mkfs.ext4 -q -F -E nodiscard "$dev"
	mount "$dev" $M && dd if=/dev/urandom of=$M/old bs=1M count=32 status=none && umount $M
	bdsnap activate "$dev" --password-file "$PWFILE" >/dev/null || return 1
	mount "$dev" $M || return 1
	sid=$(status_field 'd["sessions"][0]["id"] if d["sessions"] else ""')
	# Writers: overwrite a file (its pre-images go to the store), fio with verify.
	(dd if=/tmp/new of=$M/old bs=64k conv=notrunc,fsync status=none; echo "dd $?" >/tmp/dd.rc) &
	dd_pid=$!
	fio --name=v --filename=$M/v --rw=randwrite --bs=4k --size=12M --verify=crc32c \
		--verify_fatal=1 --direct=1 --fsync=16 --output=/tmp/fio.out >/dev/null 2>&1 &
	fio_pid=$!
	sleep 2
	case $variant in
	error) table="0 $sectors error" ;;
	flakey) table="0 $sectors flakey $store 0 1 2" ;; # 1 s up, 2 s all I/O fails
	esac
	# Live switch under the mounted store filesystem.
	bounded 120 dmsetup suspend --nolockfs bstore &&
		dmsetup reload bstore --table "$table" &&
		bounded 60 dmsetup resume bstore || problems+=("dm switch to $variant failed")
	wait $dd_pid
	fio_rc=0
	wait $fio_pid || fio_rc=$?
	[ "$fio_rc" = 0 ] || problems+=("fio verify failed ($fio_rc): $(tail -3 /tmp/fio.out)")
	[ "$(cat /tmp/dd.rc)" = "dd 0" ] || problems+=("origin write failed: $(cat /tmp/dd.rc)")
	echo 3 >/proc/sys/vm/drop_caches
	cmp -s /tmp/new $M/old || {
		problems+=("origin content differs after the fault")
		lost=$((lost + 1))
	}
	state=$(status_field 'd["sessions"][0]["state"] if d["sessions"] else "none"')
	err=$(status_field 'd["sessions"][0]["error"] if d["sessions"] else ""')
	[ "$state" = failed ] || problems+=("session state $state, expected failed")
	bounded 120 umount $M || problems+=("umount of the origin failed or hung")
	# A mount with the store dead: no session, but the mount and the data work.
	if bounded 120 mount "$dev" $M; then
		echo 3 >/proc/sys/vm/drop_caches
		cmp -s /tmp/new $M/old || {
			problems+=("origin content differs after remount")
			lost=$((lost + 1))
		}
		bounded 120 umount $M || problems+=("second umount failed")
	else
		problems+=("mount with a dead store failed")
	fi
	bdsnap deactivate "$dev" --password-file "$PWFILE" >/dev/null || problems+=("deactivate failed")
	failed_count=$(status_field 'd["counters"]["sessions_failed"]')
	bounded 120 umount /snapshot || bounded 60 umount -l /snapshot || problems+=("store umount failed")
	bounded 60 dmsetup remove bstore || problems+=("dmsetup remove failed")
	# The module unloads (nothing pinned by the failed session), then comes back.
	bounded 60 rmmod bdsnap || problems+=("rmmod failed after the fault")
	rel_load || problems+=("reload failed")
	local IFS=';'
	run_result "$([ ${#problems[@]} = 0 ] && echo 1 || echo 0)" "$lost" \
		"${problems[*]:-$variant: session $sid failed ($err), origin verified}" \
		"{\"variant\": \"$variant\", \"sessions_failed\": $failed_count}"
}

for v in "$@"; do variant_run "$v" || run_result 0 0 "$v: setup failed"; done
