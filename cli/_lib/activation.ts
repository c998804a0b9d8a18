/**
 * What `activate` and `deactivate` share: the options, the password, the
 * call through the system call or the ioctl, and the messages.
 * @module
 */

import { type Command, Option } from "./commander.ts";
import { CliError, EXIT_NO_MODULE } from "./errors.ts";
import { globals, report, storeRoot } from "./context.ts";
import { explained, NOT_LOADED } from "./explain.ts";
import { getPassword } from "./password.ts";
import { audited } from "./audit.ts";
import * as control from "../../ffi/control.ts";
import { geteuid } from "../../ffi/libc.ts";

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
    .action(async (dev: string, o: { passwordFile?: string; via: control.Via }, cmd: Command) => {
      const opts = globals(cmd);
      const path = absolutePath(dev);
      await audited({ command: op, device: path }, async () => {
        if (!control.isLoaded()) throw new CliError(NOT_LOADED, EXIT_NO_MODULE);
        const pw = await getPassword({ file: o.passwordFile });
        const ctx = {
          op,
          path,
          euid: geteuid(),
          storeRoot: storeRoot(opts).root,
          pathUsable: activating ? usableTarget(path) : undefined,
        };
        explained(ctx, () => (activating ? control.activate : control.deactivate)(path, pw, o.via));
      });
      report(opts, `${activating ? "activated" : "deactivated"} ${path}`, {
        device: path,
        activated: activating,
        via: o.via,
      });
    });
}
