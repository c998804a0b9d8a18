/**
 * `bdsnap export DEV --session ID --output IMG [--force]`: write a full image
 * of DEV as it was before the session's mount (the current content of DEV
 * with the needed pre-images applied), never writing to DEV. It works while
 * DEV is mounted, as a read-only view for backups: after copying DEV it
 * flushes DEV, so that the open session's pending pre-images reach the store,
 * and plans again from the store before applying them to the copy.
 * @module
 */

import type { Command } from "./_lib/commander.ts";
import { globals, report, storeRoot } from "./_lib/context.ts";
import { eprintln } from "./_lib/io.ts";
import { progressBar, progressWanted } from "./_lib/progress.ts";
import { absolutePath } from "./_lib/activation.ts";
import { readStore } from "./_lib/store_view.ts";
import { resolveSessionSpec } from "./_lib/session_spec.ts";
import {
  cli,
  planForCli,
  planJson,
  reportWarnings,
  resolveDevice,
  type RestoreDeps,
  withDefaults,
} from "./_lib/restore_common.ts";
import { identityOf } from "./_lib/device_path.ts";
import { formatBytes, formatNs } from "./_lib/units.ts";
import { exportImage } from "../lib/export.ts";
import { planRestore } from "../lib/plan.ts";

/** The options of `export`. */
export interface ExportCommandOptions {
  session: string;
  output: string;
  force?: boolean;
  acceptGap?: boolean;
}

/** Carry out `export` (exported for tests, which inject `deps`). */
export async function runExport(
  dev: string,
  o: ExportCommandOptions,
  opts: ReturnType<typeof globals>,
  deps: RestoreDeps = {},
): Promise<void> {
  const d = withDefaults(deps);
  const root = storeRoot(opts).root;
  const path = absolutePath(dev);
  const sessions = await readStore(root, d.liveSessions());
  const device = await resolveDevice(dev, sessions);
  const identity = identityOf(dev);
  const options = { device, identity, allowOpen: true, acceptGap: o.acceptGap };
  const id = resolveSessionSpec(sessions, o.session, device, identity);
  const plan = planForCli(sessions, id, options);
  reportWarnings(opts, plan);
  const progress = await progressBar(progressWanted(opts.quiet));
  try {
    const r = await cli(() =>
      exportImage(plan, {
        target: path,
        output: absolutePath(o.output),
        force: o.force,
        onProgress: (s) => progress.update(s),
        replan: async () => planRestore(await readStore(root, d.liveSessions()), id, options),
      })
    );
    progress.stop();
    for (const w of r.warnings.filter((w) => w.startsWith("IDENTITY"))) {
      eprintln(`bdsnap: WARNING: ${w}`);
    }
    const when = plan.target.meta ? formatNs(plan.target.meta.mountTimeNs) : "?";
    report(
      opts,
      [
        `exported ${path} as before the mount of ${when} (session ${plan.target.id}) to ${r.output}`,
        `copied ${formatBytes(r.copied)}, then applied ${
          formatBytes(r.bytes)
        } of pre-images from ` +
        `${r.plan.sessions.length} session(s); ${r.seconds.toFixed(1)} s`,
      ],
      {
        action: "export",
        output: r.output,
        source: path,
        ...planJson(r.plan),
        copied_bytes: r.copied,
        written_bytes: r.bytes,
        verified_bytes: r.verifiedBytes,
        seconds: r.seconds,
      },
    );
  } finally {
    progress.stop();
  }
}

/** Register `export`. `deps` replaces the module-backed lookups (tests). */
export function register(program: Command, deps: RestoreDeps = {}): void {
  program
    .command("export")
    .description("write an image of a device as it was before a session's mount (read-only)")
    .argument("<dev>", "the device or image file (it is only read)")
    .requiredOption("--session <id>", "the state before this session's mount")
    .requiredOption("--output <img>", "the image file to write (replaced if it exists)")
    .option("--force", "override the identity check of DEV (only that one)")
    .option(
      "--accept-gap",
      "export even though the chain is not provably exact (see restore --help): the image " +
        "then mixes pre-mount blocks with blocks written after that mount",
    )
    .addHelpText(
      "after",
      "\nWorks while DEV is mounted: the open session's pre-images are flushed and read\n" +
        "after the copy. The output is written as IMG.partial and renamed when complete.",
    )
    .action(async (dev: string, o: ExportCommandOptions, cmd: Command) => {
      await runExport(dev, o, globals(cmd), deps);
    });
}
