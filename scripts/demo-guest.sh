#!/bin/bash
# The Quick-start demo, run inside the VM: activate, mount, write, unmount,
# restore, and compare whole-device hashes.
set -euo pipefail
dev=${BDSNAP_TEST_DISKS%% *}
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
export BDSNAP_KDF_ITERATIONS=1000   # software emulation: keep the KDF cheap here

echo "demo password for the VM" >/run/pw
step bdsnap setup --password-file /run/pw
step bdsnap load
step mkfs.ext4 -q -F "$dev"
before=$(sha256sum "$dev" | cut -d' ' -f1)
echo "sha256 before mount: $before"
step bdsnap activate "$dev" --password-file /run/pw
mkdir -p /mnt/demo
step mount "$dev" /mnt/demo
step dd if=/dev/urandom of=/mnt/demo/data bs=1M count=16 status=none
step rm -rf /mnt/demo/lost+found
step bdsnap status
step umount /mnt/demo
after=$(sha256sum "$dev" | cut -d' ' -f1)
echo "sha256 after unmount: $after"
step bdsnap sessions "$dev"
session=$(bdsnap sessions "$dev" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d if isinstance(d,list) else d["sessions"]; print(d[-1]["id"])')
step bdsnap deactivate "$dev" --password-file /run/pw
step bdsnap restore "$dev" --session "$session" --yes
restored=$(sha256sum "$dev" | cut -d' ' -f1)
echo "sha256 after restore: $restored"
if [ "$restored" = "$before" ]; then
	echo "identical to the pre-mount state"
else
	echo "MISMATCH"
	exit 1
fi
step bdsnap unload
