/**
 * What `activate` and `deactivate` share: the options, the password, the
 * call through the system call or the ioctl, and the messages.
 * @module
 */

import { type Command, Option } from "./commander.ts";
import { CliError, EXIT_NO_MODULE } from "./errors.ts";
import { refuseWhileViewed } from "./views.ts";
import { configDir, globals, report, storeRoot, warn } from "./context.ts";
import { explained, isErrno, NOT_LOADED } from "./explain.ts";
import { getPassword } from "./password.ts";
import { audited } from "./audit.ts";
import * as control from "../../ffi/control.ts";
import { geteuid } from "../../ffi/libc.ts";
import {
  configPath,
  type ConfiguredDevice,
  readConfig,
  withDevice,
  withoutDevice,
  writeConfig,
} from "../../lib/config.ts";
import { deviceIdentity } from "../../lib/identity.ts";
import {
  type LiveSession,
  protectMounted,
  refuseSeveral,
  untrackedFilesystems,
} from "./live_session.ts";

/**
 * The path handed to the kernel: absolute (relative to the current
 * directory), otherwise as given; symbolic links are left to the kernel.
 */
export function absolutePath(path: string, cwd: string = Deno.cwd()): string {
  if (path.startsWith("/")) return path;
  const parts = `${cwd}/${path}`.split("/");
  const out: string[] = [];
  for (const p of parts) {
    if (p === "" || p === ".") continue;
    if (p === "..") out.pop();
    else out.push(p);
  }
  return "/" + out.join("/");
}

/**
 * Is `path` a block device or a regular file (what activate takes)? So
 * that an ENOTBLK can be told apart: the target's, or the store's.
 * Undefined when it cannot be looked at.
 */
export function usableTarget(path: string): boolean | undefined {
  try {
    const st = Deno.statSync(path);
    return st.isFile || st.isBlockDevice === true;
  } catch {
    return undefined;
  }
}

/**
 * Hand the module the device's stable identity, for the meta.json of its
 * sessions. Where there is none, or the module predates identities, say
 * so: the chain is then kept by path, and renumbering can mix it up.
 */
export function recordIdentity(
  opts: ReturnType<typeof globals>,
  path: string,
  password: string,
  identity: string | null,
): void {
  if (identity === null) {
    warn(
      opts,
      `${path} has no stable identity (WWN, serial, partition UUID): its chain is kept by path`,
    );
    return;
  }
  try {
    control.setIdentity(path, password, identity);
  } catch (e) {
    if (isErrno(e, "ENOTTY")) {
      warn(opts, "the loaded module does not record identities (older module): chain kept by path");
    } else if (isErrno(e, "EBUSY")) {
      warn(
        opts,
        `the module holds another identity for ${path} from its activation; new sessions keep ` +
          `that one (deactivate and activate again to record ${identity})`,
      );
    } else {
      throw e;
    }
  }
}

/** Record the device in the configuration, or drop it from there (`--persistent`). */
async function persist(device: ConfiguredDevice, keep: boolean): Promise<string> {
  const dir = configDir();
  const config = await readConfig(dir);
  if (keep) {
    await writeConfig(dir, withDevice(config, device));
    return `recorded in ${configPath(dir)}: \`bdsnap start\` activates it at boot`;
  }
  const { config: rest, removed } = withoutDevice(config, device);
  if (removed) await writeConfig(dir, rest);
  return removed ? `removed from ${configPath(dir)}` : `it was not in ${configPath(dir)}`;
}

/** Register `activate` or `deactivate`. */
export function registerTargetCommand(program: Command, op: "activate" | "deactivate"): void {
  const activating = op === "activate";
  program
    .command(op)
    .description(
      activating
        ? "start snapshot sessions for a block device or image file at each mount"
        : "stop snapshot sessions for a device (a mounted one ends at unmount)",
    )
    .argument("<dev>", "block device (/dev/vdb) or image file backing a loop device")
    .option("--password-file <file>", "read the password from the first line of FILE")
    .option(
      "--persistent",
      activating
        ? "also record the device in /etc/bdsnap/bdsnap.json, for `bdsnap start` at every boot"
        : "also remove the device from /etc/bdsnap/bdsnap.json",
    )
    .addOption(
      new Option("--via <method>", "how to reach the module").choices(["syscall", "ioctl"]).default(
        "syscall",
      ),
    )
    .addHelpText(
      "after",
      "\nThe password is asked for with hidden input on a terminal; otherwise it is read from\n" +
        "--password-file or the file named by $BDSNAP_PASSWORD_FILE, never from the command line.",
    )
    .action(
      async (
        dev: string,
        o: { passwordFile?: string; via: control.Via; persistent?: boolean },
        cmd: Command,
      ) => {
        const opts = globals(cmd);
        const path = absolutePath(dev);
        const identity = deviceIdentity(path);
        let already = false;
        let live: LiveSession | null = null;
        await audited({ command: op, device: path }, async () => {
          if (!control.isLoaded()) throw new CliError(NOT_LOADED, EXIT_NO_MODULE);
          if (!activating) refuseWhileViewed(path, "deactivate");
          const mounted = activating ? await untrackedFilesystems(path) : [];
          refuseSeveral(path, mounted);
          const pw = await getPassword({ file: o.passwordFile });
          const ctx = {
            op,
            path,
            euid: geteuid(),
            storeRoot: storeRoot(opts).root,
            pathUsable: activating ? usableTarget(path) : undefined,
          };
          const call = activating ? control.activate : control.deactivate;
          explained(ctx, () => {
            try {
              call(path, pw, o.via);
            } catch (e) {
              // Recording an active device for boot, or forgetting an inactive one, is fine.
              if (!(o.persistent && isErrno(e, "EALREADY"))) throw e;
              already = true;
            }
          });
          if (activating) recordIdentity(opts, path, pw, identity);
          if (mounted.length === 1 && !already) {
            try {
              live = protectMounted(path, pw, mounted[0]);
            } catch (e) {
              try {
                control.deactivate(path, pw, o.via); // as it was: not activated
              } catch (undo) {
                warn(
                  opts,
                  `${path} stays activated: ${undo instanceof Error ? undo.message : undo}`,
                );
              }
              throw e;
            }
          }
        });
        const lines = [
          `${activating ? "activated" : "deactivated"} ${path}${already ? " (already)" : ""}`,
        ];
        const began = live as LiveSession | null;
        if (began !== null) {
          lines.push(
            `${began.mountPoint} (${began.fsType}) was mounted: its session began now, from ` +
              `its state frozen for the start (${began.seconds.toFixed(2)} s)`,
          );
        }
        if (o.persistent) {
          const kind = usableTarget(path) && Deno.statSync(path).isFile ? "file" : "block";
          lines.push(await persist({ identity: identity ?? "", path, kind }, activating));
        }
        report(opts, lines, {
          device: path,
          activated: activating,
          began_at_activation: began?.mountPoint ?? null,
          via: o.via,
          identity,
          persistent: Boolean(o.persistent),
        });
      },
    );
}
