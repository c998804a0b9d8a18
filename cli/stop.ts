/**
 * `bdsnap stop`: what bdsnap-start.service runs at shutdown, after local
 * filesystems are unmounted. Deactivates every activated device, so that
 * the module writes into each device's last meta.json the writes it saw
 * outside any mount (docs/FORMAT.md, "Reboots"): a chain then survives a
 * clean reboot, and one that something wrote meanwhile is refused.
 * A device still mounted (the root filesystem) ends its session at unmount.
 * @module
 */

import type { Command } from "./_lib/commander.ts";
import { CliError, EXIT_FAILED } from "./_lib/errors.ts";
import { globals, report, warn } from "./_lib/context.ts";
import { explained, isErrno } from "./_lib/explain.ts";
import { bootPassword } from "./_lib/boot_password.ts";
import { unloadModule } from "./unload.ts";
import * as control from "../ffi/control.ts";
import { geteuid } from "../ffi/libc.ts";

/** Register `stop`. */
export function register(program: Command): void {
  program
    .command("stop")
    .description("deactivate every activated device (at shutdown), and with --unload unload")
    .option(
      "--password-file <file>",
      "the password (default: the systemd credential, then /etc/bdsnap/password)",
    )
    .option("--unload", "unload the module afterwards")
    .action(async (o: { passwordFile?: string; unload?: boolean }, cmd: Command) => {
      const opts = globals(cmd);
      if (!control.isLoaded()) {
        report(opts, "module not loaded: nothing to stop", { deactivated: [], unloaded: false });
        return;
      }
      const euid = geteuid();
      const devices = explained({ op: "status", euid }, () => control.list());
      const password = devices.length > 0 ? await bootPassword(o.passwordFile) : "";
      const done: string[] = [];
      const failed: Array<{ device: string; error: string }> = [];
      for (const d of devices) {
        try {
          explained({ op: "deactivate", path: d.name, euid }, () => {
            try {
              control.deactivate(d.name, password);
            } catch (e) {
              if (!isErrno(e, "EALREADY")) throw e; // deactivated meanwhile
            }
          });
          done.push(d.name);
        } catch (e) {
          failed.push({ device: d.name, error: e instanceof Error ? e.message : String(e) });
        }
      }
      let unloaded = false;
      if (o.unload && failed.length === 0) {
        unloadModule();
        unloaded = true;
      }
      report(
        opts,
        [
          ...done.map((d) => `deactivated ${d}`),
          ...failed.map((f) => `failed: ${f.device}: ${f.error}`),
          ...(unloaded ? ["unloaded bdsnap"] : []),
        ],
        { deactivated: done, failed, unloaded },
      );
      if (failed.length > 0) {
        warn(opts, `${failed.length} device(s) not deactivated`);
        throw new CliError("", EXIT_FAILED);
      }
    });
}
