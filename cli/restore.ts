/**
 * `bdsnap restore [DEV] [--session ID] [--target PATH] [--yes] [--dry-run]
 * [--force]`: roll a device (or image file) back to its exact state before
 * the mount of a session.
 *
 * On a terminal without `--session` it asks: the device, then the session,
 * shows the plan, and wants the target's name typed as confirmation. Without
 * a terminal it needs `--session` and `--yes`. Nothing is written unless
 * every check passed: the chain of sessions, the target's size and identity,
 * that it is neither activated nor in use, and every store checksum.
 * @module
 */

import type { Command } from "./_lib/commander.ts";
import { CliError, EXIT_FAILED, EXIT_USAGE } from "./_lib/errors.ts";
import { type GlobalOptions, globals, report, storeRoot } from "./_lib/context.ts";
import { eprintln, println } from "./_lib/io.ts";
import { input, isPromptCancel, select } from "./_lib/prompts.ts";
import { progressBar, progressWanted } from "./_lib/progress.ts";
import { absolutePath } from "./_lib/activation.ts";
import { refuseWhileViewed } from "./_lib/views.ts";
import { readStore } from "./_lib/store_view.ts";
import { audited, type AuditRecord } from "./_lib/audit.ts";
import { resolveSessionSpec } from "./_lib/session_spec.ts";
import {
  cli,
  devicesInStore,
  guarantee,
  INEXACT,
  planForCli,
  planJson,
  planLines,
  refusalAdvice,
  reportWarnings,
  resolveDevice,
  type RestoreDeps,
  withDefaults,
} from "./_lib/restore_common.ts";
import { identityOf } from "./_lib/device_path.ts";
import { formatBytes, formatNs } from "./_lib/units.ts";
import { applyRestore, type RestoreResult } from "../lib/apply.ts";
import type { Session } from "../lib/store.ts";
import { checkChain, type Plan } from "../lib/plan.ts";
import { RestoreError } from "../lib/errors.ts";

/** The options of `restore`. */
export interface RestoreCommandOptions {
  session?: string;
  target?: string;
  yes?: boolean;
  dryRun?: boolean;
  force?: boolean;
  readBack?: boolean;
  acceptGap?: boolean;
}

/** Run a prompt; Ctrl-C becomes "cancelled, nothing written". */
async function ask<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (isPromptCancel(e)) throw new CliError("cancelled; nothing was written", EXIT_FAILED);
    throw e;
  }
}

/** Ask for the device (unless given) and the session to restore to. */
async function choose(
  sessions: Session[],
  root: string,
  device: string | undefined,
  acceptGap: boolean,
): Promise<{ device: string; id: string }> {
  const devices = devicesInStore(sessions);
  if (devices.size === 0) throw new CliError(`no sessions in the store ${root}`, EXIT_FAILED);
  if (device === undefined) {
    device = await ask(() =>
      select<string>({
        message: "Device to restore",
        choices: [...devices].map(([d, ss]) => {
          const last = ss[ss.length - 1];
          const t = last.meta ? formatNs(last.meta.mountTimeNs) : "?";
          return { name: `${d}  (${ss.length} session(s), last mounted ${t})`, value: d };
        }),
      })
    );
  }
  const own = devices.get(device);
  if (own === undefined) {
    throw new CliError(`no sessions of ${device} in ${root}: \`bdsnap sessions\` lists them`);
  }
  const choices = [...own].reverse().map((s) => {
    let reason: string | null = null;
    try {
      checkChain(sessions, s.id, { device, acceptGap });
    } catch (e) {
      reason = e instanceof RestoreError ? refusalAdvice(e, sessions, s.id, device) : String(e);
    }
    const m = s.meta;
    const label = `${m ? formatNs(m.mountTimeNs) : "?"}  ${(m?.fsType ?? "-").padEnd(5)}  ` +
      `${formatBytes(s.dataBytes).padStart(10)} changed  ${s.state}` +
      (m ? `, ${s.durability}` : "");
    return {
      name: label,
      value: s.id,
      description: reason === null ? s.id : `${s.id}: cannot restore: ${reason}`,
      disabled: reason === null ? false : "(cannot restore)",
    };
  });
  if (choices.every((c) => c.disabled !== false)) {
    throw new CliError(`no session of ${device} can be restored: ${choices[0].description}`);
  }
  const id = await ask(() =>
    select<string>({
      message: `Restore ${device} to its state before which mount?`,
      choices,
      pageSize: 15,
    })
  );
  return { device, id };
}

/**
 * Carry out `restore` (exported for tests, which inject `deps`), filling in
 * `audit` with the device and session once they are known.
 */
export async function runRestore(
  dev: string | undefined,
  o: RestoreCommandOptions,
  opts: GlobalOptions,
  deps: RestoreDeps = {},
  audit: AuditRecord = { command: "restore" },
): Promise<void> {
  const d = withDefaults(deps);
  if (dev !== undefined) refuseWhileViewed(absolutePath(dev), "restore");
  const interactive = d.interactive();
  if (!o.yes && !o.dryRun && !interactive) {
    throw new CliError(
      "refusing to restore without --yes: there is no terminal to confirm on",
      EXIT_USAGE,
    );
  }
  if (o.session === undefined && !interactive) {
    throw new CliError(
      "no --session given and no terminal to choose on: `bdsnap sessions` lists the ids",
      EXIT_USAGE,
    );
  }
  const root = storeRoot(opts).root;
  const sessions = await readStore(root, d.liveSessions());
  let device = dev === undefined ? undefined : await resolveDevice(dev, sessions);
  // The device named now, by its stable identity: after renumbering its
  // chain was recorded under another path.
  const identity = dev === undefined ? undefined : identityOf(dev);
  let id = o.session === undefined
    ? undefined
    : resolveSessionSpec(sessions, o.session, device, identity);
  if (id === undefined) {
    ({ device, id } = await choose(sessions, root, device, Boolean(o.acceptGap)));
  }
  const plan: Plan = planForCli(sessions, id, { device, identity, acceptGap: o.acceptGap });
  const renamed = dev !== undefined && plan.identity !== "" && absolutePath(dev) !== plan.device
    ? absolutePath(dev)
    : undefined;
  const targetPath = o.target !== undefined ? absolutePath(o.target) : renamed ?? plan.device;
  Object.assign(audit, { device: plan.device, session: plan.target.id });
  if (targetPath !== plan.device) audit.target = targetPath;
  const human = !opts.json && !opts.quiet;
  if (human) {
    for (const l of planLines(plan, targetPath, targetPath === renamed)) println(l);
  }
  reportWarnings(opts, plan);

  const progress = await progressBar(progressWanted(opts.quiet));
  try {
    const r = await cli(() =>
      applyRestore(plan, {
        target: o.target !== undefined ? targetPath : undefined,
        devicePath: renamed,
        force: o.force,
        isActivated: d.isActivated,
        dryRun: o.dryRun,
        readBack: o.readBack,
        onProgress: (p) => progress.update(p),
        onTarget: async (target) => {
          // Loud, even with --quiet: the user overrode a safety check.
          for (const w of target.warnings) eprintln(`bdsnap: WARNING: ${w}`);
          if (!o.yes && !o.dryRun) await confirm(plan, targetPath);
        },
      })
    );
    progress.stop();
    const base = {
      action: "restore",
      target: targetPath,
      target_type: r.target.type,
      forced: r.warnings.length > plan.warnings.length,
      ...planJson(plan),
      warnings: r.warnings,
      superseded: r.superseded,
    };
    if (r.dryRun) {
      report(
        opts,
        `dry run: all checks passed (target, chain, checksums of ${plan.sessions.length} ` +
          `session(s)); nothing was written`,
        { ...base, dry_run: true, written_bytes: 0, verified_bytes: 0, seconds: 0 },
      );
      return;
    }
    // The restore is done either way; a missing mark only loses a guard.
    for (const u of r.unmarked) {
      eprintln(`bdsnap: warning: could not mark session ${u.id} as superseded: ${u.error}`);
    }
    const checked = plan.sessions.reduce((n, s) => n + s.dataBytes, 0);
    report(opts, doneLines(plan, targetPath, r, checked, Boolean(o.readBack)), {
      ...base,
      dry_run: false,
      written_bytes: r.bytes,
      checked_bytes: checked,
      verified_bytes: r.verifiedBytes,
      direct_io: r.direct,
      seconds: r.seconds,
    });
  } finally {
    progress.stop();
  }
}

/** Ask for the target's name to be typed; anything else writes nothing. */
async function confirm(plan: Plan, targetPath: string): Promise<void> {
  const answer = await ask(() =>
    input({
      message: `This overwrites ${formatBytes(plan.bytes)} of ${targetPath}; the result is ` +
        `${guarantee(plan)}. Type ${targetPath} to confirm:`,
    })
  );
  if (answer.trim() !== targetPath) {
    throw new CliError("the name typed does not match; nothing was written", EXIT_FAILED);
  }
}

/** What a finished restore says. */
function doneLines(
  plan: Plan,
  targetPath: string,
  r: RestoreResult,
  checked: number,
  readBack: boolean,
): string[] {
  const when = plan.target.meta ? formatNs(plan.target.meta.mountTimeNs) : "?";
  const rate = formatBytes(r.bytes / Math.max(r.seconds, 1e-3));
  return [
    `restored ${targetPath} to its state before the mount of ${when} (session ${plan.target.id})`,
    `wrote ${plan.chunks} chunks (${formatBytes(r.bytes)}) in ${plan.extents.length} extents, ` +
    `${r.seconds.toFixed(1)} s (${rate}/s)`,
    `verified: checksums of ${plan.sessions.length} session(s) (${
      formatBytes(checked)
    }) before writing; ` + (readBack
      ? `${formatBytes(r.verifiedBytes)} read back from the medium after fsync, identical`
      : `fsync done (--read-back also compares what the device stored)`),
    ...(r.superseded.length > 0
      ? [
        `note: the ${r.superseded.length} later session(s) of ${plan.device} describe changes ` +
        `this restore undid; they are marked superseded and can no longer be restored to ` +
        `(see bdsnap sessions)`,
      ]
      : []),
  ];
}

/**
 * Register `restore`. `deps` replaces the module-backed checks (activation,
 * live sessions, terminal); the CLI passes none.
 */
export function register(program: Command, deps: RestoreDeps = {}): void {
  program
    .command("restore")
    .description("roll a device back to its exact state before a session's mount")
    .argument("[dev]", "the device or image file (asked for on a terminal when omitted)")
    .option(
      "--session <id>",
      "restore to the state before this session's mount (an id, latest, a number from " +
        "`bdsnap sessions` column #, or a unique id prefix)",
    )
    .option("--target <path>", "write into this device or image file of the same size instead")
    .option("-y, --yes", "do not ask for confirmation (needed without a terminal)")
    .option("--dry-run", "print the plan and run every check; write nothing")
    .option(
      "--force",
      "override the identity check (only that one: an inexact chain needs --accept-gap); " +
        "says so loudly",
    )
    .option("--read-back", "after fsync, read the written ranges back from the device and compare")
    .option(
      "--accept-gap",
      "restore even though the chain is not provably exact (a session failed, missing, " +
        "incomplete, or cut by a crash without write-ahead durability): " + INEXACT,
    )
    .addHelpText(
      "after",
      "\nThe device must be unmounted and deactivated (`bdsnap deactivate DEV`) first.\n" +
        "Every chunk comes from the earliest session at or after --session that saved it;\n" +
        "all checksums are verified before the first byte is written. An interrupted\n" +
        "restore can simply be run again.\n\n" +
        "Exact: a chain of sessions that closed, or were cut by a crash with write-ahead\n" +
        "durability (the module's default: every pre-image was saved before its write\n" +
        "reached the device). Refused without --accept-gap, even with --yes or -q: a failed\n" +
        "session (writes after the failure were not saved), one cut by a crash with flush\n" +
        "durability (older modules), and missing or incomplete sessions.",
    )
    .action(async (dev: string | undefined, o: RestoreCommandOptions, cmd: Command) => {
      // A dry run changes nothing, so it leaves no audit line.
      if (o.dryRun) return await runRestore(dev, o, globals(cmd), deps);
      const rec: AuditRecord = {
        command: "restore",
        device: dev && absolutePath(dev),
        session: o.session,
      };
      await audited(rec, () => runRestore(dev, o, globals(cmd), deps, rec));
    });
}
