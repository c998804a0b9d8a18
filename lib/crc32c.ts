/**
 * CRC-32C (Castagnoli), the checksum of the snapshot store (docs/FORMAT.md):
 * reflected polynomial 0x82F63B78, initial value 0xFFFFFFFF, final XOR
 * 0xFFFFFFFF. The check value of the ASCII string `123456789` is
 * `0xE3069283`.
 *
 * Two implementations, kept behind this one module:
 * - `@node-rs/crc32`, a Node-API addon that uses the CPU's CRC-32C
 *   instruction (SSE 4.2 on x86-64): about 9 × the portable one on our build
 *   host. The restorer verifies every byte of the chain before it writes
 *   anything, so this rate bounds how fast a restore can be
 *   (docs/PERFORMANCE.md).
 * - the `crc-32` npm package (pure JavaScript, slice-by-16), used when the
 *   addon cannot load (another architecture, or a runtime without Node-API).
 *
 * Both give the same value for the same bytes (tests/unit/crc32c_test.ts).
 *
 * @example
 * ```ts
 * import { crc32c } from "./crc32c.ts";
 * const all = crc32c(new TextEncoder().encode("123456789")); // 0xe3069283
 * const part = crc32c(new TextEncoder().encode("1234"));
 * crc32c(new TextEncoder().encode("56789"), part) === all; // true
 * ```
 *
 * @module
 */

import CRC32C from "crc-32/crc32c.js";

/** A CRC-32C function: the checksum of `data`, continuing from `previous` when given. */
export type Crc32c = (data: Uint8Array, previous?: number) => number;

/**
 * The portable CRC-32C of `data`, as an unsigned 32-bit number.
 *
 * @param data The bytes.
 * @param previous The CRC-32C of the bytes that come before `data`; omit for
 * the first piece.
 */
export function crc32cPortable(data: Uint8Array, previous?: number): number {
  return (previous === undefined ? CRC32C.buf(data) : CRC32C.buf(data, previous | 0)) >>> 0;
}

async function loadNative(): Promise<Crc32c | null> {
  try {
    const addon = await import("@node-rs/crc32");
    const native: Crc32c = (data, previous) => addon.crc32c(data, previous ?? 0) >>> 0;
    // Refuse an addon that disagrees with the definition (the check value).
    return native(new TextEncoder().encode("123456789")) === 0xe3069283 ? native : null;
  } catch {
    return null;
  }
}

let current: Crc32c = crc32cPortable;
let implementation: "native" | "portable" = "portable";
let loading: Promise<"native" | "portable"> | undefined;

/**
 * Switch {@linkcode crc32c} to the CPU's instruction where the addon loads,
 * and say which implementation is in use. Work over many bytes (restore,
 * verify, export) calls this first. Until then the portable one answers:
 * loading the addon is a noticeable part of the CLI's start-up, and a
 * header's or record's checksum does not need it.
 */
export function useFastCrc32c(): Promise<"native" | "portable"> {
  return loading ??= loadNative().then((native) => {
    if (native) [current, implementation] = [native, "native"];
    return implementation;
  });
}

/** Which implementation {@linkcode crc32c} uses now: `"native"` or `"portable"`. */
export function crc32cImplementation(): "native" | "portable" {
  return implementation;
}

/**
 * The CRC-32C of `data`, as an unsigned 32-bit number.
 *
 * @param data The bytes.
 * @param previous The CRC-32C of the bytes that come before `data`, to
 * checksum a stream in pieces; omit for the first piece.
 */
export function crc32c(data: Uint8Array, previous?: number): number {
  return current(data, previous);
}
