/**
 * `bdsnap view`: a read-only block device showing an activated device as it
 * was before a session's mount, while the device stays mounted and written.
 *
 * - `bdsnap view DEV [--session S|latest] [--mount DIR]`: create one (the
 *   open session by default, else the latest) and print its path;
 * - `bdsnap view --list`: the views that exist;
 * - `bdsnap view --remove PATH`: remove one (unmounting what `--mount` mounted).
 *
 * Each view is a /dev/nbdN served by a process of its own (cli/_lib/view_server.ts)
 * through lib/view_reader.ts; docs/ARCHITECTURE.md says why in user space.
 * @module
 */

import type { Command } from "./_lib/commander.ts";
import { Option } from "./_lib/commander.ts";
import { CliError, EXIT_FAILED, EXIT_NO_MODULE, EXIT_USAGE } from "./_lib/errors.ts";
import { type GlobalOptions, globals, report, storeRoot } from "./_lib/context.ts";
import { printJson, println } from "./_lib/io.ts";
import { formatTable } from "./_lib/table.ts";
import { absolutePath } from "./_lib/activation.ts";
import { readStore, storeError } from "./_lib/store_view.ts";
import { resolveSessionSpec } from "./_lib/session_spec.ts";
import { identityOf, resolveDevice } from "./_lib/device_path.ts";
import { planForCli } from "./_lib/restore_common.ts";
import { selfCommand } from "./_lib/self_command.ts";
import { liveState, serveView } from "./_lib/view_server.ts";
import { dropView, listViews, saveView, type ViewRecord } from "./_lib/views.ts";
import { disconnectNbd, nbdDevices } from "../ffi/nbd.ts";
import { mountsOn } from "../lib/mounted.ts";
import * as control from "../ffi/control.ts";

/** The options of `view`. */
export interface ViewOptions {
  session?: string;
  mount?: string;
  list?: boolean;
  remove?: string;
  serve?: string;
}

/** Mount options that let each filesystem mount a read-only view without replaying its journal. */
export function viewMountOptions(fsType: string): string {
  switch (fsType) {
    case "ext2":
    case "ext3":
    case "ext4":
      return "ro,noload";
    case "xfs":
      return "ro,norecovery,nouuid";
    case "btrfs":
      return "ro,rescue=nologreplay";
    default:
      return "ro";
  }
}

/** How long `--remove` waits for the view's server to go. */
const REMOVE_WAIT_MS = 15_000;

async function run(cmd: string[], what: string): Promise<string> {
  const out = await new Deno.Command(cmd[0], { args: cmd.slice(1), stdin: "null" }).output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new CliError(`${what}: ${err || `${cmd[0]} exited with ${out.code}`}`);
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/** Start a view's server and wait until its device answers; returns the device. */
async function startServer(origin: string, root: string, session: string): Promise<string> {
  const argv = selfCommand(["--store", root, "view", "--serve", session, origin]);
  // setsid: the server outlives this command and its terminal.
  const child = new Deno.Command("setsid", {
    args: argv,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  for (;;) {
    const { value, done } = await lines.read();
    if (done) break;
    seen += value;
    const m = seen.match(/^ready (\S+)\n/m);
    if (m) {
      await lines.cancel();
      child.stderr.cancel();
      child.unref();
      return m[1];
    }
  }
  const status = await child.status;
  const err = (await new Response(child.stderr).text()).trim();
  throw new CliError(
    `could not create the view: ${err.replace(/^bdsnap: /, "") || `exit ${status.code}`}`,
  );
}

async function create(dev: string, o: ViewOptions, opts: GlobalOptions): Promise<void> {
  const root = storeRoot(opts).root;
  const origin = absolutePath(dev);
  const live = liveState(origin);
  if (live === null) {
    throw new CliError(
      `${origin} is not activated: a view reads it through its sessions ` +
        "(bdsnap activate it; bdsnap export reads a device that is not)",
    );
  }
  if (live.failed) {
    throw new CliError(`the session of ${origin} failed: no view of it can be exact`, EXIT_FAILED, {
      code: "failed",
    });
  }
  const sessions = await readStore(root);
  const device = await resolveDevice(origin, sessions);
  const identity = identityOf(origin);
  const spec = o.session ?? (live.openSession || "latest");
  const id = resolveSessionSpec(sessions, spec, device, identity);
  // Refused here, with the planner's reasons, rather than in the server.
  planForCli(sessions, id, { device, identity, allowOpen: true });
  if (nbdDevices().length === 0) await run(["modprobe", "nbd"], "load the nbd module");
  const view = await startServer(origin, root, id);
  let mountpoint: string | null = null;
  if (o.mount) {
    mountpoint = absolutePath(o.mount);
    try {
      await mountView(view, mountpoint);
    } catch (e) {
      await removeView(view).catch(() => {});
      throw e;
    }
    const rec = listViews().find((v) => v.device === view);
    if (rec) saveView({ ...rec, mountpoint });
  }
  report(opts, mountpoint ? `${view} (mounted read-only on ${mountpoint})` : view, {
    action: "view",
    view,
    origin,
    session: id,
    mountpoint,
  });
}

async function mountView(view: string, dir: string): Promise<void> {
  const fsType = await run(["blkid", "-o", "value", "-s", "TYPE", view], `blkid ${view}`)
    .catch(() => "");
  if (fsType === "") throw new CliError(`${view} holds no filesystem that blkid knows`);
  await run(
    ["mount", "-t", fsType, "-o", viewMountOptions(fsType), view, dir],
    `mount ${view} on ${dir}`,
  );
}

async function removeView(view: string): Promise<void> {
  const rec = listViews().find((v) => v.device === view);
  if (!rec) {
    throw new CliError(`${view} is not a view (bdsnap view --list)`, EXIT_FAILED, {
      code: "not-found",
    });
  }
  for (const m of await mountsOn(view)) {
    if (m.mountPoint !== rec.mountpoint) {
      throw new CliError(
        `${view} is mounted on ${m.mountPoint}: unmount it first`,
        EXIT_FAILED,
        { code: "busy" },
      );
    }
    await run(["umount", m.mountPoint], `umount ${m.mountPoint}`);
  }
  try {
    disconnectNbd(view);
  } catch (e) {
    throw new CliError(`disconnect ${view}: ${e instanceof Error ? e.message : e}`);
  }
  const deadline = Date.now() + REMOVE_WAIT_MS;
  while (listViews().some((v) => v.device === view)) {
    if (Date.now() > deadline) {
      throw new CliError(`the server of ${view} (pid ${rec.pid}) did not end`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  dropView(view);
}

function list(opts: GlobalOptions): void {
  const views = listViews();
  if (opts.json) {
    printJson(views.map((v: ViewRecord) => ({ ...v })));
    return;
  }
  if (views.length === 0) {
    println("no views");
    return;
  }
  const columns = ["VIEW", "ORIGIN", "SESSION", "MOUNTED", "PID"].map((title) => ({ title }));
  const rows = views.map((v) => [v.device, v.origin, v.session, v.mountpoint ?? "-", `${v.pid}`]);
  for (const line of formatTable(columns, rows)) println(line);
}

/** Carry out `view` (exported for tests). */
export async function runView(
  dev: string | undefined,
  o: ViewOptions,
  opts: GlobalOptions,
): Promise<void> {
  const modes = [o.list, o.remove !== undefined, o.serve !== undefined].filter(Boolean).length;
  if (modes > 1 || (modes === 1 && (o.mount || (o.session && !o.serve)))) {
    throw new CliError("--list, --remove and a new view (DEV) go one at a time", EXIT_USAGE);
  }
  if (o.list) return list(opts);
  if (o.remove !== undefined) {
    await removeView(absolutePath(o.remove));
    report(opts, `removed ${absolutePath(o.remove)}`, { action: "view-remove", view: o.remove });
    return;
  }
  if (dev === undefined) throw new CliError("name the device to view (or --list)", EXIT_USAGE);
  if (!control.isLoaded()) throw new CliError("the bdsnap module is not loaded", EXIT_NO_MODULE);
  if (o.serve !== undefined) {
    const root = storeRoot(opts).root;
    const origin = absolutePath(dev);
    const sessions = await readStore(root);
    const device = await resolveDevice(origin, sessions);
    try {
      await serveView(
        { origin, root, session: o.serve, plan: { device, identity: identityOf(origin) } },
        (view) => println(`ready ${view}`),
      );
    } catch (e) {
      throw storeError(e);
    }
    return;
  }
  await create(dev, o, opts);
}

/** Register `view`. */
export function register(program: Command): void {
  program
    .command("view")
    .description("a read-only block device showing a device as it was before a session's mount")
    .argument("[dev]", "the activated device or image file (it may stay mounted and in use)")
    .option("--session <id>", "the state before this session's mount (default: open, else latest)")
    .option("--mount <dir>", "mount the view read-only on DIR (no journal replay)")
    .option("--list", "list the views")
    .option("--remove <path>", "remove a view (unmounting what --mount mounted)")
    .addOption(new Option("--serve <session>", "serve a view (internal)").hideHelp())
    .addHelpText(
      "after",
      "\nThe view never shows data written after that mount, while writers run. It needs\n" +
        "the nbd module (modprobe nbd). While a view exists, deactivate and restore of its\n" +
        "device are refused and prune keeps its sessions; unmounting the device is fine.",
    )
    .action(async (dev: string | undefined, o: ViewOptions, cmd: Command) => {
      await runView(dev, o, globals(cmd));
    });
}
