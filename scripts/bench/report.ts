/**
 * Turn the guest's measurements into the result file: ratios, the issue's
 * targets, a Markdown table and an SVG chart. Pure functions (no I/O).
 * @module
 */
import type { HostRestore } from "./host_restore.ts";
import {
  type Config,
  CONFIGS,
  type GuestReport,
  type Phase,
  type PhaseResult,
  PHASES,
  WORKLOADS,
} from "./spec.ts";

/** Ratios of one workload and phase: medians of the per-round ratios (null when a side is missing). */
export interface PhaseRatios {
  /** Throughput (MiB/s, drain included) bdsnap / raw. */
  bdsnap_raw: number | null;
  /** Throughput bdsnap / dm-snapshot. */
  bdsnap_dm: number | null;
  /** Throughput dm-snapshot / raw, for reference. */
  dm_raw: number | null;
  /** Throughput bdsnap / dm-thin (snapshot of a thin volume). */
  bdsnap_thin: number | null;
  /** Throughput dm-thin / raw, for reference. */
  thin_raw: number | null;
  /** p99 completion latency bdsnap / dm-thin. */
  p99_bdsnap_thin: number | null;
  /** ext4 workload: p99 fsync latency bdsnap / dm-snapshot and bdsnap / dm-thin. */
  sync_p99_bdsnap_dm?: number | null;
  sync_p99_bdsnap_thin?: number | null;
  /** p99 completion latency bdsnap / dm-snapshot (lower is better). */
  p99_bdsnap_dm: number | null;
  /** p99 completion latency bdsnap / raw. */
  p99_bdsnap_raw: number | null;
  /** Lowest and highest per-round bdsnap/raw and bdsnap/dm throughput ratios (the noise). */
  bdsnap_raw_range: [number, number] | null;
  bdsnap_dm_range: [number, number] | null;
}

/** One of the issue's targets, checked against one run. */
export interface TargetCheck {
  target: string;
  /** The measured ratio. */
  value: number | null;
  /** The bound it is held to. */
  bound: number;
  /** "≥" for throughput, "≤" for latency and I/O counts. */
  op: ">=" | "<=";
  met: boolean | null;
  /** The figures behind the value, e.g. both sides of a ratio. */
  detail?: string;
}

/**
 * One configuration's device counters over one phase, per byte (and per
 * 1000 writes) the user wrote in it: in the first phase every user byte is
 * written for the first time since the snapshot.
 */
export interface IoPerUser {
  origin_read: number;
  origin_write: number;
  store_read: number | null;
  store_write: number | null;
  /** Flush requests completed by the device, per 1000 user write I/Os. */
  origin_flushes_k: number;
  store_flushes_k: number | null;
  /** FUA writes to the store (commit records) per 1000 user writes, when traced. */
  store_fua_k?: number | null;
}

/** The file written to bench/results/<date>-<kernel>.json. */
export interface BenchResult {
  /** 2: dm-thin, device I/O counters, the equal-guarantee targets. */
  schema: 2;
  date: string;
  kernel: { series: string; release: string };
  accel: string;
  mode: "quick" | "full";
  vm: { cpus: number; memory_mib: number; cache: string; disks: Record<string, string> };
  /** The host's CPUs and load average (1 min) before and after: other VMs make noise. */
  host?: { cpus: number; load_before: number; load_after: number };
  boot_seconds: number | null;
  total_seconds: number;
  guest: GuestReport;
  ratios: Record<string, Record<Phase, PhaseRatios>>;
  /** Device counters per user byte: workload → phase → configuration. */
  io: Record<string, Record<Phase, Partial<Record<Config, IoPerUser>>>>;
  restore_ratio: number | null;
  /** The same restore on the host's CPU, into an image file (see host_restore.ts). */
  restore_host: HostRestore | null;
  mount_ratio: number | null;
  targets: TargetCheck[];
}

function ratio(a: number | undefined, b: number | undefined): number | null {
  if (a === undefined || b === undefined || !(b > 0)) return null;
  return Math.round((a / b) * 1000) / 1000;
}

function phaseOf(g: GuestReport, w: string, c: Config, p: Phase): PhaseResult | undefined {
  return g.results[w]?.[c]?.[p];
}

/** Round k of one configuration against round k of the other (they ran side by side). */
function perRound(
  g: GuestReport,
  w: string,
  p: Phase,
  a: Config,
  b: Config,
  key: "mib_s" | "clat_p99_us" | "sync_p99_us",
): number[] {
  const ra = g.results[w]?.[a]?.rounds ?? [];
  const rb = g.results[w]?.[b]?.rounds ?? [];
  const rs: number[] = [];
  for (let i = 0; i < Math.min(ra.length, rb.length); i++) {
    const x = ratio(ra[i][p][key], rb[i][p][key]);
    if (x !== null) rs.push(x);
  }
  return rs;
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/**
 * The median of the per-round ratios: the configurations of one round ran
 * next to each other, so a round's ratio is immune to drift between rounds.
 * Falls back to the ratio of the medians when there are no rounds.
 */
function roundRatio(
  g: GuestReport,
  w: string,
  p: Phase,
  a: Config,
  b: Config,
  key: "mib_s" | "clat_p99_us" | "sync_p99_us",
): { value: number | null; range: [number, number] | null } {
  const rs = perRound(g, w, p, a, b, key);
  if (rs.length === 0) {
    return { value: ratio(phaseOf(g, w, a, p)?.[key], phaseOf(g, w, b, p)?.[key]), range: null };
  }
  return {
    value: Math.round(median(rs) * 1000) / 1000,
    range: [Math.min(...rs), Math.max(...rs)],
  };
}

export function computeRatios(g: GuestReport): Record<string, Record<Phase, PhaseRatios>> {
  const out: Record<string, Record<Phase, PhaseRatios>> = {};
  for (const w of WORKLOADS) {
    const per = {} as Record<Phase, PhaseRatios>;
    for (const p of PHASES) {
      const bdRaw = roundRatio(g, w.id, p, "bdsnap", "raw", "mib_s");
      const bdDm = roundRatio(g, w.id, p, "bdsnap", "dm-snapshot", "mib_s");
      per[p] = {
        bdsnap_raw: bdRaw.value,
        bdsnap_dm: bdDm.value,
        dm_raw: roundRatio(g, w.id, p, "dm-snapshot", "raw", "mib_s").value,
        bdsnap_thin: roundRatio(g, w.id, p, "bdsnap", "dm-thin", "mib_s").value,
        thin_raw: roundRatio(g, w.id, p, "dm-thin", "raw", "mib_s").value,
        p99_bdsnap_thin: roundRatio(g, w.id, p, "bdsnap", "dm-thin", "clat_p99_us").value,
        p99_bdsnap_dm: roundRatio(g, w.id, p, "bdsnap", "dm-snapshot", "clat_p99_us").value,
        p99_bdsnap_raw: roundRatio(g, w.id, p, "bdsnap", "raw", "clat_p99_us").value,
        bdsnap_raw_range: bdRaw.range,
        bdsnap_dm_range: bdDm.range,
      };
      if (w.kind === "ext4") {
        per[p].sync_p99_bdsnap_dm =
          roundRatio(g, w.id, p, "bdsnap", "dm-snapshot", "sync_p99_us").value;
        per[p].sync_p99_bdsnap_thin =
          roundRatio(g, w.id, p, "bdsnap", "dm-thin", "sync_p99_us").value;
      }
    }
    out[w.id] = per;
  }
  return out;
}

function r4(x: number): number {
  return Math.round(x * 10000) / 10000;
}

/** A phase's device counters per user byte and per 1000 user writes (null without counters). */
export function ioPerUser(x: PhaseResult | undefined): IoPerUser | null {
  if (!x?.io || !(x.bytes > 0) || !(x.ios > 0)) return null;
  const { origin, store } = x.io;
  const k = 1000 / x.ios;
  return {
    origin_read: r4(origin.read_bytes / x.bytes),
    origin_write: r4(origin.write_bytes / x.bytes),
    store_read: store ? r4(store.read_bytes / x.bytes) : null,
    store_write: store ? r4(store.write_bytes / x.bytes) : null,
    origin_flushes_k: Math.round(origin.flushes * k * 10) / 10,
    store_flushes_k: store ? Math.round(store.flushes * k * 10) / 10 : null,
    store_fua_k: store?.fua_writes !== undefined
      ? Math.round(store.fua_writes * k * 10) / 10
      : null,
  };
}

export function computeIo(
  g: GuestReport,
): Record<string, Record<Phase, Partial<Record<Config, IoPerUser>>>> {
  const out: Record<string, Record<Phase, Partial<Record<Config, IoPerUser>>>> = {};
  for (const w of WORKLOADS) {
    const per = {} as Record<Phase, Partial<Record<Config, IoPerUser>>>;
    for (const p of PHASES) {
      per[p] = {};
      for (const c of CONFIGS) {
        const x = ioPerUser(phaseOf(g, w.id, c, p));
        if (x) per[p][c] = x;
      }
    }
    out[w.id] = per;
  }
  return out;
}

/** The targets of issue 17 (equal guarantees), per workload, and issue 5's restore target. */
export function checkTargets(
  ratios: Record<string, Record<Phase, PhaseRatios>>,
  restoreRatio: number | null,
  io: Record<string, Record<Phase, Partial<Record<Config, IoPerUser>>>> = {},
): TargetCheck[] {
  const t: TargetCheck[] = [];
  const add = (
    target: string,
    value: number | null,
    op: ">=" | "<=",
    bound: number,
    detail?: string,
  ) =>
    t.push({
      target,
      value,
      bound,
      op,
      met: value === null ? null : op === ">=" ? value >= bound : value <= bound,
      ...(detail ? { detail } : {}),
    });
  for (const w of WORKLOADS) {
    add(`first write >= 1.2x dm-snapshot (${w.id})`, ratios[w.id].first.bdsnap_dm, ">=", 1.2);
  }
  for (const w of WORKLOADS) {
    // What a database or a mail server waits for in the ext4 workload is the fsync.
    if (w.kind === "ext4") {
      add(
        `first-write fsync p99 <= dm-snapshot's (${w.id})`,
        ratios[w.id].first.sync_p99_bdsnap_dm ?? null,
        "<=",
        1,
      );
    } else {
      add(`first-write p99 <= dm-snapshot's (${w.id})`, ratios[w.id].first.p99_bdsnap_dm, "<=", 1);
    }
  }
  for (const w of WORKLOADS) {
    add(`rewrite >= 0.97x raw (${w.id})`, ratios[w.id].rewrite.bdsnap_raw, ">=", 0.97);
  }
  for (const w of WORKLOADS) {
    const bd = io[w.id]?.first?.bdsnap;
    add(
      `store bytes written per first-written byte <= 1.02 (${w.id})`,
      bd?.store_write ?? null,
      "<=",
      1.02,
    );
  }
  for (const w of WORKLOADS) {
    // dm-snapshot's metadata commits are its FUA writes to the COW disk (area_io with
    // REQ_PREFLUSH | REQ_FUA); bdsnap's side is every flush its store disk executed.
    const bd = io[w.id]?.first?.bdsnap?.store_flushes_k;
    const dm = io[w.id]?.first?.["dm-snapshot"]?.store_fua_k;
    const value = bd === undefined || bd === null || dm === undefined || dm === null || !(dm > 0)
      ? null
      : Math.round((bd / dm) * 1000) / 1000;
    add(
      `store flushes per 1000 first writes <= 1/5 of dm-snapshot's commits (${w.id})`,
      value,
      "<=",
      0.2,
      bd !== undefined ? `bdsnap ${bd} flushes, dm-snapshot ${dm ?? "?"} commits` : undefined,
    );
  }
  add("restore >= 0.8x raw sequential write (issue 5)", restoreRatio, ">=", 0.8);
  return t;
}

export function buildResult(
  g: GuestReport,
  meta: Omit<
    BenchResult,
    "schema" | "guest" | "ratios" | "io" | "restore_ratio" | "mount_ratio" | "targets"
  >,
): BenchResult {
  const ratios = computeRatios(g);
  const io = computeIo(g);
  const restoreRatio = g.restore ? ratio(g.restore.mib_s, g.restore.raw_mib_s) : null;
  const mountRatio = g.mount ? ratio(g.mount.activated.total_ms, g.mount.plain.total_ms) : null;
  return {
    schema: 2,
    ...meta,
    guest: g,
    ratios,
    io,
    restore_ratio: restoreRatio,
    mount_ratio: mountRatio,
    targets: checkTargets(ratios, restoreRatio, io),
  };
}

/** Every configuration × workload × phase with positive throughput and latencies. */
export function missingFigures(g: GuestReport): string[] {
  const missing: string[] = [];
  for (const w of WORKLOADS) {
    for (const c of g.configs) {
      for (const p of PHASES) {
        const r = phaseOf(g, w.id, c, p);
        const ok = r && r.mib_s > 0 && r.iops > 0 && r.clat_p50_us > 0 && r.clat_p99_us > 0;
        if (!ok) missing.push(`${w.id}/${c}/${p}`);
        // Every phase writes its origin; a configuration with a store has its counters.
        else if (!r.io || !(r.io.origin.write_bytes > 0) || (c !== "raw" && !r.io.store)) {
          missing.push(`${w.id}/${c}/${p} I/O counters`);
        }
      }
    }
  }
  return missing;
}

const f = (
  x: number | null | undefined,
  d = 2,
) => (x === null || x === undefined ? "–" : x.toFixed(d));

/** Markdown: the per-run table, the ratios and the targets. */
export function markdown(r: BenchResult): string {
  const g = r.guest;
  const lines: string[] = [];
  lines.push(
    `Kernel ${r.kernel.release}, ${r.accel.toUpperCase()}, ${r.mode} mode, ${r.date}` +
      (r.host
        ? `, host load average ${r.host.load_before.toFixed(1)} before and ` +
          `${r.host.load_after.toFixed(1)} after on ${r.host.cpus} CPUs`
        : "") +
      `. MiB/s and IOPS include the drain (syncfs) after fio; latencies are fio's completion ` +
      `latencies; figures are medians over ${g.sizes.rounds} round(s), ratios the medians of ` +
      `the per-round ratios. Every configuration gives the same guarantee: an overwritten ` +
      `block's old content is durable before the write reaches the device (bdsnap write-ahead, ` +
      `dm-snapshot persistent, dm-thin snapshot); disks have a volatile write cache ` +
      `(${g.write_cache ? "write back on " + Object.keys(g.write_cache).length + " disks" : "?"}).`,
    "",
    "| workload | phase | config | MiB/s | IOPS | p50 µs | p99 µs | fsync p50 µs | fsync p99 µs | " +
      "chunks saved |",
    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
  );
  for (const w of WORKLOADS) {
    for (const p of PHASES) {
      for (const c of CONFIGS) {
        const x = phaseOf(g, w.id, c, p);
        if (!x) continue;
        lines.push(
          `| ${w.id} | ${p} | ${c} | ${f(x.mib_s, 1)} | ${f(x.iops, 0)} | ${
            f(x.clat_p50_us, 0)
          } | ` +
            `${f(x.clat_p99_us, 0)} | ${f(x.sync_p50_us, 0)} | ${f(x.sync_p99_us, 0)} | ` +
            `${c === "raw" ? "" : (x.chunks ?? "")} |`,
        );
      }
    }
  }
  lines.push(
    "",
    "| workload | phase | bdsnap/raw | (rounds) | bdsnap/dm | (rounds) | dm/raw | p99 bdsnap/dm | " +
      "bdsnap/thin | thin/raw | p99 bdsnap/thin | fsync p99 bdsnap/dm | fsync p99 bdsnap/thin |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  );
  const rg = (x: [number, number] | null) => (x ? `${f(x[0])}–${f(x[1])}` : "–");
  for (const w of WORKLOADS) {
    for (const p of PHASES) {
      const x = r.ratios[w.id][p];
      lines.push(
        `| ${w.id} | ${p} | ${f(x.bdsnap_raw)} | ${rg(x.bdsnap_raw_range)} | ${f(x.bdsnap_dm)} | ` +
          `${rg(x.bdsnap_dm_range)} | ${f(x.dm_raw)} | ${f(x.p99_bdsnap_dm)} | ` +
          `${f(x.bdsnap_thin)} | ${f(x.thin_raw)} | ${f(x.p99_bdsnap_thin)} | ` +
          `${f(x.sync_p99_bdsnap_dm)} | ${f(x.sync_p99_bdsnap_thin)} |`,
      );
    }
  }
  lines.push("");
  lines.push(
    "Device I/O per byte the user wrote in the phase (first phase: per byte written for the " +
      "first time since the snapshot), from /sys/block/<dev>/stat before and after fio + drain; " +
      "flushes are the device's completed flush requests per 1000 user writes. origin: the disk " +
      "the filesystem is on (dm-thin: the pool's data disk, which also takes its copies); store: " +
      "bdsnap's store disk, dm-snapshot's COW disk, dm-thin's metadata disk; FUA writes (traced at " +
      "block_bio_queue) are commit records: dm-snapshot's exception commits, the store ext4's " +
      "journal commits (dm-thin commits its metadata with a plain flush, no FUA write).",
    "",
    "| workload | phase | config | origin read | origin write | store read | store write | " +
      "origin flushes/1000 | store flushes/1000 | store FUA writes/1000 |",
    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
  );
  for (const w of WORKLOADS) {
    for (const p of PHASES) {
      for (const c of CONFIGS) {
        const x = r.io?.[w.id]?.[p]?.[c];
        if (!x) continue;
        lines.push(
          `| ${w.id} | ${p} | ${c} | ${f(x.origin_read, 3)} | ${f(x.origin_write, 3)} | ` +
            `${f(x.store_read, 3)} | ${f(x.store_write, 3)} | ${f(x.origin_flushes_k, 1)} | ` +
            `${f(x.store_flushes_k, 1)} | ${f(x.store_fua_k, 1)} |`,
        );
      }
    }
  }
  lines.push("");
  lines.push(
    "Kernel memory per saved chunk after a first-write phase, bytes: the implementation's own " +
      "slab caches; all slab; all slab + pages /proc/meminfo does not attribute (the last two " +
      "are dominated by noise).",
    "",
    "| workload | config | chunks | own slab | all slab | slab + pages |",
    "|---|---|---:|---:|---:|---:|",
  );
  for (const w of WORKLOADS) {
    for (const c of ["bdsnap", "dm-snapshot", "dm-thin"] as const) {
      const m = g.results[w.id]?.[c]?.memory;
      if (!m) continue;
      lines.push(
        `| ${w.id} | ${c} | ${m.chunks} | ${f(m.own_per_chunk, 1)} | ${f(m.slab_per_chunk, 1)} | ` +
          `${f(m.total_per_chunk, 1)} |`,
      );
    }
  }
  lines.push("");
  if (g.store_probe?.length) {
    lines.push(
      "The store's sync protocol alone on the store's ext4 (no module): per batch of pre-images, " +
        "append: blocks.dat and blocks.map grown and fdatasynced in turn (kmod/store.c); " +
        "prealloc: the same files written beforehand, so an append changes no metadata; " +
        "one-file: data and a record page in one preallocated file, one fdatasync.",
      "",
      "| mode | batch | store bytes written per batch | per data byte | writes | flushes | " +
        "in blocks.dat sync | in blocks.map sync | ms per batch |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    );
    for (const p of g.store_probe) {
      lines.push(
        `| ${p.mode} | ${p.batch_bytes >= 1024 ** 2 ? "1 MiB" : `${p.batch_bytes / 1024} KiB`} | ` +
          `${f(p.write_bytes_per_batch, 0)} | ${f(p.write_bytes_per_data_byte, 3)} | ` +
          `${f(p.writes_per_batch, 1)} | ${f(p.flushes_per_batch, 2)} | ` +
          `${f(p.flushes_dat_sync, 2)} | ${f(p.flushes_map_sync, 2)} | ${f(p.ms_per_batch, 1)} |`,
      );
    }
    lines.push("");
  }
  if (g.inflight) {
    lines.push(
      `In-flight pre-image peak: ${f(g.inflight.peak / 1024 ** 2, 1)} MiB ` +
        `(limit ${f(g.inflight.limit / 1024 ** 2, 0)} MiB).`,
      "",
    );
  }
  if (g.restore) {
    lines.push(
      `Restore: ${f(g.restore.bytes / 1024 ** 2, 1)} MiB at ${f(g.restore.mib_s, 1)} MiB/s ` +
        `(the CLI's ${f(g.restore.seconds)} s: verify, write, fsync; ` +
        `${f(g.restore.wall_seconds)} s wall); raw 1 MiB direct write ${
          f(g.restore.raw_mib_s, 1)
        } ` +
        `MiB/s: ratio ${f(r.restore_ratio)}.`,
      "",
    );
  }
  if (r.restore_host) {
    const h = r.restore_host;
    lines.push(
      `The same restore on the host's CPU (into an image file): ${f(h.mib_s, 1)} MiB/s ` +
        `against ${f(h.raw_mib_s, 1)} MiB/s for fio: ratio ${f(h.ratio, 3)}.`,
      "",
    );
  }
  if (g.mount) {
    lines.push(
      `Mount + unmount (median of ${g.mount.reps}): ${f(g.mount.plain.total_ms, 0)} ms plain, ` +
        `${f(g.mount.activated.total_ms, 0)} ms activated (×${f(r.mount_ratio)}).`,
      "",
    );
  }
  lines.push("| target | measured | bound | result | detail |", "|---|---:|---:|---|---|");
  for (const t of r.targets) {
    lines.push(
      `| ${t.target} | ${f(t.value, 3)} | ${t.op === ">=" ? "≥" : "≤"} ${t.bound} | ` +
        `${t.met === null ? "–" : t.met ? "met" : "**missed**"} | ${t.detail ?? ""} |`,
    );
  }
  const met = r.targets.filter((t) => t.met === true).length;
  const missed = r.targets.filter((t) => t.met === false).length;
  lines.push("", `Targets: ${met} met, ${missed} missed, ${r.targets.length - met - missed} n/a.`);
  return lines.join("\n") + "\n";
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * A horizontal grouped bar chart of the throughput ratios: per workload
 * and phase, bdsnap/raw and bdsnap/dm-snapshot, plus restore/raw; a line
 * at 1.0 and the targets marked.
 */
export function svgChart(r: BenchResult): string {
  interface Row {
    label: string;
    bars: Array<{ value: number | null; color: string }>;
    target?: number;
    /** Which bar the target is drawn across. */
    targetBar?: number;
  }
  const blue = "#3b6fb6";
  const orange = "#e08a2c";
  const green = "#4a9a5b";
  const rows: Row[] = [];
  for (const w of WORKLOADS) {
    for (const p of PHASES) {
      const x = r.ratios[w.id][p];
      rows.push({
        label: `${w.id} ${p === "first" ? "first write" : "rewrite"}`,
        bars: [
          { value: x.bdsnap_raw, color: blue },
          { value: x.bdsnap_dm, color: orange },
          { value: x.bdsnap_thin ?? null, color: green },
        ],
        target: p === "rewrite" ? 0.97 : undefined,
        targetBar: p === "rewrite" ? 0 : 1,
      });
    }
  }
  rows.push({
    label: "restore / raw seq write",
    bars: [{ value: r.restore_ratio, color: blue }],
    target: 0.8,
    targetBar: 0,
  });

  const values = rows.flatMap((row) => row.bars.map((b) => b.value ?? 0));
  const max = Math.min(4, Math.max(1.5, Math.ceil(Math.max(...values) * 2) / 2));
  const left = 230;
  const width = 720;
  const plot = width - left - 60;
  const barH = 11;
  const rowH = 3 * barH + 10;
  const top = 72;
  const height = top + rows.length * rowH + 44;
  const x = (v: number) => Math.round((left + (Math.min(v, max) / max) * plot) * 10) / 10;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
      `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="10" y="18" font-size="14" font-weight="bold">${
      esc(`bdsnap throughput ratios, ${r.kernel.release} (${r.accel}, ${r.mode}, ${r.date})`)
    }</text>`,
    `<rect x="10" y="28" width="12" height="10" fill="${blue}"/>`,
    `<text x="26" y="37">bdsnap / raw</text>`,
    `<rect x="130" y="28" width="12" height="10" fill="${orange}"/>`,
    `<text x="146" y="37">bdsnap / dm-snapshot</text>`,
    `<rect x="300" y="28" width="12" height="10" fill="${green}"/>`,
    `<text x="316" y="37">bdsnap / dm-thin snapshot</text>`,
    `<line x1="16" y1="43" x2="16" y2="55" stroke="#c00" stroke-width="2"/>`,
    `<text x="26" y="53">target: rewrite 0.97 × raw, first write 1.2 × dm-snapshot, ` +
      `restore 0.8 × raw</text>`,
    `<text x="10" y="${height - 6}" font-size="10" fill="#555">${
      esc("throughput ratios in one VM boot, medians of the per-round ratios; higher is better")
    }</text>`,
  );
  for (let v = 0; v <= max + 1e-9; v += 0.5) {
    const gx = x(v);
    parts.push(
      `<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${top + rows.length * rowH}" ` +
        `stroke="${v === 1 ? "#333" : "#ddd"}" stroke-width="${v === 1 ? 1.5 : 1}"/>`,
      `<text x="${gx}" y="${top + rows.length * rowH + 16}" text-anchor="middle">${
        v.toFixed(1)
      }×</text>`,
    );
  }
  rows.forEach((row, i) => {
    const y0 = top + i * rowH;
    parts.push(
      `<text x="${left - 8}" y="${y0 + barH + 4}" text-anchor="end">${esc(row.label)}</text>`,
    );
    row.bars.forEach((b, j) => {
      const y = y0 + j * barH;
      if (b.value === null) {
        parts.push(`<text x="${left + 4}" y="${y + barH - 2}" fill="#999">n/a</text>`);
        return;
      }
      parts.push(
        `<rect x="${left}" y="${y}" width="${
          Math.max(1, Math.round((x(b.value) - left) * 10) / 10)
        }" ` +
          `height="${barH - 1}" fill="${b.color}"/>`,
        `<text x="${x(b.value) + 4}" y="${y + barH - 2}" font-size="10">${b.value.toFixed(2)}${
          b.value > max ? " (clipped)" : ""
        }</text>`,
      );
    });
    // Rewrite: 0.97 × raw (blue bar); first write: 1.2 × dm-snapshot (orange); restore: 0.8 × raw.
    const target = row.target ?? 1.2;
    const tb = row.targetBar ?? 1;
    parts.push(
      `<line x1="${x(target)}" y1="${y0 + tb * barH - 2}" x2="${x(target)}" ` +
        `y2="${y0 + (tb + 1) * barH}" stroke="#c00" stroke-width="2"/>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}
