/**
 * Power cut: a write-heavy session (buffered files with an occasional fsync,
 * an O_DIRECT file, raw O_DIRECT 4 KiB writes past the filesystem's end with
 * a flush after every 8, fsync-heavy small files) is cut at a random moment
 * by a hard reset: the host SIGKILLs QEMU, or the guest resets itself with
 * sysrq b (no sync, no unmount). The disks are attached cache=writethrough
 * (scripts/vm/qemu.ts): a write the guest saw complete is in the host's
 * file, so the host files are the medium at the moment of the cut. The next
 * boot, with the same files, checks that every flushed origin write
 * survived, that the session reads `interrupted`, restores it (no
 * --accept-gap: pre-images are written ahead of the origin writes they
 * protect), and that the whole device's sha256 equals the one recorded
 * before the mount. Exact, every cut: no allowed differences. One boot
 * verifies the previous cut and starts the next session, so N cuts take
 * N+1 boots. Guest side: power_cut.sh, power_cut.py.
 * @module
 */
import { type Kernel, slowFactor } from "../../scripts/vm/kernels.ts";
import { runChecked } from "../../scripts/vm/_process.ts";
import { cacheDir } from "../../scripts/vm/paths.ts";
import {
  type Boot,
  boot,
  guestScript,
  log,
  MiB,
  type ReliabilityOptions,
  rng,
  type Scenario,
  type ScenarioResult,
  tally,
} from "./_scenario.ts";

const FS_BYTES = 48 * MiB;
const DISK_BYTES = 80 * MiB; // 32 MiB raw region = 8192 tagged blocks
/**
 * The cut comes this long (seconds) after the raw writer's first completed
 * flush, when every writer is running, times the kernel's slow factor: on
 * the debug kernel the workload needs that much longer to get going.
 */
const CUT_MIN = 0.5;
const CUT_MAX = 12;
/** No flush this long after the session started: cut anyway (and say so). */
const FIRST_FLUSH_LIMIT = 120;

/** How a cut is made. */
type CutHow = "kill" | "sysrq";

export interface PowerCutOptions {
  /** Boot limit per boot (seconds, before the slow factor). */
  bootLimit?: number;
  /** How each cut is made: drawn at random (default), or alternating, QEMU killed first. */
  how?: "random" | "alternate";
}

export const powerCut: Scenario = {
  name: "power_cut",
  summary:
    "hard reset (QEMU killed / sysrq b) during a write-heavy session, reboot, restore: whole-device sha256 exact",
  run: (kernel: Kernel, opts: ReliabilityOptions) => runPowerCut(kernel, opts),
};

export async function runPowerCut(
  kernel: Kernel,
  opts: ReliabilityOptions,
  pc: PowerCutOptions = {},
): Promise<ScenarioResult> {
  const started = performance.now();
  const cuts = opts.cuts;
  const random = rng(opts.seed);
  const slow = slowFactor(kernel);
  const [cutMin, cutMax] = [CUT_MIN, CUT_MAX].map((s) => s * slow);
  await Deno.mkdir(`${cacheDir()}/runs`, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: `${cacheDir()}/runs`, prefix: "power-cut-" });
  const disk = `${dir}/origin.img`;
  const scratch = `${dir}/scratch.img`;
  const store = `${dir}/store.img`;
  for (const [f, size] of [[disk, DISK_BYTES], [scratch, 64 * MiB], [store, 512 * MiB]]) {
    const h = await Deno.open(f as string, { write: true, create: true, truncate: true });
    await h.truncate(size as number);
    h.close();
  }
  await runChecked("mkfs.ext4", ["-q", "-F", "-E", "nodiscard", "-L", "bdsnap-store", store]);

  // Boot i verifies cut i-1 (if any) and starts session i (if i < cuts).
  const cutBoots: Boot[] = [];
  const verifyBoots: Boot[] = [];
  const hows: string[] = [];
  let synced = 0;
  let cutProblem = "";
  const retried: string[] = [];
  for (let i = 0; i <= cuts; i++) {
    const env: Record<string, string> = { CUT_FS_BYTES: String(FS_BYTES) };
    if (i > 0) {
      env.CUT_VERIFY_CYCLE = String(i);
      env.CUT_SYNCED = String(synced);
    }
    const starting = i < cuts;
    // Drawn for every boot, so a seed gives the same cuts whatever happens.
    const draw = random();
    const how: CutHow = pc.how === "alternate"
      ? (i % 2 === 0 ? "kill" : "sysrq")
      : draw < 0.5
      ? "kill"
      : "sysrq";
    const delay = cutMin + random() * (cutMax - cutMin);
    if (starting) {
      env.CUT_NEXT_CYCLE = String(i + 1);
      if (how === "sysrq") env.CUT_SYSRQ_DELAY = delay.toFixed(2);
    }
    let child: Deno.ChildProcess | null = null;
    let seen = "";
    let sessionAt = 0;
    let flushedAt = 0;
    let killedAt = 0;
    let fallback = false;
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    const kill = () => {
      killedAt = performance.now();
      try {
        child?.kill("SIGKILL");
      } catch {
        // already gone
      }
    };
    const b = await boot(kernel, opts, {
      command: guestScript("power_cut.sh"),
      diskFiles: [disk, scratch],
      storeFile: store,
      env,
      timeout: pc.bootLimit ?? 600,
      onStart: (c) => child = c,
      onOutput: (text) => {
        seen += text;
        if (!sessionAt && seen.includes("@@SESSION-STARTED")) {
          sessionAt = performance.now();
          killTimer = setTimeout(() => {
            fallback = true;
            kill();
          }, FIRST_FLUSH_LIMIT * slow * 1000);
        }
        if (sessionAt && !flushedAt && /@@SYNCED \d+ 1\b/.test(seen)) {
          flushedAt = performance.now();
          clearTimeout(killTimer);
          // sysrq: the guest resets itself; the host kills only if it did not.
          const wait = how === "kill" ? delay : delay + 60 * slow;
          killTimer = setTimeout(kill, wait * 1000);
        }
      },
    }, starting);
    clearTimeout(killTimer);
    if (b.bootRetry) retried.push(`boot ${i + 1}: ${b.bootRetry}`);
    if (i > 0) {
      // Runs reported by this boot belong to cut i; an earlier failed cut boot fails it too.
      verifyBoots.push(
        cutProblem ? { ...b, problem: [cutProblem, b.problem].filter(Boolean).join("; ") } : b,
      );
    }
    if (!starting) {
      // runVm keeps the run directory when the disks are ours: drop it if the boot was clean.
      if (!b.problem && !opts.keep) {
        await Deno.remove(b.vm.runDir, { recursive: true }).catch(() => {});
      }
      break;
    }
    // Everything QEMU wrote before it died was completed in the guest first.
    const marks = [...b.vm.output.matchAll(/@@SYNCED (\d+) (\d+)/g)].filter((m) =>
      Number(m[1]) === i + 1
    );
    synced = marks.length > 0 ? Number(marks.at(-1)![2]) : 0;
    const ended = killedAt || performance.now();
    const into = flushedAt ? (ended - flushedAt) / 1000 : 0;
    const madeBy = killedAt ? "QEMU killed" : "sysrq b";
    cutProblem = !sessionAt
      ? `cut ${i + 1}: the session never started (${b.problem || "no marker"})`
      : fallback
      ? `cut ${i + 1}: no flush completed ${FIRST_FLUSH_LIMIT * slow} s into the session (cut then)`
      : b.vm.status !== null
      ? `cut ${i + 1}: the guest exited ${b.vm.status} before the cut`
      : b.vm.timedOut
      ? `cut ${i + 1}: timed out`
      : how === "sysrq" && killedAt
      ? `cut ${i + 1}: no sysrq reset ${delay.toFixed(1)} s after the first flush (QEMU killed)`
      : b.problem;
    hows.push(killedAt ? "kill" : "sysrq");
    log(
      `cut ${i + 1}/${cuts}: ${madeBy} ${into.toFixed(1)} s after the first flush ` +
        `(${((ended - sessionAt) / 1000).toFixed(1)} s into the session), ` +
        `${synced} flushes confirmed${cutProblem ? ` — ${cutProblem}` : ""}`,
    );
    cutBoots.push(b);
    // A killed boot is never "ok" for runVm, which keeps its logs: drop them if it was clean.
    if (!cutProblem && !opts.keep) {
      await Deno.remove(b.vm.runDir, { recursive: true }).catch(() => {});
    }
    if (!sessionAt) {
      // Without a session there is nothing to verify: stop here.
      verifyBoots.push({ ...b, runs: [], problem: cutProblem });
      break;
    }
  }
  const res = tally("power_cut", kernel, verifyBoots, 1, started);
  res.runs = cuts;
  const m = (k: string) => (res.metrics[k] ?? []) as unknown[];
  const sum = (k: string) => m(k).reduce((a: number, b) => a + Number(b), 0);
  const exact = m("exact").filter((x) => x === true).length;
  const refused = m("refused").filter((x) => x === true).length;
  const kills = hows.filter((h) => h === "kill").length;
  res.metrics.cut_how = hows;
  res.metrics.exact_count = exact;
  // One line per cut is too much for the table: keep failures, summarise the rest.
  res.notes = res.notes.filter((n) => n.startsWith("FAILED"));
  res.notes.unshift(
    `${cuts} cuts (${kills} QEMU killed, ${hows.length - kills} sysrq b), ` +
      `${cutBoots.length + 1} boots, each ${cutMin}-${cutMax} s after the session's first ` +
      `flush; flushes confirmed before each cut: ${m("synced").join(",")}; ` +
      `${exact}/${cuts} restores exact (whole-device sha256 = pre-mount)` +
      (exact < m("exact").length
        ? `; in the inexact ones ${sum("raw_blocks_differing")} raw blocks ` +
          `(${sum("unflushed_new")} written after the last flush) and ` +
          `${sum("fs_chunks_differing")} fs chunks differed from before the mount`
        : "") +
      (refused ? `; the restorer refused ${refused} without --accept-gap` : "") +
      (retried.length
        ? `; booted again after a failure before the guest's command (${retried.join(", ")})`
        : ""),
  );
  if (res.passed === res.runs && !opts.keep) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  } else res.logs.push(dir);
  return res;
}
