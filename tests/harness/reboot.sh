#!/bin/bash
# One boot of tests/harness/reboot_test.ts: `reboot.sh 1|2|3`. The disks
# are found by serial: bdsnap-disk0 (A) and bdsnap-disk1 (B), whose /dev
# names swap on boot 3, and bdsnap-disk2, the disk that keeps /etc/bdsnap.
# Expected hashes live on the etc disk; a failed check exits non-zero
# naming it.
set -euo pipefail
boot=$1
export BDSNAP_KDF_ITERATIONS=1000
PW=/etc/bdsnap/password
by_serial() {
	for s in /sys/block/vd*; do
		[ "$(cat "$s/serial" 2>/dev/null)" = "$1" ] && { echo "/dev/$(basename "$s")"; return; }
	done
	echo "no disk with serial $1" >&2
	exit 1
}
A=$(by_serial bdsnap-disk0)
B=$(by_serial bdsnap-disk1)
ETC=$(by_serial bdsnap-disk2)
echo "@@ boot $boot: A=$A B=$B"
fail() { echo "@@FAIL boot $boot: $*"; exit 1; }
hash() { sha256sum "$1" | cut -d' ' -f1; }
# A mount and a write, as a boot-time fstab mount and its use would be.
use() {
	mkdir -p /mnt/r && mount "$1" /mnt/r
	dd if=/dev/urandom of=/mnt/r/boot$boot.bin bs=64k count=16 status=none
	echo "boot $boot" >>/mnt/r/log.txt
	umount /mnt/r
}

mkdir -p /etc/bdsnap
if [ "$boot" = 1 ]; then
	mkfs.ext4 -q -F "$ETC"
	mount "$ETC" /etc/bdsnap && chmod 0700 /etc/bdsnap
	printf 'correct horse battery staple\n' >$PW && chmod 0600 $PW
	for d in "$A" "$B"; do mkfs.ext4 -q -F "$d"; use "$d"; done
	bdsnap setup --password-file $PW
	bdsnap load
	bdsnap activate --persistent "$A" --password-file $PW
	bdsnap activate --persistent "$B" --password-file $PW
	grep -q '"serial:bdsnap-disk0"' /etc/bdsnap/bdsnap.json || fail "A not recorded by identity"
	hash "$A" >/etc/bdsnap/a0 && hash "$B" >/etc/bdsnap/b0
	use "$A" && use "$B"
	bdsnap stop --unload
else
	mount "$ETC" /etc/bdsnap
	# What bdsnap-start.service does before local-fs-pre.target, password from the file.
	bdsnap start --wait 10
	[ "$boot" = 2 ] && { hash "$A" >/etc/bdsnap/a1; hash "$B" >/etc/bdsnap/b1; }
	use "$A" && use "$B"
	bdsnap stop
	n=$(bdsnap sessions "$A" --json | grep -c '"id"') || true
	[ "$n" = "$boot" ] || fail "A has $n sessions, expected $boot (one per boot)"
	if [ "$boot" = 3 ]; then
		# Each chain stays with its disk: back to before boot 2's mount, then boot 1's.
		for s in 2 1; do
			want=$([ "$s" = 1 ] && cat /etc/bdsnap/a0 || cat /etc/bdsnap/a1)
			bdsnap restore "$A" --session "$s" --yes
			[ "$(hash "$A")" = "$want" ] || fail "A after restore to session $s"
			want=$([ "$s" = 1 ] && cat /etc/bdsnap/b0 || cat /etc/bdsnap/b1)
			bdsnap restore "$B" --session "$s" --yes
			[ "$(hash "$B")" = "$want" ] || fail "B after restore to session $s"
		done
		# The old name of A is B now: asking for A's first session there is refused.
		old=$(bdsnap sessions "$A" --json | grep -o '"dev_vd[a-z]_[^"]*' | head -1 | tr -d '"')
		if bdsnap restore "$B" --session "$old" --yes 2>/tmp/err; then fail "restore of A's session into B"; fi
		cat /tmp/err
	fi
fi
umount /etc/bdsnap
echo "@@ boot $boot ok"
