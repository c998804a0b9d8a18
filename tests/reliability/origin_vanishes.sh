# Origin vanishes (guest side): the activated device disappears in the
# middle of a session while it is written. No crash, no hang (every step is
# time-bounded), the session ends closed or failed (never open or damaged),
# deactivation works by the name given at activation, the module unloads.
#   pci   disk 0 hot-removed from the PCI bus (virtio-blk-pci remove)
#   loop  a loop device over an image file (activated by the file) detached
#   dm    a dm-linear device whose table is wiped to `error`, removed when closed
. "$(dirname "$0")/_guest.sh"
M=/mnt/ov
mkdir -p $M /mnt/host1
modprobe -q dm-mod
rel_load || exit 1

# writer DIR: fsync-heavy writes until killed; errors are expected once the device is gone.
writer() {
	local i=0
	while :; do
		i=$((i + 1))
		dd if=/dev/urandom of="$1/w$((i % 16))" bs=64k count=4 conv=fsync status=none 2>/dev/null
	done
}

variant_run() {
	local variant=$1 problems=() dev act pci sid state loopdev
	case $variant in
	pci) dev=${DISKS[0]} act=$dev ;;
	loop)
		mkfs.ext4 -q -F "${DISKS[1]}" && mount "${DISKS[1]}" /mnt/host1 || return 1
		truncate -s 128M /mnt/host1/origin.img
		loopdev=$(losetup -f --show /mnt/host1/origin.img) || return 1
		dev=$loopdev act=/mnt/host1/origin.img
		;;
	dm)
		dmsetup create borg --table "0 $(blockdev --getsz "${DISKS[2]}") linear ${DISKS[2]} 0" || return 1
		dev=/dev/mapper/borg act=$dev
		;;
	esac
	mkfs.ext4 -q -F "$dev" || return 1
	bdsnap activate "$act" --password-file "$PWFILE" >/dev/null || return 1
	mount "$dev" $M || return 1
	sid=$(status_field 'd["sessions"][0]["id"] if d["sessions"] else ""')
	[ -n "$sid" ] || problems+=("no session opened")
	writer $M &
	local wpid=$!
	sleep 3
	case $variant in
	pci)
		pci=$(basename "$(readlink -f "/sys/block/$(basename "$dev")/device/..")")
		note "$variant: removing PCI device $pci ($dev)"
		echo 1 | bounded 60 tee "/sys/bus/pci/devices/$pci/remove" >/dev/null ||
			problems+=("PCI remove failed or hung")
		;;
	loop) bounded 60 losetup -d "$loopdev" || problems+=("losetup -d failed or hung") ;;
	dm)
		bounded 60 dmsetup wipe_table borg || problems+=("wipe_table failed")
		bounded 60 dmsetup remove --deferred borg || problems+=("deferred remove failed")
		;;
	esac
	sleep 5
	kill $wpid
	bounded 60 bash -c "while kill -0 $wpid 2>/dev/null; do sleep 1; done" || problems+=("writer hung")
	wait $wpid 2>/dev/null
	bounded 120 umount $M || bounded 60 umount -l $M || problems+=("umount hung")
	case $variant in
	pci) [ -e "/sys/block/$(basename "$dev")" ] && problems+=("$dev still exists after removal") ;;
	dm) dmsetup info borg >/dev/null 2>&1 && problems+=("borg still exists after the unmount") ;;
	loop) losetup "$loopdev" >/dev/null 2>&1 && problems+=("$loopdev still attached after the unmount") ;;
	esac
	bounded 120 bdsnap deactivate "$act" --password-file "$PWFILE" >/dev/null ||
		problems+=("deactivate by name failed")
	local devices sessions
	devices=$(status_field 'len(d["devices"])')
	sessions=$(status_field 'd["counters"]["sessions"]')
	[ "$devices" = 0 ] && [ "$sessions" = 0 ] ||
		problems+=("status after: $devices devices, $sessions sessions")
	state=$(bdsnap sessions --json | python3 -c '
import json, sys
s = [x for x in json.load(sys.stdin)["sessions"] if x["id"] == sys.argv[1]]
print(s[0]["state"] if s else "missing")' "$sid")
	case $state in closed | failed) ;; *) problems+=("session $sid is $state") ;; esac
	bounded 60 rmmod bdsnap || problems+=("rmmod failed")
	rel_load || problems+=("reload failed")
	[ "$variant" = loop ] && umount /mnt/host1
	local IFS=';'
	run_result "$([ ${#problems[@]} = 0 ] && echo 1 || echo 0)" 0 \
		"${problems[*]:-$variant: session $state, device gone, deactivated, module unloaded}" \
		"{\"variant\": \"$variant\", \"state\": \"$state\"}"
}

for v in "$@"; do variant_run "$v" || run_result 0 0 "$v: setup failed"; done
