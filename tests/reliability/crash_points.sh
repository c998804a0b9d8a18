# Every crash point (guest side): xfstests generic/482's method applied to
# the pair origin + store. One boot:
#   1. disk 0 is cut in two with dm-linear: D (origin + store, CP_D_MIB) and
#      the log device (the rest). D's initial image is saved to a file.
#   2. D goes under one dm-log-writes target (cp-log); the origin (cp-origin)
#      and the store (cp-store) are two dm-linear devices over different
#      ranges of cp-log, so every completed write of either lands in ONE log,
#      in one global order (siblings: the module accepts that store).
#   3. ext4 on the origin (smaller than it: a raw region follows), its
#      whole-device sha256; ext4 on the store, mounted at /snapshot (the
#      module's store_root); mark "premount"; activate, mount, a write-heavy
#      workload (crash_points.py work), unmount, deactivate, unmount the
#      store, mark "final", remove the targets (the log's super is final).
#   4. crash_points.py replay: replay the log to many points and check, at
#      each, that the crashed store restores the crashed origin exactly.
# Environment (all optional): CP_POINTS (sampled write boundaries, default
# 1000), CP_SEED, CP_WORK_SECONDS (workload, default 8), CP_CLI_EVERY (every
# Nth point also through `bdsnap restore`, default 50), CP_FLUSH_POINTS
# (1 = every FLUSH/FUA entry is a point, default 1).
. "$(dirname "$0")/_guest.sh"
set -o pipefail
disk=${DISKS[0]:?no test disk}
export CP_ORIGIN_MIB=${CP_ORIGIN_MIB:-24} CP_FS_MIB=${CP_FS_MIB:-16} CP_STORE_MIB=${CP_STORE_MIB:-32}
d_mib=$((CP_ORIGIN_MIB + CP_STORE_MIB))
W=/dev/shm/cp
mkdir -p $W /mnt/cp
t0=$SECONDS

fail() {
	echo "crash_points: $*" >&2
	run_result 0 0 "setup failed: $*"
	exit 1
}

modprobe -q dm-log-writes || fail "no dm-log-writes module"
modprobe -q algif_hash 2>/dev/null # CRC-32C through AF_ALG (the replayer falls back to Python)
command -v dmsetup >/dev/null || fail "no dmsetup in the guest"
rel_load || fail "module load"
# The harness's store disk, if any, is not ours: the store lives on D.
umount /snapshot 2>/dev/null

disk_sectors=$(blockdev --getsz "$disk")
d_sectors=$((d_mib * 2048))
o_sectors=$((CP_ORIGIN_MIB * 2048))
s_sectors=$((CP_STORE_MIB * 2048))
log_sectors=$((disk_sectors - d_sectors))
[ "$log_sectors" -ge $((512 * 2048)) ] || fail "disk $disk too small: $d_mib MiB + at least 512 MiB of log"
dmsetup create cp-d --table "0 $d_sectors linear $disk 0" || fail "dm cp-d"
dmsetup create cp-logdev --table "0 $log_sectors linear $disk $d_sectors" || fail "dm cp-logdev"
# The log device must start zeroed where the super goes; D starts as it is (saved).
dd if=/dev/zero of=/dev/mapper/cp-logdev bs=1M count=1 oflag=direct status=none
dd if=/dev/mapper/cp-d of=$W/initial.img bs=1M iflag=direct status=none || fail "saving D"

dmsetup create cp-log --table "0 $d_sectors log-writes /dev/mapper/cp-d /dev/mapper/cp-logdev" ||
	fail "dm log-writes"
dmsetup create cp-origin --table "0 $o_sectors linear /dev/mapper/cp-log 0" || fail "dm cp-origin"
dmsetup create cp-store --table "0 $s_sectors linear /dev/mapper/cp-log $o_sectors" || fail "dm cp-store"
ORIGIN=/dev/mapper/cp-origin
export CP_DEV=$ORIGIN

flush_log() { python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' /dev/mapper/cp-log; }
mark() { sync && flush_log && dmsetup message cp-log 0 mark "$1"; }

mkfs.ext4 -q -F -E nodiscard "$ORIGIN" "${CP_FS_MIB}M" || fail "mkfs origin"
python3 "$REL_DIR/crash_points.py" prepare || fail "prepare raw region"
mkfs.ext4 -q -F -E nodiscard -L cp-store /dev/mapper/cp-store || fail "mkfs store"
mount -t ext4 /dev/mapper/cp-store /snapshot && chmod 0700 /snapshot || fail "mount store"
mark premount
premount=$(sha256sum "$ORIGIN" | cut -d' ' -f1)
echo "pre-mount sha256 of $ORIGIN: $premount"

# Writeback every 0.5 s: buffered writes reach the device between fsyncs.
echo 100 >/proc/sys/vm/dirty_expire_centisecs
echo 50 >/proc/sys/vm/dirty_writeback_centisecs
python3 -c 'import bdsnap_ctl as b, sys; e = b.activate(sys.argv[1]); print(f"activate: {b.errname(e)}") if e else None; sys.exit(e)' "$ORIGIN" ||
	fail "activate $ORIGIN (store on a sibling dm-linear)"
mount -t ext4 "$ORIGIN" /mnt/cp || fail "mount origin"
sid=$(ls /snapshot | grep -v lost+found | tail -1)
echo "session $sid"
tw=$SECONDS
python3 "$REL_DIR/crash_points.py" work /mnt/cp "${CP_WORK_SECONDS:-8}" || fail "workload"
work_s=$((SECONDS - tw))
umount /mnt/cp || fail "umount origin"
python3 -c 'import bdsnap_ctl as b, sys; sys.exit(b.deactivate(sys.argv[1]))' "$ORIGIN" || fail "deactivate"
state=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["state"])' "/snapshot/$sid/meta.json")
echo "session $sid: $state"
umount /snapshot || fail "umount store"
final_o=$(sha256sum "$ORIGIN" | cut -d' ' -f1)
final_s=$(sha256sum /dev/mapper/cp-store | cut -d' ' -f1)
mark final
dmsetup remove cp-origin && dmsetup remove cp-store && dmsetup remove cp-log || fail "dm remove"
# Nothing may see the session as open any more: the replayed stores read "interrupted".
rmmod bdsnap || fail "rmmod"
echo "setup and workload: $((SECONDS - t0)) s (workload $work_s s)"

python3 "$REL_DIR/crash_points.py" replay $W/initial.img /dev/mapper/cp-logdev \
	--origin-bytes $((o_sectors * 512)) --store-bytes $((s_sectors * 512)) \
	--premount "$premount" --final-origin "$final_o" --final-store "$final_s" \
	--session "$sid" --closed-state "$state" \
	--points "${CP_POINTS:-1000}" --seed "${CP_SEED:-1}" --cli-every "${CP_CLI_EVERY:-50}" \
	--flush-points "${CP_FLUSH_POINTS:-1}" --setup-seconds $((SECONDS - t0))
rc=$?
dmsetup remove cp-d cp-logdev
exit $rc
