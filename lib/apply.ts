/**
 * The applier: writes a {@linkcode Plan} to a block device or image file
 * (restore), or writes a full image of the device as it was (export).
 *
 * Restore, in order, refusing before the first byte is written when any
 * check fails:
 *
 * 1. {@linkcode openTarget}: the target exists, is a block device or a
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

import { crc32c } from "./crc32c.ts";
import { CrcPool } from "./crc_pool.ts";
import { type Problem, RestoreError } from "./errors.ts";
import type { Plan } from "./plan.ts";
import {
  ioError,
  mapSessionData,
  markSuperseded,
  type ProgressInfo,
  verifySessionData,
} from "./store.ts";
import {
  alignedBuffer,
  MediumReader,
  TargetWriter,
  WritePipeline,
  WriteQueue,
} from "./target_io.ts";
import {
  close as libcClose,
  ErrnoError,
  type Mapping,
  O_RDONLY,
  open as libcOpen,
  unmap,
} from "../ffi/libc.ts";

/** open(2) O_EXCL: on a block device, fail with EBUSY if it is mounted or claimed. */
const O_EXCL = 0o200;

/** Default size of one read or write. */
export const DEFAULT_IO_SIZE = 8 << 20;

/** What a target path is. */
export interface TargetInfo {
  /** The path as given. */
  path: string;
  /** The path with symbolic links resolved. */
  realPath: string;
  /** Block device or regular file. */
  type: "block" | "file";
  /** Size in bytes. */
  size: number;
  /** `major:minor` of a block device, `null` for a file. */
  dev: string | null;
}

/** Decode a Linux `dev_t` as `major:minor`. */
export function devString(rdev: number): string {
  const d = BigInt(rdev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

/**
 * Look at a target: type, size (a block device's by seeking to its end) and
 * device number.
 *
 * @throws {RestoreError} `not-found`, `permission` or `invalid` (neither a
 * block device nor a regular file).
 */
export async function inspectTarget(path: string): Promise<TargetInfo> {
  let st: Deno.FileInfo;
  let realPath: string;
  try {
    realPath = await Deno.realPath(path);
    st = await Deno.stat(realPath);
  } catch (e) {
    throw ioError(e, path);
  }
  if (st.isFile) return { path, realPath, type: "file", size: st.size, dev: null };
  if (!st.isBlockDevice) {
    throw new RestoreError("invalid", `${path} is neither a block device nor a regular file`);
  }
  let f: Deno.FsFile;
  try {
    f = await Deno.open(realPath, { read: true });
  } catch (e) {
    throw ioError(e, `open ${path}`);
  }
  try {
    const size = await f.seek(0, Deno.SeekMode.End);
    return { path, realPath, type: "block", size, dev: devString(st.rdev ?? 0) };
  } catch (e) {
    throw ioError(e, `size of ${path}`);
  } finally {
    f.close();
  }
}

async function realPathOrNull(path: string): Promise<string | null> {
  try {
    return await Deno.realPath(path);
  } catch {
    return null;
  }
}

/**
 * The loop devices (`/dev/loopN`) whose backing file is `realPath`, from
 * `/sys/block/loop*\/loop/backing_file`.
 */
export async function loopDevicesOf(realPath: string, sysBlock = "/sys/block"): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(sysBlock)) {
      if (!e.name.startsWith("loop")) continue;
      try {
        const backing = (await Deno.readTextFile(`${sysBlock}/${e.name}/loop/backing_file`)).trim();
        if (backing === realPath) out.push(`/dev/${e.name}`);
      } catch { /* no backing file: not attached */ }
    }
  } catch { /* no sysfs: nothing is attached */ }
  return out;
}

/** Options shared by restore and export about the identity of the device. */
export interface IdentityOptions {
  /**
   * Write to (or, for export, read from) this path instead of the recorded
   * device. When it is not the recorded device the identity check does not
   * apply; the size check always does.
   */
  target?: string;
  /** Override the identity check (and only that one). */
  force?: boolean;
}

/** Options of {@linkcode openTarget}. */
export interface OpenTargetOptions extends IdentityOptions {
  /**
   * Is this path activated for snapshots? Restore refuses when it is: an
   * activated device would count the restore's writes as writes outside a
   * session. Absent means "cannot be activated" (no module).
   */
  isActivated?: (path: string, info: TargetInfo) => boolean | Promise<boolean>;
  /** Where sysfs lists block devices (tests). Default `/sys/block`. */
  sysBlock?: string;
}

/** A checked target, held exclusively until {@linkcode RestoreTarget.close}. */
export interface RestoreTarget {
  /** What the target is. */
  info: TargetInfo;
  /** Whether the target was chosen explicitly and is not the recorded device. */
  explicit: boolean;
  /** Warnings, e.g. that `force` overrode the identity check. */
  warnings: string[];
  /** Release the exclusive hold. */
  close(): void;
}

/**
 * Check a target against the plan, refusing when its size or identity
 * differs, when it is activated, or when it is in use.
 */
export async function checkIdentity(
  plan: Plan,
  options: IdentityOptions,
): Promise<{ info: TargetInfo; explicit: boolean; warnings: string[] }> {
  const path = options.target ?? plan.device;
  const info = await inspectTarget(path);
  const recorded = await realPathOrNull(plan.device);
  const explicit = options.target !== undefined && info.realPath !== recorded;
  const warnings: string[] = [];
  if (info.size !== plan.deviceSize) {
    throw new RestoreError(
      "size",
      `${path} is ${info.size} bytes, but ${plan.device} was ${plan.deviceSize} bytes when ` +
        `session ${plan.target.id} was recorded`,
    );
  }
  if (!explicit) {
    let mismatch: string | null = null;
    if (plan.kind === "block" && info.type !== "block") {
      mismatch = `${path} is not a block device, but ${plan.device} was one`;
    } else if (plan.kind === "block" && info.dev !== plan.dev) {
      mismatch = `${path} is device ${info.dev}, but the sessions recorded ${plan.dev}`;
    } else if (plan.kind === "file" && info.type !== "file") {
      mismatch = `${path} is not a regular file, but ${plan.device} was an image file`;
    }
    if (mismatch !== null) {
      if (!options.force) {
        throw new RestoreError(
          "identity",
          `${mismatch}; if it is the same device under a new name, use --force`,
        );
      }
      warnings.push(`IDENTITY CHECK OVERRIDDEN (--force): ${mismatch}`);
    }
  }
  return { info, explicit, warnings };
}

/**
 * Check the target of a restore and hold it: size, identity, activation,
 * and exclusive use. Call `close()` on the result when done.
 *
 * @throws {RestoreError} `size`, `identity`, `activated`, `busy`,
 * `not-found`, `permission` or `invalid`.
 */
export async function openTarget(
  plan: Plan,
  options: OpenTargetOptions = {},
): Promise<RestoreTarget> {
  const { info, explicit, warnings } = await checkIdentity(plan, options);
  if (options.isActivated && await options.isActivated(info.path, info)) {
    throw new RestoreError(
      "activated",
      `${info.path} is activated for snapshots: deactivate it first (bdsnap deactivate ${info.path})`,
    );
  }
  if (info.type === "file") {
    const loops = await loopDevicesOf(info.realPath, options.sysBlock);
    if (loops.length > 0) {
      throw new RestoreError(
        "busy",
        `${info.path} is in use as the backing file of ${loops.join(", ")}: ` +
          `unmount and detach it first (losetup -d ${loops[0]})`,
      );
    }
    return { info, explicit, warnings, close() {} };
  }
  let fd: number;
  try {
    fd = libcOpen(info.realPath, O_RDONLY | O_EXCL);
  } catch (e) {
    if (e instanceof ErrnoError && e.code === "EBUSY") {
      throw new RestoreError("busy", `${info.path} is mounted or in use (EBUSY): unmount it first`);
    }
    if (e instanceof ErrnoError && (e.code === "EACCES" || e.code === "EPERM")) {
      throw new RestoreError("permission", `open ${info.path}: permission denied (run as root)`);
    }
    throw ioError(e, `open ${info.path}`);
  }
  let open = true;
  return {
    info,
    explicit,
    warnings,
    close() {
      if (open) libcClose(fd);
      open = false;
    },
  };
}

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

/** Options of {@linkcode exportImage}. */
export interface ExportOptions extends IdentityOptions, WriteOptions {
  /** The image file to write (replaced if it exists). */
  output: string;
  /**
   * Plan again after the device was read and flushed, to pick up pre-images
   * an open session saved meanwhile. Needed when the device is mounted.
   */
  replan?: () => Promise<Plan> | Plan;
  /** Where sysfs lists block devices (tests). Default `/sys/block`. */
  sysBlock?: string;
}

/** What {@linkcode exportImage} did. */
export interface ExportResult extends WriteResult {
  /** The device read. */
  source: TargetInfo;
  /** The image written. */
  output: string;
  /** Bytes copied from the device. */
  copied: number;
  /** The plan applied (the re-made one when `replan` was given). */
  plan: Plan;
  /** The plan's warnings and the identity check's. */
  warnings: string[];
  /** Wall-clock seconds. */
  seconds: number;
}

/**
 * Export: write a full image of the device as it was before the plan's
 * session, never writing to the device. The device content is copied to
 * `OUTPUT.partial`, the device is flushed (so an open session's pending
 * pre-images reach the store, docs/FORMAT.md rule 4), the store is planned
 * again (`replan`) and verified, the pre-images are written over the copy,
 * and the file is renamed to `output`.
 */
export async function exportImage(plan: Plan, options: ExportOptions): Promise<ExportResult> {
  const t0 = performance.now();
  const { info, warnings } = await checkIdentity(plan, options);
  const outReal = await realPathOrNull(options.output);
  if (outReal === info.realPath) {
    throw new RestoreError("invalid", `the output ${options.output} is the device itself`);
  }
  try {
    const st = await Deno.stat(options.output);
    if (!st.isFile) {
      throw new RestoreError(
        "invalid",
        `the output ${options.output} exists and is not a regular file`,
      );
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw ioError(e, options.output);
  }
  const tmp = `${options.output}.partial`;
  let src: Deno.FsFile;
  try {
    src = await Deno.open(info.realPath, { read: true });
  } catch (e) {
    throw ioError(e, `open ${info.path}`);
  }
  let reader: MediumReader | null = null;
  let writer: TargetWriter | null = null;
  let pipe: WritePipeline | null = null;
  let ok = false;
  try {
    try {
      (await Deno.open(tmp, { write: true, create: true, truncate: true, mode: 0o600 })).close();
    } catch (e) {
      throw ioError(e, `create ${tmp}`);
    }
    const ioSize = Math.max(plan.chunkSize, options.ioSize ?? DEFAULT_IO_SIZE);
    let copied = 0;
    options.onProgress?.({ phase: "copy", done: 0, total: info.size });
    // A mounted filesystem's page cache holds metadata that is not on the
    // disk yet (and so has no pre-image yet): read what the disk has.
    reader = MediumReader.open(info.realPath, ioSize, info.type === "block");
    writer = TargetWriter.open(tmp);
    const out = pipe = new WritePipeline(writer, ioSize, (n) => {
      copied += n;
      options.onProgress?.({ phase: "copy", done: copied, total: info.size });
    });
    for (let at = 0; at < info.size; at += ioSize) {
      const want = Math.min(ioSize, info.size - at);
      const n = reader.read(out.buffer.subarray(0, want), at);
      if (n !== want) throw new RestoreError("io", `${info.path} ended early at ${at + n}`);
      await out.submit(n, at);
    }
    await out.drain();
    reader.close();
    reader = null;
    // Flush the device so that the pre-images of every write that completed
    // before our reads are in the store before we read it again.
    await flushDevice(src, info, options.sysBlock);
    const final = options.replan ? await options.replan() : plan;
    if (final.deviceSize !== plan.deviceSize || final.device !== plan.device) {
      throw new RestoreError("invalid", "the store changed device or size while exporting");
    }
    await verifyPlan(final, options.onProgress);
    // writePlan's fsync covers the copy too: same file.
    const w = await writePlan(final, tmp, options);
    try {
      await Deno.rename(tmp, options.output);
    } catch (e) {
      throw ioError(e, `rename ${tmp}`);
    }
    ok = true;
    return {
      ...w,
      source: info,
      output: options.output,
      copied,
      plan: final,
      warnings: [...final.warnings, ...warnings],
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    await pipe?.drain().catch(() => {});
    writer?.close();
    reader?.close();
    src.close();
    if (!ok) await Deno.remove(tmp).catch(() => {});
  }
}

async function flushDevice(src: Deno.FsFile, info: TargetInfo, sysBlock?: string): Promise<void> {
  try {
    await src.sync();
  } catch (e) {
    throw ioError(e, `flush ${info.path}`);
  }
  if (info.type !== "file") return;
  for (const loop of await loopDevicesOf(info.realPath, sysBlock)) {
    try {
      const f = await Deno.open(loop, { read: true });
      try {
        await f.sync();
      } finally {
        f.close();
      }
    } catch (e) {
      throw ioError(e, `flush ${loop}`);
    }
  }
}
