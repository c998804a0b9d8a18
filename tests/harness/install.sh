#!/bin/bash
# The guest side of tests/harness/install_test.ts: a server of the kernel's
# Debian release, without network, installs bdsnap with the README's
# commands, verbatim ($INSTALL_SERVER_SH, $INSTALL_MANUAL_SH), from the
# packages in $INSTALL_DIST and a local apt mirror at $INSTALL_APT_REPO.
# Markers: "@@ step NAME UPTIME" as each phase starts, "@@FAIL …", "@@ ok".
set -euo pipefail
# The server's own PATH and environment: the harness's bdsnap (the working
# tree's, on PATH in every VM) and its module build must be out of reach.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
unset BDSNAP_MODULE BDSNAP_VM_BUILD BDSNAP_DENO BDSNAP_FIXTURES DENO_DIR
export DEBIAN_FRONTEND=noninteractive
rel=$(uname -r)
disk=${BDSNAP_TEST_DISKS%% *}
fail() { echo "@@FAIL $*"; exit 1; }
step() { echo "@@ step $1 $(cut -d' ' -f1 /proc/uptime)"; }
hash() { sha256sum "$1" | cut -d' ' -f1; }
# Every file of the store with its content hash, size and mode.
store_listing() { (cd /snapshot && find . -printf '%p %s %m\n' | sort && find . -type f -print0 | sort -z | xargs -0 -r sha256sum) | sha256sum; }
echo "@@ system: $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $rel"

step setup
# The mirror instead of the network: the only apt source.
rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*
echo "$INSTALL_APT_LINE" >/etc/apt/sources.list.d/bdsnap-test-mirror.list
# What container images do, for speed under emulation: no fsync per
# unpacked file (the overlay is in memory anyway), no man-db index rebuild.
echo force-unsafe-io >/etc/dpkg/dpkg.cfg.d/bdsnap-test
echo 'man-db man-db/auto-update boolean false' | debconf-set-selections 2>/dev/null || true
rm -f /var/lib/man-db/auto-update
apt-get update -qq >/tmp/apt-update.log 2>&1 || { cat /tmp/apt-update.log; fail "apt-get update"; }
mkdir -p /root/dist /root/clone
cp "$INSTALL_DIST"/*.deb /root/dist/
cp -r "$BDSNAP_REPO/kmod" /root/clone/
# The harness's module builds live in the repository's .cache: hide them.
[ -d "$BDSNAP_REPO/.cache" ] && mount -t tmpfs tmpfs "$BDSNAP_REPO/.cache"
printf '%s\n' "$INSTALL_SERVER_SH" >/root/server.sh
printf '%s\n' "$INSTALL_MANUAL_SH" >/root/manual.sh

step server
cd /root
bash -ex /root/server.sh 2>&1 | tee /tmp/server.log
[ "${PIPESTATUS[0]}" = 0 ] || fail "the README's server commands"

step checks
[ "$(command -v bdsnap)" = /usr/sbin/bdsnap ] || fail "bdsnap is $(command -v bdsnap), not the package's"
dkms status | tee /tmp/dkms.txt
# Fixed strings: a Debian 13 release has a "+" in it.
grep -F "bdsnap/" /tmp/dkms.txt | grep -F ", $rel, " | grep -q ": installed$" ||
	fail "dkms status: not installed for $rel"
ko=$(ls /lib/modules/"$rel"/updates/dkms/bdsnap.ko*) || fail "no DKMS module in /lib/modules/$rel/updates/dkms"
grep -q "^loaded $ko " /tmp/server.log || fail "bdsnap load did not load $ko: $(grep '^loaded' /tmp/server.log)"
grep -q "^bdsnap " /proc/modules || fail "bdsnap is not loaded"
echo "@@ loaded $ko"

step round-trip
pw=/etc/bdsnap/password
mkfs.ext4 -q -F "$disk"
mkdir -p /mnt/t && mount "$disk" /mnt/t && echo before >/mnt/t/a.txt && umount /mnt/t
h0=$(hash "$disk")
bdsnap activate "$disk" --password-file $pw
mount "$disk" /mnt/t
dd if=/dev/urandom of=/mnt/t/b.bin bs=64k count=32 status=none
echo after >/mnt/t/a.txt
umount /mnt/t
[ "$(hash "$disk")" != "$h0" ] || fail "the session's writes did not change the device"
# A restore needs the device deactivated (the restorer refuses an activated one).
bdsnap deactivate "$disk" --password-file $pw
bdsnap restore "$disk" --session 1 --yes
[ "$(hash "$disk")" = "$h0" ] || fail "after restore: the device differs from before the mount"
bdsnap unload
echo "@@ restored exactly"

step remove
before=$(store_listing)
[ -n "$(ls /snapshot)" ] || fail "the store is empty before remove"
apt-get remove -y bdsnap bdsnap-dkms
[ ! -e /usr/sbin/bdsnap ] || fail "/usr/sbin/bdsnap after remove"
[ -e /etc/bdsnap/passwd.hash ] || fail "remove took /etc/bdsnap/passwd.hash"
[ -z "$(ls /lib/modules/"$rel"/updates/dkms/bdsnap.ko* 2>/dev/null)" ] || fail "the DKMS module after remove"
[ "$(store_listing)" = "$before" ] || fail "remove changed the store"
apt-get purge -y bdsnap bdsnap-dkms
[ ! -e /etc/bdsnap ] || fail "/etc/bdsnap after purge"
[ "$(store_listing)" = "$before" ] || fail "purge changed the store"
echo "@@ store left alone"

step manual
# Without DKMS, in a clone (the module's sources, copied clean).
cd /root/clone
bash -ex /root/manual.sh
ko=$(ls /lib/modules/"$rel"/updates/bdsnap.ko*) || fail "make -C kmod install put no module in updates/"
apt-get install -y /root/dist/bdsnap_*.deb
# Purged: a new password, as the README sets it.
(umask 077 && head -c 24 /dev/urandom | base64 >/etc/bdsnap/password)
bdsnap setup --password-file /etc/bdsnap/password
bdsnap load | tee /tmp/load.log
grep -q "^loaded $ko " /tmp/load.log || fail "bdsnap load did not load $ko"
bdsnap unload
echo "@@ manual install loads"
step done
echo "@@ ok"
