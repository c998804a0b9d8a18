/**
 * Export: a full image of a device as it was before a session's mount,
 * written to a file, never writing to the device (which may stay mounted).
 *
 * @module
 */

import { RestoreError } from "./errors.ts";
import type { Plan } from "./plan.ts";
import { ioError } from "./store.ts";
import { MediumReader, TargetWriter, WritePipeline } from "./target_io.ts";
import {
  checkIdentity,
  type IdentityOptions,
  loopDevicesOf,
  realPathOrNull,
  type TargetInfo,
} from "./target.ts";
import {
  DEFAULT_IO_SIZE,
  verifyPlan,
  type WriteOptions,
  writePlan,
  type WriteResult,
} from "./apply.ts";

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
 * `OUTPUT.partial`, the device is flushed (a module older than write-ahead
 * made pre-images durable only at a flush, docs/FORMAT.md), the store is planned
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
    // Write-ahead: every write that completed before our reads already has
    // its pre-image in the store. The flush is for sessions of older modules.
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
