// vm: disks=1 disk-size=256M store-size=256M memory=512 timeout=1200 tier=full
/**
 * Memory pressure (issue 17): the write path's ops, extents, bvec arrays and
 * pages come from mempools (kmod/cow.c), so a GFP_NOIO allocation that finds
 * no free memory waits for one of ours instead of failing the session. "No
 * session may fail unless its store does."
 *
 * A 512 MiB guest, no swap. A python hog (oom_score_adj 1000, so an OOM kill
 * would take it and not the test driver or fio) allocates and touches
 * anonymous memory until MemAvailable is down to HOG_TARGET_MIB, keeps it
 * there (it gives chunks back below HOG_FLOOR_MIB, so that the OOM killer
 * never runs: its report would fail the dmesg gate anyway) and keeps
 * re-touching what it holds. Under it, fio random writes with crc32c
 * verification, direct and buffered, run on ext4 on an activated disk; the
 * unmount (which closes the session and syncs its store) runs under it too.
 * The CLI (a Deno start-up each) runs only while the hog is stopped.
 *
 * Files stay on the test disk: the guest root is a tmpfs overlay (half the
 * memory), so a file in /tmp would be memory too. The hog's log in /run is a
 * few KiB.
 *
 * The pressure is printed in the run's log ("[memory_pressure] ..." lines:
 * /proc/meminfo at each step, the hog's samples every 10 s, and the minimum
 * of its 0.25 s samples). Measured on 6.12 (2026-12-01, TCG, busy host): the
 * hog held 280-284 MiB of a 462 MiB MemTotal; MemAvailable 14-25 MiB through
 * fio and the unmount, minimum 11 MiB, MemFree minimum 4 MiB, no swap; it
 * gave one 4 MiB chunk back. fio wrote at 0.3-0.6 MiB/s under it.
 *
 * Full tier: about 10 minutes of VM time here (the hog takes ~50 s to fill
 * the guest, fio ~4.5 min, six CLI start-ups 2.5 min on a busy host).
 */
import assert from "node:assert/strict";
import { dmesg, sh, sha256, shTry, testDisks } from "./_helpers.ts";
import { activate, deactivate, loadModule, restore, sessions } from "./_bdsnap.ts";

/** MemAvailable the hog leaves, and the level below which it gives memory back. */
const HOG_TARGET_MIB = 24;
const HOG_FLOOR_MIB = 12;

const HOG = `
import mmap, os, signal, sys, time
target, floor = int(sys.argv[1]) << 20, int(sys.argv[2]) << 20
CHUNK = 4 << 20
with open("/proc/self/oom_score_adj", "w") as f:
    f.write("1000")
stop = False
def term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, term)
def meminfo():
    d = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":")
            d[k] = int(v.split()[0]) >> 10
    return d
ones = b"\\x01" * CHUNK
chunks, turn, ready = [], 0, False
low = {"MemAvailable": 1 << 30, "MemFree": 1 << 30}
gave_back = 0
started = last = time.time()
while not stop:
    m = meminfo()
    for k in low:
        low[k] = min(low[k], m[k])
    avail = m["MemAvailable"] << 20
    if avail > target + CHUNK:
        for _ in range(min((avail - target) // CHUNK, 8)):
            c = mmap.mmap(-1, CHUNK)
            c[:] = ones
            chunks.append(c)
    elif avail < floor and chunks:
        for _ in range(min(len(chunks), (floor - avail) // CHUNK + 1)):
            chunks.pop().close()
            gave_back += 1
    elif chunks:
        if not ready:
            ready = True
            print("hog: ready", flush=True)
        turn = (turn + 1) % len(chunks)
        chunks[turn][:] = ones
    now = time.time()
    if now - last >= 10:
        last = now
        print("hog: t=%.0fs MemAvailable=%d MemFree=%d Dirty=%d Writeback=%d hog=%d MiB" % (
            now - started, m["MemAvailable"], m["MemFree"], m["Dirty"], m["Writeback"],
            len(chunks) * CHUNK >> 20), flush=True)
    time.sleep(0.25)
print("hog: min MemAvailable=%d MiB min MemFree=%d MiB SwapTotal=%d MiB gave back %d chunks" % (
    low["MemAvailable"], low["MemFree"], meminfo()["SwapTotal"], gave_back), flush=True)
`;

/**
 * Print to the run's log. `deno test --quiet` swallows a test's stdout and
 * stderr (console.log included), so in the VM write to the serial port the
 * harness streams (scripts/vm/guest/stage2.sh: the command's output).
 */
function report(text: string): void {
  const line = new TextEncoder().encode(
    text.trimEnd().split("\n").map((l) => `[memory_pressure] ${l}\n`).join(""),
  );
  try {
    const tty = Deno.openSync("/dev/ttyS1", { write: true });
    tty.writeSync(line);
    tty.close();
  } catch {
    console.log(text);
  }
}

async function meminfo(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const line of (await Deno.readTextFile("/proc/meminfo")).split("\n")) {
    const m = /^(\w+):\s+(\d+)/.exec(line);
    if (m) out[m[1]] = Number(m[2]) >> 10;
  }
  return out;
}

function show(what: string, m: Record<string, number>): void {
  report(
    `${what}: MemTotal ${m.MemTotal} MemFree ${m.MemFree} MemAvailable ${m.MemAvailable} ` +
      `Dirty ${m.Dirty} Writeback ${m.Writeback} SwapTotal ${m.SwapTotal} (MiB)`,
  );
}

/** Wait for a line in the hog's log; fails if the hog died first. */
async function waitHog(pid: number, log: string, line: string, seconds: number): Promise<void> {
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    const text = await Deno.readTextFile(log).catch(() => "");
    if (text.includes(line)) return;
    if ((await shTry(`kill -0 ${pid}`)).code !== 0) {
      assert.fail(`the hog died before '${line}':\n${text}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.fail(`no '${line}' from the hog in ${seconds} s:\n${await Deno.readTextFile(log)}`);
}

Deno.test("fio verify under memory pressure: session closed, exact restore", async () => {
  const [dev] = testDisks();
  await loadModule();
  await sh("swapoff -a");
  const start = await meminfo();
  show("start", start);
  assert.equal(start.SwapTotal, 0, "the pressure must be on RAM: no swap");

  await sh(`mkfs.ext4 -q -F ${dev}`);
  await sh(
    `mkdir -p /mnt/t && mount -t ext4 ${dev} /mnt/t && ` +
      "dd if=/dev/urandom of=/mnt/t/pre bs=1M count=48 status=none && umount /mnt/t",
  );
  const before = await sha256(dev);
  await activate(dev);
  const dmesgBefore = (await dmesg()).split("\n").length;

  await sh(`mount -t ext4 ${dev} /mnt/t`);
  await Deno.writeTextFile("/run/bdsnap-hog.py", HOG);
  const log = "/run/bdsnap-hog.log";
  const pid = Number(
    (await sh(
      `python3 /run/bdsnap-hog.py ${HOG_TARGET_MIB} ${HOG_FLOOR_MIB} ` +
        `>${log} 2>&1 </dev/null & echo $!`,
    )).trim(),
  );
  let hogLog = "";
  try {
    await waitHog(pid, log, "hog: ready", 300);
    show("hog ready", await meminfo());
    // Direct: 4 KiB random writes, each a copy-on-write of a chunk the
    // session has not saved yet (or an overwrite of one it has). Buffered:
    // the page cache has to make room under the hog, and writeback goes
    // through the hook from the flusher. Both verify every block (crc32c)
    // and stop at the first mismatch.
    const fio = await sh(
      "cd /mnt/t && " +
        "fio --name=direct --directory=/mnt/t --rw=randwrite --bs=4k --size=8M --numjobs=2 " +
        "--iodepth=8 --ioengine=libaio --direct=1 --verify=crc32c --do_verify=1 " +
        "--verify_fatal=1 --group_reporting && " +
        "fio --name=buffered --directory=/mnt/t --rw=randwrite --bs=16k --size=16M --numjobs=2 " +
        "--ioengine=psync --verify=crc32c --do_verify=1 --verify_fatal=1 --fsync=16 " +
        "--end_fsync=1 --group_reporting",
    );
    report(fio.split("\n").filter((l) => /err=|WRITE:|READ:|verify/.test(l)).join("\n"));
    show("after fio", await meminfo());
    await sh("umount /mnt/t");
    show("after umount", await meminfo());
  } finally {
    await shTry(
      `kill ${pid}; for i in $(seq 60); do kill -0 ${pid} 2>/dev/null || break; sleep 0.5; done`,
    );
    await shTry("mountpoint -q /mnt/t && umount /mnt/t");
    hogLog = await Deno.readTextFile(log).catch(() => "(no hog log)");
    report(hogLog);
  }
  const low = /min MemAvailable=(\d+) MiB/.exec(hogLog);
  assert.ok(low, "the hog printed its minimum");
  assert.ok(Number(low[1]) < 40, `MemAvailable never went below 40 MiB (min ${low[1]} MiB)`);

  const kernel = (await dmesg()).split("\n").slice(dmesgBefore - 1).join("\n");
  const bad = kernel.split("\n").filter((l) =>
    /bdsnap.*fail|page allocation failure|invoked oom-killer|Out of memory/i.test(l)
  );
  assert.deepEqual(bad, [], `kernel log under pressure:\n${kernel}`);
  assert.match(kernel, /bdsnap: .*session \S+ closed: \d+ records/);

  await deactivate(dev);
  const [s] = (await sessions(dev)).slice(-1);
  assert.equal(s.state, "closed", `session ${s.id}: ${JSON.stringify(s)}`);
  await restore(dev, s.id);
  assert.equal(await sha256(dev), before);
});
