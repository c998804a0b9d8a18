/**
 * `bdsnap load` and the module-finding rules it shares with `bdsnap unload`.
 *
 * The module is loaded with finit_module(2) through FFI (what insmod does),
 * which gives the exact errno for the messages below and keeps the password
 * hash off any child's command line.
 * @module
 */

import type { Command } from "./_lib/commander.ts";
import { CliError, EXIT_FAILED, EXIT_PERMISSION, EXIT_USAGE } from "./_lib/errors.ts";
import { globals, hashFile, report, warn } from "./_lib/context.ts";
import { readStoredHash } from "./setup.ts";
import * as control from "../ffi/control.ts";
import {
  close,
  errnoDescription,
  ErrnoError,
  errnoName,
  geteuid,
  O_RDONLY,
  open,
  SYS,
  syscall,
} from "../ffi/libc.ts";

/** The module's file name. */
export const MODULE_FILE = "bdsnap.ko";

/** The repository root (where the VM harness keeps its module builds). */
function repoRoot(): string | null {
  const env = Deno.env.get("BDSNAP_REPO");
  if (env) return env;
  const u = new URL("..", import.meta.url);
  return u.protocol === "file:" ? decodeURIComponent(u.pathname).replace(/\/$/, "") : null;
}

/** Where `load` looks for the module, in order, for kernel `release`. */
export function moduleCandidates(
  release: string,
  env: string | undefined = Deno.env.get("BDSNAP_MODULE"),
): string[] {
  const out: string[] = [];
  if (env) return [env];
  out.push(`/lib/modules/${release}/extra/${MODULE_FILE}`);
  out.push(`/lib/modules/${release}/updates/${MODULE_FILE}`);
  const repo = repoRoot();
  if (repo) out.push(`${repo}/.cache/vm/build/${release}/${MODULE_FILE}`);
  return out;
}

function isFile(p: string): boolean {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
}

const DEFAULT_STORE_ROOT = "/snapshot";

/**
 * Why the module would refuse this store root (it checks the same at load
 * and at every activation), or null. A missing root is fine: the first
 * activation creates it, 0700.
 */
export function storeRootProblem(root: string): string | null {
  let st: Deno.FileInfo;
  try {
    st = Deno.lstatSync(root);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  const why = st.isSymlink
    ? "is a symbolic link (give its target)"
    : !st.isDirectory
    ? "is not a directory"
    : st.uid !== 0
    ? `is owned by uid ${st.uid}, not root`
    : ((st.mode ?? 0) & 0o022) !== 0
    ? `is writable by group or others (mode ${((st.mode ?? 0) & 0o7777).toString(8)})`
    : null;
  return why === null ? null : `the store root ${root} ${why}: it must be a directory owned ` +
    "by root and not writable by group or others, so that nobody else can redirect or read " +
    "the pre-images";
}

/** Find the module file; a CliError saying how to get one when there is none. */
export function findModule(release: string, explicit?: string): string {
  if (explicit) {
    if (!isFile(explicit)) throw new CliError(`module file not found: ${explicit}`, EXIT_FAILED);
    return explicit;
  }
  const env = Deno.env.get("BDSNAP_MODULE");
  const candidates = moduleCandidates(release, env);
  const found = candidates.find(isFile);
  if (found) return found;
  if (env) throw new CliError(`module file not found: ${env} (from BDSNAP_MODULE)`, EXIT_FAILED);
  const headers = `/lib/modules/${release}/build`;
  const hint = isFile(`${headers}/Makefile`)
    ? `build it with \`make -C kmod\` and install it to ${candidates[0]}`
    : `the kernel headers are missing too: install linux-headers-${release}, then build with \`make -C kmod\``;
  throw new CliError(
    `module ${MODULE_FILE} for kernel ${release} not found (looked in ${candidates.join(", ")}): ` +
      `${hint}, or set BDSNAP_MODULE=/path/to/${MODULE_FILE}`,
    EXIT_FAILED,
  );
}

/** Parameters given on the command line must look like NAME=VALUE (or a bare NAME for booleans). */
export function checkParams(params: string[]): string[] {
  for (const p of params) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(=.*)?$/s.exec(p);
    if (!m) throw new CliError(`bad module parameter "${p}": use NAME=VALUE`, EXIT_USAGE);
    if (m[1] === "passwd_hash") {
      throw new CliError(
        "passwd_hash comes from `bdsnap setup`, not from the command line",
        EXIT_USAGE,
      );
    }
    if (m[1] === "store_root") {
      throw new CliError("give the store root with --store DIR", EXIT_USAGE);
    }
  }
  return params;
}

/** Quote a parameter value for the kernel's parse_args if it holds blanks or quotes. */
export function paramArg(name: string, value: string): string {
  return /[\s"]/.test(value) ? `${name}="${value.replaceAll('"', "")}"` : `${name}=${value}`;
}

/** The current kernel lockdown mode ("none", "integrity", "confidentiality"), if known. */
export function lockdownMode(): string | null {
  try {
    const text = Deno.readTextFileSync("/sys/kernel/security/lockdown");
    return /\[(\w+)\]/.exec(text)?.[1] ?? null;
  } catch {
    return null;
  }
}

/** The user message for a failed finit_module(2). */
export function explainLoadError(
  errno: number,
  ko: string,
  release: string,
  euid: number,
): CliError {
  const name = errnoName(errno);
  switch (name) {
    case "EPERM": {
      if (euid !== 0) {
        return new CliError(`not root (EPERM): loading a module needs root`, EXIT_PERMISSION);
      }
      const mode = lockdownMode();
      return new CliError(
        `the kernel refused ${ko} (EPERM)` +
          (mode && mode !== "none" ? `: kernel lockdown is "${mode}" (Secure Boot)` : "") +
          "; an unsigned module cannot load under Secure Boot: sign bdsnap.ko with a key enrolled " +
          "in the MOK list, or disable Secure Boot",
        EXIT_PERMISSION,
      );
    }
    case "EKEYREJECTED":
    case "ENOKEY":
    case "EKEYEXPIRED":
    case "EKEYREVOKED":
      return new CliError(
        `the kernel rejected the signature of ${ko} (${name}): Secure Boot requires modules signed ` +
          "with an enrolled key; sign it with your MOK key or disable Secure Boot",
        EXIT_PERMISSION,
      );
    case "ENOEXEC":
      return new CliError(
        `${ko} is not a module for kernel ${release} (ENOEXEC): rebuild it with \`make -C kmod\` ` +
          `against linux-headers-${release}`,
        EXIT_FAILED,
      );
    case "EEXIST":
      return new CliError("module already loaded (EEXIST): `bdsnap unload` first", EXIT_FAILED);
    case "ENOENT":
      return new CliError(
        `${ko} needs kernel symbols this kernel lacks (ENOENT); \`dmesg\` names them`,
        EXIT_FAILED,
      );
    case "ENOSYS":
      return new CliError(
        "this kernel cannot load modules (ENOSYS): it was built without module support, or a " +
          "sandbox forbids it",
        EXIT_FAILED,
      );
    case "EINVAL":
    case "EBUSY":
      return new CliError(
        `the module refused to start (${name}): a parameter is invalid or a system call slot is ` +
          "taken; `dmesg | tail` says which",
        EXIT_FAILED,
      );
    default:
      return new CliError(
        `loading ${ko} failed: ${errnoDescription(errno)} (${name}); \`dmesg | tail\` may say more`,
        EXIT_FAILED,
      );
  }
}

/** Load `ko` with finit_module(2) and the parameter string `params`. */
export function finitModule(ko: string, params: string): void {
  const fd = open(ko, O_RDONLY);
  try {
    const enc = new TextEncoder().encode(params);
    const buf = new Uint8Array(new ArrayBuffer(enc.length + 1));
    buf.set(enc);
    syscall("finit_module", SYS.finit_module, fd, buf, 0);
  } finally {
    close(fd);
  }
}

/** Register `load`. */
export function register(program: Command): void {
  program
    .command("load")
    .description("load the kernel module with the stored password hash and parameters")
    .argument("[params...]", "extra module parameters, NAME=VALUE (e.g. inflight_limit_mb=128)")
    .option(
      "--module <file>",
      "the bdsnap.ko to load (default: $BDSNAP_MODULE, then the usual places)",
    )
    .addHelpText(
      "after",
      "\nThe module is looked for in $BDSNAP_MODULE, /lib/modules/$(uname -r)/extra/bdsnap.ko,\n" +
        "/lib/modules/$(uname -r)/updates/bdsnap.ko and the repository's .cache/vm/build/$(uname -r)/.\n" +
        "The store root is --store DIR (default /snapshot).",
    )
    .action((params: string[], o: { module?: string }, cmd: Command) => {
      const opts = globals(cmd);
      checkParams(params);
      if (control.isLoaded()) {
        throw new CliError(
          "module already loaded: run `bdsnap unload` first to reload it",
          EXIT_FAILED,
        );
      }
      const release = Deno.osRelease();
      const ko = findModule(release, o.module);
      return loadWith(opts, ko, release, params);
    });
}

async function loadWith(
  opts: ReturnType<typeof globals>,
  ko: string,
  release: string,
  params: string[],
): Promise<void> {
  const hash = await readStoredHash();
  const all: string[] = [];
  if (hash) all.push(paramArg("passwd_hash", hash));
  if (opts.store) all.push(paramArg("store_root", opts.store));
  all.push(...params);
  const problem = storeRootProblem(opts.store ?? DEFAULT_STORE_ROOT);
  if (problem) throw new CliError(problem, EXIT_FAILED, { code: "invalid" });
  const euid = geteuid();
  try {
    finitModule(ko, all.join(" "));
  } catch (e) {
    if (e instanceof ErrnoError && e.op === "finit_module") {
      throw explainLoadError(e.errno, ko, release, euid);
    }
    if (e instanceof ErrnoError) {
      throw new CliError(
        `cannot open ${ko}: ${errnoDescription(e.errno)} (${e.code})`,
        e.code === "EACCES" ? EXIT_PERMISSION : EXIT_FAILED,
      );
    }
    throw e;
  }
  if (!hash) {
    warn(
      opts,
      `no password set (${hashFile()} missing): run \`bdsnap setup\` before activating devices`,
    );
  }
  let syscalls: control.SyscallNumbers | null = null;
  try {
    syscalls = control.syscallNumbers();
  } catch {
    // published a moment later, or not at all: reported as null
  }
  const storeRoot = control.readParameter("store_root") ?? opts.store ?? "/snapshot";
  report(
    opts,
    `loaded ${ko} (store ${storeRoot}` +
      (syscalls ? `, system calls ${syscalls.activate}/${syscalls.deactivate}` : "") + ")",
    { module: ko, release, store_root: storeRoot, syscalls, password_set: hash !== null },
  );
}
