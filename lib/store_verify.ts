/**
 * Verifying a session's data: the CRC-32C of every usable record of
 * blocks.dat against its blocks.map record, read once, sequentially, with
 * the checksums optionally computed by a worker pool (lib/crc_pool.ts).
 *
 * @example
 * ```ts
 * import { listSessions } from "./store_reader.ts";
 * import { verifySessionData } from "./store_verify.ts";
 * for (const s of await listSessions("/snapshot", { liveSessions: new Set() })) {
 *   const problems = await verifySessionData(s);
 *   console.log(s.id, s.state, problems.length === 0 ? "ok" : problems[0].message);
 * }
 * ```
 *
 * @module
 */

import { crc32c, useFastCrc32c } from "./crc32c.ts";
import type { CrcPool } from "./crc_pool.ts";
import type { CrcAnswer } from "./crc_worker.ts";
import type { Problem } from "./errors.ts";
import { FILES } from "./format.ts";
import { ioError } from "./io_error.ts";
import type { Session } from "./store_reader.ts";

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
  await useFastCrc32c();
  const maxProblems = options.maxProblems ?? 20;
  const path = `${session.dir}/${FILES.data}`;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    throw ioError(e, path);
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
    throw ioError(e, path);
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
export function dataEnds(session: Session, offset: number): Problem {
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
