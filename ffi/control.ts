/**
 * The control client of the bdsnap kernel module.
 *
 * Activation and deactivation go through the module's two system calls
 * (`activate_snapshot`, `deactivate_snapshot`), whose numbers the module
 * publishes in `/sys/module/bdsnap/parameters/nr_activate` and
 * `nr_deactivate`, or through the same operations as ioctls on the control
 * device `/dev/bdsnap`. Everything else (version, status, device list,
 * password change) is an ioctl.
 *
 * Failures are {@linkcode ErrnoError}s carrying the errno the kernel
 * returned, or a {@linkcode ModuleNotLoadedError}.
 *
 * @example
 * ```ts
 * import { activate, list } from "./control.ts";
 * activate("/dev/vdb", "correct horse battery staple");
 * for (const d of list()) console.log(d.name, d.sessionId);
 * ```
 *
 * @module
 */

import {
  addressOf,
  alloc,
  close,
  cstring,
  ERRNO,
  ErrnoError,
  ioctl,
  O_RDONLY,
  O_RDWR,
  open,
  syscall,
} from "./libc.ts";
import {
  decodeDeviceInfo,
  decodeListCount,
  decodeStatus,
  decodeVersion,
  type DeviceInfo,
  encodeIdentity,
  encodeList,
  encodePasswdChange,
  encodeProtectMount,
  encodeTarget,
  IOCTL,
  type StatusInfo,
  STRUCTS,
  type VersionInfo,
} from "./uapi.ts";

export type { DeviceInfo, StatusInfo, VersionInfo } from "./uapi.ts";

/** Where the module shows itself in sysfs. */
export const SYSFS_MODULE = "/sys/module/bdsnap";
/** The module's parameters (the syscall numbers among them). */
export const SYSFS_PARAMETERS = `${SYSFS_MODULE}/parameters`;
/** The control device. */
export const CONTROL_DEVICE = "/dev/bdsnap";

/** The operation needs the module and it is not loaded. */
export class ModuleNotLoadedError extends Error {
  constructor(message = "module not loaded") {
    super(message);
    this.name = "ModuleNotLoadedError";
  }
}

/** How activate/deactivate reach the module. */
export type Via = "syscall" | "ioctl";

/** Is the module loaded (does /sys/module/bdsnap exist)? */
export function isLoaded(sysfsModule: string = SYSFS_MODULE): boolean {
  try {
    return Deno.statSync(sysfsModule).isDirectory;
  } catch {
    return false;
  }
}

/** One module parameter from sysfs, trimmed; `null` when absent or unreadable. */
export function readParameter(
  name: string,
  dir: string = SYSFS_PARAMETERS,
): string | null {
  try {
    return Deno.readTextFileSync(`${dir}/${name}`).trim();
  } catch {
    return null;
  }
}

/** The two system call numbers the module published. */
export interface SyscallNumbers {
  activate: number;
  deactivate: number;
}

/** Read the system call numbers from sysfs; throws {@linkcode ModuleNotLoadedError}. */
export function syscallNumbers(dir: string = SYSFS_PARAMETERS): SyscallNumbers {
  const a = readParameter("nr_activate", dir);
  const d = readParameter("nr_deactivate", dir);
  if (a === null || d === null) throw new ModuleNotLoadedError();
  const activate = Number.parseInt(a, 10);
  const deactivate = Number.parseInt(d, 10);
  if (!(activate > 0) || !(deactivate > 0)) {
    throw new ModuleNotLoadedError(
      `module publishes no usable system call numbers (nr_activate=${a}, nr_deactivate=${d})`,
    );
  }
  return { activate, deactivate };
}

function withControl<T>(fn: (fd: number) => T): T {
  let fd: number;
  try {
    fd = open(CONTROL_DEVICE, O_RDWR);
  } catch (e) {
    if (
      e instanceof ErrnoError &&
      (e.errno === ERRNO.ENOENT || e.errno === ERRNO.ENXIO || e.errno === ERRNO.ENODEV) &&
      !isLoaded()
    ) {
      throw new ModuleNotLoadedError();
    }
    throw e;
  }
  try {
    return fn(fd);
  } finally {
    close(fd);
  }
}

function target(op: "activate" | "deactivate", path: string, password: string, via: Via): void {
  const p = cstring(path);
  const w = cstring(password);
  try {
    if (via === "syscall") {
      const nrs = syscallNumbers();
      const nr = op === "activate" ? nrs.activate : nrs.deactivate;
      syscall(op, nr, p, w);
    } else {
      const arg = encodeTarget(addressOf(p), addressOf(w));
      const req = op === "activate" ? IOCTL.ACTIVATE : IOCTL.DEACTIVATE;
      withControl((fd) => ioctl(op, fd, req, arg));
    }
  } finally {
    w.fill(0); // do not leave the password lying in memory longer than needed
  }
}

/** Activate snapshotting for a block device or image file path. */
export function activate(path: string, password: string, via: Via = "syscall"): void {
  target("activate", path, password, via);
}

/** Deactivate snapshotting for a path activated before. */
export function deactivate(path: string, password: string, via: Via = "syscall"): void {
  target("deactivate", path, password, via);
}

/**
 * BDSNAP_IOC_SET_IDENTITY: record the stable identity of a device activated
 * as `path`, for the meta.json of its sessions from now on (once per
 * activation; another value is EBUSY).
 */
export function setIdentity(path: string, password: string, identity: string): void {
  const p = cstring(path);
  const w = cstring(password);
  const id = cstring(identity);
  try {
    const arg = encodeIdentity(addressOf(p), addressOf(w), addressOf(id));
    withControl((fd) => ioctl("set identity", fd, IOCTL.SET_IDENTITY, arg));
  } finally {
    w.fill(0);
  }
}

/**
 * BDSNAP_IOC_PROTECT_MOUNT: a session from now on for the filesystem
 * mounted at `mountPoint`, on the device activated as `path`, mounted
 * before the activation. The module freezes it while the session opens.
 */
export function protectMount(path: string, password: string, mountPoint: string): void {
  const p = cstring(path);
  const w = cstring(password);
  const fd = open(mountPoint, O_RDONLY);
  try {
    const arg = encodeProtectMount(addressOf(p), addressOf(w), fd);
    withControl((ctl) => ioctl("protect mount", ctl, IOCTL.PROTECT_MOUNT, arg));
  } finally {
    w.fill(0);
    close(fd);
  }
}

/** BDSNAP_IOC_VERSION. */
export function version(): VersionInfo {
  const buf = alloc(STRUCTS.bdsnap_version.size);
  withControl((fd) => ioctl("version", fd, IOCTL.VERSION, buf));
  return decodeVersion(buf);
}

/** BDSNAP_IOC_STATUS. */
export function status(): StatusInfo {
  const buf = alloc(STRUCTS.bdsnap_status.size);
  withControl((fd) => ioctl("status", fd, IOCTL.STATUS, buf));
  return decodeStatus(buf);
}

/** BDSNAP_IOC_LIST: every activated device and its current session. */
export function list(): DeviceInfo[] {
  const entry = STRUCTS.bdsnap_device_info.size;
  return withControl((fd) => {
    let capacity = 16;
    for (;;) {
      const arr = alloc(entry * capacity);
      const arg = encodeList(addressOf(arr), capacity);
      ioctl("list", fd, IOCTL.LIST, arg);
      const count = decodeListCount(arg);
      if (count <= capacity) {
        return Array.from({ length: count }, (_, i) => decodeDeviceInfo(arr, i * entry));
      }
      capacity = count + 8; // devices were added meanwhile: ask again
    }
  });
}

/**
 * BDSNAP_IOC_SET_PASSWORD: install `newHash`. `oldPassword` must be the
 * current password once a hash is set, and `null` only before.
 */
export function setPassword(oldPassword: string | null, newHash: string): void {
  const old = oldPassword === null ? null : cstring(oldPassword);
  const hash = cstring(newHash);
  try {
    const arg = encodePasswdChange(addressOf(old), addressOf(hash));
    withControl((fd) => ioctl("set password", fd, IOCTL.SET_PASSWORD, arg));
  } finally {
    old?.fill(0);
  }
}
