#!/bin/bash
# Stage 2 (guest root = host root read-only + tmpfs overlay): mount the usual
# filesystems, make the kernel's own modules visible, find the test disks by
# serial, mount the store at /snapshot, run the command, report, power off.
# The results directory (/run/bdsnap-vm) is the only thing shared writable
# with the host: cmd.sh comes in; status and dmesg.txt go out.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
arg() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# What udev makes on a real system; bash's process substitution needs it.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
# /tmp stays the overlay's (already writable, in memory): a tmpfs here would
# hide a repository that lives under the host's /tmp.
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mkdir -p /run/bdsnap-vm /run/lock
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results /run/bdsnap-vm
out=/run/bdsnap-vm

finish() {
	# A kernel with kmemleak (the debug kernel) scans on demand only: scan
	# now; the host's dmesg gate reads the report ("unreferenced object").
	if [ -e /sys/kernel/debug/kmemleak ]; then
		echo scan >/sys/kernel/debug/kmemleak 2>/dev/null
		cat /sys/kernel/debug/kmemleak >"$out/kmemleak.txt" 2>/dev/null
	fi
	echo "$1" >"$out/status"
	dmesg >"$out/dmesg.txt" 2>/dev/null
	sync
	echo o >/proc/sysrq-trigger
	# Power-off runs from a workqueue and can take long on a loaded TCG
	# host; if init returned first, the kernel would panic.
	while :; do sleep 60; done
}

release=$(arg bdsnap.release)
mkdir -p "/lib/modules/$release"
mount --bind "$(arg bdsnap.modules)" "/lib/modules/$release"
# Host-side mounts seen through 9p are meaningless here; /etc/mtab must be ours.
ln -sf /proc/self/mounts /etc/mtab
hostname bdsnap-vm
ip link set lo up 2>/dev/null
echo 1 >/proc/sys/kernel/sysrq
echo 60 >/proc/sys/kernel/hung_task_timeout_secs 2>/dev/null
# A normal system creates /dev/loop-control and /dev/mapper/control on
# demand (kmod static nodes); do the same up front. On a kernel with them
# built in (the debug kernel) modprobe has nothing to do.
modprobe -q loop || true
modprobe -q dm_mod || true
# udev does not run here: lvm/dm tools must not wait for it.
export DM_DISABLE_UDEV=1

# Disks carry serials: bdsnap-store, bdsnap-disk0, bdsnap-disk1, ...
disks=()
store=
for s in /sys/block/vd*; do
	[ -e "$s/serial" ] || continue
	name=/dev/$(basename "$s")
	case "$(cat "$s/serial")" in
	bdsnap-store) store=$name ;;
	bdsnap-disk*) disks[$(cat "$s/serial" | sed 's/bdsnap-disk//')]=$name ;;
	esac
done
export BDSNAP_TEST_DISKS="${disks[*]:-}"
export BDSNAP_STORE_DISK="$store"
mkdir -p /snapshot
if [ -n "$store" ]; then
	modprobe ext4 2>/dev/null
	mount -t ext4 "$store" /snapshot || echo "bdsnap-vm: cannot mount the store disk $store" >&2
	chmod 0700 /snapshot
fi

# The command's environment: set by the host (DENO, repo, module path...).
set -a
. "$out/env"
set +a
export HOME=/root TERM=${TERM:-linux}
export PATH="$BDSNAP_REPO/scripts/vm/guest/bin:$PATH"
cd "$BDSNAP_REPO" || finish 125

# The command's output goes to the second serial port, which the host streams.
tty=/dev/ttyS1
stty -F "$tty" raw -echo 115200 2>/dev/null
echo "bdsnap-vm: ready $(cut -d' ' -f1 /proc/uptime)" >/dev/kmsg
# Tells the host the boot is over (it measures boot time and strips this).
printf '\001BDSNAP-VM-READY\001\n' >"$tty"
bash "$out/cmd.sh" </dev/null >"$tty" 2>&1
rc=$?
finish "$rc"
