/**
 * The NBD transmission phase as the kernel's nbd driver speaks it on the
 * socket it was given (the "simple reply" protocol; all fields big-endian):
 *
 * - request, 28 bytes: magic 0x25609513, u16 flags, u16 type, u64 handle,
 *   u64 offset, u32 length; a write's data follows it;
 * - reply, 16 bytes: magic 0x67446698, u32 error (an errno, 0 for success),
 *   u64 handle; a successful read's data follows it.
 *
 * @module
 */

/** Bytes of a request header. */
export const REQUEST_SIZE = 28;
/** Bytes of a reply header. */
export const REPLY_SIZE = 16;

const REQUEST_MAGIC = 0x25609513;
const REPLY_MAGIC = 0x67446698;

/** Request types. */
export const NBD_CMD = { read: 0, write: 1, disconnect: 2, flush: 3, trim: 4 } as const;

/** Errors a reply carries (Linux errno values, as the protocol defines them). */
export const NBD_ERR = { EPERM: 1, EIO: 5, EINVAL: 22 } as const;

/** A decoded request header. */
export interface NbdRequest {
  /** Command flags (FUA and the like), unused by a read-only server. */
  flags: number;
  /** One of {@linkcode NBD_CMD}, or another number for a type we do not know. */
  type: number;
  /** Echoed in the reply, opaque. */
  handle: bigint;
  /** Byte offset. */
  offset: number;
  /** Bytes. */
  length: number;
}

/** Decode a request header; throws on a bad magic (the stream is out of step). */
export function decodeRequest(bytes: Uint8Array): NbdRequest {
  if (bytes.length < REQUEST_SIZE) throw new RangeError("an NBD request is 28 bytes");
  const v = new DataView(bytes.buffer, bytes.byteOffset, REQUEST_SIZE);
  const magic = v.getUint32(0);
  if (magic !== REQUEST_MAGIC) {
    throw new Error(`bad NBD request magic 0x${magic.toString(16)}`);
  }
  return {
    flags: v.getUint16(4),
    type: v.getUint16(6),
    handle: v.getBigUint64(8),
    offset: Number(v.getBigUint64(16)),
    length: v.getUint32(24),
  };
}

/** Encode a request header (the kernel's side; for tests). */
export function encodeRequest(r: NbdRequest): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(REQUEST_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, REQUEST_MAGIC);
  v.setUint16(4, r.flags);
  v.setUint16(6, r.type);
  v.setBigUint64(8, r.handle);
  v.setBigUint64(16, BigInt(r.offset));
  v.setUint32(24, r.length);
  return out;
}

/** Write a reply header for `handle` with `error` into the first 16 bytes of `out`. */
export function encodeReply(out: Uint8Array, handle: bigint, error: number): void {
  const v = new DataView(out.buffer, out.byteOffset, REPLY_SIZE);
  v.setUint32(0, REPLY_MAGIC);
  v.setUint32(4, error);
  v.setBigUint64(8, handle);
}

/** Decode a reply header (the kernel's side; for tests). */
export function decodeReply(bytes: Uint8Array): { error: number; handle: bigint } {
  const v = new DataView(bytes.buffer, bytes.byteOffset, REPLY_SIZE);
  if (v.getUint32(0) !== REPLY_MAGIC) throw new Error("bad NBD reply magic");
  return { error: v.getUint32(4), handle: v.getBigUint64(8) };
}
