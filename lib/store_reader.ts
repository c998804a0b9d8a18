/**
 * The store reader: finds the sessions under a store root, reads and checks
 * each session's meta.json and blocks.map exactly as docs/FORMAT.md says
 * (torn tail versus damage), (the data checksums are
 * lib/store_verify.ts's).
 *
 * A session's state is one of:
 *
 * - `open`: meta.json says open and the module reports it open (or the
 *   caller could not ask the module);
 * - `interrupted`: meta.json says open but the module does not report it
 *   open (a crash or power cut ended it); its usable map prefix is kept;
 * - `closed`: ended cleanly, and the map and data sizes agree with meta.json;
 * - `failed`: the module stopped copy-on-write for it: meta.json says so, or
 *   the blocks.map header has FAILED (which wins over meta.json, whose
 *   rewrite can fail on a full store);
 * - `damaged`: something breaks the format (see {@linkcode Session.problems});
 * - `incomplete`: meta.json, blocks.map or blocks.dat is missing, or
 *   meta.json is empty: the session never got going.
 *
 * Each session also has a {@linkcode Session.durability}: `write-ahead` only
 * when both the header flag and meta.json say so, else `flush`. An
 * interrupted write-ahead session is exact up to its last valid record; an
 * interrupted `flush` one is not provably exact.
 *
 * @example
 * ```ts
 * import { listSessions } from "./store_reader.ts";
 * for (const s of await listSessions("/snapshot", { liveSessions: new Set() })) {
 *   console.log(s.id, s.state, s.problems.map((p) => p.message));
 * }
 * ```
 *
 * @module
 */

import { type Problem, RestoreError } from "./errors.ts";
import {
  decodeMapHeader,
  decodeMapRecord,
  type Durability,
  FILES,
  FormatError,
  MAP_HEADER_SIZE,
  MAP_RECORD_SIZE,
  type MapHeader,
  metaDurability,
  parseMeta,
  parseSessionId,
  parseSuperseded,
  type SessionIdParts,
  type SessionMeta,
  storeName,
  type SupersededMark,
} from "./format.ts";
import { ioError } from "./io_error.ts";
import { errnoDescription, errnoName } from "../ffi/_errno.ts";

/** Where the module keeps sessions unless told otherwise. */
export const DEFAULT_STORE_ROOT = "/snapshot";

/** A session's state as the reader judges it (see the module documentation). */
export type SessionState = "open" | "interrupted" | "closed" | "failed" | "damaged" | "incomplete";

/**
 * The usable records of a session's blocks.map, in map order, as parallel
 * arrays (24 bytes a record instead of an object each).
 */
export interface RecordTable {
  /** Number of usable records. */
  count: number;
  /** Byte offset on the device of each record. */
  devOffset: Float64Array;
  /** Byte offset in blocks.dat of each record. */
  datOffset: Float64Array;
  /** Length in bytes of each record. */
  length: Uint32Array;
  /** CRC-32C of each record's data. */
  dataCrc: Uint32Array;
}

/** Where and why the usable part of a blocks.map ends early. */
export interface TornTail {
  /** Byte offset in blocks.map of the first unusable record. */
  offset: number;
  /** Why that record is not usable. */
  reason: string;
}

/** One session directory, read and checked (data checksums excepted). */
export interface Session {
  /** The session id: the directory name. */
  id: string;
  /** The session directory. */
  dir: string;
  /** The reader's judgement. */
  state: SessionState;
  /** meta.json, when it could be parsed. */
  meta: SessionMeta | null;
  /** The blocks.map header, when it could be decoded. */
  header: MapHeader | null;
  /** The directory name taken apart, `null` if it is not a session id. */
  idParts: SessionIdParts | null;
  /** The usable records. */
  records: RecordTable;
  /** Sum of the usable records' lengths: the usable bytes of blocks.dat. */
  dataBytes: number;
  /** Size of blocks.dat in bytes (0 when missing). */
  datSize: number;
  /** The torn tail of blocks.map, or `null` when the map ends on a record boundary. */
  tail: TornTail | null;
  /** Why the session is damaged or incomplete (empty otherwise). */
  problems: Problem[];
  /** The restorer's mark when a restore to an earlier session undid this one's changes. */
  superseded: SupersededMark | null;
  /**
   * The guarantee its pre-images had: `write-ahead` when the blocks.map
   * header has WRITE_AHEAD and meta.json says `"write-ahead"`; `flush`
   * otherwise (the weaker of the two claims wins).
   */
  durability: Durability;
}

/** Why a failed session failed: meta.json's `error`, else the header's errno. */
export function failureText(s: Session): string {
  if (s.meta !== null && s.meta.error !== "") return s.meta.error;
  const h = s.header;
  if (h !== null && h.failed && h.failErrno > 0) {
    return `${errnoDescription(h.failErrno)} (${errnoName(h.failErrno)})`;
  }
  return "";
}

/** Options of {@linkcode readSession} and {@linkcode listSessions}. */
export interface ReadOptions {
  /**
   * Ids of the sessions the module reports open now. A session whose
   * meta.json says open but which is not in this set is `interrupted`.
   * Leave undefined when the module could not be asked: such sessions are
   * then `open`. Pass an empty set when the module is not loaded.
   */
  liveSessions?: ReadonlySet<string>;
}

const EMPTY_TABLE: RecordTable = {
  count: 0,
  devOffset: new Float64Array(0),
  datOffset: new Float64Array(0),
  length: new Uint32Array(0),
  dataCrc: new Uint32Array(0),
};

function basename(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

/** Read a file; `null` when it does not exist. */
async function readOptional(path: string): Promise<Uint8Array | null> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw ioError(e, path);
  }
}

/** The size of a file; `null` when it does not exist. */
async function sizeOptional(path: string): Promise<number | null> {
  try {
    const st = await Deno.stat(path);
    if (!st.isFile) throw new RestoreError("io", `${path} is not a regular file`);
    return st.size;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw ioError(e, path);
  }
}

/**
 * Read and check one session directory: meta.json, the blocks.map header and
 * records, and the size of blocks.dat. Data checksums are left to
 * {@linkcode verifySessionData}. Damage is reported in the result, never
 * thrown; only I/O errors (e.g. permission denied) throw, as
 * {@linkcode RestoreError}.
 */
export async function readSession(dir: string, options: ReadOptions = {}): Promise<Session> {
  const id = basename(dir);
  const idParts = parseSessionId(id);
  const session: Session = {
    id,
    dir,
    state: "damaged",
    meta: null,
    header: null,
    idParts,
    records: EMPTY_TABLE,
    dataBytes: 0,
    datSize: 0,
    tail: null,
    problems: [],
    superseded: null,
    durability: "flush",
  };
  const problem = (file: string | undefined, message: string, offset?: number) => {
    session.problems.push({ session: id, file, offset, message });
  };

  let metaBytes: Uint8Array | null;
  let mapBytes: Uint8Array | null;
  let datSize: number | null;
  let mark: Uint8Array | null;
  try {
    [metaBytes, mapBytes, datSize, mark] = await Promise.all([
      readOptional(`${dir}/${FILES.meta}`),
      readOptional(`${dir}/${FILES.map}`),
      sizeOptional(`${dir}/${FILES.data}`),
      readOptional(`${dir}/${FILES.superseded}`),
    ]);
  } catch (e) {
    // Permission problems concern the whole store: let them through. Any
    // other I/O error (a file that is a directory, EIO) damages this session.
    if (e instanceof RestoreError && e.code === "permission") throw e;
    problem(undefined, e instanceof Error ? e.message : String(e));
    return session;
  }
  session.datSize = datSize ?? 0;
  if (mark !== null) session.superseded = parseSuperseded(new TextDecoder().decode(mark));

  const missing: string[] = [];
  if (metaBytes === null) missing.push(FILES.meta);
  if (mapBytes === null) missing.push(FILES.map);
  if (datSize === null) missing.push(FILES.data);
  if (missing.length > 0 || metaBytes?.length === 0) {
    for (const f of missing) problem(f, "file is missing");
    if (metaBytes?.length === 0) problem(FILES.meta, "file is empty");
    session.state = "incomplete";
    if (metaBytes !== null && metaBytes.length > 0) {
      try {
        session.meta = parseMeta(metaBytes);
      } catch { /* the session is unusable anyway */ }
    }
    return session;
  }

  if (idParts === null) {
    problem(undefined, `directory name ${JSON.stringify(id)} is not a session id`);
  }

  try {
    session.meta = parseMeta(metaBytes!);
  } catch (e) {
    if (!(e instanceof FormatError)) throw e;
    problem(FILES.meta, e.message, e.offset);
  }
  try {
    session.header = decodeMapHeader(mapBytes!);
  } catch (e) {
    if (!(e instanceof FormatError)) throw e;
    problem(FILES.map, e.message, e.offset);
  }

  const meta = session.meta;
  const header = session.header;
  if (meta !== null) {
    if (meta.id !== id) {
      problem(FILES.meta, `"id" ${JSON.stringify(meta.id)} is not the directory name`);
    }
    if (idParts !== null) {
      if (idParts.name !== storeName(meta.device)) {
        problem(
          FILES.meta,
          `"device" ${JSON.stringify(meta.device)} does not match the directory name`,
        );
      }
      if (Math.abs(idParts.timeUs - Math.floor(meta.mountTimeNs / 1000)) > 1) {
        problem(
          FILES.meta,
          `"mount_time_ns" ${meta.mountTimeNs} does not match the directory name`,
        );
      }
    }
    if (meta.size % meta.logicalBlockSize !== 0) {
      problem(FILES.meta, `"size" ${meta.size} is not a multiple of "logical_block_size"`);
    }
  }
  if (meta !== null && header !== null) {
    const pairs: Array<[string, number, number]> = [
      ["size", meta.size, header.deviceSize],
      ["chunk_size", meta.chunkSize, header.chunkSize],
      ["logical_block_size", meta.logicalBlockSize, header.logicalBlockSize],
    ];
    for (const [name, m, h] of pairs) {
      if (m !== h) problem(FILES.meta, `"${name}" ${m} differs from blocks.map's ${h}`);
    }
  }

  if (header !== null) readRecords(session, mapBytes!, header, problem);
  // The weaker claim wins: both the header and meta.json must say write-ahead.
  if (header?.writeAhead && meta !== null && metaDurability(meta) === "write-ahead") {
    session.durability = "write-ahead";
  }

  if (session.problems.length > 0 || meta === null) {
    session.state = "damaged";
    return session;
  }
  if (header!.failed) {
    // The module sets FAILED before it lets unsaved writes through, and
    // meta.json's rewrite may have failed: the header wins.
    session.state = "failed";
  } else if (meta.state === "closed") {
    if (session.tail !== null) {
      problem(FILES.map, `${session.tail.reason} in a closed session`, session.tail.offset);
    }
    if (meta.records !== session.records.count) {
      problem(
        FILES.map,
        `holds ${session.records.count} usable records, meta.json says ${meta.records}`,
      );
    }
    if (meta.bytes !== session.dataBytes) {
      problem(FILES.map, `records cover ${session.dataBytes} bytes, meta.json says ${meta.bytes}`);
    }
    if (session.datSize !== meta.bytes) {
      problem(FILES.data, `file is ${session.datSize} bytes, meta.json says ${meta.bytes}`);
    }
    session.state = session.problems.length > 0 ? "damaged" : "closed";
  } else if (meta.state === "failed") {
    session.state = "failed";
  } else {
    const live = options.liveSessions;
    session.state = live === undefined || live.has(id) ? "open" : "interrupted";
  }
  return session;
}

/** Decode the records of blocks.map into `session.records`, finding the torn tail. */
function readRecords(
  session: Session,
  map: Uint8Array,
  header: MapHeader,
  problem: (file: string, message: string, offset?: number) => void,
): void {
  const max = Math.floor((map.length - MAP_HEADER_SIZE) / MAP_RECORD_SIZE);
  const t: RecordTable = {
    count: 0,
    devOffset: new Float64Array(max),
    datOffset: new Float64Array(max),
    length: new Uint32Array(max),
    dataCrc: new Uint32Array(max),
  };
  const chunk = header.chunkSize;
  const limit = Math.ceil(header.deviceSize / chunk) * chunk;
  let dat = 0;
  let i = 0;
  for (; i < max; i++) {
    const at = MAP_HEADER_SIZE + i * MAP_RECORD_SIZE;
    let torn: string | null = null;
    try {
      const r = decodeMapRecord(map, at);
      if (r.seq !== i) {
        torn = `record seq ${r.seq}, expected ${i}`;
      } else if (r.datOffset !== dat) {
        torn = `record ${i} dat_offset ${r.datOffset} breaks dense data (expected ${dat})`;
      } else if (r.datOffset + r.length > session.datSize) {
        torn = `record ${i} data ends at ${
          r.datOffset + r.length
        }, beyond the end of blocks.dat (${session.datSize} bytes)`;
      } else if (r.length === 0 || r.length % chunk !== 0 || r.devOffset % chunk !== 0) {
        problem(
          FILES.map,
          `record ${i} (device offset ${r.devOffset}, length ${r.length}) is not chunk aligned`,
          at,
        );
        break;
      } else if (r.devOffset + r.length > limit) {
        problem(
          FILES.map,
          `record ${i} ends at ${
            r.devOffset + r.length
          }, beyond the device (${header.deviceSize} bytes)`,
          at,
        );
        break;
      } else {
        t.devOffset[i] = r.devOffset;
        t.datOffset[i] = r.datOffset;
        t.length[i] = r.length;
        t.dataCrc[i] = r.dataCrc;
        dat += r.length;
        continue;
      }
    } catch (e) {
      if (!(e instanceof FormatError)) throw e;
      torn = e.message;
    }
    session.tail = { offset: at, reason: torn };
    break;
  }
  t.count = i;
  const end = MAP_HEADER_SIZE + i * MAP_RECORD_SIZE;
  if (session.tail === null && i === max && end < map.length) {
    session.tail = {
      offset: end,
      reason: `record cut short: ${map.length - end} of ${MAP_RECORD_SIZE} bytes`,
    };
  }
  session.records = t;
  session.dataBytes = dat;

  // Rule 3: within one session a chunk appears in at most one record.
  const order = sortedOrder(t);
  for (let k = 1; k < order.length; k++) {
    const a = order[k - 1];
    const b = order[k];
    if (t.devOffset[a] + t.length[a] > t.devOffset[b]) {
      problem(
        FILES.map,
        `records ${Math.min(a, b)} and ${Math.max(a, b)} both save device offset ${t.devOffset[b]}`,
        MAP_HEADER_SIZE + Math.max(a, b) * MAP_RECORD_SIZE,
      );
      break;
    }
  }
}

/** Indices of a table's records sorted by device offset. */
export function sortedOrder(t: RecordTable): Uint32Array {
  const order = new Uint32Array(t.count);
  let sorted = true;
  for (let i = 0; i < t.count; i++) {
    order[i] = i;
    if (i > 0 && t.devOffset[i] < t.devOffset[i - 1]) sorted = false;
  }
  if (!sorted) order.sort((a, b) => t.devOffset[a] - t.devOffset[b]);
  return order;
}

/**
 * Mount time used to order sessions: the directory name's, else meta.json's.
 * The name comes first because the module chose it and a damaged meta.json
 * cannot move it: a session whose meta.json claims another time is damaged
 * (the reader says so), and must still be seen where it lies in its chain.
 */
export function sessionTimeNs(s: Session): number {
  if (s.idParts !== null) return s.idParts.timeUs * 1000;
  if (s.meta !== null) return s.meta.mountTimeNs;
  return 0;
}

/** Order sessions oldest first (by mount time, then id). */
export function compareSessions(a: Session, b: Session): number {
  return sessionTimeNs(a) - sessionTimeNs(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/**
 * Read every session under a store root, oldest first. Entries whose names
 * are not session ids (`lost+found`, …) and non-directories are skipped.
 *
 * @throws {RestoreError} `not-found` when the root does not exist,
 * `permission` when it cannot be read.
 */
export async function listSessions(
  root: string = DEFAULT_STORE_ROOT,
  options: ReadOptions = {},
): Promise<Session[]> {
  const dirs: string[] = [];
  try {
    for await (const e of Deno.readDir(root)) {
      if (e.isDirectory && parseSessionId(e.name) !== null) dirs.push(`${root}/${e.name}`);
    }
  } catch (e) {
    throw ioError(e, `store ${root}`);
  }
  const sessions = await Promise.all(dirs.map((d) => readSession(d, options)));
  return sessions.sort(compareSessions);
}
