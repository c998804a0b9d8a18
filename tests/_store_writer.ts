/**
 * Test helper: writes synthetic snapshot stores in the format of
 * docs/FORMAT.md, and simulates a device's history (mounts with writes, writes
 * outside any mount) to get both the store and the exact device content
 * before each mount. The kernel module is the only production writer of a
 * store; this one lives with the tests on purpose.
 *
 * @module
 */

import { crc32c } from "../lib/crc32c.ts";
import {
  type Durability,
  encodeMapHeader,
  encodeMapRecord,
  encodeMeta,
  formatSessionId,
  MAP_F_FAILED,
  MAP_F_WRITE_AHEAD,
  type MetaState,
  type SessionMeta,
} from "../lib/format.ts";

/** One record to write: the pre-image of `data.length` bytes at `devOffset`. */
export interface RecordSpec {
  devOffset: number;
  data: Uint8Array;
}

/** One session to write. */
export interface SessionSpec {
  device: string;
  /** The device's stable identity (default ""). */
  identity?: string;
  kind?: "block" | "file";
  dev?: string;
  size: number;
  chunkSize?: number;
  logicalBlockSize?: number;
  fsType?: string;
  seq: number;
  mountTimeNs: number;
  state?: MetaState;
  error?: string;
  unmountedWritesBefore?: number;
  /** Writes outside any session after it closed, counted at deactivation (default 0). */
  unmountedWritesAfter?: number;
  /** When the device was deactivated after it, ns (default 0: not deactivated). */
  deactivatedNs?: number;
  records: RecordSpec[];
  /**
   * The module's default, `write-ahead`: the header flag and meta.json's
   * field. `flush`: as an older module wrote it (no flag, no field).
   */
  durability?: Durability;
  /**
   * The module failed the session and rewrote the header (FAILED, this
   * errno, `records` durable, default all); meta.json keeps `state`.
   */
  headerFailed?: { errno: number; records?: number };
  /**
   * Only the first N records reach the store: the writes behind the others
   * reached the device without a saved pre-image (what a failure, or a crash
   * of a session without write-ahead, leaves). Default: all.
   */
  savedRecords?: number;
}

/** Write one session directory under `root`; returns its id. */
export async function writeSession(root: string, spec: SessionSpec): Promise<string> {
  const id = formatSessionId(spec.device, spec.mountTimeNs);
  const dir = `${root}/${id}`;
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const chunkSize = spec.chunkSize ?? 4096;
  const durability = spec.durability ?? "write-ahead";
  const failed = spec.headerFailed;
  const records = spec.records.slice(0, spec.savedRecords ?? spec.records.length);
  const parts: Uint8Array[] = [encodeMapHeader({
    version: 1,
    chunkSize,
    deviceSize: spec.size,
    logicalBlockSize: spec.logicalBlockSize ?? 512,
    flags: (durability === "write-ahead" ? MAP_F_WRITE_AHEAD : 0) | (failed ? MAP_F_FAILED : 0),
    failErrno: failed?.errno ?? 0,
    failRecords: failed ? failed.records ?? records.length : 0,
  })];
  let dat = 0;
  records.forEach((r, seq) => {
    parts.push(encodeMapRecord({
      devOffset: r.devOffset,
      datOffset: dat,
      length: r.data.length,
      dataCrc: crc32c(r.data),
      seq,
    }));
    dat += r.data.length;
  });
  await Deno.writeFile(`${dir}/blocks.dat`, concat(records.map((r) => r.data)));
  await Deno.writeFile(`${dir}/blocks.map`, concat(parts));
  const state = spec.state ?? "closed";
  const meta: SessionMeta = {
    format: 1,
    id,
    device: spec.device,
    identity: spec.identity ?? "",
    kind: spec.kind ?? "file",
    dev: spec.dev ?? "7:0",
    size: spec.size,
    logicalBlockSize: spec.logicalBlockSize ?? 512,
    chunkSize,
    fsType: spec.fsType ?? "ext4",
    seq: spec.seq,
    mountTimeNs: spec.mountTimeNs,
    began: "mount",
    endTimeNs: state === "open" ? 0 : spec.mountTimeNs + 1_000_000_000,
    state,
    error: spec.error ?? "",
    records: state === "open" ? 0 : records.length,
    bytes: state === "open" ? 0 : dat,
    unmountedWritesBefore: spec.unmountedWritesBefore ?? 0,
    unmountedWritesAfter: spec.unmountedWritesAfter ?? 0,
    deactivatedNs: spec.deactivatedNs ?? 0,
    durability: durability === "write-ahead" ? "write-ahead" : null,
  };
  await Deno.writeTextFile(`${dir}/meta.json`, encodeMeta(meta));
  return id;
}

/** Concatenate byte arrays. */
export function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A write to the device: `data` at byte `offset`. */
export interface Write {
  offset: number;
  data: Uint8Array;
}

/** One mount of the simulated history. */
export interface MountSpec {
  /** Writes during the mount (saved copy-on-write). */
  writes: Write[];
  /** Writes after this mount's end, outside any session (counted, not saved). */
  unmountedAfter?: Write[];
  /**
   * Deactivate the device after `unmountedAfter`: their count goes into this
   * session's `unmounted_writes_after` (with `deactivated_ns`) instead of the
   * next session's `unmounted_writes_before`, and the next mount starts a new
   * activation (seq 1), as the module records it.
   */
  deactivate?: boolean;
  /** Final state of the session (default closed). */
  state?: MetaState;
  /** Start a new activation before this mount (seq starts again at 1). */
  reactivate?: boolean;
  /** The session's durability (default write-ahead, see {@linkcode SessionSpec}). */
  durability?: Durability;
  /** The header says FAILED (see {@linkcode SessionSpec}). */
  headerFailed?: { errno: number; records?: number };
  /** Pre-images that reached the store (see {@linkcode SessionSpec}). */
  savedRecords?: number;
}

/** What {@linkcode simulate} produced. */
export interface History {
  /** The device content before each mount, by mount index. */
  before: Uint8Array[];
  /** The device content at the end. */
  final: Uint8Array;
  /** The sessions, ready for {@linkcode writeSession}. */
  sessions: SessionSpec[];
}

/**
 * Replay a history on an in-memory device the way the module would record
 * it: the first write to a chunk in a session saves the chunk's content
 * before the write; runs of newly saved adjacent chunks of one write become
 * one record.
 */
export function simulate(
  initial: Uint8Array,
  device: string,
  mounts: MountSpec[],
  options: { chunkSize?: number; startNs?: number; kind?: "block" | "file" } = {},
): History {
  const chunk = options.chunkSize ?? 4096;
  const dev = new Uint8Array(initial);
  const before: Uint8Array[] = [];
  const sessions: SessionSpec[] = [];
  let unmounted = 0;
  let seq = 0;
  let t = options.startNs ?? 1_795_000_000_000_000_000;
  let deactivated = false;
  for (const m of mounts) {
    if (m.reactivate || deactivated) seq = 0;
    deactivated = false;
    seq++;
    before.push(new Uint8Array(dev));
    const saved = new Set<number>();
    const records: RecordSpec[] = [];
    for (const w of m.writes) {
      const first = Math.floor(w.offset / chunk);
      const last = Math.floor((w.offset + w.data.length - 1) / chunk);
      let run: number[] = [];
      const flush = () => {
        if (run.length === 0) return;
        const off = run[0] * chunk;
        records.push({ devOffset: off, data: dev.slice(off, off + run.length * chunk) });
        run = [];
      };
      for (let c = first; c <= last; c++) {
        if (saved.has(c)) {
          flush();
          continue;
        }
        saved.add(c);
        run.push(c);
      }
      flush();
      dev.set(w.data, w.offset);
    }
    sessions.push({
      device,
      kind: options.kind ?? "file",
      size: dev.length,
      chunkSize: chunk,
      seq,
      mountTimeNs: t,
      state: m.state ?? "closed",
      unmountedWritesBefore: unmounted,
      records,
      durability: m.durability,
      headerFailed: m.headerFailed,
      savedRecords: m.savedRecords,
    });
    unmounted = 0;
    for (const w of m.unmountedAfter ?? []) {
      dev.set(w.data, w.offset);
      unmounted++;
    }
    if (m.deactivate) {
      const s = sessions[sessions.length - 1];
      s.unmountedWritesAfter = unmounted;
      s.deactivatedNs = t + 1_800_000_000_000;
      unmounted = 0;
      deactivated = true;
    }
    t += 3_600_000_123_456;
  }
  return { before, final: dev, sessions };
}

/** A small seeded PRNG (mulberry32), for reproducible random tests. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random bytes from a PRNG. */
export function randomBytes(rand: () => number, n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (rand() * 256) | 0;
  return out;
}

/** Random writes over a device of `size` bytes (offsets and lengths multiples of 512). */
export function randomWrites(
  rand: () => number,
  size: number,
  count: number,
  maxLen = 20000,
): Write[] {
  const out: Write[] = [];
  for (let i = 0; i < count; i++) {
    const len = Math.max(512, Math.floor((rand() * maxLen) / 512) * 512);
    const offset = Math.floor((rand() * (size - len)) / 512) * 512;
    out.push({ offset, data: randomBytes(rand, len) });
  }
  return out;
}

/** Write every session of a history under `root`; returns the ids, oldest first. */
export async function writeHistory(root: string, history: History): Promise<string[]> {
  const ids: string[] = [];
  for (const s of history.sessions) ids.push(await writeSession(root, s));
  return ids;
}

/** Flip one bit of a file in place. */
export async function flipBit(path: string, byte: number, bit = 0): Promise<void> {
  const b = await Deno.readFile(path);
  b[byte] ^= 1 << bit;
  await Deno.writeFile(path, b);
}
