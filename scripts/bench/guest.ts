/**
 * The benchmark's guest side: run by `scripts/bench.ts` inside the VM as
 * `$BDSNAP_DENO run -A scripts/bench/guest.ts`.
 *
 * Disks ($BDSNAP_TEST_DISKS, in this order): three equal target disks
 * (raw, bdsnap, dm-snapshot origin), a COW disk the size of the store disk
 * ($BDSNAP_STORE_DISK, ext4 at /snapshot), and dm-thin's pool data and
 * metadata disks (the thin volume, as large as the other targets, lives in
 * the pool). Every disk is switched to a volatile write cache, so flushes
 * are real and counted. Every target gets a fresh ext4 and one
 * preallocated, fully written file; the direct-I/O workloads write into
 * that file, the ext4 workload writes new files next to it. Each round of
 * a workload mounts the four at once (bdsnap: a fresh session; dm-snapshot:
 * a fresh snapshot; dm-thin: a fresh create_snap), runs every first-write
 * phase, then every rewrite phase (the same writes again), in an order
 * rotated each round; the figures are medians over the rounds. Every phase
 * records each disk's /sys/block/<dev>/stat before and after.
 *
 * Environment: BENCH_OUT (JSON report, rewritten after every step),
 * BENCH_QUICK=1, BENCH_CONFIGS (comma-separated subset of the configs).
 * @module
 */
import { activate, deactivate, list, status } from "../../ffi/control.ts";
import { close, O_RDONLY, open } from "../../ffi/libc.ts";
import {
  type AggregateResult,
  type Config,
  CONFIGS,
  type DevIo,
  type GuestReport,
  type MemoryDelta,
  type PhaseIo,
  type PhaseResult,
  type RunResult,
  sizes,
  type Workload,
  WORKLOADS,
} from "./spec.ts";

const MiB = 1024 ** 2;
const PW = "/run/bdsnap-bench-password";
const STORE = "/snapshot";
const DM_ORIGIN = "bench-origin";
const DM_SNAP = "bench-snap";
const THIN_POOL = "bench-pool";
const THIN_VOL = "bench-thin";
/** Thin device ids in the pool: the volume and its snapshot. */
const THIN_ID = 0;
const THIN_SNAP_ID = 1;
const FILE = "bench.dat";
const PASSWORD = "bdsnap benchmark password";

const quick = Deno.env.get("BENCH_QUICK") === "1";
const out = Deno.env.get("BENCH_OUT") ?? "/run/bdsnap-vm/bench.json";
const configs = (Deno.env.get("BENCH_CONFIGS") ?? CONFIGS.join(","))
  .split(",").filter((c): c is Config => (CONFIGS as readonly string[]).includes(c));
const sz = sizes(quick);
const started = performance.now();

// The CLI under emulation: a cheap KDF and a config dir on the guest's tmpfs.
Deno.env.set("BDSNAP_KDF_ITERATIONS", "1000");
Deno.env.set("BDSNAP_CONFIG_DIR", "/run/bdsnap-etc");

const report: GuestReport = {
  quick,
  release: Deno.build.os === "linux" ? (await sh("uname -r")).trim() : "",
  sizes: sz,
  configs,
  results: {},
  errors: [],
  seconds: 0,
};

function log(msg: string): void {
  console.log(`[bench] ${msg}`);
}

async function save(): Promise<void> {
  report.seconds = round((performance.now() - started) / 1000, 1);
  await Deno.writeTextFile(`${out}.tmp`, JSON.stringify(report, null, 2) + "\n");
  await Deno.rename(`${out}.tmp`, out);
}

function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Run a program; throw with its output when it fails. */
async function run(cmd: string, args: string[]): Promise<string> {
  const r = await new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  const stdout = dec.decode(r.stdout);
  if (!r.success) {
    throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}\n${dec.decode(r.stderr)}${stdout}`);
  }
  return stdout;
}

function sh(script: string): Promise<string> {
  return run("bash", ["-c", `set -euo pipefail; ${script}`]);
}

/** The CLI, timed (under emulation each call costs a Deno start-up). */
async function bdsnap(args: string[]): Promise<string> {
  const t = performance.now();
  const o = await run("bdsnap", args);
  log(`bdsnap ${args[0] === "--json" ? args[1] : args[0]}: ${secs(t).toFixed(1)} s`);
  return o;
}

function secs(t0: number): number {
  return (performance.now() - t0) / 1000;
}

const disks = (Deno.env.get("BDSNAP_TEST_DISKS") ?? "").split(" ").filter(Boolean);
if (disks.length < 6) throw new Error(`need 6 test disks, have '${disks.join(" ")}'`);
const [rawDisk, bdDisk, originDisk, cowDisk, thinData, thinMeta] = disks;
const storeDisk = Deno.env.get("BDSNAP_STORE_DISK") ?? "";
if (!storeDisk) throw new Error("no store disk ($BDSNAP_STORE_DISK)");
const dev: Record<Config, string> = {
  raw: rawDisk,
  bdsnap: bdDisk,
  "dm-snapshot": `/dev/mapper/${DM_ORIGIN}`,
  "dm-thin": `/dev/mapper/${THIN_VOL}`,
};
/** The physical disks each configuration's I/O lands on (see PhaseIo in spec.ts). */
const ioDisks: Record<Config, { origin: string; store: string | null }> = {
  raw: { origin: rawDisk, store: null },
  bdsnap: { origin: bdDisk, store: storeDisk },
  "dm-snapshot": { origin: originDisk, store: cowDisk },
  "dm-thin": { origin: thinData, store: thinMeta },
};
const mnt = (c: Config) => `/mnt/bench-${c}`;
/** Byte offset on each target where the bench file starts (from filefrag). */
const fileStart: Partial<Record<Config, number>> = {};

// ---- setup ----

async function prepareTarget(c: Config): Promise<void> {
  const m = mnt(c);
  // No lazy init: ext4lazyinit must not write behind the benchmark's back.
  await sh(
    `mkfs.ext4 -q -F -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 ${dev[c]} && ` +
      `mkdir -p ${m} && mount ${dev[c]} ${m} && fallocate -l ${sz.file} ${m}/${FILE} && ` +
      `dd if=/dev/zero of=${m}/${FILE} bs=1M count=${sz.file / MiB} oflag=direct ` +
      `conv=notrunc status=none && sync`,
  );
  // "0:        0..   16383:      34816..     51199:  16384:" (4 KiB blocks)
  const frag = await sh(`filefrag -e ${m}/${FILE}`);
  const first = /^\s*0:\s+\d+\.\.\s*\d+:\s+(\d+)\.\./m.exec(frag);
  if (!first) throw new Error(`cannot read the extents of ${m}/${FILE}:\n${frag}`);
  fileStart[c] = Number(first[1]) * 4096;
  await sh(`umount ${m}`);
}

/**
 * QEMU's writethrough cache mode shows the guest a disk without a volatile
 * cache, and the block layer then drops every flush (and FUA) before it is
 * issued or counted: durability would be free and invisible. virtio-blk
 * lets the guest turn the cache on (cache_type, VIRTIO_BLK_F_CONFIG_WCE);
 * QEMU then caches writes in the host's page cache and turns each flush
 * into an fdatasync of the image. Same for every disk.
 */
async function writeBackCaches(): Promise<void> {
  report.write_cache = {};
  for (const d of [...disks.slice(0, 6), storeDisk]) {
    const name = d.replace("/dev/", "");
    await Deno.writeTextFile(`/sys/block/${name}/cache_type`, "write back");
    const wc = (await Deno.readTextFile(`/sys/block/${name}/queue/write_cache`)).trim();
    report.write_cache[name] = wc;
    if (wc !== "write back") throw new Error(`${name}: write cache is '${wc}', not 'write back'`);
  }
}

/**
 * A thin pool as LVM makes one, but with dmsetup (no thin-provisioning-tools
 * needed): a zeroed metadata superblock, 64 KiB blocks (LVM's default thin
 * chunk and the kernel's minimum), block zeroing on (LVM's default), one
 * thin volume the size of the other targets, written in full so that every
 * block is provisioned (as the other disks are written with zeros) and the
 * snapshot's first writes are all copy-on-write breaks, not provisioning.
 */
async function setupThin(): Promise<void> {
  await sh("modprobe dm-thin-pool");
  await sh(`dd if=/dev/zero of=${thinMeta} bs=4096 count=1 oflag=direct status=none`);
  const dataSectors = (await sh(`blockdev --getsz ${thinData}`)).trim();
  await run("dmsetup", [
    "create",
    THIN_POOL,
    "--table",
    `0 ${dataSectors} thin-pool ${thinMeta} ${thinData} ${sz.thinBlock / 512} 0`,
  ]);
  await run("dmsetup", ["message", THIN_POOL, "0", `create_thin ${THIN_ID}`]);
  await run("dmsetup", [
    "create",
    THIN_VOL,
    "--table",
    `0 ${sz.targetDisk / 512} thin /dev/mapper/${THIN_POOL} ${THIN_ID}`,
  ]);
  await sh(
    `dd if=/dev/zero of=${dev["dm-thin"]} bs=4M count=${sz.targetDisk / (4 * MiB)} ` +
      `oflag=direct status=none`,
  );
}

async function setup(): Promise<void> {
  await writeBackCaches();
  await startFuaCounting();
  await sh("modprobe dm-snapshot");
  if (configs.includes("dm-thin")) await setupThin();
  if (configs.includes("dm-snapshot")) {
    const sectors = (await sh(`blockdev --getsz ${originDisk}`)).trim();
    await run("dmsetup", [
      "create",
      DM_ORIGIN,
      "--table",
      `0 ${sectors} snapshot-origin ${originDisk}`,
    ]);
  }
  for (const c of configs) {
    const t = performance.now();
    await prepareTarget(c);
    log(
      `${c}: ext4 with a ${sz.file / MiB} MiB written file on ${dev[c]} (${secs(t).toFixed(1)} s)`,
    );
  }
  if (configs.includes("bdsnap")) {
    await Deno.writeTextFile(PW, `${PASSWORD}\n`, { mode: 0o600 });
    await bdsnap(["setup", "--password-file", PW]);
    await bdsnap(["load"]);
    await bdsnap(["activate", bdDisk, "--password-file", PW]);
  }
}

// ---- dm-snapshot ----

/**
 * As LVM does it: suspend the origin, create the snapshot, resume the
 * origin. The resume matters: it is when snapshot-origin learns the
 * snapshots' chunk size and starts splitting writes at chunk boundaries
 * (without it a 1 MiB write would only copy its first chunk).
 */
async function createSnapshot(): Promise<void> {
  const sectors = (await sh(`blockdev --getsz ${originDisk}`)).trim();
  // A zeroed header makes the persistent store start empty.
  await sh(`dd if=/dev/zero of=${cowDisk} bs=4096 count=1 oflag=direct status=none`);
  await run("dmsetup", ["suspend", DM_ORIGIN]);
  try {
    await run("dmsetup", [
      "create",
      DM_SNAP,
      "--table",
      `0 ${sectors} snapshot ${originDisk} ${cowDisk} P 8`,
    ]);
  } finally {
    await run("dmsetup", ["resume", DM_ORIGIN]);
  }
}

/**
 * A thin snapshot as `lvcreate -s` of a thin volume makes it: suspend the
 * volume, create_snap in the pool, resume. The snapshot is not activated
 * (an inactive LVM thin snapshot costs the same: the sharing is in the pool).
 */
async function createThinSnapshot(): Promise<void> {
  await run("dmsetup", ["suspend", THIN_VOL]);
  try {
    await run("dmsetup", ["message", THIN_POOL, "0", `create_snap ${THIN_SNAP_ID} ${THIN_ID}`]);
  } finally {
    await run("dmsetup", ["resume", THIN_VOL]);
  }
}

async function deleteThinSnapshot(): Promise<void> {
  await run("dmsetup", ["message", THIN_POOL, "0", `delete ${THIN_SNAP_ID}`]);
}

/** Pool data blocks in use: "0 N thin-pool <tid> <meta used>/<total> <data used>/<total> ...". */
async function thinBlocks(): Promise<number> {
  const s = await run("dmsetup", ["status", THIN_POOL]);
  const m = /thin-pool \d+ \d+\/\d+ (\d+)\/\d+/.exec(s);
  if (!m) throw new Error(`dmsetup status ${THIN_POOL}: ${s.trim()}`);
  return Number(m[1]);
}

/** COW data chunks of the snapshot: "0 N snapshot <alloc>/<total> <metadata>". */
async function dmChunks(): Promise<number> {
  const s = await run("dmsetup", ["status", DM_SNAP]);
  const m = /snapshot (\d+)\/\d+ (\d+)/.exec(s);
  if (!m) throw new Error(`dmsetup status ${DM_SNAP}: ${s.trim()}`);
  return (Number(m[1]) - Number(m[2])) / 8;
}

// ---- bdsnap ----

function bdDevice() {
  const d = list().find((x) => x.name === bdDisk);
  if (!d) throw new Error(`${bdDisk} is not in the module's device list`);
  return d;
}

async function chunks(c: Config): Promise<number> {
  if (c === "bdsnap") return bdDevice().chunksSaved;
  if (c === "dm-snapshot") return await dmChunks();
  if (c === "dm-thin") return await thinBlocks();
  return 0;
}

/** Wait until the session holds no pre-image in memory. */
async function waitPending(): Promise<void> {
  const t = performance.now();
  while (bdDevice().pendingBytes > 0) {
    if (secs(t) > 300) throw new Error("pre-images still pending after 300 s");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * syncfs(2) on a mounted filesystem, timed in this process: a `sync -f`
 * child would add a process start-up (slow under emulation) to the figure.
 */
const syncfsLib = Deno.dlopen("libc.so.6", { syncfs: { parameters: ["i32"], result: "i32" } });

function syncfs(path: string): void {
  const fd = open(path, O_RDONLY);
  try {
    if (syncfsLib.symbols.syncfs(fd) !== 0) throw new Error(`syncfs ${path} failed`);
  } finally {
    close(fd);
  }
}

// ---- memory ----

interface MemSnap {
  meminfo: Record<string, number>;
  slabs: Record<string, number>;
}

async function memSnapshot(): Promise<MemSnap> {
  // No drop_caches: it would also evict the 9p-backed binaries, and the
  // figures that matter are the implementations' own slab caches.
  await sh("sync");
  const meminfo: Record<string, number> = {};
  for (const line of (await Deno.readTextFile("/proc/meminfo")).split("\n")) {
    const m = /^(\S+):\s+(\d+)/.exec(line);
    if (m) meminfo[m[1]] = Number(m[2]) * 1024;
  }
  const slabs: Record<string, number> = {};
  for (const line of (await Deno.readTextFile("/proc/slabinfo")).split("\n").slice(2)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 4) slabs[f[0]] = Number(f[1]) * Number(f[3]);
  }
  return { meminfo, slabs };
}

/** Kernel memory /proc/meminfo does not attribute to anything (page allocations, vmalloc). */
function unattributed(m: Record<string, number>): number {
  const known = [
    "MemFree",
    "Buffers",
    "Cached",
    "AnonPages",
    "SReclaimable",
    "SUnreclaim",
    "KernelStack",
    "PageTables",
    "SecPageTables",
    "Percpu",
  ];
  return m.MemTotal - known.reduce((n, k) => n + (m[k] ?? 0), 0);
}

/**
 * The slab caches holding what each implementation keeps per saved chunk
 * (bdsnap's extents are in flight only; dm-snapshot's pending exceptions
 * and kcopyd jobs likewise, so they are left out).
 */
const OWN_CACHES: Record<Config, RegExp | null> = {
  raw: null,
  bdsnap: /^bdsnap/,
  "dm-snapshot": /^dm_exception$/,
  // In flight only too (mappings, prison cells); the btree lives in dm-bufio's pages.
  "dm-thin": /^(dm_thin|dm_bio_prison|dm_bufio)/,
};

function memDelta(c: Config, a: MemSnap, b: MemSnap, nChunks: number): MemoryDelta {
  const slab = (s: MemSnap) => s.meminfo.SUnreclaim + s.meminfo.SReclaimable;
  const slabBytes = slab(b) - slab(a);
  const own = OWN_CACHES[c];
  const ownBytes = own === null ? 0 : Object.keys({ ...a.slabs, ...b.slabs })
    .filter((k) => own.test(k))
    .reduce((n, k) => n + (b.slabs[k] ?? 0) - (a.slabs[k] ?? 0), 0);
  const otherBytes = unattributed(b.meminfo) - unattributed(a.meminfo);
  const grew = Object.keys(b.slabs)
    .map((k) => [k, b.slabs[k] - (a.slabs[k] ?? 0)] as const)
    .filter(([, d]) => d > 0)
    .sort((x, y) => y[1] - x[1])
    .slice(0, 6);
  return {
    chunks: nChunks,
    own_slab_bytes: ownBytes,
    own_per_chunk: nChunks > 0 ? round(ownBytes / nChunks, 2) : null,
    slab_bytes: slabBytes,
    other_bytes: otherBytes,
    slab_per_chunk: nChunks > 0 ? round(slabBytes / nChunks, 2) : null,
    total_per_chunk: nChunks > 0 ? round((slabBytes + otherBytes) / nChunks, 2) : null,
    top_caches: Object.fromEntries(grew),
  };
}

// ---- fio ----

function fioArgs(w: Workload, m: string): string[] {
  const bytes = quick ? w.bytes.quick : w.bytes.full;
  const common = [
    `--name=${w.id}`,
    `--rw=${w.rw}`,
    `--bs=${w.bs}`,
    `--iodepth=${w.iodepth}`,
    `--ioengine=${w.ioengine}`,
    `--size=${bytes}`,
    "--output-format=json",
    "--group_reporting=1",
  ];
  if (w.kind === "direct") {
    // The default random map: each block of the region written exactly once.
    return [...common, `--filename=${m}/${FILE}`, "--direct=1", "--allow_file_create=0"];
  }
  return [
    ...common,
    `--directory=${m}/${w.id}`,
    "--nrfiles=4",
    "--direct=0",
    `--fsync=${w.fsync}`,
    "--fallocate=none",
  ];
}

// deno-lint-ignore no-explicit-any
type Json = any;

function percentile(lat: Json, p: string): number {
  const v = lat?.percentile?.[p];
  return typeof v === "number" ? round(v / 1000, 1) : 0;
}

/** /sys/block/<dev>/stat, fields 1, 3, 5, 7 and 16 (Documentation/admin-guide/iostats.rst). */
async function devStat(disk: string): Promise<DevIo> {
  const name = disk.replace("/dev/", "");
  const f = (await Deno.readTextFile(`/sys/block/${name}/stat`)).trim().split(/\s+/).map(Number);
  if (f.length < 17) throw new Error(`/sys/block/${name}/stat has ${f.length} fields, not 17`);
  return {
    dev: name,
    reads: f[0],
    read_bytes: f[2] * 512,
    writes: f[4],
    write_bytes: f[6] * 512,
    flushes: f[15],
  };
}

function ioDelta(a: DevIo, b: DevIo): DevIo {
  return {
    dev: a.dev,
    reads: b.reads - a.reads,
    read_bytes: b.read_bytes - a.read_bytes,
    writes: b.writes - a.writes,
    write_bytes: b.write_bytes - a.write_bytes,
    flushes: b.flushes - a.flushes,
    ...(a.fua_writes !== undefined && b.fua_writes !== undefined
      ? { fua_writes: b.fua_writes - a.fua_writes }
      : {}),
  };
}

const TRACING = "/sys/kernel/tracing";
const BIO_QUEUE = `${TRACING}/events/block/block_bio_queue`;
let fuaTracing = false;

/**
 * Count FUA writes per device with a hist trigger on block_bio_queue (no
 * trace buffer to read or overflow). Best effort: without it the FUA
 * counts are absent and the commit target reads n/a.
 */
async function startFuaCounting(): Promise<void> {
  try {
    try {
      await Deno.stat(`${TRACING}/events`);
    } catch {
      await sh(`mount -t tracefs nodev ${TRACING}`);
    }
    await Deno.writeTextFile(`${BIO_QUEUE}/trigger`, "hist:keys=dev,rwbs:size=2048\n");
    fuaTracing = true;
  } catch (e) {
    log(`no FUA counts (tracing): ${e instanceof Error ? e.message : e}`);
  }
}

/** Kernel dev_t (MAJOR << 20 | MINOR) → FUA writes so far. */
async function fuaCounts(): Promise<Map<number, number> | null> {
  if (!fuaTracing) return null;
  const counts = new Map<number, number>();
  for (const line of (await Deno.readTextFile(`${BIO_QUEUE}/hist`)).split("\n")) {
    const m = /dev:\s*(\d+),\s*rwbs:\s*(\S+)\s*\}\s*hitcount:\s*(\d+)/.exec(line);
    if (m && m[2].includes("WF")) {
      counts.set(Number(m[1]), (counts.get(Number(m[1])) ?? 0) + Number(m[3]));
    }
  }
  return counts;
}

async function devT(disk: string): Promise<number> {
  const [ma, mi] = (await Deno.readTextFile(`/sys/block/${disk.replace("/dev/", "")}/dev`))
    .trim().split(":").map(Number);
  return ma * 2 ** 20 + mi;
}

async function ioSnapshot(c: Config): Promise<PhaseIo> {
  const d = ioDisks[c];
  const fua = await fuaCounts();
  const one = async (disk: string): Promise<DevIo> => {
    const x = await devStat(disk);
    if (fua) x.fua_writes = fua.get(await devT(disk)) ?? 0;
    return x;
  };
  return { origin: await one(d.origin), store: d.store ? await one(d.store) : null };
}

async function phase(w: Workload, c: Config): Promise<PhaseResult> {
  const io0 = await ioSnapshot(c);
  const text = await run("fio", fioArgs(w, mnt(c)));
  const job = JSON.parse(text.slice(text.indexOf("{"))).jobs[0];
  const wr = job.write;
  const t = performance.now();
  syncfs(mnt(c));
  if (c === "bdsnap") await waitPending();
  const drain = secs(t);
  const io1 = await ioSnapshot(c);
  const fioSeconds = job.job_runtime / 1000;
  const total = fioSeconds + drain;
  const r: PhaseResult = {
    bytes: wr.io_bytes,
    ios: wr.total_ios,
    fio_seconds: round(fioSeconds),
    drain_seconds: round(drain),
    mib_s: round(wr.io_bytes / MiB / total, 2),
    iops: round(wr.total_ios / total, 1),
    fio_mib_s: round(wr.bw_bytes / MiB, 2),
    clat_p50_us: percentile(wr.clat_ns, "50.000000"),
    clat_p99_us: percentile(wr.clat_ns, "99.000000"),
    io: {
      origin: ioDelta(io0.origin, io1.origin),
      store: io0.store && io1.store ? ioDelta(io0.store, io1.store) : null,
    },
  };
  if (w.kind === "ext4" && job.sync?.lat_ns) {
    r.sync_p50_us = percentile(job.sync.lat_ns, "50.000000");
    r.sync_p99_us = percentile(job.sync.lat_ns, "99.000000");
  }
  return r;
}

// ---- one round of one workload on every configuration ----

/** Let the host's writeback from the previous phase settle (it hits whoever runs next). */
function settle(): Promise<void> {
  return new Promise((r) => setTimeout(r, quick ? 200 : 2000));
}

/**
 * All configurations mounted at once (bdsnap: a fresh session; dm-snapshot:
 * a fresh snapshot), then every first-write phase back to back, then every
 * rewrite phase back to back, in a rotated order: the phases compared are
 * neighbours in time, so drift in the host's speed hits them alike.
 */
async function runRound(
  w: Workload,
  order: Config[],
  keepSession: boolean,
): Promise<Partial<Record<Config, RunResult>>> {
  const mounted: Config[] = [];
  const sessions: string[] = [];
  const out: Partial<Record<Config, RunResult>> = {};
  try {
    for (const c of order) {
      if (c === "dm-snapshot") await createSnapshot();
      if (c === "dm-thin") await createThinSnapshot();
      try {
        await sh(`mount ${dev[c]} ${mnt(c)}`);
      } catch (e) {
        if (c === "dm-snapshot") await run("dmsetup", ["remove", DM_SNAP]);
        if (c === "dm-thin") await deleteThinSnapshot();
        throw e;
      }
      mounted.push(c);
      if (c === "bdsnap") sessions.push(bdDevice().sessionId);
      if (w.kind === "ext4") await sh(`mkdir -p ${mnt(c)}/${w.id}`);
    }
    const after: Partial<Record<Config, number>> = {};
    for (const c of order) {
      await settle();
      const memA = await memSnapshot();
      const c0 = await chunks(c);
      const first = await phase(w, c);
      const c1 = await chunks(c);
      const memB = await memSnapshot();
      first.chunks = c1 - c0;
      after[c] = c1;
      out[c] = { first, rewrite: first, memory: memDelta(c, memA, memB, c1 - c0) };
    }
    for (const c of order) {
      await settle();
      const rewrite = await phase(w, c);
      rewrite.chunks = (await chunks(c)) - after[c]!;
      out[c]!.rewrite = rewrite;
    }
    if (out.bdsnap) {
      out.bdsnap.session = bdDevice().sessionId;
      out.bdsnap.inflight_peak = status().inflightPeak;
    }
    // The next round starts from the same free space.
    if (w.kind === "ext4") {
      for (const c of order) await sh(`rm -rf ${mnt(c)}/${w.id}`);
    }
    return out;
  } finally {
    for (const c of mounted) {
      await sh(`umount ${mnt(c)}`);
      if (c === "dm-snapshot") await run("dmsetup", ["remove", DM_SNAP]);
      if (c === "dm-thin") await deleteThinSnapshot();
    }
    // Sessions are per mount: free the store for the next one.
    if (!keepSession) {
      for (const id of sessions) await Deno.remove(`${STORE}/${id}`, { recursive: true });
    }
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/** Field-wise medians of numeric fields (rounds of one phase, or of memory deltas). */
function medianOf<T extends object>(xs: T[]): T {
  const out = { ...xs[0] } as Record<string, unknown>;
  for (const [k, v] of Object.entries(xs[0])) {
    if (typeof v === "number" || v === null) {
      const vals = xs.map((x) => (x as Record<string, unknown>)[k])
        .filter((y): y is number => typeof y === "number");
      out[k] = vals.length > 0 ? round(median(vals), 3) : null;
    }
  }
  return out as T;
}

/** Field-wise medians of one device's counters over the rounds. */
function medianIo(xs: Array<PhaseIo | undefined>): PhaseIo | undefined {
  const ios = xs.filter((x): x is PhaseIo => x !== undefined);
  if (ios.length === 0) return undefined;
  const stores = ios.map((x) => x.store).filter((x): x is DevIo => x !== null);
  return {
    origin: medianOf(ios.map((x) => x.origin)),
    store: stores.length > 0 ? medianOf(stores) : null,
  };
}

function medianPhase(xs: PhaseResult[]): PhaseResult {
  const m = medianOf(xs);
  const io = medianIo(xs.map((x) => x.io));
  return io ? { ...m, io } : m;
}

function aggregate(rounds: RunResult[]): AggregateResult {
  const agg: AggregateResult = {
    first: medianPhase(rounds.map((r) => r.first)),
    rewrite: medianPhase(rounds.map((r) => r.rewrite)),
    rounds,
  };
  const mems = rounds.map((r) => r.memory).filter((m): m is MemoryDelta => m !== undefined);
  if (mems.length > 0) agg.memory = medianOf(mems);
  const peaks = rounds.map((r) => r.inflight_peak).filter((p): p is number => p !== undefined);
  if (peaks.length > 0) agg.inflight_peak = Math.max(...peaks);
  const session = rounds.at(-1)?.session;
  if (session) agg.session = session;
  return agg;
}

function describe(r: RunResult): string {
  const p = (x: PhaseResult) =>
    `${x.mib_s.toFixed(1)} MiB/s ${x.iops.toFixed(0)} IOPS p99 ${
      (x.clat_p99_us / 1000).toFixed(1)
    } ms`;
  return `first ${p(r.first)}; rewrite ${p(r.rewrite)}`;
}

// ---- restore and mount time ----

async function restoreStep(session: string): Promise<void> {
  // Restore requires a deactivated device (the library call: the CLI's start-up is slow here).
  deactivate(bdDisk, PASSWORD);
  const t = performance.now();
  const o = JSON.parse(await bdsnap(["--json", "restore", bdDisk, "--session", session, "--yes"]));
  const wall = secs(t);
  const bytes = o.written_bytes as number;
  report.restore = {
    session,
    bytes,
    offset: fileStart.bdsnap!,
    seconds: round(o.seconds),
    wall_seconds: round(wall),
    mib_s: round(bytes / MiB / o.seconds, 2),
    raw_seconds: 0,
    raw_mib_s: 0,
  };
  log(
    `restore: ${(bytes / MiB).toFixed(1)} MiB in ${
      o.seconds.toFixed(2)
    } s (${report.restore.mib_s} MiB/s)`,
  );
}

/**
 * The restore's reference: the same bytes written with 1 MiB direct
 * sequential writes at the same place (the bench file, which the restore
 * rewrote), on the same device. Last, as it overwrites the file's data.
 */
async function rawSeqStep(): Promise<void> {
  const r = report.restore!;
  // Whole MiB inside the file (the restore also rewrote a few metadata chunks).
  const size = Math.min(sz.file, Math.max(MiB, Math.floor(r.bytes / MiB) * MiB));
  const text = await run("fio", [
    "--name=raw-seq",
    `--filename=${bdDisk}`,
    "--rw=write",
    "--bs=1m",
    "--direct=1",
    "--ioengine=libaio",
    "--iodepth=1",
    `--offset=${r.offset}`,
    `--size=${size}`,
    "--end_fsync=1",
    "--output-format=json",
  ]);
  const job = JSON.parse(text.slice(text.indexOf("{"))).jobs[0];
  r.raw_seconds = round(job.job_runtime / 1000);
  r.raw_mib_s = round(job.write.io_bytes / MiB / r.raw_seconds, 2);
  log(`raw 1 MiB direct sequential write: ${r.raw_mib_s} MiB/s`);
}

async function timeMount(): Promise<[number, number]> {
  const m = mnt("bdsnap");
  await sh("sync");
  let t = performance.now();
  await run("mount", [bdDisk, m]);
  const mo = performance.now() - t;
  t = performance.now();
  await run("umount", [m]);
  return [mo, performance.now() - t];
}

/** Alternate plain and activated mounts (activation through the library, not timed). */
async function mountStep(): Promise<void> {
  const plain: Array<[number, number]> = [];
  const act: Array<[number, number]> = [];
  for (let i = 0; i < sz.mountReps; i++) {
    plain.push(await timeMount());
    activate(bdDisk, PASSWORD);
    try {
      act.push(await timeMount());
    } finally {
      deactivate(bdDisk, PASSWORD);
    }
  }
  const med = (xs: Array<[number, number]>) => {
    const mo = median(xs.map((x) => x[0]));
    const um = median(xs.map((x) => x[1]));
    const tot = median(xs.map((x) => x[0] + x[1]));
    return { mount_ms: round(mo, 1), umount_ms: round(um, 1), total_ms: round(tot, 1) };
  };
  report.mount = { reps: sz.mountReps, plain: med(plain), activated: med(act) };
  log(
    `mount+umount: ${report.mount.plain.total_ms} ms plain, ` +
      `${report.mount.activated.total_ms} ms activated`,
  );
}

// ---- the store's sync protocol, alone ----

/** Write all of buf at the file's position. */
async function writeAll(f: Deno.FsFile, buf: Uint8Array): Promise<void> {
  let off = 0;
  while (off < buf.length) off += await f.write(buf.subarray(off));
}

/**
 * What one group commit costs the store disk, measured with the store's own
 * file system and none of the module: per batch, `batch` bytes of
 * pre-images to blocks.dat and a 32-byte record to blocks.map, made durable
 * the way kmod/store.c does it (fdatasync of blocks.dat, then of
 * blocks.map), and two alternatives: the same two files preallocated and
 * written once beforehand (an append then changes no metadata), and one
 * preallocated file holding data and records with one fdatasync per batch.
 * Device counters are read after each step, so the flushes of each
 * fdatasync are told apart.
 */
async function storeProbe(): Promise<void> {
  const dir = `${STORE}/bench-probe`;
  const storeName = storeDisk.replace("/dev/", "");
  const cases: NonNullable<GuestReport["store_probe"]> = [];
  const modes = ["append", "prealloc", "one-file"] as const;
  for (const batch of [4096, MiB]) {
    for (const mode of modes) {
      await Deno.mkdir(dir, { recursive: true });
      const n = batch === 4096 ? 200 : 24;
      const datBytes = n * (batch + (mode === "one-file" ? 4096 : 0));
      const mapBytes = 4096 + Math.ceil((n * 32) / 4096) * 4096;
      const dat = await Deno.open(`${dir}/blocks.dat`, { read: true, write: true, create: true });
      const map = mode === "one-file"
        ? null
        : await Deno.open(`${dir}/blocks.map`, { read: true, write: true, create: true });
      try {
        if (mode !== "append") {
          await writeAll(dat, new Uint8Array(datBytes));
          await dat.syncData();
          await dat.seek(0, Deno.SeekMode.Start);
          if (map) {
            await writeAll(map, new Uint8Array(mapBytes));
            await map.syncData();
          }
        }
        if (map) {
          // The 64-byte header, as the store has it before the first record.
          await map.seek(0, Deno.SeekMode.Start);
          await writeAll(map, new Uint8Array(64));
          await map.syncData();
        }
        await sh("sync");
        await new Promise((r) => setTimeout(r, 500));
        const data = new Uint8Array(batch).fill(0xa5);
        const rec = new Uint8Array(mode === "one-file" ? 4096 : 32).fill(0x5a);
        const a0 = await devStat(storeName);
        let afterData = 0;
        let afterMap = 0;
        const t = performance.now();
        for (let i = 0; i < n; i++) {
          const s0 = await devStat(storeName);
          await writeAll(dat, data);
          if (mode === "one-file") await writeAll(dat, rec);
          await dat.syncData();
          const s1 = await devStat(storeName);
          afterData += s1.flushes - s0.flushes;
          if (map) {
            await writeAll(map, rec);
            await map.syncData();
            afterMap += (await devStat(storeName)).flushes - s1.flushes;
          }
        }
        const ms = (performance.now() - t) / n;
        const d = ioDelta(a0, await devStat(storeName));
        cases.push({
          mode,
          batch_bytes: batch,
          batches: n,
          write_bytes_per_batch: round(d.write_bytes / n, 1),
          write_bytes_per_data_byte: round(d.write_bytes / (n * batch), 4),
          writes_per_batch: round(d.writes / n, 2),
          flushes_per_batch: round(d.flushes / n, 2),
          flushes_dat_sync: round(afterData / n, 2),
          flushes_map_sync: round(afterMap / n, 2),
          ms_per_batch: round(ms, 2),
        });
        log(`store probe ${mode} ${batch} B: ${JSON.stringify(cases.at(-1))}`);
      } finally {
        dat.close();
        map?.close();
        await Deno.remove(dir, { recursive: true });
      }
    }
  }
  report.store_probe = cases;
}

// ---- main ----

async function step(name: string, fn: () => Promise<void>): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch (e) {
    const msg = `${name}: ${e instanceof Error ? e.message : e}`.trim();
    report.errors.push(msg);
    log(`ERROR ${msg}`);
    return false;
  } finally {
    await save();
  }
}

log(`${report.release}, ${quick ? "quick" : "full"} mode, configs ${configs.join(", ")}`);
if (await step("setup", setup)) {
  const perWorkload: Record<string, number> = {};
  let restoreSession: string | undefined;
  for (const [i, w] of WORKLOADS.entries()) {
    const lastWorkload = i === WORKLOADS.length - 1;
    const rounds: Partial<Record<Config, RunResult[]>> = {};
    report.results[w.id] = {};
    for (let round = 0; round < sz.rounds; round++) {
      const order = configs.map((_, k) => configs[(k + round) % configs.length]);
      const keep = lastWorkload && round === sz.rounds - 1;
      await step(`${w.id} round ${round + 1}`, async () => {
        const t = performance.now();
        const res = await runRound(w, order, keep);
        for (const c of order) {
          const r = res[c]!;
          (rounds[c] ??= []).push(r);
          report.results[w.id][c] = aggregate(rounds[c]!);
          log(`${w.id} ${c} round ${round + 1}: ${describe(r)}`);
        }
        if (res.bdsnap?.inflight_peak !== undefined) perWorkload[w.id] = res.bdsnap.inflight_peak;
        if (keep && res.bdsnap?.session) restoreSession = res.bdsnap.session;
        log(`${w.id} round ${round + 1}: ${secs(t).toFixed(1)} s`);
      });
    }
  }
  if (configs.includes("bdsnap")) {
    await step("in-flight counters", () => {
      const s = status();
      report.inflight = { peak: s.inflightPeak, limit: s.inflightLimit, per_workload: perWorkload };
      return Promise.resolve();
    });
    if (restoreSession && await step("restore", () => restoreStep(restoreSession!))) {
      await step("mount time", mountStep);
      await step("raw sequential write", rawSeqStep);
    }
    await step("store probe", storeProbe);
    await step("unload", async () => {
      await bdsnap(["unload"]);
      // Checkpoint the store's journal: the host reads the image with debugfs.
      await sh(`sync && mount -o remount,ro ${STORE}`);
    });
  }
  if (configs.includes("dm-snapshot")) {
    await step("dm cleanup", async () => {
      await run("dmsetup", ["remove", DM_ORIGIN]);
    });
  }
  if (configs.includes("dm-thin")) {
    await step("dm-thin cleanup", async () => {
      await run("dmsetup", ["remove", THIN_VOL]);
      await run("dmsetup", ["remove", THIN_POOL]);
    });
  }
}
log(`done in ${report.seconds} s, ${report.errors.length} error(s)`);
Deno.exit(report.errors.length === 0 ? 0 : 1);
