// vm: disks=1 store-size=64M timeout=1200
/**
 * The module builds for the running kernel, loads, shows itself in sysfs and
 * as /dev/bdsnap, and unloads leaving nothing behind, repeatedly.
 */
import assert from "node:assert/strict";
import { dmesg, fullTierOnly, moduleLoaded, modulePath, sh, shTry } from "./_helpers.ts";

Deno.test("module loads, publishes its syscall numbers, and unloads cleanly", async () => {
  assert.equal(await moduleLoaded(), false);
  await sh(`insmod ${modulePath()}`);
  assert.ok(await moduleLoaded());
  const nrA = Number((await Deno.readTextFile("/sys/module/bdsnap/parameters/nr_activate")).trim());
  const nrD = Number(
    (await Deno.readTextFile("/sys/module/bdsnap/parameters/nr_deactivate")).trim(),
  );
  assert.ok(nrA > 0 && nrD > 0 && nrA !== nrD, `syscall numbers ${nrA}, ${nrD}`);
  const st = await Deno.stat("/dev/bdsnap");
  assert.ok(st.isCharDevice);
  assert.equal(st.mode! & 0o777, 0o600);
  // The password hash parameter must not be visible through sysfs.
  const params = [...Deno.readDirSync("/sys/module/bdsnap/parameters")].map((e) => e.name);
  assert.ok(!params.includes("passwd_hash"), `parameters: ${params.join(", ")}`);
  await sh("rmmod bdsnap");
  assert.equal(await moduleLoaded(), false);
  assert.equal((await shTry("test -e /dev/bdsnap")).code, 1);
});

Deno.test("load and unload 100 times in a row leaks nothing", fullTierOnly, async () => {
  if (await hasKmemleak()) {
    // The debug kernel: kmemleak finds every object nothing points to any
    // more, which is what a leak is once the module's own memory is gone.
    // Slab counts mislead there: KASAN's quarantine keeps freed objects
    // allocated for a while, more of them the more a load frees.
    const reports = await unreferencedAfterCycles(modulePath(), "bdsnap");
    assert.deepEqual(reports, [], "kmemleak: objects left unreferenced by 100 cycles");
  } else {
    // Loading any module moves slab counts by tens of objects (sysfs, module
    // loader). The baseline is the same 100 cycles of a module that does
    // nothing; a leak of one object per load shows as +100 in some cache.
    const noop = `${Deno.env.get("BDSNAP_FIXTURES")}/bdsnap_noop.ko`;
    const baseline = await growth(noop, "bdsnap_noop");
    const ours = await growth(modulePath(), "bdsnap");
    const leaks = Object.entries(ours)
      .filter(([cache, d]) =>
        cache.startsWith("kmalloc") && d - Math.max(0, baseline[cache] ?? 0) >= 100
      )
      .map(([cache, d]) => `${cache} +${d} (noop module: ${baseline[cache] ?? 0})`);
    assert.deepEqual(leaks, [], "slab caches that grew by one object per load or more");
  }
  assert.equal(await moduleLoaded(), false);
  // No kprobe or ftrace op of ours may be left registered.
  const kprobes = await shTry("cat /sys/kernel/debug/kprobes/list");
  assert.doesNotMatch(kprobes.stdout, /bdsnap/);
  // The unsigned-module taint line says "verification failed"; anything else of ours would not.
  const ourErrors = (await dmesg()).split("\n")
    .filter((l) => /bdsnap/.test(l) && /leak|fail/i.test(l) && !/verification failed/.test(l));
  assert.deepEqual(ourErrors, []);
});

const KMEMLEAK = "/sys/kernel/debug/kmemleak";

async function hasKmemleak(): Promise<boolean> {
  return (await shTry(`test -w ${KMEMLEAK}`)).code === 0;
}

function cycles(ko: string, name: string, n: number): Promise<string> {
  return sh(`for i in $(seq ${n}); do insmod ${ko} && rmmod ${name} || exit 1; done`);
}

/** The "unreferenced object" reports kmemleak makes about 100 cycles, after 10 to warm up. */
async function unreferencedAfterCycles(ko: string, name: string): Promise<string[]> {
  await cycles(ko, name, 10);
  // Forget whatever was suspected before, so only what the cycles leave counts.
  await sh(`echo scan > ${KMEMLEAK}; echo clear > ${KMEMLEAK}`);
  await cycles(ko, name, 100);
  // kmemleak does not report objects younger than 5 s; a second scan settles
  // objects that were still being referenced from a stack during the first.
  await sh(`sleep 6; echo scan > ${KMEMLEAK}; echo scan > ${KMEMLEAK}`);
  const text = await Deno.readTextFile(KMEMLEAK);
  return text.split("\n").filter((l) => /^unreferenced object/.test(l));
}

/** Per-cache object growth over 100 load/unload cycles, after 10 to warm up. */
async function growth(ko: string, name: string): Promise<Record<string, number>> {
  await cycles(ko, name, 10);
  const before = await slabObjects();
  await cycles(ko, name, 100);
  const after = await slabObjects();
  const d: Record<string, number> = {};
  for (const [cache, n] of Object.entries(after)) d[cache] = n - (before[cache] ?? 0);
  return d;
}

async function slabObjects(): Promise<Record<string, number>> {
  await sh("sync; echo 3 > /proc/sys/vm/drop_caches; sleep 1");
  const counts: Record<string, number> = {};
  for (const line of (await Deno.readTextFile("/proc/slabinfo")).split("\n").slice(2)) {
    const f = line.split(/\s+/);
    if (f[0]) counts[f[0]] = Number(f[1]);
  }
  return counts;
}
