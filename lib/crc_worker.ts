/**
 * Worker side of {@linkcode CrcPool} (lib/crc_pool.ts): checksums a buffer
 * holding consecutive records and hands the buffer back with one CRC-32C per
 * record. Announces itself with `"ready"` once its module graph has loaded.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { crc32c, useFastCrc32c } from "./crc32c.ts";

/** A job: `lengths[i]` bytes of `buffer` after the previous record's. */
export interface CrcJob {
  buffer: ArrayBuffer;
  lengths: Uint32Array;
}

/** The answer: the same buffer, and the CRC-32C of each record. */
export interface CrcAnswer {
  /** The job's buffer, handed back for reuse. */
  buffer: ArrayBuffer;
  /** The CRC-32C of each record, in job order. */
  crcs: Uint32Array;
}

self.onmessage = (e: MessageEvent<CrcJob>) => {
  const { buffer, lengths } = e.data;
  const bytes = new Uint8Array(buffer);
  const crcs = new Uint32Array(lengths.length);
  let offset = 0;
  for (let i = 0; i < lengths.length; i++) {
    crcs[i] = crc32c(bytes.subarray(offset, offset + lengths[i]));
    offset += lengths[i];
  }
  const answer: CrcAnswer = { buffer, crcs };
  self.postMessage(answer, [buffer, crcs.buffer]);
};

await useFastCrc32c();
self.postMessage("ready");
