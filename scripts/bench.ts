/**
 * `deno task bench [--kernel 6.1|6.12|6.12-rt|newest] [--quick]`: copy-on-write overhead of
 * bdsnap against the raw device, dm-snapshot (persistent) and a dm-thin
 * snapshot, at equal guarantees, side by side in one VM boot, with each
 * disk's I/O counters (docs/PERFORMANCE.md).
 *
 * The host makes the disk images (fully written, so no configuration pays
 * for host-side allocation), boots the VM once, runs scripts/bench/guest.ts
 * in it, reads the guest's JSON from the shared results directory and
 * writes bench/results/<date>-<kernel>.json, .md and .svg.
 *
 * Never fails on a number: it exits non-zero only when the benchmark itself
 * could not run (a step failed, a figure is missing, the kernel log is not
 * clean).
 * @module
 */
import { parseArgs } from "node:util";
import { ensureHostTools } from "./vm/host_tools.ts";
import { parseSeries, provisionKernel } from "./vm/kernels.ts";
import { buildKmod } from "./vm/kmod.ts";
import { runVm } from "./vm/qemu.ts";
import { runChecked } from "./vm/_process.ts";
import { REPO } from "./vm/paths.ts";
import { CONFIGS, type GuestReport, sizes } from "./bench/spec.ts";
import {
  type BenchResult,
  buildResult,
  markdown,
  missingFigures,
  svgChart,
} from "./bench/report.ts";
import { type HostRestore, hostRestore } from "./bench/host_restore.ts";

const USAGE = `usage: deno task bench [--kernel 6.1|6.12|6.12-rt|newest] [--quick] [options]

  --kernel SERIES    Debian kernel to boot: 6.1, 6.12, 6.12-rt or newest (default 6.12)
  --quick            small files, a few seconds per configuration (proves the benchmark runs)
  --configs LIST     subset of ${CONFIGS.join(",")} (default: all)
  --out DIR          where results go (default bench/results)
  --keep             keep the VM run directory and disk images
  --render FILE      only redo FILE's ratios, .md and .svg from its measurements (no VM)`;

const MiB = 1024 ** 2;

function log(msg: string): void {
  console.error(`[bench] ${msg}`);
}

/** A disk image of zeros, every block written (not sparse, not unwritten extents). */
async function zeroImage(path: string, bytes: number): Promise<void> {
  await runChecked("dd", [
    "if=/dev/zero",
    `of=${path}`,
    "bs=4M",
    `count=${bytes / (4 * MiB)}`,
    "conv=fsync",
    "status=none",
  ]);
}

async function loadAverage(): Promise<number> {
  return Number((await Deno.readTextFile("/proc/loadavg")).split(" ")[0]);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      kernel: { type: "string", default: "6.12" },
      quick: { type: "boolean", default: false },
      configs: { type: "string", default: CONFIGS.join(",") },
      out: { type: "string", default: `${REPO}/bench/results` },
      keep: { type: "boolean", default: false },
      render: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.render) {
    await render(values.render);
    return 0;
  }
  const configs = values.configs!.split(",").map((c) => c.trim()).filter(Boolean);
  for (const c of configs) {
    if (!(CONFIGS as readonly string[]).includes(c)) {
      console.error(`unknown configuration '${c}'\n${USAGE}`);
      return 2;
    }
  }
  const quick = values.quick!;
  const sz = sizes(quick);

  await ensureHostTools();
  const kernel = await provisionKernel(parseSeries(values.kernel!));
  if (configs.includes("bdsnap")) await buildKmod(kernel);

  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "");
  const imgDir = `${REPO}/.cache/bench/${kernel.series}-${stamp}`;
  await Deno.mkdir(imgDir, { recursive: true });
  // Order matters: guest.ts takes them from $BDSNAP_TEST_DISKS in this order.
  const disks: Array<[string, number]> = [
    ["raw", sz.targetDisk],
    ["bdsnap", sz.targetDisk],
    ["dm-origin", sz.targetDisk],
    ["dm-cow", sz.storeDisk],
    ["thin-data", sz.thinDataDisk],
    ["thin-meta", sz.thinMetaDisk],
  ];
  const diskFiles = disks.map(([n]) => `${imgDir}/${n}.img`);
  const storeFile = `${imgDir}/store.img`;
  log(`writing disk images in ${imgDir}`);
  for (const [i, [, bytes]] of disks.entries()) await zeroImage(diskFiles[i], bytes);
  await zeroImage(storeFile, sz.storeDisk);
  await runChecked("mkfs.ext4", ["-q", "-F", "-E", "nodiscard", "-L", "bdsnap-store", storeFile]);

  const loadBefore = await loadAverage();
  const memory = 2048;
  const cpus = 2;
  const r = await runVm({
    kernel,
    command: `"$BDSNAP_DENO" run -A scripts/bench/guest.ts`,
    diskFiles,
    storeFile,
    memory,
    cpus,
    timeout: quick ? 1800 : 10800,
    env: {
      BENCH_QUICK: quick ? "1" : "0",
      BENCH_CONFIGS: configs.join(","),
      BENCH_OUT: "/run/bdsnap-vm/bench.json",
    },
    // Unmerged slab caches: the memory figures can name dm_exception, bdsnap's caches…
    append: "slab_nomerge",
    stream: true,
    keep: true,
  });
  for (const f of r.findings) log(`kernel log: ${f.kind}: ${f.line}`);

  let guest: GuestReport | null = null;
  try {
    guest = JSON.parse(await Deno.readTextFile(`${r.runDir}/shared/bench.json`));
  } catch (e) {
    log(`no results from the guest: ${e instanceof Error ? e.message : e}`);
  }
  const problems: string[] = [];
  if (!r.ok) {
    problems.push(
      r.timedOut
        ? "the VM timed out"
        : r.findings.length > 0
        ? "the kernel log is not clean"
        : `the guest exited ${r.status}`,
    );
  }
  if (guest) {
    problems.push(...guest.errors);
    const missing = missingFigures(guest);
    if (missing.length > 0) problems.push(`missing figures: ${missing.join(", ")}`);
    if (configs.includes("bdsnap") && !guest.restore) problems.push("no restore figure");
    if (configs.includes("bdsnap") && !guest.mount) problems.push("no mount figure");

    let restoreHost: HostRestore | null = null;
    if (guest.restore) {
      try {
        restoreHost = await hostRestore({
          storeImage: storeFile,
          session: guest.restore.session,
          deviceBytes: sz.targetDisk,
          offset: guest.restore.offset,
          workDir: `${imgDir}/host-restore`,
        });
        log(`restore on the host: ${restoreHost.mib_s} MiB/s, fio ${restoreHost.raw_mib_s} MiB/s`);
      } catch (e) {
        problems.push(`restore on the host: ${e instanceof Error ? e.message : e}`);
      }
    }
    const date = new Date().toISOString().slice(0, 10);
    const result = buildResult(guest, {
      date,
      kernel: { series: kernel.series, release: kernel.release },
      accel: r.accel,
      mode: quick ? "quick" : "full",
      vm: {
        cpus,
        memory_mib: memory,
        cache: "QEMU writethrough, aio=threads, virtio-blk, raw images written with zeros; " +
          "the guest switches every disk to a volatile write cache (cache_type 'write back'), " +
          "so flushes reach QEMU (fdatasync of the image) and are counted",
        disks: {
          raw: `${sz.targetDisk / MiB} MiB`,
          bdsnap: `${sz.targetDisk / MiB} MiB`,
          "dm-snapshot origin": `${sz.targetDisk / MiB} MiB`,
          "dm-snapshot COW": `${sz.storeDisk / MiB} MiB`,
          "bdsnap store (ext4)": `${sz.storeDisk / MiB} MiB`,
          "dm-thin pool data": `${sz.thinDataDisk / MiB} MiB (thin volume ${
            sz.targetDisk / MiB
          } MiB)`,
          "dm-thin pool metadata": `${sz.thinMetaDisk / MiB} MiB`,
        },
      },
      host: {
        cpus: navigator.hardwareConcurrency,
        load_before: loadBefore,
        load_after: await loadAverage(),
      },
      restore_host: restoreHost,
      boot_seconds: r.bootSeconds,
      total_seconds: Math.round(r.totalSeconds),
    });
    const base = `${values.out}/${date}-${kernel.series}${quick ? "-quick" : ""}`;
    await Deno.mkdir(values.out!, { recursive: true });
    await Deno.writeTextFile(`${base}.json`, JSON.stringify(result, null, 2) + "\n");
    await Deno.writeTextFile(`${base}.svg`, svgChart(result));
    const md = markdown(result);
    await Deno.writeTextFile(`${base}.md`, md);
    console.log("\n" + md);
    log(`results: ${base}.json, .md, .svg`);
  }
  if (problems.length === 0 && guest) {
    if (!values.keep) {
      await Deno.remove(r.runDir, { recursive: true }).catch(() => {});
      await Deno.remove(imgDir, { recursive: true }).catch(() => {});
    }
    return 0;
  }
  for (const p of problems) log(`FAILED: ${p}`);
  log(`VM logs kept in ${r.runDir}`);
  // Disk images are large and say nothing the logs do not.
  if (!values.keep) await Deno.remove(imgDir, { recursive: true }).catch(() => {});
  return 1;
}

/** Recompute ratios and targets of an existing result file and rewrite its .md and .svg. */
async function render(file: string): Promise<void> {
  const old: BenchResult = JSON.parse(await Deno.readTextFile(file));
  const {
    schema: _s,
    guest,
    ratios: _r,
    io: _io,
    restore_ratio: _rr,
    mount_ratio: _m,
    targets: _t,
    ...meta
  } = old;
  const result = buildResult(guest, meta);
  const base = file.replace(/\.json$/, "");
  await Deno.writeTextFile(`${base}.json`, JSON.stringify(result, null, 2) + "\n");
  await Deno.writeTextFile(`${base}.svg`, svgChart(result));
  await Deno.writeTextFile(`${base}.md`, markdown(result));
  console.log(markdown(result));
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    console.error(`[bench] ${e instanceof Error ? e.stack : e}`);
    Deno.exit(1);
  }
}
