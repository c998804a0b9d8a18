/**
 * The chain planner. Restoring device D to its state before the mount of
 * session k takes, for every chunk, the pre-image from the earliest session
 * j ≥ k of D that saved it (sessions ordered by mount time). The plan is
 * computed from the maps of sessions k..n only, so it does not depend on the
 * target's content and a rerun writes the same bytes again.
 *
 * The planner refuses (throws {@linkcode RestoreError}) when a session the
 * chain needs is open or damaged, when a session that may belong to the chain
 * names another device, or when writes outside any session reached the device
 * after k's mount: a later session j > k recorded some before its mount
 * (`unmounted_writes_before > 0`), or a session j ≥ k some after it closed,
 * counted when the device was deactivated (`unmounted_writes_after > 0`);
 * neither is a gap, and `acceptGap` does not let them through. A chain that
 * would restore but not provably exactly is refused too unless the caller
 * passes `acceptGap`: a session missing, failed (meta.json or the blocks.map
 * header says so) or incomplete, or one interrupted by a crash without
 * write-ahead durability.
 * An interrupted write-ahead session is exact up to its last valid record.
 *
 * @example
 * ```ts
 * import { listSessions } from "./store.ts";
 * import { planRestore } from "./plan.ts";
 * const sessions = await listSessions("/snapshot", { liveSessions: new Set() });
 * const plan = planRestore(sessions, "dev_vdb_20261122T072301.123456Z");
 * console.log(plan.bytes, "bytes in", plan.extents.length, "extents");
 * ```
 *
 * @module
 */

import { formatProblem, type Problem, RestoreError, type RestoreErrorCode } from "./errors.ts";
import { type DeviceKind, storeName } from "./format.ts";
import { sameIdentity } from "./identity.ts";
import { compareSessions, failureText, type Session, sortedOrder } from "./store.ts";

/** A run of device bytes whose pre-image comes from one place in one session's blocks.dat. */
export interface PlanPiece {
  /** Byte offset on the device. */
  devOffset: number;
  /** Bytes. */
  length: number;
  /** Index into {@linkcode Plan.sessions} of the session the data comes from. */
  session: number;
  /** Byte offset of the data in that session's blocks.dat. */
  datOffset: number;
}

/** A run of adjacent pieces: one contiguous range of device bytes to write. */
export interface PlanExtent {
  /** Byte offset on the device. */
  devOffset: number;
  /** Bytes. */
  length: number;
  /** Index of its first piece in {@linkcode Plan.pieces}. */
  firstPiece: number;
  /** Number of its pieces. */
  pieceCount: number;
}

/** How much one session of the chain contributes. */
export interface SessionUse {
  /** Session id. */
  id: string;
  /** Bytes of the plan taken from this session. */
  bytes: number;
}

/** What a restore (or export) will write. */
export interface Plan {
  /** The device path recorded at activation. */
  device: string;
  /** The device's stable identity recorded by the target session, or "". */
  identity: string;
  /** What the device is. */
  kind: DeviceKind;
  /** `major:minor` recorded by the target session. */
  dev: string;
  /** Device size in bytes. */
  deviceSize: number;
  /** Chunk size of the target session. */
  chunkSize: number;
  /** The session whose pre-mount state is restored. */
  target: Session;
  /** Sessions k..n of the chain, oldest first; `target` is the first. */
  sessions: Session[];
  /** Pieces sorted by device offset, disjoint: each chunk is written once. */
  pieces: PlanPiece[];
  /** Pieces coalesced into contiguous device ranges, sorted by offset. */
  extents: PlanExtent[];
  /** Bytes to write. */
  bytes: number;
  /** Chunks to write (bytes / chunk size, rounded up). */
  chunks: number;
  /** Per session of the chain, the bytes taken from it. */
  usage: SessionUse[];
  /** Things the user should know that do not stop the restore (accepted gaps included). */
  warnings: string[];
  /** The accepted gaps (`acceptGap`): empty when the restore is provably exact. */
  gaps: ChainGap[];
}

/** Options of {@linkcode planRestore}. */
export interface PlanOptions {
  /** The device the caller means; refused if the session belongs to another. */
  device?: string;
  /**
   * The stable identity of the device the caller means (lib/identity.ts).
   * When both it and the session's are known, they are compared instead of
   * `device`: after renumbering, the same disk has another path.
   */
  identity?: string;
  /**
   * Accept open sessions in the chain (for `export` of a mounted device,
   * which re-reads the store after flushing the device). Never for restore.
   */
  allowOpen?: boolean;
  /**
   * Accept a chain that is not provably exact: a session missing from it, or
   * one that failed, is incomplete, or was interrupted without write-ahead
   * durability. The gaps are listed in {@linkcode Plan.gaps} and the warnings.
   */
  acceptGap?: boolean;
}

/**
 * Plan the restore of a device to the state before the mount of
 * `sessionId`. `sessions` is the whole store, as {@linkcode listSessions}
 * returns it.
 *
 * @throws {RestoreError} with the refusal's code and the problems behind it.
 */
export function planRestore(
  sessions: readonly Session[],
  sessionId: string,
  options: PlanOptions = {},
): Plan {
  const { target: k, chain, warnings, gaps } = checkChain(sessions, sessionId, options);
  const meta = k.meta!;
  const { pieces, usage } = sweep(chain, meta.size);
  const extents = coalesce(pieces);
  const bytes = pieces.reduce((n, p) => n + p.length, 0);
  return {
    device: meta.device,
    identity: meta.identity,
    kind: meta.kind,
    dev: meta.dev,
    deviceSize: meta.size,
    chunkSize: meta.chunkSize,
    target: k,
    sessions: chain,
    pieces,
    extents,
    bytes,
    chunks: Math.ceil(bytes / meta.chunkSize),
    usage: chain.map((s, i) => ({ id: s.id, bytes: usage[i] })),
    warnings,
    gaps,
  };
}

/** What makes a chain's restore not provably exact (accepted with `acceptGap`). */
export type GapCode = "missing" | "interrupted" | "failed" | "incomplete";

/** One reason a restore would not be provably exact. */
export interface ChainGap {
  /** What kind of gap. */
  code: GapCode;
  /** The session concerned (for `missing`, the first one after the gap). */
  session: string;
  /** One line for people. */
  message: string;
}

/** The sessions a restore to the state before `sessionId` reads, checked. */
export interface Chain {
  /** The session whose pre-mount state is restored. */
  target: Session;
  /** Sessions k..n of the device, oldest first. */
  chain: Session[];
  /** Things the user should know that do not stop the restore (accepted gaps included). */
  warnings: string[];
  /** The gaps that were accepted (`acceptGap`); empty when the restore is exact. */
  gaps: ChainGap[];
}

/**
 * The checks of {@linkcode planRestore} without computing the plan: cheap,
 * for telling which sessions can be restored at all.
 *
 * Two kinds of refusal: hard ones (open, damaged, superseded, writes outside
 * a session, …) and gaps, where the restore would run but could not be
 * proven exact (a session missing from the chain, or one that failed, is
 * incomplete, or was interrupted without write-ahead). Gaps refuse with
 * {@linkcode RestoreError.acceptable} set, unless `acceptGap` is given.
 *
 * @throws {RestoreError} exactly as {@linkcode planRestore} does.
 */
export function checkChain(
  sessions: readonly Session[],
  sessionId: string,
  options: PlanOptions = {},
): Chain {
  const k = sessions.find((s) => s.id === sessionId);
  if (k === undefined) throw new RestoreError("not-found", `no session ${sessionId} in the store`);
  if (k.meta === null || k.state === "incomplete") {
    const incomplete = k.state === "incomplete";
    throw new RestoreError(
      incomplete ? "incomplete" : "damaged",
      incomplete
        ? `session ${k.id} is incomplete (${problemText(k)}) and cannot be restored to; if ` +
          `that mount changed nothing, the state before it is the state before the next ` +
          `session's mount (or the present state, if there is none)`
        : `session ${k.id} is damaged: ${problemText(k)}`,
      k.problems,
    );
  }
  if (k.superseded !== null) {
    // Its pre-mount state belongs to the history the restore discarded: the
    // chain would mix that history's pre-images with the present one's.
    const when = k.superseded.time === "" ? "" : ` on ${k.superseded.time}`;
    throw new RestoreError(
      "superseded",
      `session ${k.id} was undone by the restore to ${k.superseded.restoredTo}${when}: ` +
        `the state before its mount is no longer reachable (sessions up to and including ` +
        `${k.superseded.restoredTo} still are)`,
    );
  }
  const meta = k.meta;
  const device = meta.device;
  const identity = meta.identity;
  if (options.identity && identity !== "") {
    if (!sameIdentity(options.identity, identity)) {
      throw new RestoreError(
        "invalid",
        `session ${k.id} is a session of ${device} (${identity}), not of the device given ` +
          `(${options.identity})`,
      );
    }
  } else if (options.device !== undefined && options.device !== device) {
    throw new RestoreError(
      "invalid",
      `session ${k.id} is a session of ${device}, not of ${options.device}`,
    );
  }

  // The device's sessions: by identity when k recorded one (the same disk
  // may have had other paths), else by path. A damaged session may have
  // lost its meta.json and still breaks the chain: it counts by its
  // directory name, under any name the device's sessions were recorded as
  // and, for a chain by identity, under a name no readable session has
  // (it may be this disk's under a new name).
  const name = storeName(device);
  const member = (s: Session) =>
    identity !== "" && s.meta!.identity !== ""
      ? sameIdentity(s.meta!.identity, identity)
      : s.meta!.device === device;
  const names = new Set([name]);
  const readable = new Set<string>();
  for (const s of sessions) {
    if (s.meta === null) continue;
    readable.add(storeName(s.meta.device));
    if (identity !== "" && member(s)) names.add(storeName(s.meta.device));
  }
  const damagedMember = (dirName: string) =>
    names.has(dirName) || (identity !== "" && !readable.has(dirName));
  // Another disk once had this path: a session with another identity is not
  // a candidate, one with none is (and refused as ambiguous below).
  const otherDisk = (s: Session) =>
    identity !== "" && s.meta!.identity !== "" && !sameIdentity(s.meta!.identity, identity);
  const candidates = sessions
    .filter((s) =>
      s.meta === null
        ? damagedMember(s.idParts?.name ?? "")
        : member(s) || (s.idParts?.name === name && !otherDisk(s))
    )
    .filter((s) => s === k || compareSessions(s, k) > 0)
    .sort(compareSessions);

  const refusals: Array<{ code: RestoreErrorCode; message: string; problems: Problem[] }> = [];
  const refuse = (code: RestoreErrorCode, message: string, problems: Problem[] = []) =>
    refusals.push({ code, message, problems });
  const gaps: ChainGap[] = [];
  const gap = (code: GapCode, session: string, message: string) =>
    gaps.push({ code, session, message });
  const warnings: string[] = [];

  for (const s of candidates) {
    if (s.state === "damaged") {
      refuse("damaged", `session ${s.id} is damaged: ${problemText(s)}`, s.problems);
    } else if (s.state === "incomplete") {
      // Files missing: the mount never got going, and saved nothing we can read.
      gap(
        "incomplete",
        s.id,
        `session ${s.id} is incomplete (${problemText(s)}): its pre-images are missing, so ` +
          `the result is exact only if that mount changed nothing`,
      );
    } else if (identity !== "" && s.meta!.identity === "") {
      refuse(
        "ambiguous",
        `session ${s.id} of ${JSON.stringify(s.meta!.device)} has no recorded identity: ` +
          `cannot tell whether it is of the same device as ${k.id} (${identity})`,
      );
    } else if (!member(s)) {
      refuse(
        "ambiguous",
        `session ${s.id} is of ${
          JSON.stringify(s.meta!.device)
        }, whose store name is the same as ` +
          `${JSON.stringify(device)}'s: cannot tell which sessions belong to the chain`,
      );
    } else if (s.state === "failed") {
      gap("failed", s.id, failedGap(s));
    } else if (s.state === "open" && !options.allowOpen) {
      refuse("open", `session ${s.id} is still open: unmount the device first`);
    } else if (s.state === "interrupted" && s.durability !== "write-ahead") {
      // Write-ahead sessions are exact up to their last valid record: the
      // torn tail belongs to writes that never reached the device.
      gap(
        "interrupted",
        s.id,
        `session ${s.id} was interrupted (crash or power cut)` +
          (s.tail ? `; its map ends at offset ${s.tail.offset} (${s.tail.reason})` : "") +
          `, and its durability was "flush" (recorded by a module without write-ahead): its ` +
          `pre-images were durable only at the device's flushes, so writes that reached the ` +
          `device after the last flush may have none`,
      );
    }
  }
  const chain = candidates.filter((s) => s.meta !== null && member(s));

  // Writes after a session closed that the module counted at deactivation
  // (`unmounted_writes_after`): they reached the device after j's mount (so
  // after k's), and no session saved their pre-images.
  const checkAfter = (s: Session) => {
    const m = s.meta!;
    if (m.unmountedWritesAfter > 0) {
      refuse("unmounted-writes", unmountedAfterText(s));
    }
  };
  if (chain.length > 0) checkAfter(chain[0]);
  for (let i = 1; i < chain.length; i++) {
    const prev = chain[i - 1].meta!;
    const s = chain[i];
    const m = s.meta!;
    if (m.unmountedWritesBefore > 0) {
      refuse(
        "unmounted-writes",
        `session ${s.id} records ${m.unmountedWritesBefore} write(s) to the device outside any ` +
          `session before its mount: the sessions cannot undo them`,
      );
    }
    if (m.seq === 1) {
      warnings.push(
        `${device} was deactivated between sessions ${chain[i - 1].id} and ${s.id}: ` +
          `writes made while it was not activated cannot be seen or undone`,
      );
    } else if (m.seq !== prev.seq + 1) {
      gap(
        "missing",
        s.id,
        `session(s) missing between ${
          chain[i - 1].id
        } (seq ${prev.seq}) and ${s.id} (seq ${m.seq}): their pre-images are gone`,
      );
    }
    if (m.size !== meta.size) {
      refuse(
        "invalid",
        `the device size changed between sessions (${meta.size} bytes in ${k.id}, ` +
          `${m.size} in ${s.id})`,
      );
    }
    checkAfter(s);
  }

  if (refusals.length > 0) {
    const first = refusals[0];
    const all = [...refusals, ...gaps];
    const more = all.length > 1 ? ` (and ${all.length - 1} more problem(s))` : "";
    throw new RestoreError(
      first.code,
      first.message + more,
      all.flatMap((r) =>
        "problems" in r && r.problems.length > 0 ? r.problems : [{ message: r.message }]
      ),
    );
  }
  if (gaps.length > 0 && !options.acceptGap) {
    throw new RestoreError(
      gaps[0].code,
      `the restore to the state before ${k.id} would not be exact: ` +
        gaps.map((g) => g.message).join("; "),
      gaps.map((g) => ({ session: g.session, message: g.message })),
      true,
    );
  }

  return { target: k, chain, warnings: [...gaps.map((g) => g.message), ...warnings], gaps };
}

/**
 * The refusal for a session with `unmounted_writes_after > 0`: how many
 * writes, to which device, and between which times (UTC, to the second).
 */
function unmountedAfterText(s: Session): string {
  const m = s.meta!;
  return `${m.unmountedWritesAfter} write(s) reached ${m.device} outside any session after ` +
    `session ${s.id} closed (${utcSeconds(m.endTimeNs)}) and before the device was ` +
    `deactivated (${utcSeconds(m.deactivatedNs)}): the sessions cannot undo them`;
}

/** A meta.json time as `2026-12-01T17:40:02Z`; "time unknown" for 0. */
function utcSeconds(ns: number): string {
  if (!(ns > 0)) return "time unknown";
  return new Date(Math.floor(ns / 1e6)).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Why a failed session leaves a gap, with what the header recorded of the failure. */
function failedGap(s: Session): string {
  const why = failureText(s);
  const h = s.header;
  const at = h !== null && h.failed ? `, after ${h.failRecords} durable record(s)` : "";
  return `session ${s.id} failed${why === "" ? "" : ` (${why})`}${at}: writes to the device ` +
    `after the failure were not saved, so their chunks cannot be put back`;
}

function problemText(s: Session): string {
  return s.problems.map((p) => formatProblem({ ...p, session: undefined })).join("; ");
}

/**
 * For every device byte saved by some session of `chain`, the earliest
 * session's pre-image. Each session's records are disjoint (the reader
 * checks it), so at any offset each session has at most one record
 * covering it; the walk moves from boundary to boundary.
 */
function sweep(chain: Session[], deviceSize: number): { pieces: PlanPiece[]; usage: number[] } {
  const n = chain.length;
  const tables = chain.map((s) => s.records);
  const orders = tables.map((t) => sortedOrder(t));
  const ptr = new Array<number>(n).fill(0);
  const active = new Array<number>(n).fill(-1);
  const usage = new Array<number>(n).fill(0);
  const pieces: PlanPiece[] = [];
  let pos = 0;
  for (;;) {
    // Make each session's record at `pos` (if any) its active one.
    let nextStart = Infinity;
    for (let r = 0; r < n; r++) {
      const t = tables[r];
      const o = orders[r];
      while (ptr[r] < o.length && t.devOffset[o[ptr[r]]] <= pos) active[r] = o[ptr[r]++];
      if (ptr[r] < o.length) nextStart = Math.min(nextStart, t.devOffset[o[ptr[r]]]);
    }
    let w = -1;
    for (let r = 0; r < n; r++) {
      const a = active[r];
      if (a >= 0 && tables[r].devOffset[a] + tables[r].length[a] > pos) {
        w = r;
        break;
      }
    }
    if (w < 0) {
      if (nextStart === Infinity) break;
      pos = nextStart;
      continue;
    }
    const t = tables[w];
    const a = active[w];
    const end = Math.min(t.devOffset[a] + t.length[a], nextStart);
    const clipped = Math.min(end, deviceSize);
    if (clipped > pos) {
      const datOffset = t.datOffset[a] + (pos - t.devOffset[a]);
      const length = clipped - pos;
      const last = pieces[pieces.length - 1];
      if (
        last !== undefined && last.session === w && last.devOffset + last.length === pos &&
        last.datOffset + last.length === datOffset
      ) {
        last.length += length;
      } else {
        pieces.push({ devOffset: pos, length, session: w, datOffset });
      }
      usage[w] += length;
    }
    pos = end;
  }
  return { pieces, usage };
}

/** Group adjacent pieces into contiguous device ranges. */
function coalesce(pieces: PlanPiece[]): PlanExtent[] {
  const extents: PlanExtent[] = [];
  for (let i = 0; i < pieces.length; i++) {
    const p = pieces[i];
    const last = extents[extents.length - 1];
    if (last !== undefined && last.devOffset + last.length === p.devOffset) {
      last.length += p.length;
      last.pieceCount++;
    } else {
      extents.push({ devOffset: p.devOffset, length: p.length, firstPiece: i, pieceCount: 1 });
    }
  }
  return extents;
}

/** Whether the state before a session's mount can be restored, and how well. */
export interface Restorability {
  /**
   * `exact`: the planner accepts it as it is; `inexact`: only with
   * `acceptGap`; `refused`: not at all.
   */
  kind: "exact" | "inexact" | "refused";
  /** The refusal without `acceptGap` (`null` when exact). */
  error: RestoreError | null;
}

/**
 * Ask the planner whether `sessionId` can be restored to: the one rule that
 * `restore`, its chooser and `prune` share, so they never disagree.
 */
export function restorability(
  sessions: readonly Session[],
  sessionId: string,
  options: Omit<PlanOptions, "acceptGap"> = {},
): Restorability {
  try {
    checkChain(sessions, sessionId, options);
    return { kind: "exact", error: null };
  } catch (e) {
    if (!(e instanceof RestoreError)) throw e;
    // A gap refusal is only thrown when nothing else refuses.
    return { kind: e.acceptable ? "inexact" : "refused", error: e };
  }
}
