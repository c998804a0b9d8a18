/**
 * The few libc entry points bdsnap needs, through `Deno.dlopen` of
 * `libc.so.6`: `syscall`, `ioctl`, `poll`, `open`/`close`/`pread`/`write`,
 * `mmap`/`munmap`, `pipe2`, `statvfs`, `geteuid` and `__errno_location`.
 *
 * libc is opened lazily, on the first call, so that importing this module
 * (for `--help`, or for the errno tables) needs no FFI permission.
 *
 * Errors: on x86-64 the system calls below go through {@linkcode rawSyscall},
 * and the kernel's own return value carries the errno. Elsewhere (and for
 * statvfs, a libc conversion) libc makes the call and errno is read through
 * `__errno_location` right after it; V8 can run code of its own between the
 * two calls and change errno (raw_syscall.ts says how), so that errno is
 * best effort. Calls made with `nonblocking: true` run on another thread,
 * where errno is out of reach; {@linkcode pollAsync} therefore reports only
 * the return value.
 *
 * @module
 */

import { errnoDescription, errnoName } from "./_errno.ts";
import { rawErrno, rawSyscall } from "./raw_syscall.ts";

export { ERRNO, errnoDescription, errnoName } from "./_errno.ts";

/** A failed system call or libc call, carrying the errno it set. */
export class ErrnoError extends Error {
  /** The errno value, e.g. 1 for EPERM. */
  readonly errno: number;
  /** The errno name, e.g. "EPERM" ("E123" when unknown). */
  readonly code: string;
  /** What was attempted, e.g. "open /dev/bdsnap" or "activate". */
  readonly op: string;

  constructor(op: string, errno: number) {
    super(`${op}: ${errnoDescription(errno)} (${errnoName(errno)})`);
    this.name = "ErrnoError";
    this.errno = errno;
    this.code = errnoName(errno);
    this.op = op;
  }
}

/** open(2) flags (identical on x86-64 and arm64 for these). */
export const O_RDONLY = 0;
/** open(2) flag. */
export const O_WRONLY = 1;
/** open(2) flag. */
export const O_RDWR = 2;
/** open(2) flag. */
export const O_NONBLOCK = 0o4000;
/** open(2) flag. */
export const O_CLOEXEC = 0o2000000;

/** poll(2) event bits. */
export const POLLIN = 0x1;
/** poll(2) event bit: exceptional condition (mount table changed, on mountinfo). */
export const POLLPRI = 0x2;
/** poll(2) event bit. */
export const POLLERR = 0x8;
/** poll(2) event bit. */
export const POLLHUP = 0x10;

/** System call numbers for the architectures bdsnap runs on. */
export const SYS: Readonly<Record<"init_module" | "delete_module" | "finit_module", number>> =
  Deno.build.arch === "aarch64"
    ? { init_module: 105, delete_module: 106, finit_module: 273 }
    : { init_module: 175, delete_module: 176, finit_module: 313 };

/** delete_module(2) flag: fail at once instead of waiting for users to go. */
export const O_NONBLOCK_DELETE = O_NONBLOCK;

/** x86-64 numbers of the calls made through {@linkcode rawSyscall} (it exists only there). */
const NR = {
  write: 1,
  mmap: 9,
  munmap: 11,
  ioctl: 16,
  pread64: 17,
  pwrite64: 18,
  fsync: 74,
  openat: 257,
  pipe2: 293,
  socketpair: 53,
} as const;

/** openat(2)'s "relative to the current directory". */
const AT_FDCWD = -100;

const SYMBOLS = {
  syscall: {
    parameters: ["i64", "u64", "u64", "u64", "u64", "u64", "u64"],
    result: "i64",
  },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  pread: { name: "pread64", parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  pwrite: { name: "pwrite64", parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  // On a worker thread, so that JavaScript fills the next buffer meanwhile.
  pwriteAsync: {
    name: "pwrite64",
    parameters: ["i32", "buffer", "usize", "i64"],
    result: "isize",
    nonblocking: true,
  },
  // ioctl(2) with an integer argument; the blocking one on a worker thread.
  ioctlWord: { name: "ioctl", parameters: ["i32", "u64", "u64"], result: "i32" },
  ioctlWordAsync: {
    name: "ioctl",
    parameters: ["i32", "u64", "u64"],
    result: "i32",
    nonblocking: true,
  },
  readAsync: {
    name: "read",
    parameters: ["i32", "buffer", "usize"],
    result: "isize",
    nonblocking: true,
  },
  socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  fsync: { parameters: ["i32"], result: "i32" },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  statvfs: { parameters: ["buffer", "buffer"], result: "i32" },
  geteuid: { parameters: [], result: "u32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let lib: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;

function libc(): Libc {
  lib ??= Deno.dlopen("libc.so.6", SYMBOLS);
  return lib.symbols;
}

/** The calling thread's errno, read right after a synchronous call. */
export function errno(): number {
  const p = libc().__errno_location();
  return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
}

/**
 * Allocate a zeroed buffer whose memory never moves (always off the V8 heap),
 * so that its address can be stored inside a structure handed to the kernel.
 */
export function alloc(size: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(new ArrayBuffer(size));
}

/** A NUL-terminated UTF-8 copy of `s`, in a buffer from {@linkcode alloc}. */
export function cstring(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(s);
  const buf = alloc(bytes.length + 1);
  buf.set(bytes);
  return buf;
}

/** The address of a buffer from {@linkcode alloc}, as a 64-bit integer (0 for null). */
export function addressOf(buf: Uint8Array<ArrayBuffer> | null): bigint {
  if (buf === null) return 0n;
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/** A system call argument: an integer, or a buffer passed by address. */
export type SyscallArg = number | bigint | Uint8Array<ArrayBuffer> | null;

/** A system call argument as a 64-bit word (buffers by address). */
function word(a: SyscallArg): bigint {
  return a === null ? 0n : a instanceof Uint8Array ? addressOf(a) : BigInt.asUintN(64, BigInt(a));
}

/**
 * The arguments of the raw call in progress. The kernel gets buffers by
 * address only, so something must keep them from the garbage collector
 * until it returns: a write here is a side effect no optimiser drops.
 */
const pinned: { args: readonly SyscallArg[] | null } = { args: null };

/**
 * Make system call `nr` (an x86-64 number) and return its result, or throw
 * {@linkcode ErrnoError}. Without the raw path, `viaLibc` makes the same
 * call through libc: -1 means failure and errno says why.
 */
function sys(op: string, nr: number, args: SyscallArg[], viaLibc: () => bigint): bigint {
  const raw = rawSyscall();
  if (raw === null) {
    const ret = viaLibc();
    if (ret === -1n) throw new ErrnoError(op, errno());
    return ret;
  }
  let ret: bigint;
  pinned.args = args;
  try {
    ret = raw(nr, args.map(word));
  } finally {
    pinned.args = null;
  }
  const err = rawErrno(ret);
  if (err !== 0) throw new ErrnoError(op, err);
  return ret;
}

/**
 * syscall(2): call system call `nr` with up to six arguments.
 * Returns the non-negative result or throws {@linkcode ErrnoError}.
 */
export function syscall(op: string, nr: number, ...args: SyscallArg[]): number {
  if (args.length > 6) throw new RangeError("syscall takes at most 6 arguments");
  return Number(sys(op, nr, args, () => {
    const w = args.map(word);
    while (w.length < 6) w.push(0n);
    return libc().syscall(BigInt(nr), w[0], w[1], w[2], w[3], w[4], w[5]);
  }));
}

/** ioctl(2) with a pointer argument. Returns the result or throws {@linkcode ErrnoError}. */
export function ioctl(
  op: string,
  fd: number,
  request: number,
  arg: Uint8Array<ArrayBuffer>,
): number {
  return Number(
    sys(op, NR.ioctl, [fd, request, arg], () => BigInt(libc().ioctl(fd, BigInt(request), arg))),
  );
}

/** ioctl(2) with an integer argument. Returns the result or throws {@linkcode ErrnoError}. */
export function ioctlWord(op: string, fd: number, request: number, value: number): number {
  return Number(
    sys(
      op,
      NR.ioctl,
      [fd, request, value],
      () => BigInt(libc().ioctlWord(fd, BigInt(request), BigInt(value))),
    ),
  );
}

/**
 * ioctl(2) with an integer argument on a worker thread, for a request that
 * blocks (NBD_DO_IT runs until the device is disconnected). Resolves to the
 * result; the worker thread's errno cannot be read, so -1 is all a failure says.
 */
export async function ioctlWordAsync(fd: number, request: number, value: number): Promise<number> {
  return await libc().ioctlWordAsync(fd, BigInt(request), BigInt(value));
}

/**
 * read(2) on a worker thread: resolves to the byte count, 0 at end of file,
 * or -1 on an error (the worker's errno cannot be read).
 * `buf` must stay unused until the promise settles.
 */
export async function readAsync(fd: number, buf: Uint8Array<ArrayBuffer>): Promise<number> {
  return Number(await libc().readAsync(fd, buf, BigInt(buf.length)));
}

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;

/** socketpair(2) of connected Unix stream sockets, close-on-exec. */
export function socketPair(): [number, number] {
  const fds = alloc(8);
  sys(
    "socketpair",
    NR.socketpair,
    [AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds],
    () => BigInt(libc().socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds)),
  );
  const v = new DataView(fds.buffer);
  return [v.getInt32(0, true), v.getInt32(4, true)];
}

/** open(2). Returns a file descriptor or throws {@linkcode ErrnoError}. */
export function open(path: string, flags: number, mode = 0): number {
  const name = cstring(path);
  const f = flags | O_CLOEXEC;
  return Number(
    sys(
      `open ${path}`,
      NR.openat,
      [AT_FDCWD, name, f, mode],
      () => BigInt(libc().open(name, f, mode)),
    ),
  );
}

/** close(2); errors are ignored (there is nothing useful to do about them). */
export function close(fd: number): void {
  libc().close(fd);
}

/** pread(2). Returns the byte count or throws {@linkcode ErrnoError}. */
export function pread(fd: number, buf: Uint8Array<ArrayBuffer>, offset: number): number {
  const len = BigInt(buf.length);
  return Number(
    sys(
      "read",
      NR.pread64,
      [fd, buf, len, offset],
      () => BigInt(libc().pread(fd, buf, len, BigInt(offset))),
    ),
  );
}

/** pwrite(2). Returns the byte count or throws {@linkcode ErrnoError}. */
export function pwrite(fd: number, buf: Uint8Array<ArrayBuffer>, offset: number): number {
  const len = BigInt(buf.length);
  return Number(
    sys(
      "write",
      NR.pwrite64,
      [fd, buf, len, offset],
      () => BigInt(libc().pwrite(fd, buf, len, BigInt(offset))),
    ),
  );
}

/**
 * pwrite(2) on a worker thread. errno is the worker thread's and cannot be
 * read here: on failure the write is repeated synchronously (a positioned
 * write of the same bytes is idempotent) to throw the right {@linkcode ErrnoError}.
 * `buf` must stay unchanged until the promise settles.
 */
export async function pwriteAsync(
  fd: number,
  buf: Uint8Array<ArrayBuffer>,
  offset: number,
): Promise<number> {
  const n = await libc().pwriteAsync(fd, buf, BigInt(buf.length), BigInt(offset));
  return n === -1n ? pwrite(fd, buf, offset) : Number(n);
}

/**
 * fsync(2), synchronous: a failed fsync cannot be repeated to learn its
 * errno (the error is reported once), so it never runs on another thread.
 */
export function fsync(fd: number): void {
  sys("fsync", NR.fsync, [fd], () => BigInt(libc().fsync(fd)));
}

const PROT_READ = 1;
const MAP_SHARED = 1;

/** A read-only mapping of a file, from {@linkcode mapReadOnly}. */
export interface Mapping {
  /** The mapped bytes; never touched after {@linkcode unmap}. */
  bytes: Uint8Array<ArrayBuffer>;
  /** The mapping's address, for munmap(2). */
  pointer: Deno.PointerObject;
}

/**
 * mmap(2) the first `length` (> 0) bytes of `fd`, read-only and shared: a
 * view of the file's page cache that O_DIRECT writes can take their data
 * from without a copy. Reading past the end of the file raises SIGBUS, so
 * the caller checks the file's size first.
 */
export function mapReadOnly(fd: number, length: number): Mapping {
  const len = BigInt(length);
  // libc's MAP_FAILED, (void *)-1, reads as -1 once signed.
  const address = sys("mmap", NR.mmap, [0, len, PROT_READ, MAP_SHARED, fd, 0], () => {
    const p = libc().mmap(null, len, PROT_READ, MAP_SHARED, fd, 0n);
    return BigInt.asIntN(64, BigInt(Deno.UnsafePointer.value(p)));
  });
  const p = Deno.UnsafePointer.create(address)!;
  return { bytes: new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(p, length)), pointer: p };
}

/** munmap(2) a {@linkcode Mapping}. */
export function unmap(m: Mapping): void {
  const address = BigInt(Deno.UnsafePointer.value(m.pointer));
  const len = BigInt(m.bytes.length);
  sys("munmap", NR.munmap, [address, len], () => BigInt(libc().munmap(m.pointer, len)));
}

/** write(2). Returns the byte count or throws {@linkcode ErrnoError}. */
export function write(fd: number, buf: Uint8Array<ArrayBuffer>): number {
  const len = BigInt(buf.length);
  return Number(sys("write", NR.write, [fd, buf, len], () => libc().write(fd, buf, len)));
}

/** pipe2(2) with O_CLOEXEC|O_NONBLOCK. Returns [read end, write end]. */
export function pipe(): [number, number] {
  const fds = alloc(8);
  const flags = O_CLOEXEC | O_NONBLOCK;
  sys("pipe2", NR.pipe2, [fds, flags], () => BigInt(libc().pipe2(fds, flags)));
  const v = new DataView(fds.buffer);
  return [v.getInt32(0, true), v.getInt32(4, true)];
}

/** One entry of a poll(2) set. */
export interface PollFd {
  fd: number;
  events: number;
}

/**
 * poll(2) on another thread, so the event loop (signal handlers, timers)
 * keeps running. Resolves to the `revents` of each entry, or `null` when
 * poll failed (EINTR and the like; errno is not observable here).
 */
export async function pollAsync(fds: PollFd[], timeoutMs: number): Promise<number[] | null> {
  const buf = alloc(8 * fds.length);
  const v = new DataView(buf.buffer);
  fds.forEach((p, i) => {
    v.setInt32(i * 8, p.fd, true);
    v.setInt16(i * 8 + 4, p.events, true);
  });
  const ret = await libc().poll(buf, BigInt(fds.length), timeoutMs);
  if (ret < 0) return null;
  return fds.map((_, i) => v.getUint16(i * 8 + 6, true));
}

/** Space on the filesystem holding a path, from statvfs(3). */
export interface FsSpace {
  /** Total size in bytes. */
  size: number;
  /** Bytes available to unprivileged users. */
  available: number;
  /** Bytes free (including the root reserve). */
  free: number;
}

/** statvfs(3) (glibc's 64-bit layout). Throws {@linkcode ErrnoError}. */
export function statvfs(path: string): FsSpace {
  const buf = alloc(256);
  if (libc().statvfs(cstring(path), buf) === -1) throw new ErrnoError(`statvfs ${path}`, errno());
  const v = new DataView(buf.buffer);
  // unsigned long f_bsize, f_frsize; fsblkcnt_t f_blocks, f_bfree, f_bavail; …
  const frsize = Number(v.getBigUint64(8, true)) || Number(v.getBigUint64(0, true));
  const blocks = Number(v.getBigUint64(16, true));
  const bfree = Number(v.getBigUint64(24, true));
  const bavail = Number(v.getBigUint64(32, true));
  return { size: blocks * frsize, free: bfree * frsize, available: bavail * frsize };
}

/** geteuid(2). */
export function geteuid(): number {
  return libc().geteuid();
}
