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
import { configDir, DEFAULT_STORE_ROOT, globals, hashFile, report, warn } from "./_lib/context.ts";
import { readStoredHash } from "./setup.ts";
import { configPath, readConfig } from "../lib/config.ts";
import { devString, findDevice } from "../lib/identity.ts";
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

/** Where kernels keep their modules. */
const MODULES_ROOT = "/lib/modules";

/** Suffixes of the compressed forms modules_install and DKMS write (CONFIG_MODULE_COMPRESS_*). */
const COMPRESSED = [".xz", ".zst", ".gz"];

/** The places an installed module is looked for, in modprobe's order of preference. */
const INSTALL_DIRS = ["updates/dkms", "updates", "extra"];

/** Is this module file compressed (the kernel then decompresses it itself)? */
export function isCompressed(ko: string): boolean {
  return COMPRESSED.some((s) => ko.endsWith(s));
}

/** The repository root (where the VM harness keeps its module builds), in a source checkout. */
function repoRoot(): string | null {
  const env = Deno.env.get("BDSNAP_REPO");
  if (env) return env;
  const u = new URL("..", import.meta.url);
  if (u.protocol !== "file:") return null;
  const dir = decodeURIComponent(u.pathname).replace(/\/$/, "");
  // The packaged program has no kmod/ next to it, and no VM builds.
  return isFile(`${dir}/kmod/Kbuild`) ? dir : null;
}

/**
 * The module modprobe would load for kernel `release`: bdsnap's line in
 * modules.dep, which depmod wrote with its own order of preference
 * (updates/dkms/ and updates/ before extra/ and the kernel's tree).
 */
export function modulesDepEntry(release: string, root = MODULES_ROOT): string | null {
  const dir = `${root}/${release}`;
  let dep: string;
  try {
    dep = Deno.readTextFileSync(`${dir}/modules.dep`);
  } catch {
    return null;
  }
  for (const line of dep.split("\n")) {
    const path = line.split(":", 1)[0];
    if (/(^|\/)bdsnap\.ko(\.(xz|zst|gz))?$/.test(path)) {
      return path.startsWith("/") ? path : `${dir}/${path}`;
    }
  }
  return null;
}

/** Where `load` looks for the module, in order, for kernel `release`. */
export function moduleCandidates(
  release: string,
  env: string | undefined = Deno.env.get("BDSNAP_MODULE"),
  root = MODULES_ROOT,
): string[] {
  if (env) return [env];
  const out: string[] = [];
  const dep = modulesDepEntry(release, root);
  if (dep) out.push(dep);
  for (const dir of INSTALL_DIRS) {
    for (const suffix of ["", ...COMPRESSED]) {
      out.push(`${root}/${release}/${dir}/${MODULE_FILE}${suffix}`);
    }
  }
  const repo = repoRoot();
  if (repo) out.push(`${repo}/.cache/vm/build/${release}/${MODULE_FILE}`);
  return [...new Set(out)];
}

function isFile(p: string): boolean {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
}

function exists(p: string): boolean {
  try {
    Deno.lstatSync(p);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** The directory above `path` ("/" for a top-level one). */
function parentOf(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  const at = trimmed.lastIndexOf("/");
  return at <= 0 ? "/" : trimmed.slice(0, at);
}

function baseOf(path: string): string {
  return path.replace(/\/+$/, "").slice(parentOf(path).length).replace(/^\//, "");
}

/**
 * The real path of `path`'s parent when it differs from the path as given
 * (a symbolic link on the way, which the module refuses), else null; null
 * too when the parent does not exist.
 */
function realParent(path: string): string | null {
  if (!path.startsWith("/")) return null;
  const parent = parentOf(path);
  try {
    const real = Deno.realPathSync(parent);
    return real === parent ? null : real;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/**
 * Why the module would refuse this store root (it checks the same at load
 * and at every activation), or null. A missing root is no problem here
 * (see {@linkcode storeRootWarning}).
 */
export function storeRootProblem(root: string): string | null {
  const real = realParent(root);
  if (real !== null) {
    return `the store root ${root} has a symbolic link in its path, which the module refuses: ` +
      `give the path without links, ${real}/${baseOf(root)}`;
  }
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

/**
 * What to tell the admin about a store root that does not exist yet, or
 * null when it exists. The module creates the root itself (0700) at the
 * first activation, but not its parent.
 */
export function storeRootWarning(root: string): string | null {
  if (exists(root)) return null;
  const parent = parentOf(root);
  if (!exists(parent)) {
    return `the store root ${root} does not exist, nor does ${parent}: activations will fail ` +
      `until it does (mkdir -p ${parent})`;
  }
  return `the store root ${root} does not exist: it will be created 0700 at the first activation`;
}

/**
 * A recorded device (`bdsnap activate --persistent`) that holds the store
 * root's filesystem, which the module will refuse to activate: a warning, or
 * null. Only the device itself is compared, not what is stacked on it (the
 * module checks that at activation).
 */
export async function storeOnRecordedDevice(root: string): Promise<string | null> {
  let fsDev: string;
  try {
    let p = root;
    while (!exists(p)) p = parentOf(p);
    fsDev = devString(Deno.statSync(p).dev);
  } catch {
    return null;
  }
  const config = await readConfig(configDir()).catch(() => null);
  for (const d of config?.devices ?? []) {
    const path = d.identity === "" ? d.path : findDevice(d.identity) ?? d.path;
    try {
      const st = Deno.statSync(path);
      if (st.isBlockDevice && st.rdev !== null && devString(st.rdev) === fsDev) {
        return `the store root ${root} is on ${path}, which ${configPath(configDir())} ` +
          "records for activation: the module will refuse to activate it (EXDEV); move the " +
          "store to another device";
      }
    } catch {
      // not present now
    }
  }
  return null;
}

/** Find the module file; a CliError saying how to get one when there is none. */
export function findModule(release: string, explicit?: string, root = MODULES_ROOT): string {
  if (explicit) {
    if (!isFile(explicit)) throw new CliError(`module file not found: ${explicit}`, EXIT_FAILED);
    return explicit;
  }
  const env = Deno.env.get("BDSNAP_MODULE");
  const candidates = moduleCandidates(release, env, root);
  const found = candidates.find(isFile);
  if (found) return found;
  if (env) throw new CliError(`module file not found: ${env} (from BDSNAP_MODULE)`, EXIT_FAILED);
  const repo = repoRoot();
  const looked = [
    `${root}/${release}/modules.dep`,
    `${root}/${release}/{${INSTALL_DIRS.join(",")}}/${MODULE_FILE}[${COMPRESSED.join("|")}]`,
    ...(repo ? [`${repo}/.cache/vm/build/${release}/`] : []),
  ];
  const headers = `${root}/${release}/build`;
  const hint = isFile(`${headers}/Makefile`)
    ? "install the bdsnap-dkms package, or build and install it with " +
      "`make -C kmod && make -C kmod install`"
    : `the kernel headers are missing too: install linux-headers-${release}, then the ` +
      "bdsnap-dkms package (or `make -C kmod && make -C kmod install`)";
  throw new CliError(
    `module ${MODULE_FILE} for kernel ${release} not found (looked in ${looked.join(", ")}): ` +
      `${hint}; or give --module /path/to/${MODULE_FILE}`,
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

/** Is module loading switched off until the next boot (kernel.modules_disabled=1)? */
function modulesDisabled(): boolean {
  try {
    return Deno.readTextFileSync("/proc/sys/kernel/modules_disabled").trim() === "1";
  } catch {
    return false;
  }
}

/** How to get a module signed with an enrolled key; docs/INSTALL.md and bdsnap(8) say more. */
const SECURE_BOOT_STEPS = "DKMS signs the modules it builds with /var/lib/dkms/mok.key: enroll " +
  "its certificate with `mokutil --import /var/lib/dkms/mok.pub`, reboot and confirm in the MOK " +
  "manager (a module from `make -C kmod install` must be signed by hand first); see SECURE BOOT " +
  "in `man 8 bdsnap`, or docs/INSTALL.md";

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
      if (modulesDisabled()) {
        return new CliError(
          `the kernel refused ${ko} (EPERM): module loading is switched off until the next ` +
            "boot (kernel.modules_disabled=1)",
          EXIT_PERMISSION,
        );
      }
      const mode = lockdownMode();
      return new CliError(
        `the kernel refused ${ko} (EPERM)` +
          (mode && mode !== "none" ? `: kernel lockdown is "${mode}" (Secure Boot)` : "") +
          "; under Secure Boot only modules signed with an enrolled key load. " +
          SECURE_BOOT_STEPS,
        EXIT_PERMISSION,
      );
    }
    case "EKEYREJECTED":
    case "ENOKEY":
    case "EKEYEXPIRED":
    case "EKEYREVOKED":
      return new CliError(
        `the kernel rejected the signature of ${ko} (${name}): Secure Boot requires modules ` +
          `signed with an enrolled key. ${SECURE_BOOT_STEPS}`,
        EXIT_PERMISSION,
      );
    case "EOPNOTSUPP":
      if (isCompressed(ko)) {
        return new CliError(
          `this kernel cannot decompress ${ko} (EOPNOTSUPP): decompress it (\`xz -dk\`, ` +
            "`zstd -d`, `gunzip -k`) and give the .ko with --module",
          EXIT_FAILED,
        );
      }
      break;
    case "ENOEXEC":
      return new CliError(
        `${ko} is not a module for kernel ${release} (ENOEXEC): rebuild it for this kernel, ` +
          `with \`dkms autoinstall -k ${release}\` or \`make -C kmod\` against ` +
          `linux-headers-${release}`,
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
  }
  return new CliError(
    `loading ${ko} failed: ${errnoDescription(errno)} (${name}); \`dmesg | tail\` may say more`,
    EXIT_FAILED,
  );
}

/** finit_module(2) flag: the file is compressed, the kernel decompresses it (5.17+). */
const MODULE_INIT_COMPRESSED_FILE = 4;

/** Load `ko` with finit_module(2) and the parameter string `params`. */
export function finitModule(ko: string, params: string): void {
  const fd = open(ko, O_RDONLY);
  try {
    const enc = new TextEncoder().encode(params);
    const buf = new Uint8Array(new ArrayBuffer(enc.length + 1));
    buf.set(enc);
    const flags = isCompressed(ko) ? MODULE_INIT_COMPRESSED_FILE : 0;
    syscall("finit_module", SYS.finit_module, fd, buf, flags);
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
      "\nThe module is --module, else $BDSNAP_MODULE, else the one modprobe would load (its\n" +
        "line in /lib/modules/$(uname -r)/modules.dep), else bdsnap.ko (or .ko.xz, .ko.zst,\n" +
        ".ko.gz) in /lib/modules/$(uname -r)/updates/dkms/, updates/ or extra/, else a source\n" +
        "checkout's .cache/vm/build/$(uname -r)/. The store root is --store DIR (default\n" +
        "/snapshot); a missing one is created 0700 at the first activation.",
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

/** Load `ko` with the stored password hash, `--store` and `params`, and report it. */
export async function loadWith(
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
  const root = opts.store ?? DEFAULT_STORE_ROOT;
  const problem = storeRootProblem(root);
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
  const missing = storeRootWarning(root);
  if (missing) warn(opts, missing);
  const onRecorded = await storeOnRecordedDevice(root);
  if (onRecorded) warn(opts, onRecorded);
  let syscalls: control.SyscallNumbers | null = null;
  try {
    syscalls = control.syscallNumbers();
  } catch {
    // published a moment later, or not at all: reported as null
  }
  const storeRoot = control.readParameter("store_root") ?? root;
  report(
    opts,
    `loaded ${ko} (store ${storeRoot}` +
      (syscalls ? `, system calls ${syscalls.activate}/${syscalls.deactivate}` : "") + ")",
    { module: ko, release, store_root: storeRoot, syscalls, password_set: hash !== null },
  );
}
