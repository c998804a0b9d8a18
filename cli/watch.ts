/**
 * `bdsnap watch`: follow mounts and unmounts (POLLPRI on
 * /proc/self/mountinfo) and report, for activated devices, the sessions
 * starting, ending and failing, with the module's live counters. Runs in the
 * foreground until SIGTERM or SIGINT (systemd: scripts/systemd/bdsnap-watch.service).
 * @module
 */

import { type Command, InvalidArgumentError } from "./_lib/commander.ts";
import { CliError, EXIT_PERMISSION } from "./_lib/errors.ts";
import { globals, storeRoot } from "./_lib/context.ts";
import { eprintln, println } from "./_lib/io.ts";
import { isJournalStream, journalLine, PRIORITY, type Priority } from "./_lib/journal.ts";
import { formatBytes, formatLocalTime } from "./_lib/units.ts";
import { type DeviceJson, deviceJson, devNumber, errorText, stateName } from "./_lib/devices.ts";
import { isErrno } from "./_lib/explain.ts";
import * as control from "../ffi/control.ts";
import { SESSION_STATE } from "../ffi/uapi.ts";
import { type MountEntry, watchMounts } from "../lib/mountinfo.ts";
import { parseMeta } from "../lib/format.ts";

/** The kinds of event `watch` reports. */
export type WatchEventKind =
  | "watching"
  | "module-loaded"
  | "module-unloaded"
  | "activated"
  | "deactivated"
  | "session-start"
  | "session-end"
  | "session-failed"
  | "counters";

/** One reported event (the JSON shape of `watch --json`, one object per line). */
export interface WatchEvent {
  time: string;
  event: WatchEventKind;
  device: string | null;
  dev: string | null;
  session: string | null;
  mount_point: string | null;
  fs_type: string | null;
  state: string | null;
  error: string | null;
  chunks_saved: number | null;
  bytes_saved: number | null;
  pending_bytes: number | null;
  /** Only in "watching": whether the module is loaded and its devices. */
  module_loaded?: boolean;
  devices?: DeviceJson[];
}

function event(
  kind: WatchEventKind,
  now: Date,
  d?: control.DeviceInfo,
  m?: MountEntry,
): WatchEvent {
  return {
    time: now.toISOString(),
    event: kind,
    device: d?.name ?? null,
    dev: d ? devNumber(d) : m?.dev ?? null,
    session: d?.sessionId ? d.sessionId : null,
    mount_point: m?.mountPoint ?? null,
    fs_type: m?.fsType ?? null,
    state: d ? stateName(d.state) : null,
    error: d ? errorText(d.error) : null,
    chunks_saved: d?.chunksSaved ?? null,
    bytes_saved: d?.bytesSaved ?? null,
    pending_bytes: d?.pendingBytes ?? null,
  };
}

/**
 * Turns successive (mount table, device list) observations into events.
 * Pure: no I/O, so it is tested directly.
 */
export class SessionTracker {
  #loaded: boolean | null = null;
  #devices = new Map<string, control.DeviceInfo>();
  #mounted = new Map<string, MountEntry>();

  /**
   * Feed one observation. `devices` is null when the module is not loaded.
   * Returns the events it implies, in order.
   */
  update(
    mounts: MountEntry[],
    devices: control.DeviceInfo[] | null,
    now = new Date(),
  ): WatchEvent[] {
    const out: WatchEvent[] = [];
    const loaded = devices !== null;
    if (this.#loaded !== null && loaded !== this.#loaded) {
      out.push(event(loaded ? "module-loaded" : "module-unloaded", now));
    }
    this.#loaded = loaded;
    const current = new Map((devices ?? []).map((d) => [d.name, d]));
    const firstMount = new Map<string, MountEntry>();
    for (const m of mounts) if (!firstMount.has(m.dev)) firstMount.set(m.dev, m);

    for (const [name, d] of current) {
      if (!this.#devices.has(name)) out.push(event("activated", now, d));
    }
    const names = new Set([...this.#devices.keys(), ...current.keys()]);
    for (const name of names) {
      const prev = this.#devices.get(name);
      const d = current.get(name);
      const key = d ? devNumber(d) : devNumber(prev!);
      const was = this.#mounted.get(name);
      const mount = key === "0:0" ? undefined : firstMount.get(key);
      if (d && mount && !was) out.push(event("session-start", now, d, mount));
      if (was && !mount) {
        // the session's id and counters as last seen while it was open
        const last = prev && prev.sessionId ? prev : d ?? prev!;
        out.push(event("session-end", now, last, was));
      }
      if (
        d && d.state === SESSION_STATE.FAILED &&
        (!prev || prev.state !== SESSION_STATE.FAILED || prev.sessionId !== d.sessionId)
      ) {
        out.push(event("session-failed", now, d, mount ?? was));
      }
      if (mount && d) this.#mounted.set(name, mount);
      else this.#mounted.delete(name);
    }
    for (const [name, prev] of this.#devices) {
      if (!current.has(name)) out.push(event("deactivated", now, prev));
    }
    this.#devices = current;
    return out;
  }

  /** "counters" events for every device with an open session. */
  counters(now = new Date()): WatchEvent[] {
    return [...this.#devices.values()]
      .filter((d) => d.state === SESSION_STATE.OPEN)
      .map((d) => event("counters", now, d, this.#mounted.get(d.name)));
  }
}

/** The human line of an event. */
export function eventLine(e: WatchEvent): string {
  const t = formatLocalTime(Date.parse(e.time));
  const counters = e.chunks_saved === null
    ? ""
    : `, ${e.chunks_saved} chunks, ${formatBytes(e.bytes_saved ?? 0)}` +
      (e.pending_bytes ? ` (${formatBytes(e.pending_bytes)} pending)` : "");
  switch (e.event) {
    case "watching":
      return `${t}  watching mounts (module ${e.module_loaded ? "loaded" : "not loaded"}, ` +
        `${e.devices?.length ?? 0} activated devices)`;
    case "module-loaded":
    case "module-unloaded":
      return `${t}  ${e.event.replace("-", " ")}`;
    case "activated":
    case "deactivated":
      return `${t}  ${e.event} ${e.device}`;
    case "session-start":
      return `${t}  session start   ${e.device}  ${
        e.session ?? "-"
      }  ${e.fs_type} on ${e.mount_point}`;
    case "session-end":
      return `${t}  session end     ${e.device}  ${e.session ?? "-"}  ${e.state}${counters}`;
    case "session-failed":
      return `${t}  session FAILED  ${e.device}  ${e.session ?? "-"}  ${
        e.error ?? "unknown reason"
      }`;
    case "counters":
      return `${t}  session open    ${e.device}  ${e.session ?? "-"}${counters}`;
  }
}

/**
 * The journal priority of an event: a failed session is an error, a session
 * that ended without closing (interrupted, state unknown) or the module
 * going away a warning, (de)activations a notice, mounts and unmounts info.
 */
export function eventPriority(e: WatchEvent): Priority {
  switch (e.event) {
    case "session-failed":
      return PRIORITY.err;
    case "session-end":
      return e.state === "failed"
        ? PRIORITY.err
        : e.state === "closed" && e.error === null
        ? PRIORITY.info
        : PRIORITY.warning;
    case "module-unloaded":
      return PRIORITY.warning;
    case "activated":
    case "deactivated":
    case "module-loaded":
      return PRIORITY.notice;
    default:
      return PRIORITY.info;
  }
}

/**
 * How `watch` writes an event: one JSON object or one human line, with the
 * journal priority in front when stdout is the journal (`journal`).
 */
export function formatEvent(e: WatchEvent, json: boolean, journal: boolean): string {
  return journalLine(json ? JSON.stringify(e) : eventLine(e), eventPriority(e), journal);
}

/** The device list, or null when the module is not loaded; exit 3 when not permitted. */
function listDevices(): control.DeviceInfo[] | null {
  if (!control.isLoaded()) return null;
  try {
    return control.list();
  } catch (e) {
    if (e instanceof control.ModuleNotLoadedError) return null;
    if (isErrno(e, "EACCES", "EPERM")) {
      throw new CliError(
        "watch needs root to read the module's device list (/dev/bdsnap)",
        EXIT_PERMISSION,
      );
    }
    if (isErrno(e, "ENOENT", "ENODEV", "ENXIO")) return null; // unloading right now
    throw e;
  }
}

/**
 * After an unmount the module closes the session a moment later: wait (at
 * most `budgetMs`) until it has, then take the final state and counts from
 * the session's meta.json.
 */
async function settleEnds(ends: WatchEvent[], root: string, budgetMs = 600): Promise<void> {
  const deadline = Date.now() + budgetMs;
  const ids = new Set(ends.map((e) => e.session).filter((s): s is string => s !== null));
  while (ids.size > 0 && Date.now() < deadline) {
    const devs = listDevices() ?? [];
    const stillOpen = devs.some((d) => ids.has(d.sessionId) && d.state === SESSION_STATE.OPEN);
    if (!stillOpen) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  for (const e of ends) {
    if (!e.session) continue;
    try {
      const meta = parseMeta(await Deno.readTextFile(`${root}/${e.session}/meta.json`));
      if (meta.state === "open") throw new Error("not closed yet");
      e.state = meta.state;
      if (meta.error) e.error = meta.error;
      e.bytes_saved = meta.bytes;
      e.chunks_saved = Math.ceil(meta.bytes / meta.chunkSize);
      e.pending_bytes = 0;
    } catch {
      e.state = "ended"; // meta.json not readable (yet): the live counters stand
    }
  }
}

/** Parse --interval. */
export function parseInterval(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || n < 0.1 && n !== 0) {
    throw new InvalidArgumentError("seconds, at least 0.1 (0: off)");
  }
  return n;
}

/** Register `watch`. */
export function register(program: Command): void {
  program
    .command("watch")
    .description("report sessions starting and ending on activated devices, until SIGTERM/SIGINT")
    .option(
      "--interval <seconds>",
      "also report open sessions' counters every SECONDS (0: off)",
      parseInterval,
      0,
    )
    .addHelpText(
      "after",
      "\nMount table changes are seen through POLLPRI on /proc/self/mountinfo, at once; the\n" +
        "module's device list is also read every second to catch failed sessions. With --json\n" +
        "every event is one JSON object on its own line.",
    )
    .action(async (o: { interval: number }, cmd: Command) => {
      const opts = globals(cmd);
      const root = storeRoot(opts).root;
      const journal = { out: isJournalStream(1), err: isJournalStream(2) };
      const emit = (e: WatchEvent) => println(formatEvent(e, opts.json, journal.out));
      const ac = new AbortController();
      const stop = () => ac.abort();
      const signals: Deno.Signal[] = ["SIGTERM", "SIGINT"];
      for (const s of signals) Deno.addSignalListener(s, stop);
      const tracker = new SessionTracker();
      let nextCounters = o.interval > 0 ? Date.now() + o.interval * 1000 : Infinity;
      try {
        for await (const ev of watchMounts({ signal: ac.signal, intervalMs: 1000 })) {
          const devices = listDevices();
          const events = tracker.update(ev.mounts, devices);
          if (ev.reason === "initial") {
            const start = event("watching", new Date());
            start.module_loaded = devices !== null;
            start.devices = (devices ?? []).map(deviceJson);
            if (opts.json) emit(start);
            else if (!opts.quiet) {
              const line = `bdsnap: ${eventLine(start).replace(/^\S+ \S+ {2}/, "")}`;
              eprintln(journalLine(line, PRIORITY.info, journal.err));
            }
            // sessions already open when we start are reported as starting now
            for (const e of events) if (e.event === "session-start") emit(e);
            continue;
          }
          const ends = events.filter((e) => e.event === "session-end");
          if (ends.length) await settleEnds(ends, root);
          for (const e of events) emit(e);
          if (Date.now() >= nextCounters) {
            nextCounters = Date.now() + o.interval * 1000;
            for (const e of tracker.counters()) emit(e);
          }
        }
      } finally {
        for (const s of signals) Deno.removeSignalListener(s, stop);
      }
    });
}
