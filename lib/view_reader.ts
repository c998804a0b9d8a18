/**
 * The view reader: reads a device as it was before a session's mount while
 * the device stays in use, its open session included. `bdsnap view` serves
 * it as a read-only block device.
 *
 * The state before mount k is, per chunk, the pre-image from the earliest
 * session j ≥ k that saved it (the plan, lib/plan.ts), else the origin's
 * current content. A read of range R:
 *
 * 1. reads R from the origin, with O_DIRECT (the disk, not the page cache);
 * 2. then checks the store against the plan, and plans again if it grew: a
 *    new record in the open session's blocks.map, a session opened or closed;
 * 3. lays the plan's pieces inside R over what step 1 read.
 *
 * Why that never shows post-mount data: under write-ahead a write reaches the
 * origin only after its chunk's record is durable in blocks.map (and so
 * visible to our read of the map). A chunk that some write reached before
 * step 1 finished therefore has a record by step 2, and step 3 replaces what
 * step 1 read there with the pre-image. A chunk without a record by step 2
 * was not written before step 1 finished, so the origin still held its
 * pre-mount content. No origin write ever waits for a view read.
 *
 * What would break that and makes reads fail instead: the open session
 * failing (writes then pass unsaved), writes outside any session (no
 * pre-image at all), the device deactivated (nothing saves anything). The
 * module reports each (the `live` callback), checked in step 2.
 *
 * @module
 */

import { RestoreError } from "./errors.ts";
import { decodeMapRecord, FILES, MAP_HEADER_SIZE, MAP_RECORD_SIZE } from "./format.ts";
import type { Plan, PlanPiece } from "./plan.ts";
import type { Session } from "./store.ts";
import { MediumReader } from "./target_io.ts";
import { ioError } from "./io_error.ts";
import { alloc, close, O_RDONLY, open, pread } from "../ffi/libc.ts";

/** The module's word on the device, as the view needs it. */
export interface LiveState {
  /** The current session failed: copy-on-write stopped, writes pass unsaved. */
  failed: boolean;
  /** Sessions started since activation. */
  sessions: number;
  /** The open session's id, or "" when none is open. */
  openSession: string;
  /** Writes seen outside any session since activation or the last session. */
  unmountedWrites: number;
}

/** Where a view gets its plan and the module's state. */
export interface ViewSource {
  /** Read the store and plan the state before the view's session (may throw RestoreError). */
  plan(): Promise<Plan>;
  /** The module's state of the device now, or null when it is no longer activated. */
  live(): LiveState | null;
}

/** Options of {@linkcode ViewReader.open}. */
export interface ViewReaderOptions {
  /** Largest read {@linkcode ViewReader.read} is asked for. */
  ioSize: number;
  /** Read the origin with O_DIRECT (default true; false for plain files in tests). */
  direct?: boolean;
}

/** Counts since the reader was opened (the benchmark reports them). */
export interface ViewStats {
  /** Reads answered. */
  reads: number;
  /** Bytes answered. */
  bytes: number;
  /** Bytes of those taken from the store. */
  storeBytes: number;
  /** Times the store was planned again. */
  replans: number;
  /** Times the open session's new records were added to the plan without a replan. */
  extended: number;
}

/** Reads of a device as it was before a session's mount (see the module documentation). */
export class ViewReader {
  #source: ViewSource;
  #origin: MediumReader;
  #plan: Plan;
  #mark: LiveState;
  #dat = new Map<string, number>();
  #openMap: { fd: number; next: number } | null = null;
  /** End of the open session's data the plan knows: its next record's datOffset. */
  #openDatEnd = 0;
  #slot = alloc(MAP_RECORD_SIZE);
  #broken: RestoreError | null = null;
  /** Counts since open. */
  readonly stats: ViewStats = { reads: 0, bytes: 0, storeBytes: 0, replans: 0, extended: 0 };

  private constructor(source: ViewSource, origin: MediumReader, plan: Plan, mark: LiveState) {
    this.#source = source;
    this.#origin = origin;
    this.#plan = plan;
    this.#mark = mark;
    this.#watchOpenSession();
  }

  /**
   * Plan the view and open the origin `path`.
   * @throws {RestoreError} when the device is not activated, its session
   * failed, or the plan is refused (a damaged or failed session, say).
   */
  static async open(
    source: ViewSource,
    path: string,
    options: ViewReaderOptions,
  ): Promise<ViewReader> {
    const mark = liveOrThrow(source, path);
    const plan = await source.plan();
    const origin = MediumReader.open(path, options.ioSize, options.direct ?? true);
    return new ViewReader(source, origin, plan, mark);
  }

  /** The plan in use now (it changes as the store grows). */
  get plan(): Plan {
    return this.#plan;
  }

  /** Bytes the view shows: the device's size. */
  get size(): number {
    return this.#plan.deviceSize;
  }

  /**
   * Fill `buf` with the view's bytes from `offset`.
   * @throws {RestoreError} once the view cannot be exact any more (then every
   * later read throws the same), or on an I/O error.
   */
  async read(buf: Uint8Array, offset: number): Promise<void> {
    if (this.#broken) throw this.#broken;
    if (offset < 0 || offset + buf.length > this.size) {
      throw new RestoreError("invalid", `read past the end of the view (${offset}+${buf.length})`);
    }
    const n = this.#origin.read(buf, offset);
    if (n !== buf.length) throw new RestoreError("io", `the origin ended early at ${offset + n}`);
    try {
      await this.#current();
    } catch (e) {
      if (e instanceof RestoreError && e.code !== "io") this.#broken = e;
      throw e;
    }
    this.stats.storeBytes += this.#overlay(buf, offset);
    this.stats.reads++;
    this.stats.bytes += buf.length;
  }

  /** Close the origin and the store files. */
  close(): void {
    this.#origin.close();
    this.#closeStore();
  }

  /** Make the plan cover every record durable now (step 2 of a read). */
  async #current(): Promise<void> {
    const live = liveOrThrow(this.#source, this.#plan.device);
    const m = this.#mark;
    const moved = live.sessions !== m.sessions || live.openSession !== m.openSession;
    if (!moved && live.unmountedWrites !== m.unmountedWrites) {
      throw new RestoreError(
        "unmounted-writes",
        `${this.#plan.device} was written outside any session while the view was open: ` +
          "the view can no longer show the state before the mount",
      );
    }
    if (!moved) {
      if (!this.#openSessionGrew()) return;
      if (this.#extend()) return;
    }
    // The state taken before the store is read: a change after it shows next time.
    this.#closeStore();
    this.#mark = live;
    this.#plan = await this.#source.plan();
    this.stats.replans++;
    this.#watchOpenSession();
  }

  /** Whether the open session's blocks.map holds a record the plan lacks. */
  #openSessionGrew(): boolean {
    const om = this.#openMap;
    if (om === null) return false;
    let n: number;
    try {
      n = pread(om.fd, this.#slot, om.next);
    } catch (e) {
      throw ioError(e, "read the open session's blocks.map");
    }
    if (n < MAP_RECORD_SIZE) return false;
    try {
      decodeMapRecord(this.#slot);
      return true;
    } catch {
      return false; // zeroes past the last record, or one being written
    }
  }

  /**
   * Take the open session's new records into the plan without reading the
   * store again: each gives the chunks no earlier session of the chain saved
   * (the chain rule), which is all a replan would change. Returns false when
   * a record is out of order, for a full replan to judge.
   */
  #extend(): boolean {
    const om = this.#openMap!;
    const session = this.#plan.sessions.length - 1;
    const open = this.#plan.sessions[session];
    if (open.state !== "open") return false;
    const pieces = [...this.#plan.pieces];
    let seq = (om.next - MAP_HEADER_SIZE) / MAP_RECORD_SIZE;
    let datEnd = this.#openDatEnd;
    for (;; seq++) {
      let r;
      try {
        if (pread(om.fd, this.#slot, om.next) < MAP_RECORD_SIZE) break;
        r = decodeMapRecord(this.#slot);
      } catch {
        break;
      }
      if (r.seq !== seq || r.datOffset !== datEnd || r.devOffset + r.length > this.size) {
        return false;
      }
      insertUncovered(pieces, r.devOffset, r.length, session, r.datOffset);
      datEnd += r.length;
      om.next += MAP_RECORD_SIZE;
    }
    this.#openDatEnd = datEnd;
    this.#plan = { ...this.#plan, pieces };
    this.stats.extended++;
    return true;
  }

  #watchOpenSession(): void {
    const open = this.#plan.sessions.find((s) => s.state === "open");
    if (!open) return;
    const fd = openOrThrow(`${open.dir}/${FILES.map}`);
    this.#openMap = { fd, next: MAP_HEADER_SIZE + open.records.count * MAP_RECORD_SIZE };
    this.#openDatEnd = open.dataBytes;
  }

  /** Lay the plan's pieces inside [offset, offset + buf.length) over buf; returns their bytes. */
  #overlay(buf: Uint8Array, offset: number): number {
    const pieces = this.#plan.pieces;
    const end = offset + buf.length;
    let copied = 0;
    for (let i = firstPieceEndingAfter(pieces, offset); i < pieces.length; i++) {
      const p = pieces[i];
      if (p.devOffset >= end) break;
      const from = Math.max(offset, p.devOffset);
      const to = Math.min(end, p.devOffset + p.length);
      const session = this.#plan.sessions[p.session];
      const fd = this.#datFd(session);
      const dst = buf.subarray(from - offset, to - offset) as Uint8Array<ArrayBuffer>;
      let n: number;
      try {
        n = pread(fd, dst, p.datOffset + (from - p.devOffset));
      } catch (e) {
        throw ioError(e, `read ${session.dir}/${FILES.data}`);
      }
      if (n !== dst.length) {
        throw new RestoreError("damaged", `${session.id}/${FILES.data} ended early`);
      }
      copied += dst.length;
    }
    return copied;
  }

  #datFd(s: Session): number {
    let fd = this.#dat.get(s.dir);
    if (fd === undefined) {
      fd = openOrThrow(`${s.dir}/${FILES.data}`);
      this.#dat.set(s.dir, fd);
    }
    return fd;
  }

  #closeStore(): void {
    for (const fd of this.#dat.values()) close(fd);
    this.#dat.clear();
    if (this.#openMap) close(this.#openMap.fd);
    this.#openMap = null;
  }
}

function liveOrThrow(source: ViewSource, device: string): LiveState {
  const live = source.live();
  if (live === null) {
    throw new RestoreError("invalid", `${device} is not activated: a view needs its sessions`);
  }
  if (live.failed) {
    throw new RestoreError(
      "failed",
      `the open session of ${device} failed: writes are no longer saved, so no view can be exact`,
    );
  }
  return live;
}

function openOrThrow(path: string): number {
  try {
    return open(path, O_RDONLY);
  } catch (e) {
    throw ioError(e, `open ${path}`);
  }
}

/**
 * Add to sorted, disjoint `pieces` the parts of [devOffset, devOffset + length)
 * no piece covers, as pieces of `session` whose data starts at `datOffset`.
 */
function insertUncovered(
  pieces: PlanPiece[],
  devOffset: number,
  length: number,
  session: number,
  datOffset: number,
): void {
  const end = devOffset + length;
  let i = firstPieceEndingAfter(pieces, devOffset);
  let at = devOffset;
  while (at < end) {
    const next = i < pieces.length ? pieces[i] : null;
    const gapEnd = next === null ? end : Math.min(end, next.devOffset);
    if (gapEnd > at) {
      pieces.splice(i++, 0, {
        devOffset: at,
        length: gapEnd - at,
        session,
        datOffset: datOffset + (at - devOffset),
      });
    }
    if (next === null || next.devOffset >= end) break;
    at = next.devOffset + next.length;
    i++;
  }
}

/** Index of the first piece that ends after `offset` (pieces are sorted and disjoint). */
function firstPieceEndingAfter(pieces: readonly PlanPiece[], offset: number): number {
  let lo = 0, hi = pieces.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (pieces[mid].devOffset + pieces[mid].length <= offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
