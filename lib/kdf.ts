/**
 * The service-password hash the kernel module verifies:
 * PBKDF2-HMAC-SHA256 with a random salt, written as
 * `pbkdf2-sha256$<iterations>$<salt hex>$<derived key hex>`
 * (see BDSNAP_HASH_MAX in kmod/include/uapi/bdsnap.h).
 *
 * The module repeats the derivation on every activate/deactivate attempt, so
 * the iteration count is a trade between brute-force cost and the latency of
 * each call; tests under software emulation lower it with
 * `BDSNAP_KDF_ITERATIONS`.
 *
 * @example
 * ```ts
 * import { hashPassword, verifyPassword } from "./kdf.ts";
 * const h = await hashPassword("correct horse", { iterations: 1000 });
 * console.log(await verifyPassword("correct horse", h)); // true
 * ```
 *
 * @module
 */

/** Iterations used when nothing else is asked for. */
export const DEFAULT_ITERATIONS = 200_000;
/** Smallest iteration count accepted (anything lower is not a slow hash). */
export const MIN_ITERATIONS = 1_000;
/** Largest iteration count accepted (the module refuses more: BDSNAP_ITER_MAX in kmod/auth.c). */
export const MAX_ITERATIONS = 10_000_000;
/** Salt length in bytes of new hashes. */
export const SALT_BYTES = 16;
/** Derived key length in bytes. */
export const KEY_BYTES = 32;
/** The scheme name at the start of every hash string. */
export const SCHEME = "pbkdf2-sha256";

/** A parsed hash string. */
export interface PasswordHash {
  iterations: number;
  salt: Uint8Array;
  key: Uint8Array;
}

/** Options of {@linkcode hashPassword}. */
export interface HashOptions {
  /** PBKDF2 iterations; default {@linkcode DEFAULT_ITERATIONS}. */
  iterations?: number;
  /** Salt to use instead of 16 random bytes (for tests and vectors). */
  salt?: Uint8Array;
}

/** Lower-case hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Bytes of a hex string; throws `SyntaxError` on anything but an even count of hex digits. */
export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new SyntaxError("not a hex string");
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Check an iteration count; throws `RangeError` with a readable message. */
export function checkIterations(n: number): number {
  if (!Number.isSafeInteger(n) || n < MIN_ITERATIONS || n > MAX_ITERATIONS) {
    throw new RangeError(
      `KDF iterations must be an integer from ${MIN_ITERATIONS} to ${MAX_ITERATIONS}, not ${n}`,
    );
  }
  return n;
}

/**
 * The iteration count for new hashes: `explicit` if given, else the
 * environment variable `BDSNAP_KDF_ITERATIONS`, else the default.
 */
export function iterationsFrom(explicit?: number | string, env?: string): number {
  const raw = explicit ?? env ?? Deno.env.get("BDSNAP_KDF_ITERATIONS");
  if (raw === undefined || raw === "") return DEFAULT_ITERATIONS;
  const n = typeof raw === "number" ? raw : /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  return checkIterations(n);
}

/** PBKDF2-HMAC-SHA256 of `password` (UTF-8) through WebCrypto. */
export async function pbkdf2Sha256(
  password: string | Uint8Array,
  salt: Uint8Array,
  iterations: number,
  keyBytes: number = KEY_BYTES,
): Promise<Uint8Array> {
  const pw = typeof password === "string" ? new TextEncoder().encode(password) : password;
  const key = await crypto.subtle.importKey(
    "raw",
    new Uint8Array(pw),
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt: new Uint8Array(salt), iterations },
    key,
    keyBytes * 8,
  );
  return new Uint8Array(bits);
}

/** Derive a new hash string for `password`. */
export async function hashPassword(password: string, options: HashOptions = {}): Promise<string> {
  const iterations = checkIterations(options.iterations ?? DEFAULT_ITERATIONS);
  const salt = options.salt ?? crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  if (salt.length < 16 || salt.length > 64) throw new RangeError("salt must be 16 to 64 bytes");
  const key = await pbkdf2Sha256(password, salt, iterations);
  return formatHash({ iterations, salt, key });
}

/** Write a hash string. */
export function formatHash(h: PasswordHash): string {
  return `${SCHEME}$${h.iterations}$${toHex(h.salt)}$${toHex(h.key)}`;
}

/** Parse a hash string; throws `SyntaxError` naming what is wrong. */
export function parseHash(s: string): PasswordHash {
  const parts = s.trim().split("$");
  if (parts.length !== 4 || parts[0] !== SCHEME) {
    throw new SyntaxError(`not a ${SCHEME} hash string`);
  }
  if (!/^[1-9]\d*$/.test(parts[1])) throw new SyntaxError("bad iteration count in hash string");
  const iterations = Number(parts[1]);
  let salt: Uint8Array, key: Uint8Array;
  try {
    salt = fromHex(parts[2]);
    key = fromHex(parts[3]);
  } catch {
    throw new SyntaxError("bad hex in hash string");
  }
  if (salt.length < 16 || salt.length > 64) throw new SyntaxError("salt must be 16 to 64 bytes");
  if (key.length !== KEY_BYTES) throw new SyntaxError(`derived key must be ${KEY_BYTES} bytes`);
  return { iterations, salt, key };
}

/** Compare two byte strings in time independent of where they differ. */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** Does `password` match the hash string? Throws `SyntaxError` if the hash is malformed. */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const h = parseHash(hash);
  const key = await pbkdf2Sha256(password, h.salt, h.iterations, h.key.length);
  return timingSafeEqual(key, h.key);
}
