/**
 * The target of a restore or the source of an export: what a path is (block
 * device or image file), whether it is the device a plan was recorded for,
 * and, for a restore, holding it exclusively so nobody mounts it meanwhile.
 *
 * A block device is opened with `O_EXCL` through libc (Deno's own `open`
 * cannot ask for it); an image file must not back a loop device.
 *
 * @module
 */

import { RestoreError } from "./errors.ts";
import { deviceIdentity, devString, findDevice, sameIdentity } from "./identity.ts";
import type { Plan } from "./plan.ts";
import { ioError } from "./store.ts";
import { close as libcClose, ErrnoError, O_RDONLY, open as libcOpen } from "../ffi/libc.ts";

/** open(2) O_EXCL: on a block device, fail with EBUSY if it is mounted or claimed. */
const O_EXCL = 0o200;

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

export { devString };

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

export async function realPathOrNull(path: string): Promise<string | null> {
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
  /**
   * Where the recorded device is now, when the caller named it by a path
   * other than the recorded one (the disks were renumbered): checked by the
   * identity the sessions recorded, and not an explicit target.
   */
  devicePath?: string;
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
  const path = options.target ?? options.devicePath ?? plan.device;
  const info = await inspectTarget(path);
  const recorded = await realPathOrNull(options.devicePath ?? plan.device);
  const explicit = options.target !== undefined && info.realPath !== recorded;
  const warnings: string[] = [];
  // The identity the sessions recorded decides, where both sides have one:
  // a renumbered disk keeps it, another disk at the old path does not.
  const now = plan.identity === "" ? null : deviceIdentity(info.path);
  if (info.size !== plan.deviceSize) {
    throw new RestoreError(
      "size",
      `${path} is ${info.size} bytes, but ${plan.device} was ${plan.deviceSize} bytes when ` +
        `session ${plan.target.id} was recorded`,
    );
  }
  if (!explicit) {
    let mismatch: string | null = null;
    if (now !== null) {
      if (!sameIdentity(now, plan.identity)) {
        const there = findDevice(plan.identity);
        mismatch = `${path} is ${now}, but the sessions recorded ${plan.identity}` +
          (there !== null ? ` (that device is ${there} now)` : " (not present now)");
      }
    } else if (plan.kind === "block" && info.type !== "block") {
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
          now !== null
            ? `${mismatch}: it is another device; --force writes this chain onto it anyway`
            : `${mismatch}; if it is the same device under a new name, use --force`,
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
