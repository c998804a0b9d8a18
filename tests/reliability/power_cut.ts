/**
 * Power cut: SIGKILL QEMU at a random moment of an fsync-heavy session, boot
 * again with the same disk files, check that every flushed origin write
 * survived, restore the interrupted session, and check that every block
 * written before the last completed flush holds its pre-mount content again.
 * One boot verifies the previous cut and starts the next session, so N cuts
 * take N+1 boots. Guest side: power_cut.sh, power_cut.py.
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
  tally,
} from "./_scenario.ts";

const FS_BYTES = 48 * MiB;
const DISK_BYTES = 80 * MiB; // 32 MiB raw region = 8192 tagged blocks
/**
 * The cut comes this long after the session started (seconds), times the
 * kernel's slow factor: on the debug kernel a session needs that much longer
 * to reach its first flushes, and a cut before any flush checks little.
 */
const CUT_MIN = 1;
const CUT_MAX = 15;

export const powerCut: Scenario = {
  name: "power_cut",
  summary: "SIGKILL QEMU during an fsync-heavy session, reboot, restore, check every flushed block",
  async run(kernel: Kernel, opts: ReliabilityOptions) {
    const started = performance.now();
    const cuts = opts.cuts;
    const random = rng(opts.seed);
    const [cutMin, cutMax] = [CUT_MIN, CUT_MAX].map((s) => s * slowFactor(kernel));
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
      if (starting) env.CUT_NEXT_CYCLE = String(i + 1);
      let child: Deno.ChildProcess | null = null;
      let seen = "";
      let killTimer: ReturnType<typeof setTimeout> | undefined;
      let delay = 0;
      const b = await boot(kernel, opts, {
        command: guestScript("power_cut.sh"),
        diskFiles: [disk, scratch],
        storeFile: store,
        env,
        timeout: 600,
        onStart: (c) => child = c,
        onOutput: (text) => {
          seen += text;
          if (killTimer === undefined && seen.includes("@@SESSION-STARTED")) {
            delay = cutMin + random() * (cutMax - cutMin);
            killTimer = setTimeout(() => {
              try {
                child?.kill("SIGKILL");
              } catch {
                // already gone
              }
            }, delay * 1000);
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
      // Everything QEMU wrote before it died was flushed in the guest first.
      const marks = [...b.vm.output.matchAll(/@@SYNCED (\d+) (\d+)/g)].filter((m) =>
        Number(m[1]) === i + 1
      );
      synced = marks.length > 0 ? Number(marks.at(-1)![2]) : 0;
      cutProblem = killTimer === undefined
        ? `cut ${i + 1}: the session never started (${b.problem || "no marker"})`
        : b.vm.status !== null
        ? `cut ${i + 1}: the guest exited ${b.vm.status} before the cut`
        : b.problem;
      log(
        `cut ${i + 1}/${cuts}: killed ${
          delay.toFixed(1)
        } s into the session, ${synced} flushes confirmed`,
      );
      cutBoots.push(b);
      // A killed boot is never "ok" for runVm, which keeps its logs: drop them if it was clean.
      if (!cutProblem && !opts.keep) {
        await Deno.remove(b.vm.runDir, { recursive: true }).catch(() => {});
      }
      if (killTimer === undefined) {
        // Without a session there is nothing to verify: stop here.
        verifyBoots.push({ ...b, runs: [], problem: cutProblem });
        break;
      }
    }
    const res = tally("power_cut", kernel, verifyBoots, 1, started);
    res.runs = cuts;
    const m = (k: string) => (res.metrics[k] ?? []) as number[];
    const sum = (k: string) => m(k).reduce((a, b) => a + b, 0);
    // One line per cut is too much for the table: keep failures, summarise the rest.
    res.notes = res.notes.filter((n) => n.startsWith("FAILED"));
    res.notes.unshift(
      `${cuts} cuts, ${cutBoots.length + 1} boots, each cut ${cutMin}-${cutMax} s into the ` +
        `session; flushes confirmed before each cut: ${m("synced").join(",")}; after the ` +
        `restores ${sum("unflushed_new")} raw blocks written after the last flush kept their ` +
        `new content and ${sum("fs_chunks_differing")} fs chunks differed from before the mount` +
        (retried.length
          ? `; booted again after a failure before the guest's command (${retried.join(", ")})`
          : ""),
    );
    if (res.passed === res.runs && !opts.keep) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    } else res.logs.push(dir);
    return res;
  },
};
