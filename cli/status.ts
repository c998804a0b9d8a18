/**
 * `bdsnap status`: is the module loaded, its version and system call
 * numbers, the store and its free space, the activated devices and their
 * open sessions with live counters.
 * @module
 */

import type { Command } from "./_lib/commander.ts";
import { CliError, EXIT_NO_MODULE } from "./_lib/errors.ts";
import { globals, storeRoot, type StoreRootSource } from "./_lib/context.ts";
import { explained } from "./_lib/explain.ts";
import { printJson, println } from "./_lib/io.ts";
import { formatTable } from "./_lib/table.ts";
import { formatBytes } from "./_lib/units.ts";
import { deviceJson, devNumber, errorText, kindName, stateName } from "./_lib/devices.ts";
import * as control from "../ffi/control.ts";
import { type FsSpace, geteuid, statvfs } from "../ffi/libc.ts";
import { VERSION_F_PASSWORD_SET } from "../ffi/uapi.ts";

/** Everything `status` reports, gathered. */
export interface StatusData {
  loaded: boolean;
  version: control.VersionInfo | null;
  syscalls: control.SyscallNumbers | null;
  counters: control.StatusInfo | null;
  devices: control.DeviceInfo[];
  store: { root: string; source: StoreRootSource; space: FsSpace | null };
}

/** The stable JSON shape of `status --json` (docs/CLI.md). */
export function statusJson(d: StatusData) {
  const v = d.version;
  const c = d.counters;
  return {
    loaded: d.loaded,
    version: v ? `${v.major}.${v.minor}.${v.patch}` : null,
    abi: v ? v.abi : null,
    syscalls: d.syscalls,
    password_set: v ? (v.flags & VERSION_F_PASSWORD_SET) !== 0 : null,
    chunk_size: v ? v.chunkSize : null,
    store: {
      root: d.store.root,
      source: d.store.source,
      size_bytes: d.store.space?.size ?? null,
      free_bytes: d.store.space?.available ?? null,
    },
    counters: c
      ? {
        devices: c.devices,
        sessions: c.sessions,
        inflight_bytes: c.inflightBytes,
        inflight_peak: c.inflightPeak,
        inflight_limit: c.inflightLimit,
        chunks_saved: c.chunksSaved,
        bytes_saved: c.bytesSaved,
        sessions_failed: c.sessionsFailed,
        auth_failures: c.authFailures,
      }
      : null,
    devices: d.devices.map(deviceJson),
    sessions: d.devices.filter((x) => x.sessionId !== "").map((x) => ({
      id: x.sessionId,
      device: x.name,
      dev: devNumber(x),
      state: stateName(x.state),
      error: errorText(x.error),
      chunks_saved: x.chunksSaved,
      bytes_saved: x.bytesSaved,
      pending_bytes: x.pendingBytes,
    })),
  };
}

/** The human report of `status`. */
export function statusLines(d: StatusData): string[] {
  const lines: string[] = [];
  const v = d.version;
  const space = d.store.space;
  const store = `${d.store.root}` +
    (space
      ? ` (${formatBytes(space.available)} free of ${formatBytes(space.size)})`
      : " (not reachable)");
  if (!d.loaded || !v) {
    lines.push("module:     not loaded (run `bdsnap load`)");
    lines.push(`store:      ${store}`);
    return lines;
  }
  const pw = (v.flags & VERSION_F_PASSWORD_SET)
    ? "password set"
    : "NO PASSWORD SET (run `bdsnap setup`)";
  lines.push(`module:     loaded, version ${v.major}.${v.minor}.${v.patch} (ABI ${v.abi}), ${pw}`);
  if (d.syscalls) {
    lines.push(
      `syscalls:   activate_snapshot ${d.syscalls.activate}, deactivate_snapshot ${d.syscalls.deactivate}`,
    );
  }
  lines.push(`store:      ${store}`);
  const c = d.counters;
  if (c) {
    lines.push(
      `in flight:  ${formatBytes(c.inflightBytes)} (peak ${formatBytes(c.inflightPeak)}, ` +
        `limit ${formatBytes(c.inflightLimit)})`,
    );
    lines.push(
      `saved:      ${c.chunksSaved} chunks, ${formatBytes(c.bytesSaved)} since load; ` +
        `${c.sessionsFailed} failed sessions, ${c.authFailures} refused passwords`,
    );
  }
  lines.push("");
  if (d.devices.length === 0) {
    lines.push("no activated devices");
    return lines;
  }
  lines.push(
    ...formatTable(
      [
        { title: "DEVICE" },
        { title: "KIND" },
        { title: "DEV" },
        { title: "STATE" },
        { title: "SESSION" },
        { title: "CHUNKS", align: "right" },
        { title: "SAVED", align: "right" },
        { title: "PENDING", align: "right" },
      ],
      d.devices.map((x) => [
        x.name,
        kindName(x.kind),
        devNumber(x),
        stateName(x.state) + ((x.flags & 1) ? " (deactivating)" : ""),
        x.sessionId || "-",
        String(x.chunksSaved),
        formatBytes(x.bytesSaved),
        formatBytes(x.pendingBytes),
      ]),
    ),
  );
  for (const x of d.devices) {
    const why = errorText(x.error);
    if (why) lines.push(`${x.name}: session failed: ${why}`);
    if (x.unmountedWrites > 0) {
      lines.push(`${x.name}: ${x.unmountedWrites} writes outside any mount since the last session`);
    }
  }
  return lines;
}

function space(root: string): FsSpace | null {
  try {
    return statvfs(root);
  } catch {
    return null;
  }
}

/** Gather the status (needs root when the module is loaded). */
export function gatherStatus(opts: ReturnType<typeof globals>): StatusData {
  const loaded = control.isLoaded();
  const sr = storeRoot(opts);
  if (!loaded) {
    return {
      loaded,
      version: null,
      syscalls: null,
      counters: null,
      devices: [],
      store: { ...sr, space: space(sr.root) },
    };
  }
  const ctx = { op: "status", euid: geteuid() };
  const version = explained(ctx, () => control.version());
  const counters = explained(ctx, () => control.status());
  const devices = explained(ctx, () => control.list());
  let syscalls: control.SyscallNumbers | null = null;
  try {
    syscalls = control.syscallNumbers();
  } catch {
    syscalls = { activate: version.nrActivate, deactivate: version.nrDeactivate };
  }
  const root = opts.store ?? (version.storeRoot || sr.root);
  const source: StoreRootSource = opts.store ? "option" : version.storeRoot ? "module" : sr.source;
  return {
    loaded,
    version,
    syscalls,
    counters,
    devices,
    store: { root, source, space: space(root) },
  };
}

/** Register `status`. */
export function register(program: Command): void {
  program
    .command("status")
    .description("module, store and activated devices with live session counters")
    .addHelpText(
      "after",
      "\nExit status 4 when the module is not loaded (the report is printed all the same).",
    )
    .action((_o: unknown, cmd: Command) => {
      const opts = globals(cmd);
      const data = gatherStatus(opts);
      if (opts.json) printJson(statusJson(data));
      else for (const l of statusLines(data)) println(l);
      if (!data.loaded) throw new CliError("", EXIT_NO_MODULE);
    });
}
