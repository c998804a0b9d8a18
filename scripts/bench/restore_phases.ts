/**
 * The restorer's phases, timed one by one against the raw write of the same
 * bytes (docs/PERFORMANCE.md, "Restore, measured by phase"). Runs in the VM:
 *
 *   deno task bench:restore [--kernel 6.1|6.12|6.12-rt|newest]
 *
 * which boots the guest (no module needed) and runs this file again there,
 * with a test disk as the target.
 * A synthetic session of 1 MiB records covering the first `--mib` MiB is
 * written into the store, then, in each round: the checksum pass on this
 * thread, the same pass in workers (starting them counted), the write pass
 * (`writePlan`, `O_DIRECT`, fsync) and `dd oflag=direct` of the same bytes.
 * Page caches are dropped before each step. Before the rounds, both CRC-32C
 * implementations checksum the same bytes in memory (lib/crc32c.ts), so the
 * checksum rate is measured apart from reading the store. Prints a table
 * and JSON.
 * @module
 */
import { parseArgs } from "node:util";
import { writePlan } from "../../lib/apply.ts";
import { CrcPool } from "../../lib/crc_pool.ts";
import { crc32c, crc32cPortable, useFastCrc32c } from "../../lib/crc32c.ts";
import { planRestore } from "../../lib/plan.ts";
import { readSession, verifySessionData } from "../../lib/store.ts";
import { writeSession } from "../../tests/_store_writer.ts";
import { ensureHostTools } from "../vm/host_tools.ts";
import { parseSeries, provisionKernel } from "../vm/kernels.ts";
import { runVm } from "../vm/qemu.ts";

const MiB = 1 << 20;

async function run(cmd: string, args: string[]): Promise<void> {
  const r = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!r.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(r.stderr)}`);
  }
}

async function timed(what: () => Promise<unknown>): Promise<number> {
  await run("sh", ["-c", "sync; echo 3 > /proc/sys/vm/drop_caches"]);
  const t = performance.now();
  await what();
  return (performance.now() - t) / 1000;
}

/** On the host: boot the kernel and run this file in the guest. */
async function boot(series: string, mib: number, rounds: number): Promise<number> {
  await ensureHostTools();
  const kernel = await provisionKernel(parseSeries(series));
  const r = await runVm({
    kernel,
    command:
      `"$BDSNAP_DENO" run -A scripts/bench/restore_phases.ts --mib ${mib} --rounds ${rounds}`,
    disks: 1,
    diskSize: (mib + 64) * MiB,
    storeSize: (mib + 512) * MiB,
    timeout: 3600,
    stream: true,
  });
  for (const f of r.findings) console.error(`kernel log: ${f.kind}: ${f.line}`);
  return r.ok ? 0 : 1;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      kernel: { type: "string", default: "6.12" },
      target: { type: "string" },
      store: { type: "string", default: "/snapshot" },
      mib: { type: "string", default: "256" },
      rounds: { type: "string", default: "2" },
    },
  });
  const mib = Number(values.mib);
  const guestDisks = Deno.env.get("BDSNAP_TEST_DISKS");
  if (!values.target && !guestDisks) return await boot(values.kernel!, mib, Number(values.rounds));
  const target = values.target ?? guestDisks!.split(/\s+/)[0];
  const size = Number(
    (await Deno.readTextFile(`/sys/class/block/${target.split("/").pop()}/size`)).trim(),
  ) * 512;
  const root = await Deno.makeTempDir({ dir: values.store, prefix: "phases-" });
  try {
    const record = new Uint8Array(MiB);
    for (let i = 0; i < record.length; i++) record[i] = (i * 131 + (i >> 12)) & 255;
    const id = await writeSession(root, {
      device: target,
      kind: "block",
      size,
      chunkSize: 4096,
      seq: 1,
      mountTimeNs: Date.now() * 1e6,
      state: "closed",
      unmountedWritesBefore: 0,
      records: Array.from({ length: mib }, (_, i) => ({ devOffset: i * MiB, data: record })),
    });
    const session = await readSession(`${root}/${id}`);
    const plan = planRestore([session], id);
    // The checksum alone, both implementations, the same bytes in memory.
    const crcRate = (f: (d: Uint8Array) => number) => {
      const t = performance.now();
      for (let i = 0; i < mib; i++) f(record);
      return mib / ((performance.now() - t) / 1000);
    };
    const crcImplementation = await useFastCrc32c();
    const crcMiBs = { [crcImplementation]: crcRate(crc32c), portable: crcRate(crc32cPortable) };
    console.log(
      `CRC-32C in memory, MiB/s: ${
        Object.entries(crcMiBs).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(", ")
      } (restorer uses ${crcImplementation})`,
    );
    const rounds = [];
    for (let r = 0; r < Number(values.rounds); r++) {
      const serial = await timed(() => verifySessionData(session));
      let pool: CrcPool | null = null;
      let start = 0;
      const inPool = await timed(async () => {
        const t = performance.now();
        pool = await CrcPool.start();
        start = (performance.now() - t) / 1000;
        await verifySessionData(session, { pool });
      });
      const workers = (pool as CrcPool | null)?.size ?? 0;
      (pool as CrcPool | null)?.close();
      const write = await timed(() => writePlan(plan, target));
      const raw = await timed(() =>
        run("dd", ["if=/dev/zero", `of=${target}`, "bs=1M", `count=${mib}`, "oflag=direct"])
      );
      rounds.push({ serial, start, inPool, workers, write, raw });
    }
    console.log(
      "round  verify(1 thread)  verify(workers, start)  write  raw dd  ratio(1)  ratio(pool)",
    );
    for (const [i, x] of rounds.entries()) {
      console.log(
        `${i + 1}      ${x.serial.toFixed(2)} s          ${x.inPool.toFixed(2)} s (${x.workers}, ${
          x.start.toFixed(2)
        } s)      ${x.write.toFixed(2)} s  ${x.raw.toFixed(2)} s  ${
          (x.raw / (x.serial + x.write)).toFixed(2)
        }      ${(x.raw / (x.inPool + x.write)).toFixed(2)}`,
      );
    }
    console.log(
      JSON.stringify({
        mib,
        cpus: navigator.hardwareConcurrency,
        crc: crcImplementation,
        crcMiBs,
        rounds,
      }),
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
  return 0;
}

Deno.exit(await main());
