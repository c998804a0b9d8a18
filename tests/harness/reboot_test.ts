/**
 * Persistence across reboots, on every kernel of the run (issue 21): three
 * boots of one set of disk images.
 * 1. `activate --persistent` two disks A and B, a session on each, `stop`.
 * 2. The same disks: `bdsnap start` (what bdsnap-start.service runs before
 *    local filesystems mount), and the boot's mounts are sessions.
 * 3. The disks attached the other way round, so A and B swap /dev names:
 *    each chain stays with its own disk, and restores of both across the
 *    reboots give the pre-mount whole-device sha256 exactly.
 * /etc/bdsnap lives on a third disk, as /etc does on a server. The guest's
 * side is tests/harness/reboot.sh.
 */
import assert from "node:assert/strict";
import { parseSeries, provisionKernel } from "../../scripts/vm/kernels.ts";
import { runVmRetryingBoot } from "../../scripts/vm/qemu.ts";
import { runChecked } from "../../scripts/vm/_process.ts";

const kernels = (Deno.env.get("BDSNAP_TEST_KERNELS") ?? "6.1,6.12").split(",").map(parseSeries);
const MiB = 1024 ** 2;

async function image(path: string, size: number): Promise<void> {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  await f.truncate(size);
  f.close();
}

for (const series of kernels) {
  Deno.test(`[${series}] reboots: boot mounts are sessions; renumbered disks keep their chains`, async () => {
    const k = await provisionKernel(series);
    const dir = await Deno.makeTempDir({ prefix: "bdsnap-reboot-" });
    const [a, b, etc, store] = ["a", "b", "etc", "store"].map((n) => `${dir}/${n}.img`);
    for (const f of [a, b]) await image(f, 64 * MiB);
    await image(etc, 16 * MiB);
    await image(store, 256 * MiB);
    await runChecked("mkfs.ext4", ["-q", "-F", "-E", "nodiscard", store]);
    const serials = ["bdsnap-disk0", "bdsnap-disk1", "bdsnap-disk2"];
    for (const n of [1, 2, 3]) {
      const swapped = n === 3;
      const r = await runVmRetryingBoot({
        kernel: k,
        command: `bash tests/harness/reboot.sh ${n}`,
        diskFiles: swapped ? [b, a, etc] : [a, b, etc],
        diskSerials: swapped ? [serials[1], serials[0], serials[2]] : serials,
        storeFile: store,
        timeout: 600,
      }, (why) => console.log(`[${series}] boot ${n}: booting again (${why})`));
      const gate = r.findings.map((f) => `${f.kind}: ${f.line}`).join("; ");
      assert.ok(
        r.ok && r.output.includes(`@@ boot ${n} ok`),
        `boot ${n} on ${k.release}: status ${r.status}${gate ? `, kernel log: ${gate}` : ""}\n` +
          `${r.output.slice(-3000)}\nlogs: ${r.runDir}`,
      );
      if (swapped) assert.match(r.output, /@@ boot 3: A=\/dev\/vdb B=\/dev\/vda/, "renumbered");
      else assert.match(r.output, new RegExp(`@@ boot ${n}: A=/dev/vda B=/dev/vdb`));
    }
    await Deno.remove(dir, { recursive: true });
  });
}
