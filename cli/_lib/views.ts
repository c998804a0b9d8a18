/**
 * The views that exist: one JSON record per view under /run/bdsnap/views
 * (BDSNAP_RUN_DIR overrides /run/bdsnap), written by the view's server once
 * its device answers and removed when it ends. A record whose server is gone
 * (a crash, a reboot: /run is a tmpfs) is not a view and is dropped when seen.
 *
 * Other commands ask here before they touch what a view needs: `prune` keeps
 * the sessions a view holds, `deactivate` and `restore` refuse while a view
 * of the device exists.
 * @module
 */

import { nbdServer } from "../../ffi/nbd.ts";
import { CliError, EXIT_FAILED } from "./errors.ts";

/** One view, as its server recorded it. */
export interface ViewRecord {
  /** The view's block device, `/dev/nbdN`. */
  device: string;
  /** The process serving it. */
  pid: number;
  /** The device viewed, as activated. */
  origin: string;
  /** The session whose pre-mount state the view shows. */
  session: string;
  /** The sessions it reads from: the target and every later one of the chain. */
  holds: string[];
  /** When it was created, ISO 8601. */
  created: string;
  /** Where `--mount` mounted it, or null. */
  mountpoint: string | null;
}

/** The directory of view records. */
export function viewsDir(): string {
  return `${Deno.env.get("BDSNAP_RUN_DIR") ?? "/run/bdsnap"}/views`;
}

function recordPath(device: string): string {
  return `${viewsDir()}/${device.replace(/^\/dev\//, "")}.json`;
}

/** Record a view (atomically: a reader never sees half a record). */
export function saveView(v: ViewRecord): void {
  Deno.mkdirSync(viewsDir(), { recursive: true, mode: 0o700 });
  const tmp = `${recordPath(v.device)}.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify(v, null, 2) + "\n", { mode: 0o600 });
  Deno.renameSync(tmp, recordPath(v.device));
}

/** Forget a view's record (nothing if there is none). */
export function dropView(device: string): void {
  try {
    Deno.removeSync(recordPath(device));
  } catch {
    // already gone
  }
}

/** The process (thread group) of thread `tid`, or null when it is gone. */
function processOf(tid: number): number | null {
  try {
    const m = /^Tgid:\s*(\d+)/m.exec(Deno.readTextFileSync(`/proc/${tid}/status`));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/**
 * Whether `v`'s server still serves its device. sysfs names the thread that
 * runs NBD_DO_IT (a worker thread of the server), so compare its process.
 */
function alive(v: ViewRecord): boolean {
  const tid = nbdServer(v.device.replace(/^\/dev\//, ""));
  return tid !== null && processOf(tid) === v.pid;
}

/** The views that exist, by device name; stale records are dropped. */
export function listViews(): ViewRecord[] {
  const out: ViewRecord[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(viewsDir())];
  } catch {
    return [];
  }
  for (const e of entries) {
    if (!e.name.endsWith(".json")) continue;
    let v: ViewRecord;
    try {
      v = JSON.parse(Deno.readTextFileSync(`${viewsDir()}/${e.name}`));
    } catch {
      continue; // being written
    }
    if (alive(v)) out.push(v);
    else dropView(v.device);
  }
  return out.sort((a, b) => a.device.localeCompare(b.device, undefined, { numeric: true }));
}

/** The views of the device activated as `origin`. */
export function viewsOf(origin: string): ViewRecord[] {
  return listViews().filter((v) => v.origin === origin);
}

/** The session ids some view reads from. */
export function heldSessions(): Set<string> {
  return new Set(listViews().flatMap((v) => v.holds));
}

/** Refuse `action` on the device activated as `origin` while views of it exist (code `busy`). */
export function refuseWhileViewed(origin: string, action: string): void {
  const views = viewsOf(origin);
  if (views.length === 0) return;
  const advice = views.map((v) => `bdsnap view --remove ${v.device}`).join("; ");
  throw new CliError(
    `cannot ${action} ${origin} while ${views.length} view(s) read its sessions: ` +
      `remove them first (${advice})`,
    EXIT_FAILED,
    { code: "busy" },
  );
}
