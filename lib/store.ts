/**
 * The store reader: finds the sessions under a store root, reads and checks
 * each session's meta.json and blocks.map exactly as docs/FORMAT.md says
 * (torn tail versus damage), and verifies the data checksums in blocks.dat.
 *
 * A session's state is one of:
 *
 * - `open`: meta.json says open and the module reports it open (or the
 *   caller could not ask the module);
 * - `interrupted`: meta.json says open but the module does not report it
 *   open (a crash or power cut ended it); its usable map prefix is kept;
 * - `closed`: ended cleanly, and the map and data sizes agree with meta.json;
 * - `failed`: the module stopped copy-on-write for it;
 * - `damaged`: something breaks the format (see {@linkcode Session.problems});
 * - `incomplete`: meta.json, blocks.map or blocks.dat is missing, or
 *   meta.json is empty: the session never got going.
 *
 * @example
 * ```ts
 * import { listSessions, verifySessionData } from "./store.ts";
 * for (const s of await listSessions("/snapshot", { liveSessions: new Set() })) {
 *   const problems = await verifySessionData(s);
 *   console.log(s.id, s.state, problems.length === 0 ? "ok" : problems[0].message);
 * }
 * ```
 *
 * @module
 */

import {
  close as closeFd,
  type Mapping,
  mapReadOnly,
  O_CLOEXEC,
  O_RDONLY,
  open as openFd,
} from "../ffi/libc.ts";
import { crc32c } from "./crc32c.ts";
import type { CrcPool } from "./crc_pool.ts";
import type { CrcAnswer } from "./crc_worker.ts";
import { type Problem, RestoreError } from "./errors.ts";
import {
  decodeMapHeader,
  decodeMapRecord,
  encodeSuperseded,
  FILES,
  FormatError,
  MAP_HEADER_SIZE,
  MAP_RECORD_SIZE,
  type MapHeader,
  parseMeta,
  parseSessionId,
  parseSuperseded,
  type SessionIdParts,
  type SessionMeta,
  storeName,
  type SupersededMark,
} from "./format.ts";

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
    throw ioError(e, `read ${path}`);
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
    throw ioError(e, `stat ${path}`);
  }
}

/** Turn an error from Deno's file system API into a {@linkcode RestoreError}. */
export function ioError(e: unknown, what: string): RestoreError {
  if (e instanceof RestoreError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable) {
    return new RestoreError("permission", `${what}: permission denied (run as root)`);
  }
  if (e instanceof Deno.errors.NotFound) return new RestoreError("not-found", `${what}: not found`);
  return new RestoreError("io", `${what}: ${msg}`);
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
    if (e instanceof RestoreError && e.code !== "io") throw e;
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

  if (session.problems.length > 0 || meta === null) {
    session.state = "damaged";
    return session;
  }
  if (meta.state === "closed") {
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

/** Mount time used to order sessions: meta.json's, else the directory name's. */
export function sessionTimeNs(s: Session): number {
  if (s.meta !== null) return s.meta.mountTimeNs;
  if (s.idParts !== null) return s.idParts.timeUs * 1000;
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

/** Progress of a long operation, in bytes. */
export interface ProgressInfo {
  /** What is being done: `verify`, `copy`, `write` or `readback`. */
  phase: string;
  /** Bytes done in this phase. */
  done: number;
  /** Bytes to do in this phase. */
  total: number;
}

/** Options of {@linkcode verifySessionData}. */
export interface VerifyOptions {
  /** Called as data is checked; `done` counts bytes of this session. */
  onProgress?: (done: number, total: number) => void;
  /** Bytes read at a time (default 8 MiB). */
  bufferSize?: number;
  /** Stop after this many problems (default 20). */
  maxProblems?: number;
  /**
   * Workers to compute the checksums while this thread reads on (see
   * lib/crc_pool.ts); without one, everything runs on this thread.
   */
  pool?: CrcPool | null;
}

/**
 * Check the CRC-32C of every usable record's data in blocks.dat, reading the
 * file once, sequentially. Returns the problems found (empty when all match),
 * each with the blocks.dat offset of the record's data.
 */
export async function verifySessionData(
  session: Session,
  options: VerifyOptions = {},
): Promise<Problem[]> {
  const t = session.records;
  const total = session.dataBytes;
  const problems: Problem[] = [];
  if (t.count === 0) return problems;
  const maxProblems = options.maxProblems ?? 20;
  const path = `${session.dir}/${FILES.data}`;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    throw ioError(e, `open ${path}`);
  }
  try {
    const bufferSize = Math.max(options.bufferSize ?? 8 << 20, 1);
    const largest = t.length.reduce((a, b) => Math.max(a, b), 0);
    if (options.pool && largest <= bufferSize) {
      await verifyInPool(session, file, options.pool, bufferSize, maxProblems, problems, options);
      return problems;
    }
    const buf = new Uint8Array(bufferSize);
    let i = 0; // record being checked
    let crc: number | undefined = undefined;
    let recordLeft = t.length[0];
    let pos = 0;
    while (pos < total && problems.length < maxProblems) {
      const want = Math.min(buf.length, total - pos);
      const n = await readFull(file, buf.subarray(0, want));
      if (n < want) {
        problems.push(dataEnds(session, pos + n));
        break;
      }
      let off = 0;
      while (off < want) {
        const take = Math.min(recordLeft, want - off);
        crc = crc32c(buf.subarray(off, off + take), crc);
        off += take;
        recordLeft -= take;
        if (recordLeft === 0) {
          if (crc !== t.dataCrc[i]) problems.push(crcMismatch(session, i, crc));
          i++;
          crc = undefined;
          recordLeft = i < t.count ? t.length[i] : 0;
        }
      }
      pos += want;
      options.onProgress?.(pos, total);
    }
  } catch (e) {
    throw ioError(e, `read ${path}`);
  } finally {
    file.close();
  }
  return problems;
}

/**
 * {@linkcode verifySessionData} with the checksums computed by `pool`: whole
 * records are read into buffers of at most `bufferSize` bytes, each buffer
 * goes to a worker, and this thread reads the next one meanwhile. Answers are
 * taken in file order, so the problems come out as the serial pass finds them.
 */
async function verifyInPool(
  session: Session,
  file: Deno.FsFile,
  pool: CrcPool,
  bufferSize: number,
  maxProblems: number,
  problems: Problem[],
  options: VerifyOptions,
): Promise<void> {
  const t = session.records;
  const total = session.dataBytes;
  const spare: ArrayBuffer[] = [];
  const pending: Array<{ first: number; end: number; answer: Promise<CrcAnswer> }> = [];
  const check = async () => {
    const job = pending.shift()!;
    const { buffer, crcs } = await job.answer;
    spare.push(buffer);
    for (let k = 0; k < crcs.length && problems.length < maxProblems; k++) {
      const i = job.first + k;
      if (crcs[k] !== t.dataCrc[i]) problems.push(crcMismatch(session, i, crcs[k]));
    }
    options.onProgress?.(job.end, total);
  };
  let first = 0; // first record of the next buffer
  let pos = 0; // its offset in blocks.dat
  while (first < t.count && problems.length < maxProblems) {
    let last = first;
    let bytes = 0;
    while (last < t.count && bytes + t.length[last] <= bufferSize) bytes += t.length[last++];
    const buffer = spare.pop() ?? new ArrayBuffer(bufferSize);
    const n = await readFull(file, new Uint8Array(buffer, 0, bytes));
    if (n < bytes) {
      // As in the serial pass: the records of a short buffer are not checked.
      while (pending.length > 0) await check();
      problems.push(dataEnds(session, pos + n));
      return;
    }
    pos += bytes;
    const answer = pool.run(buffer, t.length.slice(first, last));
    answer.catch(() => {}); // awaited in order by check(); never an unhandled rejection
    pending.push({ first, end: pos, answer });
    first = last;
    // One buffer per worker in flight, and one being read.
    if (pending.length >= pool.size) await check();
  }
  while (pending.length > 0) await check();
}

/** The problem of a blocks.dat that ends at `offset`, before the records' data does. */
function dataEnds(session: Session, offset: number): Problem {
  return {
    session: session.id,
    file: FILES.data,
    offset,
    message: `file ends at ${offset}, records need ${session.dataBytes} bytes`,
  };
}

/** The problem of record `i` of `session`, whose data checksums to `computed`. */
function crcMismatch(session: Session, i: number, computed: number): Problem {
  const t = session.records;
  return {
    session: session.id,
    file: FILES.data,
    offset: t.datOffset[i],
    message: `data_crc mismatch in record ${i} (device offset ${t.devOffset[i]}, ${
      t.length[i]
    } bytes): stored 0x${hex(t.dataCrc[i])}, computed 0x${hex(computed)}`,
  };
}

/**
 * Mark `sessions` as undone by a restore to `restoredTo` (superseded.json,
 * mode 0600), so that no later restore targets their discarded pre-mount
 * states. Returns the sessions that could not be marked, with why.
 */
export async function markSuperseded(
  sessions: readonly Session[],
  restoredTo: string,
  time: Date = new Date(),
): Promise<Array<{ id: string; error: string }>> {
  const failed: Array<{ id: string; error: string }> = [];
  const text = encodeSuperseded({ restoredTo, time: time.toISOString() });
  for (const s of sessions) {
    try {
      await Deno.writeTextFile(`${s.dir}/${FILES.superseded}`, text, { mode: 0o600 });
    } catch (e) {
      failed.push({ id: s.id, error: e instanceof Error ? e.message : String(e) });
    }
  }
  return failed;
}

/**
 * Map the records' data of `session` (its blocks.dat, read-only): the write
 * pass hands these pages straight to the target's writes. The file must
 * hold at least `dataBytes` (reading a mapping past its file's end raises
 * SIGBUS); `null` when the session has no data. {@linkcode unmap} it when
 * no write from it is in flight any more.
 */
export function mapSessionData(session: Session): Mapping | null {
  if (session.dataBytes === 0) return null;
  const path = `${session.dir}/${FILES.data}`;
  let fd: number;
  try {
    fd = openFd(path, O_RDONLY | O_CLOEXEC);
  } catch (e) {
    throw ioError(e, `open ${path}`);
  }
  try {
    const size = Deno.statSync(path).size;
    if (size < session.dataBytes) {
      throw new RestoreError(
        "damaged",
        `${session.id}/${FILES.data}: ${dataEnds(session, size).message}`,
      );
    }
    return mapReadOnly(fd, session.dataBytes);
  } catch (e) {
    throw ioError(e, `map ${path}`);
  } finally {
    closeFd(fd); // the mapping keeps the file
  }
}

/** Read until `buf` is full or the file ends; returns the bytes read. */
export async function readFull(file: Deno.FsFile, buf: Uint8Array): Promise<number> {
  let n = 0;
  while (n < buf.length) {
    const r = await file.read(buf.subarray(n));
    if (r === null || r === 0) break;
    n += r;
  }
  return n;
}

function hex(n: number): string {
  return (n >>> 0).toString(16).padStart(8, "0");
}
