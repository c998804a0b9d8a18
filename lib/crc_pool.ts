/**
 * A small pool of workers that compute CRC-32C, so that verifying a large
 * store uses every CPU while the calling thread reads the next buffer.
 *
 * Checking every checksum before the first write is the restorer's safety
 * rule, and with the portable CRC-32C that pass is CPU-bound (JavaScript
 * runs at about 1.5 GB/s natively, far less emulated); with N workers it
 * runs nearly N times faster. With the native CRC-32C no pool is started. The pool is an optimisation only: {@linkcode CrcPool.start}
 * returns `null` when workers cannot start (one CPU, or an executable built
 * without the worker module), and callers then checksum on their own thread.
 *
 * @example
 * ```ts
 * import { CrcPool } from "./crc_pool.ts";
 * const pool = await CrcPool.start(2);
 * if (pool) {
 *   const buf = new ArrayBuffer(8);
 *   const { crcs } = await pool.run(buf, Uint32Array.of(4, 4));
 *   pool.close();
 * }
 * ```
 *
 * @module
 */

import { useFastCrc32c } from "./crc32c.ts";
import type { CrcAnswer, CrcJob } from "./crc_worker.ts";

/**
 * Below this many bytes to checksum a pool is not worth starting: loading the
 * workers costs tens of milliseconds natively, about a second emulated.
 */
export const POOL_MIN_BYTES = 32 << 20;

/** How long the workers may take to load before the pool is given up. */
const START_TIMEOUT_MS = 15_000;

interface Member {
  worker: Worker;
  /** Jobs sent and not answered yet, oldest first. */
  waiting: Array<{ resolve: (a: CrcAnswer) => void; reject: (e: Error) => void }>;
}

/** Workers computing the CRC-32C of consecutive records in a buffer. */
export class CrcPool {
  #members: Member[];
  #failure: Error | null = null;

  private constructor(members: Member[]) {
    this.#members = members;
    for (const m of members) {
      m.worker.onmessage = (e: MessageEvent<CrcAnswer>) => m.waiting.shift()?.resolve(e.data);
      m.worker.onerror = (e: ErrorEvent) => {
        e.preventDefault(); // a failed worker must not end the program
        this.#fail(new Error(`checksum worker failed: ${e.message}`));
      };
    }
  }

  /** The number of workers worth starting here: one per CPU, at most 4; 0 on one CPU. */
  static defaultSize(): number {
    const cpus = navigator.hardwareConcurrency ?? 1;
    return cpus > 1 ? Math.min(cpus, 4) : 0;
  }

  /**
   * Start `size` workers and wait until each has loaded.
   *
   * @returns the pool, or `null` if `size` is below 1 or any worker could not
   * start (the caller then computes checksums itself).
   */
  static async start(size: number = CrcPool.defaultSize()): Promise<CrcPool | null> {
    if (size < 1) return null;
    const workers: Worker[] = [];
    try {
      for (let i = 0; i < size; i++) {
        workers.push(new Worker(new URL("./crc_worker.ts", import.meta.url), { type: "module" }));
      }
      await Promise.all(workers.map(ready));
      return new CrcPool(workers.map((worker) => ({ worker, waiting: [] })));
    } catch {
      for (const w of workers) w.terminate();
      return null;
    }
  }

  /**
   * A pool of the default size if `bytes` are worth one, else `null`. Never
   * with the native CRC-32C (lib/crc32c.ts): one thread of it outruns the
   * store's reads, and starting workers costs more than they save (6 s of a
   * 15 s pass over 256 MiB, emulated).
   */
  static async startFor(bytes: number): Promise<CrcPool | null> {
    if (bytes < POOL_MIN_BYTES || await useFastCrc32c() === "native") return null;
    return await CrcPool.start();
  }

  /** Number of workers. */
  get size(): number {
    return this.#members.length;
  }

  /**
   * Checksum consecutive records of `buffer`: record i is `lengths[i]` bytes,
   * starting where record i−1 ended. `buffer` is transferred to a worker and
   * comes back in the answer; it cannot be used until then.
   */
  run(buffer: ArrayBuffer, lengths: Uint32Array): Promise<CrcAnswer> {
    if (this.#failure) return Promise.reject(this.#failure);
    const m = this.#members.reduce((a, b) => (b.waiting.length < a.waiting.length ? b : a));
    return new Promise((resolve, reject) => {
      m.waiting.push({ resolve, reject });
      const job: CrcJob = { buffer, lengths };
      m.worker.postMessage(job, [buffer]);
    });
  }

  /** Stop the workers; jobs not answered yet are rejected. */
  close(): void {
    this.#fail(new Error("checksum pool closed"));
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const m of this.#members) {
      m.worker.terminate();
      for (const w of m.waiting.splice(0)) w.reject(this.#failure);
    }
  }
}

/** Resolve when `worker` says it has loaded; reject on error or timeout. */
function ready(worker: Worker): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error("checksum worker did not start")),
      START_TIMEOUT_MS,
    );
    worker.onmessage = (e: MessageEvent) => {
      if (e.data !== "ready") return;
      clearTimeout(timer);
      resolve();
    };
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      clearTimeout(timer);
      reject(new Error(e.message));
    };
  });
}
