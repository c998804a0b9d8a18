/**
 * `deno task demo [--kernel 6.1|6.12|6.12-rt|newest]`: boot Debian's kernel under QEMU and
 * walk through activate, mount, write, unmount, restore, identical hash.
 * @module
 */
import { parseArgs } from "node:util";
import { ensureHostTools } from "./vm/host_tools.ts";
import { parseSeries, provisionKernel } from "./vm/kernels.ts";
import { buildKmod } from "./vm/kmod.ts";
import { runVm } from "./vm/qemu.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { kernel: { type: "string", default: "6.12" } },
});
await ensureHostTools();
const kernel = await provisionKernel(parseSeries(values.kernel!));
await buildKmod(kernel);
const r = await runVm({
  kernel,
  command: "bash scripts/demo-guest.sh",
  disks: 1,
  diskSize: 256 * 1024 ** 2,
  storeSize: 512 * 1024 ** 2,
  stream: true,
  timeout: 600,
});
for (const f of r.findings) console.error(`[demo] kernel log: ${f.kind}: ${f.line}`);
console.error(
  `[demo] ${kernel.release}: ${r.ok ? "done" : "FAILED"} in ${r.totalSeconds.toFixed(1)} s`,
);
Deno.exit(r.ok ? 0 : 1);
