/**
 * Test helper: sessions as lib/store.ts returns them, made in memory (no
 * files), for tests of the planners' decisions that need no data.
 * @module
 */

import { formatSessionId, parseSessionId } from "../../lib/format.ts";
import type { Durability } from "../../lib/format.ts";
import type { Session, SessionState } from "../../lib/store.ts";

/** One session to make. */
export interface FakeSpec {
  device: string;
  /** The device's stable identity (default ""). */
  identity?: string;
  seq: number;
  /** Mount time in minutes after a fixed epoch. */
  minute: number;
  state: SessionState;
  /** Id of the session a restore went back to (superseded.json). */
  supersededBy?: string;
  unmountedWritesBefore?: number;
  /** Writes outside any session after it closed, before a deactivation at `deactivatedNs`. */
  unmountedWritesAfter?: number;
  /** Deactivation time in ns (default: 10 s after the end when `unmountedWritesAfter`, else 0). */
  deactivatedNs?: number;
  /** Bytes of blocks.dat. */
  bytes?: number;
  /** A damaged or incomplete session that lost its meta.json. */
  noMeta?: boolean;
  /** Default write-ahead, the module's default. */
  durability?: Durability;
}

const T0_NS = Date.UTC(2026, 10, 1) * 1e6;
const MINUTE_NS = 60e9;

/** The mount time of `minute`, in ns. */
export function minuteNs(minute: number): number {
  return T0_NS + minute * MINUTE_NS;
}

/** A session in memory; ends 30 s after its mount unless open. */
export function fakeSession(spec: FakeSpec): Session {
  const mountTimeNs = minuteNs(spec.minute);
  const id = formatSessionId(spec.device, mountTimeNs);
  const metaState = spec.state === "open" || spec.state === "interrupted"
    ? "open"
    : spec.state === "failed"
    ? "failed"
    : "closed";
  const bytes = spec.bytes ?? 4096;
  const broken = spec.state === "damaged" || spec.state === "incomplete";
  const durability = spec.durability ?? "write-ahead";
  return {
    id,
    dir: `/nonexistent/${id}`,
    state: spec.state,
    meta: spec.noMeta ? null : {
      format: 1,
      id,
      device: spec.device,
      identity: spec.identity ?? "",
      kind: "file",
      dev: "7:0",
      size: 1 << 20,
      logicalBlockSize: 512,
      chunkSize: 4096,
      fsType: "ext4",
      seq: spec.seq,
      mountTimeNs,
      began: "mount",
      endTimeNs: metaState === "open" ? 0 : mountTimeNs + 30e9,
      state: metaState,
      error: metaState === "failed" ? "No space left on device (ENOSPC)" : "",
      records: 1,
      bytes,
      unmountedWritesBefore: spec.unmountedWritesBefore ?? 0,
      unmountedWritesAfter: spec.unmountedWritesAfter ?? 0,
      deactivatedNs: spec.deactivatedNs ?? (spec.unmountedWritesAfter ? mountTimeNs + 40e9 : 0),
      durability: durability === "write-ahead" ? "write-ahead" : null,
    },
    header: null,
    idParts: parseSessionId(id),
    records: {
      count: 0,
      devOffset: new Float64Array(0),
      datOffset: new Float64Array(0),
      length: new Uint32Array(0),
      dataCrc: new Uint32Array(0),
    },
    dataBytes: bytes,
    datSize: bytes,
    tail: null,
    problems: broken ? [{ session: id, file: "blocks.map", message: `made ${spec.state}` }] : [],
    superseded: spec.supersededBy ? { restoredTo: spec.supersededBy, time: "" } : null,
    durability,
  };
}

/** A chain of one device: states oldest first, one minute apart, seq 1, 2, … */
export function fakeChain(
  device: string,
  states: SessionState[],
  first = 0,
  durability?: Durability,
): Session[] {
  return states.map((state, i) =>
    fakeSession({ device, seq: i + 1, minute: first + i, state, durability })
  );
}
