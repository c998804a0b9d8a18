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
  /** "≥" for throughput, "≤" for latency. */
  op: ">=" | "<=";
  met: boolean | null;
}

/** The file written to bench/results/<date>-<kernel>.json. */
export interface BenchResult {
  schema: 1;
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
  key: "mib_s" | "clat_p99_us",
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
  key: "mib_s" | "clat_p99_us",
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
        p99_bdsnap_dm: roundRatio(g, w.id, p, "bdsnap", "dm-snapshot", "clat_p99_us").value,
        p99_bdsnap_raw: roundRatio(g, w.id, p, "bdsnap", "raw", "clat_p99_us").value,
        bdsnap_raw_range: bdRaw.range,
        bdsnap_dm_range: bdDm.range,
      };
    }
    out[w.id] = per;
  }
  return out;
}

/** The issue's targets, per workload where they apply. */
export function checkTargets(
  ratios: Record<string, Record<Phase, PhaseRatios>>,
  restoreRatio: number | null,
): TargetCheck[] {
  const t: TargetCheck[] = [];
  const add = (target: string, value: number | null, op: ">=" | "<=", bound: number) =>
    t.push({
      target,
      value,
      bound,
      op,
      met: value === null ? null : op === ">=" ? value >= bound : value <= bound,
    });
  for (const w of WORKLOADS) {
    add(`rewrite >= 0.95x raw (${w.id})`, ratios[w.id].rewrite.bdsnap_raw, ">=", 0.95);
  }
  for (const w of WORKLOADS) {
    add(`first write >= 1.0x dm-snapshot (${w.id})`, ratios[w.id].first.bdsnap_dm, ">=", 1);
  }
  for (const w of WORKLOADS) {
    add(`first-write p99 <= dm-snapshot's (${w.id})`, ratios[w.id].first.p99_bdsnap_dm, "<=", 1);
  }
  add("restore >= 0.8x raw sequential write", restoreRatio, ">=", 0.8);
  return t;
}

export function buildResult(
  g: GuestReport,
  meta: Omit<
    BenchResult,
    "schema" | "guest" | "ratios" | "restore_ratio" | "mount_ratio" | "targets"
  >,
): BenchResult {
  const ratios = computeRatios(g);
  const restoreRatio = g.restore ? ratio(g.restore.mib_s, g.restore.raw_mib_s) : null;
  const mountRatio = g.mount ? ratio(g.mount.activated.total_ms, g.mount.plain.total_ms) : null;
  return {
    schema: 1,
    ...meta,
    guest: g,
    ratios,
    restore_ratio: restoreRatio,
    mount_ratio: mountRatio,
    targets: checkTargets(ratios, restoreRatio),
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
      `the per-round ratios.`,
    "",
    "| workload | phase | config | MiB/s | IOPS | p50 µs | p99 µs | chunks saved |",
    "|---|---|---|---:|---:|---:|---:|---:|",
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
            `${f(x.clat_p99_us, 0)} | ${c === "raw" ? "" : (x.chunks ?? "")} |`,
        );
      }
    }
  }
  lines.push(
    "",
    "| workload | phase | bdsnap/raw | (rounds) | bdsnap/dm | (rounds) | dm/raw | p99 bdsnap/dm |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
  );
  const rg = (x: [number, number] | null) => (x ? `${f(x[0])}–${f(x[1])}` : "–");
  for (const w of WORKLOADS) {
    for (const p of PHASES) {
      const x = r.ratios[w.id][p];
      lines.push(
        `| ${w.id} | ${p} | ${f(x.bdsnap_raw)} | ${rg(x.bdsnap_raw_range)} | ${f(x.bdsnap_dm)} | ` +
          `${rg(x.bdsnap_dm_range)} | ${f(x.dm_raw)} | ${f(x.p99_bdsnap_dm)} |`,
      );
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
    for (const c of ["bdsnap", "dm-snapshot"] as const) {
      const m = g.results[w.id]?.[c]?.memory;
      if (!m) continue;
      lines.push(
        `| ${w.id} | ${c} | ${m.chunks} | ${f(m.own_per_chunk, 1)} | ${f(m.slab_per_chunk, 1)} | ` +
          `${f(m.total_per_chunk, 1)} |`,
      );
    }
  }
  lines.push("");
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
  lines.push("| target | measured | met |", "|---|---:|---|");
  for (const t of r.targets) {
    lines.push(
      `| ${t.target} | ${f(t.value, 3)} | ${t.met === null ? "–" : t.met ? "yes" : "**no**"} |`,
    );
  }
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
  }
  const blue = "#3b6fb6";
  const orange = "#e08a2c";
  const rows: Row[] = [];
  for (const w of WORKLOADS) {
    for (const p of PHASES) {
      const x = r.ratios[w.id][p];
      rows.push({
        label: `${w.id} ${p === "first" ? "first write" : "rewrite"}`,
        bars: [{ value: x.bdsnap_raw, color: blue }, { value: x.bdsnap_dm, color: orange }],
        target: p === "rewrite" ? 0.95 : undefined,
      });
    }
  }
  rows.push({ label: "restore / raw seq write", bars: [{ value: r.restore_ratio, color: blue }] });

  const values = rows.flatMap((row) => row.bars.map((b) => b.value ?? 0));
  const max = Math.min(4, Math.max(1.5, Math.ceil(Math.max(...values) * 2) / 2));
  const left = 230;
  const width = 720;
  const plot = width - left - 60;
  const barH = 11;
  const rowH = 2 * barH + 10;
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
    `<line x1="16" y1="43" x2="16" y2="55" stroke="#c00" stroke-width="2"/>`,
    `<text x="26" y="53">target: rewrite 0.95 × raw, restore 0.8 × raw; ` +
      `first write 1.0 × dm-snapshot (the 1.0 line)</text>`,
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
    // Rewrite: 0.95 × raw (blue bar); restore: 0.8 × raw; first write: 1.0 × dm (the 1.0 line).
    const target = row.target ?? (i === rows.length - 1 ? 0.8 : undefined);
    if (target !== undefined) {
      parts.push(
        `<line x1="${x(target)}" y1="${y0 - 2}" x2="${x(target)}" y2="${y0 + 2 * barH}" ` +
          `stroke="#c00" stroke-width="2"/>`,
      );
    }
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}
