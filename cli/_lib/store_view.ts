/**
 * The store as `sessions`, `show` and `prune` present it: reading it through
 * lib/store.ts with the module's live sessions, the stable JSON shape of a
 * session, and the changed ranges of a session.
 * @module
 */

import { CliError, EXIT_FAILED, EXIT_PERMISSION, fromRestoreError } from "./errors.ts";
import { formatProblem, RestoreError } from "../../lib/errors.ts";
import { errnoOf } from "../../lib/io_error.ts";
import {
  failureText,
  listSessions,
  readSession,
  type Session,
  sortedOrder,
} from "../../lib/store.ts";
import type { Durability } from "../../lib/format.ts";
import * as control from "../../ffi/control.ts";
import { isoFromNs } from "./units.ts";

/**
 * The ids of the sessions the module has open now: an empty set when it is
 * not loaded, `undefined` when it cannot be asked (not root).
 */
export function liveSessionIds(): Set<string> | undefined {
  if (!control.isLoaded()) return new Set();
  try {
    return new Set(control.list().map((d) => d.sessionId).filter((id) => id !== ""));
  } catch {
    return undefined;
  }
}

/** A RestoreError from the store reader or the restorer as a CliError (code and problems kept). */
export function storeError(e: unknown): unknown {
  return e instanceof RestoreError ? fromRestoreError(e) : e;
}

/** Every session in the store, oldest first. */
export async function readStore(
  root: string,
  live: ReadonlySet<string> | undefined = liveSessionIds(),
): Promise<Session[]> {
  try {
    return await listSessions(root, { liveSessions: live });
  } catch (e) {
    // Listing fails only on the root itself: when it is not there or not a
    // directory, the likely fix is another root.
    if (e instanceof RestoreError && (e.code === "not-found" || e.errno === "ENOTDIR")) {
      throw fromRestoreError(e, `${e.message}: give the store root with --store DIR`);
    }
    throw storeError(e);
  }
}

/** One session by id (or by directory path, if it contains a "/"). */
export async function readOneSession(root: string, idOrDir: string): Promise<Session> {
  const dir = idOrDir.includes("/") ? idOrDir.replace(/\/+$/, "") : `${root}/${idOrDir}`;
  try {
    const st = await Deno.stat(dir);
    if (!st.isDirectory) throw new Deno.errors.NotFound();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new CliError(
        `no session ${idOrDir} in ${root}: \`bdsnap sessions\` lists them`,
        EXIT_FAILED,
        { code: "not-found", errno: "ENOENT" },
      );
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new CliError(`cannot read ${dir}: permission denied (run as root)`, EXIT_PERMISSION, {
        errno: errnoOf(e),
      });
    }
    throw e;
  }
  try {
    return await readSession(dir, { liveSessions: liveSessionIds() });
  } catch (e) {
    throw storeError(e);
  }
}

/** The device a session belongs to: meta.json's path, else the directory name's part. */
export function sessionDevice(s: Session): string {
  return s.meta?.device ?? s.idParts?.name ?? s.id;
}

/** The chain a session belongs to (sessions of one device share it). */
export { chainKey } from "../../lib/retention.ts";

/** Chunks saved by a session (usable data bytes / chunk size). */
export function sessionChunks(s: Session): number {
  const chunk = s.meta?.chunkSize ?? s.header?.chunkSize ?? 0;
  return chunk > 0 ? Math.ceil(s.dataBytes / chunk) : 0;
}

/** The stable JSON shape of one session (docs/CLI.md, "Session object"). */
export interface SessionJson {
  id: string;
  device: string;
  kind: string | null;
  dev: string | null;
  fs_type: string | null;
  seq: number | null;
  start: string | null;
  end: string | null;
  start_ns: number | null;
  end_ns: number | null;
  state: string;
  error: string | null;
  /** The guarantee its pre-images had (`write-ahead` or `flush`); null without meta.json. */
  durability: Durability | null;
  chunks: number;
  bytes: number;
  records: number;
  size: number | null;
  chunk_size: number | null;
  unmounted_writes_before: number | null;
  /** Writes outside any session after it closed, counted when the device was deactivated. */
  unmounted_writes_after: number | null;
  /** When the device was deactivated after this session (ns), else null. */
  deactivated_ns: number | null;
  /** The session a restore went back to, undoing this one (superseded.json); else null. */
  superseded_by: string | null;
  problems: string[];
}

/** One session as JSON. */
export function sessionJson(s: Session): SessionJson {
  const m = s.meta;
  const startNs = m?.mountTimeNs ?? (s.idParts ? s.idParts.timeUs * 1000 : null);
  return {
    id: s.id,
    device: sessionDevice(s),
    kind: m?.kind ?? null,
    dev: m?.dev ?? null,
    fs_type: m?.fsType ?? null,
    seq: m?.seq ?? null,
    start: startNs ? isoFromNs(startNs) : null,
    end: m?.endTimeNs ? isoFromNs(m.endTimeNs) : null,
    start_ns: startNs,
    end_ns: m?.endTimeNs ? m.endTimeNs : null,
    state: s.state,
    error: failureText(s) || null,
    durability: m ? s.durability : null,
    chunks: sessionChunks(s),
    bytes: s.dataBytes,
    records: s.records.count,
    size: m?.size ?? s.header?.deviceSize ?? null,
    chunk_size: m?.chunkSize ?? s.header?.chunkSize ?? null,
    unmounted_writes_before: m?.unmountedWritesBefore ?? null,
    unmounted_writes_after: m?.unmountedWritesAfter ?? null,
    deactivated_ns: m?.deactivatedNs ? m.deactivatedNs : null,
    superseded_by: s.superseded?.restoredTo ?? null,
    problems: s.problems.map(formatProblem),
  };
}

/** A changed byte range of the device. */
export interface Range {
  offset: number;
  length: number;
}

/** The device ranges a session saved, sorted by offset, adjacent ones merged. */
export function changedRanges(s: Session): Range[] {
  const t = s.records;
  const out: Range[] = [];
  for (const i of sortedOrder(t)) {
    const off = t.devOffset[i], len = t.length[i];
    const last = out[out.length - 1];
    if (last && last.offset + last.length === off) last.length += len;
    else out.push({ offset: off, length: len });
  }
  return out;
}
