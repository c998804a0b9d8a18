/**
 * `bdsnap start`: what bdsnap-start.service runs at boot, before local
 * filesystems are mounted. Loads the module (unless loaded) with the
 * configuration's store root and parameters, then activates every device of
 * /etc/bdsnap/bdsnap.json, found by its stable identity wherever the disks
 * now are. Devices that do not appear within `--wait` seconds are reported
 * and skipped; the exit status is then 1, after the others are activated.
 * @module
 */

import type { Command } from "./_lib/commander.ts";
import { CliError, EXIT_FAILED } from "./_lib/errors.ts";
import { configDir, globals, note, report, warn } from "./_lib/context.ts";
import { explained, isErrno } from "./_lib/explain.ts";
import { recordIdentity } from "./_lib/activation.ts";
import { bootPassword } from "./_lib/boot_password.ts";
import { protectMounted, refuseSeveral, untrackedFilesystems } from "./_lib/live_session.ts";
import { checkParams, findModule, loadWith } from "./load.ts";
import * as control from "../ffi/control.ts";
import { geteuid } from "../ffi/libc.ts";
import { configPath, type ConfiguredDevice, readConfig } from "../lib/config.ts";
import { deviceIdentity, findDevice } from "../lib/identity.ts";
import { unmountedStoreMount } from "../lib/mountinfo.ts";

/** What happened to one configured device. */
interface Outcome {
  identity: string;
  path: string | null;
  result: "activated" | "already" | "missing" | "failed";
  error?: string;
  /** Mounted already: its session began at activation. */
  began?: string;
}

/** Where the configured device is now: by identity, else (none recorded) by path. */
function locate(d: ConfiguredDevice): string | null {
  if (d.identity === "") {
    try {
      Deno.statSync(d.path);
      return d.path;
    } catch {
      return null;
    }
  }
  return findDevice(d.identity);
}

async function waitFor(devices: ConfiguredDevice[], seconds: number): Promise<Map<number, string>> {
  const found = new Map<number, string>();
  const deadline = performance.now() + seconds * 1000;
  for (;;) {
    devices.forEach((d, i) => {
      if (found.has(i)) return;
      const p = locate(d);
      if (p !== null) found.set(i, p);
    });
    if (found.size === devices.length || performance.now() >= deadline) return found;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Activate one recorded device found at `path`. One mounted already (start
 * ran after its mount) gets its session now, frozen for the start; if that
 * cannot be done the device stays activated for its next mount, with a
 * warning.
 */
async function startDevice(
  opts: ReturnType<typeof globals>,
  d: ConfiguredDevice,
  path: string | null,
  password: string,
  store: string | undefined,
): Promise<Outcome> {
  const out: Outcome = { identity: d.identity, path, result: "missing" };
  if (path === null) return out;
  const ctx = { op: "activate" as const, path, euid: geteuid(), storeRoot: store ?? "/snapshot" };
  const mounted = await untrackedFilesystems(path);
  try {
    explained(ctx, () => {
      try {
        control.activate(path, password);
        out.result = "activated";
      } catch (e) {
        if (!isErrno(e, "EALREADY")) throw e;
        out.result = "already"; // started twice, or activated by hand: fine
      }
    });
  } catch (e) {
    return { ...out, result: "failed", error: e instanceof Error ? e.message : String(e) };
  }
  recordIdentity(opts, path, password, d.identity === "" ? deviceIdentity(path) : d.identity);
  if (out.result === "activated" && mounted.length > 0) {
    try {
      refuseSeveral(path, mounted);
      out.began = protectMounted(path, password, mounted[0]).mountPoint;
    } catch (e) {
      warn(opts, `${e instanceof Error ? e.message : e}; its next mount is a session`);
    }
  }
  return out;
}

/** Register `start`. */
export function register(program: Command): void {
  program
    .command("start")
    .description("load the module and activate the devices recorded with --persistent (at boot)")
    .option(
      "--password-file <file>",
      "the password (default: the systemd credential, then /etc/bdsnap/password)",
    )
    .option("--wait <seconds>", "how long to wait for recorded devices to appear", "30")
    .addHelpText(
      "after",
      "\nbdsnap-start.service runs this before local-fs-pre.target, so that mounts made at boot\n" +
        "are sessions. The configuration is /etc/bdsnap/bdsnap.json (docs/FORMAT.md).",
    )
    .action(async (o: { passwordFile?: string; wait: string }, cmd: Command) => {
      const opts = globals(cmd);
      const wait = Number(o.wait);
      if (!Number.isFinite(wait) || wait < 0) {
        throw new CliError(`--wait ${o.wait}: give seconds, 0 or more`, EXIT_FAILED);
      }
      const dir = configDir();
      const config = await readConfig(dir).catch((e) => {
        throw new CliError(e instanceof Error ? e.message : String(e), EXIT_FAILED);
      });
      const store = opts.store ?? config.store;
      const unmounted = unmountedStoreMount(store ?? "/snapshot");
      if (unmounted !== null) {
        throw new CliError(
          `the store root ${store ?? "/snapshot"} lies on ${unmounted}, which /etc/fstab lists ` +
            "but is not mounted yet: sessions would be written under its mount point. Keep the " +
            "store on the root filesystem, or on one the initramfs mounts",
          EXIT_FAILED,
        );
      }
      let loaded = false;
      if (!control.isLoaded()) {
        const release = Deno.osRelease();
        const params = checkParams(config.module_params ?? []);
        // Its own report would be a second JSON document: start reports for both.
        await loadWith(
          { ...opts, store, quiet: opts.quiet || opts.json, json: false },
          findModule(release),
          release,
          params,
        );
        loaded = true;
      }
      if (config.devices.length === 0) {
        note(opts, `no devices recorded in ${configPath(dir)} (bdsnap activate --persistent DEV)`);
      }
      const password = config.devices.length > 0 ? await bootPassword(o.passwordFile) : "";
      const found = await waitFor(config.devices, wait);
      const outcomes: Outcome[] = [];
      for (const [i, d] of config.devices.entries()) {
        outcomes.push(await startDevice(opts, d, found.get(i) ?? null, password, store));
      }
      const lines = outcomes.map((x) =>
        x.result === "missing"
          ? `missing: ${x.identity || "(no identity)"} did not appear within ${wait} s`
          : x.result === "failed"
          ? `failed: ${x.path}: ${x.error}`
          : `${x.result}: ${x.path}${x.identity ? ` (${x.identity})` : ""}` +
            (x.began ? `; ${x.began} was mounted: its session began now` : "")
      );
      report(opts, lines, { loaded, store: store ?? null, devices: outcomes });
      const bad = outcomes.filter((x) => x.result === "missing" || x.result === "failed");
      if (bad.length > 0) {
        warn(opts, `${bad.length} of ${outcomes.length} recorded device(s) not activated`);
        // Reported above, JSON included: only the exit status is left to say.
        throw new CliError("", EXIT_FAILED);
      }
    });
}
