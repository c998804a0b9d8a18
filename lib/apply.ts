/**
 * The applier: writes a {@linkcode Plan} to a block device or image file
 * (restore). Export, which shares the writer, is in export.ts; the
 * target checks are in target.ts.
 *
 * Restore, in order, refusing before the first byte is written when any
 * check fails:
 *
 * 1. `openTarget` (target.ts): the target exists, is a block device or a
 *    regular file, has exactly the recorded size, and (unless another target
 *    was chosen explicitly) is the recorded device: for a block device the
 *    same `major:minor`, for an image file a regular file (`force` overrides
 *    this identity check only). It must not be activated for snapshots (the
 *    caller supplies that predicate), and it must not be in use: a block
 *    device is opened with `O_EXCL` through libc (Deno's own `open` cannot
 *    ask for it) and held so until the end, so nobody can mount it
 *    meanwhile; an image file must not back a loop device.
 * 2. {@linkcode verifyPlan}: every data checksum of every session of the
 *    chain.
 * 3. {@linkcode writePlan}: the extents in device order, in large
 *    chunk-aligned writes (`O_DIRECT` where possible, the next buffer filled
 *    while the last is written), then fsync; on request the written ranges
 *    are read back from the medium and compared.
 *
 * The writes depend only on the plan, so a restore that was interrupted can
 * simply be run again.
 *
 * @example
 * ```ts
 * import { listSessions } from "./store.ts";
 * import { planRestore } from "./plan.ts";
 * import { applyRestore } from "./apply.ts";
 * const sessions = await listSessions("/snapshot", { liveSessions: new Set() });
 * const plan = planRestore(sessions, "dev_vdb_20261122T072301.123456Z");
 * await applyRestore(plan, { isActivated: () => false });
 * ```
 *
 * @module
 */

import { crc32c, useFastCrc32c } from "./crc32c.ts";
import { CrcPool } from "./crc_pool.ts";
import { type Problem, RestoreError } from "./errors.ts";
import type { Plan } from "./plan.ts";
import { mapSessionData, markSuperseded, type ProgressInfo, verifySessionData } from "./store.ts";
import { alignedBuffer, MediumReader, TargetWriter, WriteQueue } from "./target_io.ts";
import {
  openTarget,
  type OpenTargetOptions,
  type RestoreTarget,
  type TargetInfo,
} from "./target.ts";
import { type Mapping, unmap } from "../ffi/libc.ts";

/** Default size of one read or write. */
export const DEFAULT_IO_SIZE = 8 << 20;

/**
 * Verify the data checksums of every session of the plan's chain.
 *
 * @throws {RestoreError} `damaged`, listing each bad record with its
 * blocks.dat offset.
 */
export async function verifyPlan(
  plan: Plan,
  onProgress?: (p: ProgressInfo) => void,
): Promise<void> {
  const total = plan.sessions.reduce((n, s) => n + s.dataBytes, 0);
  let base = 0;
  const problems: Problem[] = [];
  onProgress?.({ phase: "verify", done: 0, total });
  const pool = await CrcPool.startFor(total);
  try {
    for (const s of plan.sessions) {
      problems.push(
        ...await verifySessionData(s, {
          pool,
          onProgress: (done) => onProgress?.({ phase: "verify", done: base + done, total }),
        }),
      );
      base += s.dataBytes;
    }
  } finally {
    pool?.close();
  }
  if (problems.length > 0) {
    const p = problems[0];
    throw new RestoreError(
      "damaged",
      `session ${p.session} is damaged: ${p.file} at offset ${p.offset}: ${p.message}` +
        (problems.length > 1 ? ` (and ${problems.length - 1} more)` : ""),
      problems,
    );
  }
}

/** Options of {@linkcode writePlan}. */
export interface WriteOptions {
  /** Called as bytes are written and read back. */
  onProgress?: (p: ProgressInfo) => void;
  /** Bytes per write (rounded down to a multiple of the chunk size). Default 8 MiB. */
  ioSize?: number;
  /**
   * After fsync, read the written ranges back from the medium (`O_DIRECT`
   * where possible) and compare. Default false: every pre-image's checksum
   * is verified before writing either way; this also checks the target.
   */
  readBack?: boolean;
}

/** What {@linkcode writePlan} did. */
export interface WriteResult {
  /** Bytes written. */
  bytes: number;
  /** Write calls made. */
  writes: number;
  /** Bytes read back and found equal (0 when read-back was off). */
  verifiedBytes: number;
  /** Whether the aligned writes bypassed the page cache (`O_DIRECT`). */
  direct: boolean;
}

/** A function that yields to the event loop when 50 ms have passed since it last did. */
function breather(): () => Promise<void> | undefined {
  let last = performance.now();
  return () => {
    const now = performance.now();
    if (now - last < 50) return undefined;
    last = now;
    return new Promise((resolve) => setTimeout(resolve, 0));
  };
}

/**
 * Write the plan's extents into `path` (the target, or an export image), in
 * device order, then fsync it and optionally read back.
 *
 * Each session's blocks.dat is mapped, and runs of pieces that are adjacent
 * in both the device and blocks.dat are written straight from the mapping
 * (the checksum pass has just brought those pages into the page cache);
 * short runs are gathered into aligned buffers. Two writes are in flight,
 * on worker threads, `O_DIRECT` where possible.
 */
export async function writePlan(
  plan: Plan,
  path: string,
  options: WriteOptions = {},
): Promise<WriteResult> {
  await useFastCrc32c();
  const chunk = plan.chunkSize;
  const ioSize = Math.max(chunk, Math.floor((options.ioSize ?? DEFAULT_IO_SIZE) / chunk) * chunk);
  const maps: Array<Mapping | null> = [];
  const written: Array<{ offset: number; length: number; crc: number }> = [];
  const readBack = options.readBack ?? false;
  const total = plan.bytes;
  let done = 0;
  let writer: TargetWriter | null = null;
  let queue: WriteQueue | null = null;
  try {
    for (const s of plan.sessions) maps.push(mapSessionData(s));
    writer = TargetWriter.open(path);
    const out = queue = new WriteQueue(writer, ioSize, {
      onSubmit: readBack
        ? (buf, offset) => written.push({ offset, length: buf.length, crc: crc32c(buf) })
        : undefined,
      onWritten: (n) => {
        done += n;
        options.onProgress?.({ phase: "write", done, total });
      },
    });
    options.onProgress?.({ phase: "write", done, total });
    const breathe = breather();
    const pieces = plan.pieces;
    for (let i = 0; i < pieces.length;) {
      // A run: pieces adjacent on the device and in one session's blocks.dat.
      const first = pieces[i];
      let length = first.length;
      for (i++; i < pieces.length; i++) {
        const p = pieces[i];
        if (
          p.session !== first.session || p.devOffset !== first.devOffset + length ||
          p.datOffset !== first.datOffset + length
        ) break;
        length += p.length;
      }
      const data = maps[first.session]!.bytes.subarray(first.datOffset, first.datOffset + length);
      await out.put(data, first.devOffset);
      await breathe();
    }
    await out.drain();
    writer.sync();
    const verifiedBytes = readBack
      ? await readBackWritten(path, written, alignedBuffer(ioSize), options.onProgress, breathe)
      : 0;
    return { bytes: done, writes: out.writes, verifiedBytes, direct: writer.direct };
  } finally {
    await queue?.abandon(); // never unmap under a write in flight
    writer?.close();
    for (const m of maps) if (m) unmap(m);
  }
}

/** Read each written range back from the medium and compare its checksum. */
async function readBackWritten(
  path: string,
  written: ReadonlyArray<{ offset: number; length: number; crc: number }>,
  scratch: Uint8Array,
  onProgress: ((p: ProgressInfo) => void) | undefined,
  breathe: () => Promise<void> | undefined,
): Promise<number> {
  const total = written.reduce((n, r) => n + r.length, 0);
  let verified = 0;
  onProgress?.({ phase: "readback", done: 0, total });
  const reader = MediumReader.open(path, scratch.length);
  try {
    for (const r of written) {
      const data = scratch.subarray(0, r.length);
      if (reader.read(data, r.offset) !== r.length || crc32c(data) !== r.crc) {
        throw new RestoreError(
          "io",
          `read back at offset ${r.offset} (${r.length} bytes) differs from what was written`,
        );
      }
      verified += r.length;
      onProgress?.({ phase: "readback", done: verified, total });
      await breathe();
    }
  } finally {
    reader.close();
  }
  return verified;
}

/** Options of {@linkcode applyRestore}. */
export interface RestoreOptions extends OpenTargetOptions, WriteOptions {
  /** Do every check (target, checksums) and write nothing. */
  dryRun?: boolean;
  /**
   * Called once the target is checked and held, before the checksums are
   * verified: the place to show its warnings and ask for confirmation. A
   * throw ends the restore with nothing written.
   */
  onTarget?: (target: RestoreTarget) => Promise<void> | void;
}

/** What {@linkcode applyRestore} did. */
export interface RestoreResult extends WriteResult {
  /** The target written (or that would have been). */
  target: TargetInfo;
  /** Whether the target is not the recorded device. */
  explicit: boolean;
  /** Whether nothing was written because of `dryRun`. */
  dryRun: boolean;
  /** The plan's warnings and the target's. */
  warnings: string[];
  /** Wall-clock seconds for verification and writing (after `onTarget`). */
  seconds: number;
  /**
   * The later sessions of the chain this restore undid, marked superseded
   * (or, with `dryRun`, that would be). Empty for a restore into another
   * device.
   */
  superseded: string[];
  /** Sessions that could not be marked, with why: the restore is done, a guard is lost. */
  unmarked: Array<{ id: string; error: string }>;
}

/**
 * Restore: check and hold the target, verify every checksum, write the plan,
 * fsync, read back, then mark the later sessions of the chain superseded
 * (their pre-mount states belong to the history the restore undid; see
 * docs/FORMAT.md). Nothing is written unless every check passed.
 */
export async function applyRestore(
  plan: Plan,
  options: RestoreOptions = {},
): Promise<RestoreResult> {
  const target = await openTarget(plan, options);
  try {
    await options.onTarget?.(target);
    const t0 = performance.now();
    await verifyPlan(plan, options.onProgress);
    // Into another device nothing is undone: the recorded device keeps its history.
    const undone = target.explicit ? [] : plan.sessions.slice(1);
    const base = {
      target: target.info,
      explicit: target.explicit,
      warnings: [...plan.warnings, ...target.warnings],
      superseded: undone.map((s) => s.id),
    };
    if (options.dryRun) {
      const seconds = (performance.now() - t0) / 1000;
      return {
        ...base,
        dryRun: true,
        bytes: 0,
        writes: 0,
        verifiedBytes: 0,
        direct: false,
        seconds,
        unmarked: [],
      };
    }
    const w = await writePlan(plan, target.info.realPath, options);
    const seconds = (performance.now() - t0) / 1000;
    const unmarked = await markSuperseded(undone, plan.target.id);
    return { ...base, ...w, dryRun: false, seconds, unmarked };
  } finally {
    target.close();
  }
}
