// vm: disks=1 store-size=64M timeout=600
/**
 * The module builds for the running kernel, loads, shows itself in sysfs and
 * as /dev/bdsnap, and unloads leaving nothing behind, repeatedly.
 */
import assert from "node:assert/strict";
import { dmesg, modulePath, moduleLoaded, sh, shTry } from "./_helpers.ts";

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

Deno.test("load and unload 100 times in a row leaks nothing", async () => {
  const cycle = (n: number) =>
    sh(`for i in $(seq ${n}); do insmod ${modulePath()} && rmmod bdsnap || exit 1; done`);
  // The first loads populate caches that stay (sysfs, kprobe slots): warm up.
  await cycle(10);
  const before = await slabObjects();
  await cycle(100);
  assert.equal(await moduleLoaded(), false);
  // No kprobe or ftrace op of ours may be left registered.
  const kprobes = await shTry("cat /sys/kernel/debug/kprobes/list");
  assert.doesNotMatch(kprobes.stdout, /bdsnap/);
  const after = await slabObjects();
  // Unrelated kernel activity moves slab counts a little; a leak per load
  // would show as at least 100 objects.
  assert.ok(after - before < 100, `kmalloc objects grew by ${after - before}`);
  assert.doesNotMatch(await dmesg(), /bdsnap.*(leak|fail)/i);
});

async function slabObjects(): Promise<number> {
  await sh("sync; echo 3 > /proc/sys/vm/drop_caches");
  const text = await Deno.readTextFile("/proc/slabinfo");
  let n = 0;
  for (const line of text.split("\n")) {
    const f = line.split(/\s+/);
    if (/^kmalloc-(\d+|rcl)/.test(f[0])) n += Number(f[1]);
  }
  return n;
}
