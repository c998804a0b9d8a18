/**
 * Activated devices as the module lists them, in the words and JSON shape
 * that `status` and `watch` share (docs/CLI.md).
 * @module
 */

import { errnoDescription, errnoName } from "../../ffi/libc.ts";
import { DEV_F_DEACTIVATING, DEVICE_KIND, type DeviceInfo, SESSION_STATE } from "../../ffi/uapi.ts";

/** The state of a device's current session: "idle" (activated, not mounted), "open", "failed". */
export function stateName(state: number): string {
  switch (state) {
    case SESSION_STATE.NONE:
      return "idle";
    case SESSION_STATE.OPEN:
      return "open";
    case SESSION_STATE.FAILED:
      return "failed";
    default:
      return `unknown(${state})`;
  }
}

/** "block" or "file". */
export function kindName(kind: number): string {
  return kind === DEVICE_KIND.BLOCK
    ? "block"
    : kind === DEVICE_KIND.FILE
    ? "file"
    : `unknown(${kind})`;
}

/** "major:minor" of the device a DeviceInfo covers now. */
export function devNumber(d: DeviceInfo): string {
  return `${d.major}:${d.minor}`;
}

/** The failure reason of a session, e.g. "No space left on device (ENOSPC)", or null. */
export function errorText(error: number): string | null {
  return error === 0 ? null : `${errnoDescription(error)} (${errnoName(error)})`;
}

/** The JSON shape of one activated device (docs/CLI.md, "Device object"). */
export interface DeviceJson {
  device: string;
  kind: string;
  dev: string;
  state: string;
  session: string | null;
  error: string | null;
  deactivating: boolean;
  sessions: number;
  chunks_saved: number;
  bytes_saved: number;
  pending_bytes: number;
  unmounted_writes: number;
}

/** One activated device as JSON. */
export function deviceJson(d: DeviceInfo): DeviceJson {
  return {
    device: d.name,
    kind: kindName(d.kind),
    dev: devNumber(d),
    state: stateName(d.state),
    session: d.sessionId === "" ? null : d.sessionId,
    error: d.error === 0 ? null : errnoName(d.error),
    deactivating: (d.flags & DEV_F_DEACTIVATING) !== 0,
    sessions: d.sessions,
    chunks_saved: d.chunksSaved,
    bytes_saved: d.bytesSaved,
    pending_bytes: d.pendingBytes,
    unmounted_writes: d.unmountedWrites,
  };
}
