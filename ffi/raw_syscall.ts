/**
 * System calls that return the kernel's own result, `-errno` on failure,
 * instead of libc's `-1` with errno set.
 *
 * Through Deno's FFI, errno can only be read by a second call after the
 * first has returned, and V8 runs code of its own in between: it spawns its
 * worker threads lazily and calibrates its clock on first use, and the
 * failed `openat` of `/sys/devices/system/cpu/cpu0/tsc_freq_khz` that this
 * does left ENOENT in errno where the kernel had returned EPERM (seen in a
 * VM under strace, 3 calls in 12). A wrong errno is a wrong answer to the
 * admin (a refused password reported as a missing device) and a wrong exit
 * code for cron and systemd.
 *
 * So on x86-64 the call goes through a trampoline of ten instructions that moves
 * the arguments into the kernel's registers, executes `syscall` and returns
 * rax as it is: nothing runs between the kernel's answer and ours. The trampoline
 * lives in a page of its own, written and then made read-only and
 * executable (never writable and executable at once); V8 needs the same
 * kind of memory for its JIT, so wherever Deno runs, this can be had. On
 * other architectures {@linkcode rawSyscall} returns `null` and callers use
 * libc and errno.
 *
 * @module
 */

/** Calls system call `nr` with six argument words; returns rax (`-errno` on failure). */
export type RawSyscall = (nr: number | bigint, args: readonly bigint[]) => bigint;

/**
 * The trampoline, System V calling convention in, kernel convention out:
 * (nr, a0…a4 in rdi, rsi, rdx, rcx, r8, r9; a5 on the stack) →
 * (rax, rdi, rsi, rdx, r10, r8, r9). `syscall` clobbers rcx and r11, both
 * caller-saved.
 */
// deno-fmt-ignore
const TRAMPOLINE_X86_64 = new Uint8Array([
  0xf3, 0x0f, 0x1e, 0xfa,       // endbr64 (a no-op where IBT is off)
  0x48, 0x89, 0xf8,             // mov rax, rdi
  0x48, 0x89, 0xf7,             // mov rdi, rsi
  0x48, 0x89, 0xd6,             // mov rsi, rdx
  0x48, 0x89, 0xca,             // mov rdx, rcx
  0x4d, 0x89, 0xc2,             // mov r10, r8
  0x4d, 0x89, 0xc8,             // mov r8, r9
  0x4c, 0x8b, 0x4c, 0x24, 0x08, // mov r9, [rsp+8]
  0x0f, 0x05,                   // syscall
  0xc3,                         // ret
]);

const PAGE = 4096;
const PROT_READ = 1;
const PROT_WRITE = 2;
const PROT_EXEC = 4;
const MAP_PRIVATE = 0x02;
const MAP_ANONYMOUS = 0x20;

const WORDS = ["u64", "u64", "u64", "u64", "u64", "u64"] as const;
const TRAMPOLINE_SIGNATURE = { parameters: ["i64", ...WORDS], result: "i64" } as const;

let trampoline: RawSyscall | null | undefined;

/** The raw system call, or `null` where there is no trampoline (not x86-64, or no executable page). */
export function rawSyscall(): RawSyscall | null {
  if (trampoline === undefined) trampoline = makeTrampoline();
  return trampoline;
}

function makeTrampoline(): RawSyscall | null {
  if (Deno.build.arch !== "x86_64" || Deno.build.os !== "linux") return null;
  const mm = Deno.dlopen("libc.so.6", {
    mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
    mprotect: { parameters: ["pointer", "usize", "i32"], result: "i32" },
  });
  try {
    const flags = MAP_PRIVATE | MAP_ANONYMOUS;
    const page = mm.symbols.mmap(null, BigInt(PAGE), PROT_READ | PROT_WRITE, flags, -1, 0n);
    // MAP_FAILED is (void *)-1.
    if (page === null || Deno.UnsafePointer.value(page) === 0xffff_ffff_ffff_ffffn) return null;
    new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(page, PAGE)).set(TRAMPOLINE_X86_64);
    if (mm.symbols.mprotect(page, BigInt(PAGE), PROT_READ | PROT_EXEC) !== 0) return null;
    const entry = page as Deno.PointerObject<typeof TRAMPOLINE_SIGNATURE>;
    const fn = new Deno.UnsafeFnPointer(entry, TRAMPOLINE_SIGNATURE);
    return (nr, args) => {
      if (args.length > 6) throw new RangeError("a system call takes at most 6 arguments");
      const w = [0n, 0n, 0n, 0n, 0n, 0n];
      args.forEach((a, i) => w[i] = BigInt.asUintN(64, a));
      return BigInt(fn.call(BigInt(nr), w[0], w[1], w[2], w[3], w[4], w[5]));
    };
  } finally {
    // The page stays mapped for the life of the process; only the handle goes.
    mm.close();
  }
}

/** The errno of a raw result, or 0 if it is not an error (-4095..-1 are errors). */
export function rawErrno(ret: bigint): number {
  return ret < 0n && ret >= -4095n ? Number(-ret) : 0;
}
