/**
 * Activating a device whose filesystem is mounted already. Its mount went
 * by before the module could open a session, so the module freezes the
 * filesystem, opens a session whose pre-state is the frozen, consistent
 * state, and thaws it (BDSNAP_IOC_PROTECT_MOUNT); meta.json then says
 * `"began": "activation"`. What cannot be done is refused with the reason
 * and what to do instead.
 * @module
 */

import { CliError, EXIT_FAILED } from "./errors.ts";
import { isErrno } from "./explain.ts";
import * as control from "../../ffi/control.ts";
import type { MountEntry } from "../../lib/mountinfo.ts";
import { mountsOn } from "../../lib/mounted.ts";

/** One mounted filesystem: the first of its mounts (bind mounts share it). */
export function filesystemsOf(mounts: readonly MountEntry[]): MountEntry[] {
  const seen = new Map<string, MountEntry>();
  for (const m of mounts) if (!seen.has(m.dev)) seen.set(m.dev, m);
  return [...seen.values()];
}

/** "/data (ext4 on /dev/vdb1)" */
function described(m: MountEntry): string {
  return `${m.mountPoint} (${m.fsType} on ${m.source})`;
}

/**
 * The filesystems mounted on `path` that the module does not track: none
 * when it is activated already (a device deactivated while mounted keeps
 * its session when activated again).
 */
export async function untrackedFilesystems(path: string): Promise<MountEntry[]> {
  const mounts = await mountsOn(path);
  if (mounts.length === 0) return [];
  if (control.list().some((d) => d.name === path)) return [];
  return filesystemsOf(mounts);
}

/**
 * Refuse before activating what one session cannot start from: a session
 * covers the whole device, and its pre-state must be one frozen state.
 */
export function refuseSeveral(path: string, filesystems: readonly MountEntry[]): void {
  if (filesystems.length <= 1) return;
  throw new CliError(
    `${path} carries ${filesystems.length} mounted filesystems (${
      filesystems.map(described).join(", ")
    }): a session covers the whole device and can start from one frozen filesystem only. ` +
      `Unmount all but one, activate, and mount them again`,
    EXIT_FAILED,
    { code: "busy" },
  );
}

/** Why PROTECT_MOUNT failed, and what to do, for the message. */
function refusal(path: string, m: MountEntry, errno: string): string {
  const instead = `Unmount it, activate ${path} and mount it again (every mount of an ` +
    `activated device is a session); or use --persistent, and the next boot activates it ` +
    `before it is mounted`;
  switch (errno) {
    case "EOPNOTSUPP":
      return `${m.fsType} cannot be frozen, so no session can start from a consistent state ` +
        `of ${described(m)}. ${instead}`;
    case "EBUSY":
      return `no session for ${described(m)}: ${path} has a session already (a filesystem on ` +
        `it was mounted since), or ${m.mountPoint} is frozen (fsfreeze -u ${m.mountPoint}). ` +
        instead;
    case "ENOTTY":
      return `the loaded module cannot start a session for a mounted filesystem (it is older ` +
        `than this bdsnap). ${instead}`;
    default:
      return `no session for ${described(m)} (${errno}; the kernel log says more). ${instead}`;
  }
}

/** What {@linkcode protectMounted} did. */
export interface LiveSession {
  mountPoint: string;
  fsType: string;
  /** How long the call took, the filesystem frozen for most of it. */
  seconds: number;
}

/**
 * Start the session of the mounted filesystem `m` on the activated `path`.
 * Throws a {@linkcode CliError} that says why and what to do; the caller
 * undoes the activation.
 */
export function protectMounted(path: string, password: string, m: MountEntry): LiveSession {
  const t0 = performance.now();
  try {
    control.protectMount(path, password, m.mountPoint);
  } catch (e) {
    if (!(e instanceof Error && "code" in e)) throw e;
    const errno = isErrno(e, "EOPNOTSUPP", "EBUSY", "ENOTTY") ? e.code : String(e.code);
    throw new CliError(refusal(path, m, errno), EXIT_FAILED, {
      code: errno === "EOPNOTSUPP" ? "invalid" : errno === "EBUSY" ? "busy" : "refused",
      errno,
      cause: e,
    });
  }
  return {
    mountPoint: m.mountPoint,
    fsType: m.fsType,
    seconds: (performance.now() - t0) / 1000,
  };
}
