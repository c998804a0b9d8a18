/**
 * Large aligned I/O on a restore target or a device being exported.
 *
 * Writes use `O_DIRECT` where the device or file system allows it: no copy
 * through the page cache, and nothing left to write back at fsync. They run
 * on a worker thread, so that the applier fills its next buffer while the
 * previous one is written. Reads with `O_DIRECT` see what the medium holds,
 * not what the page cache holds: a read-back that checks anything, and an
 * export that does not pick up a mounted filesystem's unwritten metadata.
 *
 * @module
 */

import {
  addressOf,
  alloc,
  close as libcClose,
  ErrnoError,
  fsync as libcFsync,
  O_RDONLY,
  O_RDWR,
  open as libcOpen,
  pread as libcPread,
  pwrite as libcPwrite,
  pwriteAsync,
} from "../ffi/libc.ts";
import { RestoreError } from "./errors.ts";
import { ioError } from "./store.ts";

/** open(2) O_DIRECT (x86-64 and arm64 values differ; we build for x86-64 first). */
const O_DIRECT = Deno.build.arch === "aarch64" ? 0o200000 : 0o40000;

/** Alignment of buffers, offsets and lengths for `O_DIRECT`. */
export const DIRECT_ALIGN = 4096;

/** A zeroed buffer of `size` bytes whose address is a multiple of {@linkcode DIRECT_ALIGN}. */
export function alignedBuffer(size: number): Uint8Array<ArrayBuffer> {
  const raw = alloc(size + DIRECT_ALIGN);
  const skew = Number(addressOf(raw) % BigInt(DIRECT_ALIGN));
  const start = (DIRECT_ALIGN - skew) % DIRECT_ALIGN;
  return raw.subarray(start, start + size);
}

function aligned(offset: number, length: number): boolean {
  return offset % DIRECT_ALIGN === 0 && length % DIRECT_ALIGN === 0;
}

function alignedAddress(buf: Uint8Array<ArrayBuffer>): boolean {
  return addressOf(buf) % BigInt(DIRECT_ALIGN) === 0n;
}

/** Open `path`, with `O_DIRECT` when the file system takes it; `null` when it does not. */
function openMaybeDirect(path: string, flags: number): number | null {
  try {
    return libcOpen(path, flags | O_DIRECT);
  } catch (e) {
    if (e instanceof ErrnoError && e.code === "EINVAL") return null; // tmpfs and the like
    throw ioError(e, `open ${path}`);
  }
}

function openPlain(path: string, flags: number): number {
  try {
    return libcOpen(path, flags);
  } catch (e) {
    throw ioError(e, `open ${path}`);
  }
}

/**
 * Positioned writes to a block device or file. Aligned writes go through
 * `O_DIRECT` when available, the rest through the page cache; {@linkcode sync}
 * makes both durable.
 */
export class TargetWriter {
  #path: string;
  #direct: number | null;
  #buffered: number | null = null;

  private constructor(path: string, direct: number | null) {
    this.#path = path;
    this.#direct = direct;
  }

  /** Open `path` for writing. */
  static open(path: string): TargetWriter {
    return new TargetWriter(path, openMaybeDirect(path, O_RDWR));
  }

  /** Whether aligned writes bypass the page cache. */
  get direct(): boolean {
    return this.#direct !== null;
  }

  #closed = false;

  #bufferedFd(): number {
    if (this.#closed) throw new RestoreError("io", `write ${this.#path}: closed`);
    this.#buffered ??= openPlain(this.#path, O_RDWR);
    return this.#buffered;
  }

  /**
   * Write all of `buf` at `offset`. `buf` must stay unchanged until the
   * promise settles; it goes through `O_DIRECT` when its address, `offset`
   * and its length are aligned (as those of {@linkcode alignedBuffer} are).
   */
  async write(buf: Uint8Array<ArrayBuffer>, offset: number): Promise<void> {
    if (this.#closed) throw new RestoreError("io", `write ${this.#path}: closed`);
    const direct = this.#direct !== null && aligned(offset, buf.length) && alignedAddress(buf);
    const fd = direct ? this.#direct! : this.#bufferedFd();
    let done = 0;
    try {
      while (done < buf.length) {
        const n = await pwriteAsync(fd, buf.subarray(done), offset + done);
        if (n <= 0) throw new RestoreError("io", `write at offset ${offset + done}: no progress`);
        done += n;
        if (direct && done < buf.length && !aligned(offset + done, buf.length - done)) {
          // A short direct write off the alignment: finish through the cache.
          libcPwriteAll(this.#bufferedFd(), buf.subarray(done), offset + done);
          done = buf.length;
        }
      }
    } catch (e) {
      throw ioError(e, `write ${this.#path} at offset ${offset + done}`);
    }
  }

  /** fsync: written data and the device's write cache reach the medium. */
  sync(): void {
    try {
      if (this.#buffered !== null) libcFsync(this.#buffered);
      if (this.#direct !== null) libcFsync(this.#direct);
    } catch (e) {
      throw ioError(e, `fsync ${this.#path}`);
    }
  }

  /** Close the descriptors. */
  close(): void {
    if (this.#direct !== null) libcClose(this.#direct);
    if (this.#buffered !== null) libcClose(this.#buffered);
    this.#direct = this.#buffered = null;
    this.#closed = true;
  }
}

function libcPwriteAll(fd: number, buf: Uint8Array<ArrayBuffer>, offset: number): void {
  let done = 0;
  while (done < buf.length) done += libcPwrite(fd, buf.subarray(done), offset + done);
}

/**
 * Positioned reads that see the medium: `O_DIRECT` through an aligned bounce
 * buffer when available, otherwise ordinary reads.
 */
export class MediumReader {
  #path: string;
  #fd: number;
  #direct: boolean;
  #bounce: Uint8Array<ArrayBuffer>;

  private constructor(path: string, fd: number, direct: boolean, ioSize: number) {
    this.#path = path;
    this.#fd = fd;
    this.#direct = direct;
    this.#bounce = direct ? alignedBuffer(ioSize + DIRECT_ALIGN) : alloc(0);
  }

  /**
   * Open `path` for reads of at most `ioSize` bytes at a time, through
   * `O_DIRECT` unless `direct` is false or the file system refuses it.
   */
  static open(path: string, ioSize: number, direct = true): MediumReader {
    return direct ? MediumReader.#openDirect(path, ioSize) : MediumReader.#openPlain(path, ioSize);
  }

  static #openDirect(path: string, ioSize: number): MediumReader {
    const direct = openMaybeDirect(path, O_RDONLY);
    return direct !== null
      ? new MediumReader(path, direct, true, ioSize)
      : MediumReader.#openPlain(path, ioSize);
  }

  static #openPlain(path: string, ioSize: number): MediumReader {
    return new MediumReader(path, openPlain(path, O_RDONLY), false, ioSize);
  }

  /** Fill `buf` from `offset`; returns the bytes read (fewer only at the end of the file). */
  read(buf: Uint8Array, offset: number): number {
    let done = 0;
    try {
      while (done < buf.length) {
        const at = offset + done;
        const want = buf.length - done;
        let n: number;
        if (this.#direct) {
          // Aligned window around what is wanted, through the bounce buffer.
          const start = at - at % DIRECT_ALIGN;
          const skip = at - start;
          const len = Math.min(
            this.#bounce.length,
            Math.ceil((skip + want) / DIRECT_ALIGN) * DIRECT_ALIGN,
          );
          const got = libcPread(this.#fd, this.#bounce.subarray(0, len), start);
          n = Math.max(0, Math.min(got - skip, want));
          buf.set(this.#bounce.subarray(skip, skip + n), done);
        } else {
          n = libcPread(this.#fd, buf.subarray(done) as Uint8Array<ArrayBuffer>, at);
        }
        if (n === 0) break;
        done += n;
      }
    } catch (e) {
      throw ioError(e, `read ${this.#path}`);
    }
    return done;
  }

  /** Close the descriptor. */
  close(): void {
    libcClose(this.#fd);
  }
}

/**
 * Double-buffered writing: fill {@linkcode buffer}, {@linkcode submit} it,
 * and fill the other buffer while the first is written. At most one write
 * is in flight; {@linkcode drain} waits for it.
 */
export class WritePipeline {
  #writer: TargetWriter;
  #buffers: Uint8Array<ArrayBuffer>[];
  #cur = 0;
  /** The write in flight; settles to its error or null, so it is never unhandled. */
  #inflight: Promise<unknown> | null = null;
  #onWritten?: (bytes: number) => void;
  /** Writes submitted. */
  writes = 0;

  constructor(writer: TargetWriter, ioSize: number, onWritten?: (bytes: number) => void) {
    this.#writer = writer;
    this.#buffers = [alignedBuffer(ioSize), alignedBuffer(ioSize)];
    this.#onWritten = onWritten;
  }

  /** The buffer to fill next. */
  get buffer(): Uint8Array<ArrayBuffer> {
    return this.#buffers[this.#cur];
  }

  /** Write the first `length` bytes of {@linkcode buffer} at `offset`. */
  async submit(length: number, offset: number): Promise<void> {
    await this.drain();
    this.#inflight = this.#writer.write(this.#buffers[this.#cur].subarray(0, length), offset)
      .then(() => {
        this.#onWritten?.(length);
        return null;
      }, (e) => e);
    this.writes++;
    this.#cur ^= 1;
  }

  /** Wait for the write in flight; throws its error. */
  async drain(): Promise<void> {
    const err = await this.#inflight;
    this.#inflight = null;
    if (err) throw err;
  }
}

/** Options of {@linkcode WriteQueue}. */
export interface WriteQueueOptions {
  /** Writes in flight at most (default 2). */
  depth?: number;
  /** Pieces at least this long are written from the caller's memory (default `ioSize / 8`). */
  zeroCopyMin?: number;
  /** Called as each write is started, with the bytes it writes and where. */
  onSubmit?: (buf: Uint8Array<ArrayBuffer>, offset: number) => void;
  /** Called as each write completes, with its length. */
  onWritten?: (bytes: number) => void;
}

/**
 * Writes of pieces that stay valid until written (a mapping of blocks.dat):
 * long pieces are written straight from the caller's memory, in writes of
 * at most `ioSize` bytes; short ones are gathered into a staging buffer
 * while it stays contiguous on the target. Up to `depth` writes are in
 * flight at once. Copying every piece through our buffers cost a third of
 * the target's speed; only short pieces pay for it now.
 */
export class WriteQueue {
  #writer: TargetWriter;
  #ioSize: number;
  #depth: number;
  #zeroCopyMin: number;
  #options: WriteQueueOptions;
  /** Writes in flight, oldest first; each settles to its error or null. */
  #inflight: Promise<unknown>[] = [];
  #staging: Array<{ buf: Uint8Array<ArrayBuffer>; written: Promise<unknown> }>;
  #cur = 0;
  /** Target offset of the staged bytes, and how many there are. */
  #stagedAt = 0;
  #staged = 0;
  /** Writes started. */
  writes = 0;

  constructor(writer: TargetWriter, ioSize: number, options: WriteQueueOptions = {}) {
    this.#writer = writer;
    this.#ioSize = ioSize;
    this.#depth = Math.max(1, options.depth ?? 2);
    this.#zeroCopyMin = options.zeroCopyMin ?? Math.max(DIRECT_ALIGN, ioSize / 8);
    this.#options = options;
    // One staging buffer more than the depth: one can fill while the others are written.
    this.#staging = Array.from(
      { length: this.#depth + 1 },
      () => ({ buf: alignedBuffer(ioSize), written: Promise.resolve(null) }),
    );
  }

  /** Write `data` at `offset`; `data` must stay unchanged until {@linkcode drain} returns. */
  async put(data: Uint8Array<ArrayBuffer>, offset: number): Promise<void> {
    if (this.#staged > 0 && offset !== this.#stagedAt + this.#staged) await this.#flushStaged();
    if (data.length >= this.#zeroCopyMin) {
      await this.#flushStaged();
      for (let at = 0; at < data.length; at += this.#ioSize) {
        await this.#submit(
          data.subarray(at, Math.min(data.length, at + this.#ioSize)),
          offset + at,
        );
      }
      return;
    }
    let done = 0;
    while (done < data.length) {
      const s = this.#staging[this.#cur];
      if (this.#staged === 0) {
        await s.written; // its error, if any, is thrown from #inflight
        this.#stagedAt = offset + done;
      }
      const take = Math.min(data.length - done, this.#ioSize - this.#staged);
      s.buf.set(data.subarray(done, done + take), this.#staged);
      this.#staged += take;
      done += take;
      if (this.#staged === this.#ioSize) await this.#flushStaged();
    }
  }

  /** Write what is staged, wait for every write; throws the first write error. */
  async drain(): Promise<void> {
    await this.#flushStaged();
    while (this.#inflight.length > 0) await this.#settleOldest();
  }

  /** After a failure: wait for the writes in flight, drop what is staged, start nothing. */
  async abandon(): Promise<void> {
    this.#staged = 0;
    while (this.#inflight.length > 0) await this.#inflight.shift();
  }

  async #flushStaged(): Promise<void> {
    if (this.#staged === 0) return;
    const s = this.#staging[this.#cur];
    const buf = s.buf.subarray(0, this.#staged);
    this.#staged = 0;
    this.#cur = (this.#cur + 1) % this.#staging.length;
    s.written = (await this.#submit(buf, this.#stagedAt)).written;
  }

  /**
   * Start writing `buf` at `offset` once fewer than `depth` writes are in
   * flight. Returns the write, wrapped: an async function would wait for it.
   */
  async #submit(
    buf: Uint8Array<ArrayBuffer>,
    offset: number,
  ): Promise<{ written: Promise<unknown> }> {
    while (this.#inflight.length >= this.#depth) await this.#settleOldest();
    const written = this.#writer.write(buf, offset).then(() => {
      this.#options.onWritten?.(buf.length);
      return null;
    }, (e) => e);
    this.#inflight.push(written);
    this.writes++;
    this.#options.onSubmit?.(buf, offset);
    return { written };
  }

  async #settleOldest(): Promise<void> {
    const err = await this.#inflight.shift();
    if (err) throw err;
  }
}
