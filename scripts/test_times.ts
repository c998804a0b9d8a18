/**
 * The suite's time budget, kept visible: what each VM test file cost in this
 * run (boot, and the guest's steps by kind: bdsnap start-ups, hashing, mkfs…),
 * printed as a table at the end of every `deno task test`, and remembered in
 * the work cache so that the next run starts the longest files first.
 * @module
 */
import { cacheDir } from "./vm/paths.ts";

/** What one VM test file cost on one kernel. */
export interface FileTime {
  file: string;
  series: string;
  /** The VM tier the file ran in, or "host" for a harness test file (it boots VMs itself). */
  tier: "core" | "full" | "host";
  ok: boolean;
  bootSeconds: number | null;
  totalSeconds: number;
  profile: Record<string, { count: number; seconds: number }>;
}

/** Columns of the profile shown, in order; the rest is summed into "other". */
const KINDS = ["bdsnap", "sha256", "mkfs", "fill", "fio", "mount"];

function memoPath(): string {
  return `${cacheDir()}/test-times.json`;
}

/** The key a file's time is remembered under. */
export function timeKey(file: string, series: string, tier: string): string {
  return `${file} [${series}] ${tier}`;
}

/** Seconds each file took in the last run that ran it (empty before the first). */
export async function loadTimes(): Promise<Record<string, number>> {
  try {
    return JSON.parse(await Deno.readTextFile(memoPath()));
  } catch {
    return {};
  }
}

/** Remember this run's times beside the older ones. */
export async function saveTimes(times: FileTime[]): Promise<void> {
  const memo = await loadTimes();
  for (const t of times) memo[timeKey(t.file, t.series, t.tier)] = Math.round(t.totalSeconds);
  await Deno.mkdir(cacheDir(), { recursive: true });
  await Deno.writeTextFile(memoPath(), JSON.stringify(memo, null, 2) + "\n");
}

const s = (x: number) => x.toFixed(0);

/** The per-file table, longest first, with a total line. */
export function timeTable(times: FileTime[], phases: [string, number][]): string {
  const head = ["file", "kernel", "tier", "result", "boot", "total", ...KINDS, "other"];
  const rows = [...times].sort((a, b) => b.totalSeconds - a.totalSeconds).map((t) => {
    const guest = Object.values(t.profile).reduce((a, p) => a + p.seconds, 0);
    const shown = KINDS.map((k) => t.profile[k]);
    const other = t.totalSeconds - (t.bootSeconds ?? 0) -
      shown.reduce((a, p) => a + (p?.seconds ?? 0), 0);
    return [
      t.file.replace(/^tests\/vm\//, "").replace(/_test\.ts$/, ""),
      t.series,
      t.tier,
      t.ok ? "ok" : "FAILED",
      t.bootSeconds === null ? "-" : s(t.bootSeconds),
      s(t.totalSeconds),
      ...shown.map((p) => (p ? `${s(p.seconds)}/${p.count}` : "")),
      guest > 0 ? s(Math.max(0, other)) : "",
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) =>
    r.map((c, i) => (i < 4 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  const vmSum = times.reduce((a, t) => a + t.totalSeconds, 0);
  return [
    "[test] time per VM test file, seconds (kinds: seconds/steps, from tests/vm/_helpers.ts)",
    line(head),
    ...rows.map(line),
    `[test] VM files: ${s(vmSum)} s of VM time in all; ` +
    phases.map(([name, secs]) => `${name} ${s(secs)} s`).join(", "),
  ].join("\n");
}
