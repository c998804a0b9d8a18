# Soak (guest side): 4 activated ext4 disks, fio with crc32c verify on each
# for MINUTES, then every session closes, the 4 disks are restored and must
# hash exactly as before the mount, and kernel memory (SUnreclaim, Slab, the
# module's in-flight bytes) must return near its baseline.
#   soak.sh MINUTES
. "$(dirname "$0")/_guest.sh"
minutes=$1
problems=()
lost=0
rel_load || exit 1
meminfo() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }
inflight() { python3 -c 'import bdsnap_ctl as b, os; fd = os.open("/dev/bdsnap", os.O_RDWR); s = b.status(fd); print(s["inflight_bytes"], s["inflight_peak"], s["bytes_saved"])'; }
# KASAN (the debug kernel) keeps freed objects in a quarantine of up to 1/32
# of RAM before they go back to their slab, so SUnreclaim counts them as in
# use; shrinking a cache takes its objects out of the quarantine.
kasan=0
grep -qw kasan_quarantine_reduce /proc/kallsyms && kasan=1
KMEMLEAK=/sys/kernel/debug/kmemleak
settle() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	if [ $kasan = 1 ]; then
		for c in /sys/kernel/slab/*/shrink; do echo 1 >"$c" 2>/dev/null; done
	fi
	sleep 2
}
# Bytes per slab cache (active objects x object size), to name the caches that grew.
slab_bytes() { awk 'NR > 2 { print $1, $2 * $4 }' /proc/slabinfo | sort; }

declare -A before sid
for i in 0 1 2 3; do
	d=${DISKS[$i]}
	mkfs.ext4 -q -F -E nodiscard "$d" || exit 1
	mkdir -p /mnt/soak$i
	mount "$d" /mnt/soak$i && dd if=/dev/urandom of=/mnt/soak$i/base bs=1M count=16 status=none &&
		umount /mnt/soak$i || exit 1
	before[$d]=$(sha256sum "$d" | cut -d' ' -f1)
done
settle
base_sunreclaim=$(meminfo SUnreclaim) base_slab=$(meminfo Slab)
slab_bytes >/tmp/slab.base
# Only what the sessions leave behind should count as a kmemleak suspect.
[ -w $KMEMLEAK ] && { echo scan >$KMEMLEAK; echo clear >$KMEMLEAK; }

for i in 0 1 2 3; do
	d=${DISKS[$i]}
	python3 -c 'import bdsnap_ctl as b, sys; sys.exit(b.activate(sys.argv[1]))' "$d" || exit 1
	mount "$d" /mnt/soak$i || exit 1
done
pids=()
for i in 0 1 2 3; do
	fio --name=soak$i --filename=/mnt/soak$i/fio --size=32M --rw=randwrite --bs=4k-64k \
		--ioengine=psync --fsync=32 --verify=crc32c --verify_backlog=256 --verify_fatal=1 \
		--time_based --runtime=$((minutes * 60)) --output=/tmp/fio$i.out >/dev/null 2>&1 &
	pids+=($!)
done
peak_sunreclaim=0
samples=0
while kill -0 "${pids[@]}" 2>/dev/null; do
	s=$(meminfo SUnreclaim)
	[ "$s" -gt "$peak_sunreclaim" ] && peak_sunreclaim=$s
	samples=$((samples + 1))
	[ $((samples % 10)) = 1 ] && note "soak t=$((samples * 6))s SUnreclaim ${s} kB, in flight/peak/saved bytes: $(inflight)"
	sleep 6
done
for i in 0 1 2 3; do
	wait "${pids[$i]}" || problems+=("fio $i failed: $(grep -m2 -i 'err\|verify' /tmp/fio$i.out)")
done
read -r _ inflight_peak bytes_saved <<<"$(inflight)"
for i in 0 1 2 3; do
	d=${DISKS[$i]}
	sid[$d]=$(bdsnap status --json | python3 -c '
import json, sys
print([s["id"] for s in json.load(sys.stdin)["sessions"] if s["device"] == sys.argv[1]][0])' "$d")
	bounded 300 umount /mnt/soak$i || problems+=("umount $d failed")
	python3 -c 'import bdsnap_ctl as b, sys; sys.exit(b.deactivate(sys.argv[1]))' "$d" ||
		problems+=("deactivate $d failed")
done
settle
after_sunreclaim=$(meminfo SUnreclaim) after_slab=$(meminfo Slab)
read -r after_inflight _ <<<"$(inflight)"
slabs=$(grep -i bdsnap /proc/slabinfo | awk '{ printf "%s=%s ", $1, $2 }')
slab_bytes >/tmp/slab.after
grown=$(join /tmp/slab.base /tmp/slab.after | awk '$3 - $2 >= 262144 { printf "%d %s\n", ($3 - $2) / 1024, $1 }' |
	sort -rn | head -5 | awk '{ printf "%s +%d kB, ", $2, $1 }')

for d in "${DISKS[@]:0:4}"; do
	state=$(bdsnap sessions "$d" --json | python3 -c '
import json, sys
print([s["state"] for s in json.load(sys.stdin)["sessions"] if s["id"] == sys.argv[1]][0])' "${sid[$d]}")
	[ "$state" = closed ] || problems+=("session ${sid[$d]} is $state")
	bdsnap restore "$d" --session "${sid[$d]}" --yes >/dev/null || problems+=("restore $d failed")
	now=$(sha256sum "$d" | cut -d' ' -f1)
	if [ "$now" != "${before[$d]}" ]; then
		problems+=("$d differs after restore")
		lost=$((lost + 1))
	fi
done
bounded 60 rmmod bdsnap || problems+=("rmmod failed")
settle
unload_sunreclaim=$(meminfo SUnreclaim)
growth=$((after_sunreclaim - base_sunreclaim))
# Near baseline: within 4 MiB of unreclaimable slab (ext4 and block-layer caches move too).
[ "$growth" -le 4096 ] || problems+=("SUnreclaim grew by ${growth} kB after the sessions closed (${grown%, })")
leaks=none
if [ -w $KMEMLEAK ]; then
	# The precise oracle where the kernel has one: after rmmod, nothing the
	# sessions allocated may be left unreferenced. kmemleak skips objects
	# younger than 5 s; a second scan settles ones still on a stack.
	sleep 6
	echo scan >$KMEMLEAK
	echo scan >$KMEMLEAK
	leaks=$(grep -c '^unreferenced object' $KMEMLEAK)
	[ "$leaks" = 0 ] ||
		problems+=("kmemleak: $leaks objects unreferenced after rmmod: $(grep -m2 -A14 '^unreferenced object' $KMEMLEAK | tr '\n' ' ')")
fi
[ "$after_inflight" = 0 ] || problems+=("module still holds $after_inflight bytes in flight")
local_note="$minutes min x 4 devices; ${bytes_saved} bytes saved; in-flight peak ${inflight_peak} B; SUnreclaim kB: base ${base_sunreclaim}, peak ${peak_sunreclaim}, after close ${after_sunreclaim} (${growth:+$growth}), after rmmod ${unload_sunreclaim}; Slab kB ${base_slab} -> ${after_slab}${grown:+ (grew most: ${grown%, })}; kmemleak suspects after rmmod: ${leaks}; 4/4 restores exact${slabs:+; caches after close: $slabs}"
IFS=';'
run_result "$([ ${#problems[@]} = 0 ] && echo 1 || echo 0)" "$lost" "${problems[*]:-$local_note}" \
	"{\"minutes\": $minutes, \"bytes_saved\": $bytes_saved, \"inflight_peak\": $inflight_peak, \"sunreclaim_kb\": {\"base\": $base_sunreclaim, \"peak\": $peak_sunreclaim, \"after_close\": $after_sunreclaim, \"after_rmmod\": $unload_sunreclaim}, \"slab_kb\": {\"base\": $base_slab, \"after_close\": $after_slab}, \"kasan_quarantine_drained\": $kasan, \"kmemleak_suspects\": \"$leaks\"}"
