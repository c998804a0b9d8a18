/**
 * `bdsnap unload`: remove the kernel module with delete_module(2).
 * Refused while devices are activated (deactivate them first; a session that
 * is still mounted ends at its unmount).
 * @module
 */

import type { Command } from "./_lib/commander.ts";
import { CliError, EXIT_FAILED, EXIT_NO_MODULE, EXIT_PERMISSION } from "./_lib/errors.ts";
import { globals, report } from "./_lib/context.ts";
import { explained } from "./_lib/explain.ts";
import * as control from "../ffi/control.ts";
import {
  cstring,
  errnoDescription,
  ErrnoError,
  geteuid,
  O_NONBLOCK_DELETE,
  SYS,
  syscall,
} from "../ffi/libc.ts";

/** The message for an unload refused because the module is in use. */
export function inUseMessage(devices: string[]): string {
  if (devices.length === 0) {
    return "module in use: a session is still open or a device is still active; " +
      "unmount and `bdsnap deactivate DEV` first";
  }
  const n = devices.length;
  return `${n} device${n === 1 ? " is" : "s are"} still active (${devices.join(", ")}): ` +
    "run `bdsnap deactivate DEV` first";
}

/** Remove the module; a CliError saying why when it cannot be. */
export function unloadModule(): void {
  if (!control.isLoaded()) throw new CliError("module not loaded", EXIT_NO_MODULE);
  const euid = geteuid();
  const active = explained({ op: "unload", euid }, () => control.list());
  if (active.length > 0) {
    throw new CliError(inUseMessage(active.map((d) => d.name)), EXIT_FAILED);
  }
  try {
    syscall("delete_module", SYS.delete_module, cstring("bdsnap"), O_NONBLOCK_DELETE);
  } catch (e) {
    if (!(e instanceof ErrnoError)) throw e;
    switch (e.code) {
      case "EAGAIN":
      case "EBUSY":
        throw new CliError(`${inUseMessage([])} (${e.code})`, EXIT_FAILED);
      case "ENOENT":
        throw new CliError("module not loaded", EXIT_NO_MODULE);
      case "EPERM":
        throw new CliError("not root (EPERM): unloading a module needs root", EXIT_PERMISSION);
      default:
        throw new CliError(`unload failed: ${errnoDescription(e.errno)} (${e.code})`, EXIT_FAILED);
    }
  }
}

/** Register `unload`. */
export function register(program: Command): void {
  program
    .command("unload")
    .description("remove the kernel module (refused while devices are active)")
    .action((_o: unknown, cmd: Command) => {
      unloadModule();
      report(globals(cmd), "unloaded bdsnap", { unloaded: true });
    });
}
