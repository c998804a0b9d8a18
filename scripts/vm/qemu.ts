/**
 * Boot a provisioned kernel under QEMU and run one command in it.
 *
 * Guest layout: host root read-only over 9p with a tmpfs overlay; the
 * kernel's modules under /lib/modules; N test disks (sparse raw files,
 * serials bdsnap-disk0..) and a store disk (serial bdsnap-store, ext4,
 * mounted at /snapshot); the repository at the same path as on the host.
 * The kernel console (ttyS0) goes to a log file; the command's output comes
 * back on ttyS1 and is streamed to our stdout.
 * @module
 */
import { type Kernel, slowFactor } from "./kernels.ts";
import { ensureInitramfs } from "./initramfs.ts";
import { fixturesDir } from "./kmod.ts";
import { type GateFinding, scanKernelLog } from "./dmesg_gate.ts";
import { log, runChecked } from "./_process.ts";
import { cacheDir, REPO } from "./paths.ts";

/** What to run and on what virtual hardware. */
export interface VmOptions {
  kernel: Kernel;
  /** Shell command run by bash in the guest, in the repository directory. */
  command: string;
  /** Number of test disks. */
  disks?: number;
  /** Size of each test disk in bytes. */
  diskSize?: number;
  /** Size of the store disk in bytes; 0 for none. */
  storeSize?: number;
  /** Existing disk images to attach instead of fresh ones (power-cut tests). */
  diskFiles?: string[];
  /**
   * Serials of the test disks, in attach order (default bdsnap-disk0, 1, …):
   * a serial follows its image, so attaching images in another order
   * renumbers the guest's /dev/vd* as a reboot can (the reboot test).
   */
  diskSerials?: string[];
  storeFile?: string;
  /** Guest memory in MiB. */
  memory?: number;
  cpus?: number;
  /** Wall-clock limit in seconds; the VM is killed after it. */
  timeout?: number;
  /**
   * Seconds the guest may take to reach its command (default 300, times the
   * kernel's slow factor); a boot that takes longer is killed as hung.
   */
  bootTimeout?: number;
  /** Environment for the guest command. */
  env?: Record<string, string>;
  /** Print the guest's output as it comes. */
  stream?: boolean;
  /** Keep the run directory (logs, disks) even when the run passed. */
  keep?: boolean;
  /** Force an accelerator instead of probing. */
  accel?: "kvm" | "tcg";
  /** Extra kernel command line. */
  append?: string;
  /** Do not mention kept run directories (the KVM probe cleans up itself). */
  silent?: boolean;
  /** Called with the QEMU child once started (power-cut tests kill it). */
  onStart?: (child: Deno.ChildProcess) => void;
  /** Called with the guest command's output as it arrives (power-cut tests time the kill). */
  onOutput?: (text: string) => void;
  /**
   * A directory to boot as the guest's root instead of the host's (default
   * "/"): a server of another Debian release (guest_root.ts). It must hold
   * bash, coreutils, util-linux and kmod for stage 2, and the kernel's
   * modules at /lib/modules/<release>. The repository is mounted at its own
   * path, read-only with a tmpfs overlay like the root.
   */
  root?: string;
  /** Host directories mounted at their own paths in the guest, read-only with a tmpfs overlay. */
  shares?: string[];
}

/** How a run ended. */
export interface VmResult {
  /** The guest command's exit status, or null if it never reported one. */
  status: number | null;
  output: string;
  console: string;
  dmesg: string;
  findings: GateFinding[];
  timedOut: boolean;
  /** The guest never reached its command within `bootTimeout`. */
  bootHung: boolean;
  /** Seconds from QEMU start to the guest command starting. */
  bootSeconds: number | null;
  totalSeconds: number;
  /** Guest time by kind of shell step (bdsnap, sha256, mkfs…): count and seconds. */
  profile: Record<string, { count: number; seconds: number }>;
  accel: "kvm" | "tcg";
  runDir: string;
  disks: string[];
  store: string | null;
  /** True when the command exited 0 and the kernel log is clean. */
  ok: boolean;
}

const READY = "\u0001BDSNAP-VM-READY\u0001\n";
const GiB = 1024 ** 3;

/** Boot, run, collect. Never throws for guest failures: see VmResult.ok. */
export async function runVm(opts: VmOptions): Promise<VmResult> {
  const accel = opts.accel ?? await probeAccel(opts.kernel);
  return await boot(opts, accel);
}

/**
 * runVm, and again (up to BOOT_ATTEMPTS boots) while the guest fails before
 * its command starts: an int3 oops from kernel text patching, or a hang, in
 * early boot under TCG. Nothing of ours had run, so such a boot tested nothing
 * and left the disks as they were. CI once saw two in a row on 6.12, so one
 * retry was not enough. `onRetry` is told why, with the failed run's logs.
 */
export async function runVmRetryingBoot(
  opts: VmOptions,
  onRetry: (why: string, failed: VmResult) => void,
): Promise<VmResult> {
  for (let attempt = 1;; attempt++) {
    const r = await runVm(opts);
    if (r.bootSeconds !== null || r.timedOut || attempt === BOOT_ATTEMPTS) return r;
    onRetry(
      r.bootHung
        ? "boot hung"
        : r.findings.map((f) => `${f.kind}: ${f.line}`).join("; ") || "no exit status",
      r,
    );
  }
}

/** Boots runVmRetryingBoot tries before it reports an early-boot failure. */
export const BOOT_ATTEMPTS = 3;

async function boot(opts: VmOptions, accel: "kvm" | "tcg"): Promise<VmResult> {
  const k = opts.kernel;
  const initrd = await ensureInitramfs(k);
  await Deno.mkdir(`${cacheDir()}/runs`, { recursive: true });
  const runDir = await Deno.makeTempDir({
    dir: `${cacheDir()}/runs`,
    prefix: `${k.series}-${stamp()}-`,
  });
  const results = `${runDir}/shared`;
  await Deno.mkdir(results);

  const diskSize = opts.diskSize ?? GiB;
  const disks: string[] = opts.diskFiles ?? [];
  if (!opts.diskFiles) {
    for (let i = 0; i < (opts.disks ?? 2); i++) {
      const f = `${runDir}/disk${i}.img`;
      await sparseFile(f, diskSize);
      disks.push(f);
    }
  }
  let store: string | null = opts.storeFile ?? null;
  const storeSize = opts.storeSize ?? 2 * GiB;
  if (!store && storeSize > 0) {
    store = `${runDir}/store.img`;
    await sparseFile(store, storeSize);
    await runChecked("mkfs.ext4", ["-q", "-F", "-E", "nodiscard", "-L", "bdsnap-store", store]);
  }

  const env: Record<string, string> = {
    BDSNAP_REPO: REPO,
    BDSNAP_DENO: Deno.execPath(),
    BDSNAP_KERNEL_RELEASE: k.release,
    BDSNAP_KERNEL_SERIES: k.series,
    BDSNAP_MODULE: `${cacheDir()}/build/${k.release}/bdsnap.ko`,
    BDSNAP_VM_BUILD: `${cacheDir()}/build/${k.release}`,
    BDSNAP_FIXTURES: fixturesDir(k),
    DENO_DIR: denoDir(),
    DENO_NO_UPDATE_CHECK: "1",
    NO_COLOR: "1",
    // tests/vm/_helpers.ts adds each shell step's time here (VmResult.profile).
    BDSNAP_PROFILE: "/run/bdsnap-vm/profile.jsonl",
    ...opts.env,
  };
  await Deno.writeTextFile(
    `${results}/env`,
    Object.entries(env).map(([key, v]) => `${key}=${shellQuote(v)}`).join("\n") + "\n",
  );
  await Deno.writeTextFile(`${results}/cmd.sh`, opts.command + "\n");

  const consoleLog = `${runDir}/console.log`;
  const root = opts.root ?? "/";
  // A root of its own does not hold the repository (stage 2 lives there).
  const shares = root === "/" ? opts.shares ?? [] : [REPO, ...opts.shares ?? []];
  for (const s of shares) {
    if (!/^\/[^\s,]*$/.test(s)) {
      throw new Error(`share '${s}': an absolute path without spaces or commas`);
    }
  }
  const append = [
    "console=ttyS0",
    "loglevel=5",
    "panic=-1",
    "oops=panic",
    "nokaslr",
    "mitigations=off",
    "tsc=reliable",
    "no_timer_check",
    "8250.nr_uarts=2",
    "random.trust_cpu=on",
    `bdsnap.stage2=${REPO}/scripts/vm/guest/stage2.sh`,
    `bdsnap.release=${k.release}`,
    // A root of its own has the kernel's modules in place already.
    `bdsnap.modules=${root === "/" ? k.modules : `/lib/modules/${k.release}`}`,
    shares.length > 0 ? `bdsnap.shares=${shares.join(",")}` : "",
    `bdsnap.overlay=${Math.floor((opts.memory ?? 2048) / 2)}M`,
    // Under TCG a vCPU thread the host does not schedule for a while looks,
    // from inside, like a CPU stuck in the kernel: soft-lockup and RCU-stall
    // reports came from user mode and from a boot before our module loaded
    // (2026-12-01, both cores busy). The detectors stay on, with the longest
    // thresholds the kernel allows for the soft one (2 × 60 s) and 120 s for RCU.
    accel === "tcg" ? "watchdog_thresh=60 rcupdate.rcu_cpu_stall_timeout=120" : "",
    k.append ?? "",
    opts.append ?? "",
  ].filter(Boolean).join(" ");

  const args = [
    "-nodefaults",
    "-no-user-config",
    "-no-reboot",
    "-display",
    "none",
    "-machine",
    accel === "kvm" ? "q35,accel=kvm" : "q35,accel=tcg",
    "-cpu",
    accel === "kvm" ? "host" : "max",
    "-smp",
    String(opts.cpus ?? 2),
    "-m",
    String(opts.memory ?? 2048),
    "-kernel",
    k.vmlinuz,
    "-initrd",
    initrd,
    "-append",
    append,
    "-serial",
    `file:${consoleLog}`,
    "-chardev",
    "stdio,id=out,signal=off",
    "-serial",
    "chardev:out",
    "-virtfs",
    `local,path=${root},mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap`,
    "-virtfs",
    `local,path=${results},mount_tag=results,security_model=none,multidevs=remap`,
  ];
  shares.forEach((s, i) =>
    args.push(
      "-virtfs",
      `local,path=${s},mount_tag=share${i},security_model=none,readonly=on,multidevs=remap`,
    )
  );
  // discard=unmap on the test disks: a discard in the guest punches a hole in
  // the sparse file, so it reads back zeroes. A discard that got past a
  // session would then change the device, and the tests' sha256 would see it.
  const attach = (file: string, serial: string, i: number, discard: boolean) => {
    args.push(
      "-drive",
      `file=${file},if=none,id=d${i},format=raw,cache=writethrough,aio=threads` +
        (discard ? ",discard=unmap" : ""),
      "-device",
      `virtio-blk-pci,drive=d${i},serial=${serial}`,
    );
  };
  disks.forEach((f, i) => attach(f, opts.diskSerials?.[i] ?? `bdsnap-disk${i}`, i, true));
  if (store) attach(store, "bdsnap-store", disks.length, false);

  const started = performance.now();
  const child = new Deno.Command("qemu-system-x86_64", {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  opts.onStart?.(child);

  let timedOut = false;
  const timeout = opts.timeout ?? 900;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, timeout * 1000);

  let bootSeconds: number | null = null;
  // An early-boot hang (seen under TCG before anything of ours runs) should
  // not cost the whole run's limit.
  let bootHung = false;
  const bootTimer = setTimeout(() => {
    if (bootSeconds !== null) return;
    bootHung = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, (opts.bootTimeout ?? 300 * slowFactor(k)) * 1000);

  let output = "";
  const dec = new TextDecoder();
  const stderrText = new Response(child.stderr).text();
  let pending = "";
  // Written as it arrives, so a long run can be followed with tail -f.
  const live = await Deno.open(`${runDir}/output.log`, { write: true, create: true });
  const enc = new TextEncoder();
  for await (const chunk of child.stdout) {
    let text = dec.decode(chunk, { stream: true });
    if (bootSeconds === null) {
      // Nothing but the marker comes before the command: hold output until it arrives.
      pending += text;
      const at = pending.indexOf(READY);
      if (at < 0) continue;
      bootSeconds = (performance.now() - started) / 1000;
      text = pending.slice(0, at) + pending.slice(at + READY.length);
      pending = "";
    }
    output += text;
    opts.onOutput?.(text);
    await live.write(enc.encode(text));
    if (opts.stream) await Deno.stdout.write(enc.encode(text));
  }
  output += pending; // the marker never came: keep whatever the guest said
  await live.write(enc.encode(pending));
  live.close();
  const exit = await child.status;
  clearTimeout(timer);
  clearTimeout(bootTimer);
  const qemuErr = await stderrText;
  const totalSeconds = (performance.now() - started) / 1000;

  const read = (p: string) => Deno.readTextFile(p).catch(() => "");
  const statusText = (await read(`${results}/status`)).trim();
  const status = statusText === "" ? null : Number(statusText);
  const consoleText = await read(consoleLog);
  const dmesg = await read(`${results}/dmesg.txt`);
  // Written by the guest only when the kernel has kmemleak (the debug kernel).
  const kmemleak = await read(`${results}/kmemleak.txt`);
  const findings = scanKernelLog([consoleText, dmesg, kmemleak].join("\n"));
  const profile = parseProfile(await read(`${results}/profile.jsonl`));
  if (bootHung) output += `\n[vm] the guest did not reach its command in time (boot hung)\n`;
  else if (!exit.success && status === null && !timedOut) {
    output += `\n[vm] qemu exited with ${exit.code}: ${qemuErr.trim()}\n`;
  }
  const ok = status === 0 && findings.length === 0 && !timedOut;
  if ((!ok || opts.keep) && !opts.silent) {
    log(`run kept in ${runDir} (console.log, shared/dmesg.txt, output.log)`);
  }
  if (!opts.keep && !opts.diskFiles) {
    // Disk images are large; logs of failed runs stay for inspection.
    for (const f of [...disks, ...(opts.storeFile ? [] : store ? [store] : [])]) {
      await Deno.remove(f).catch(() => {});
    }
    if (ok) await Deno.remove(runDir, { recursive: true }).catch(() => {});
  }
  return {
    status,
    output,
    console: consoleText,
    dmesg,
    findings,
    timedOut,
    bootHung,
    bootSeconds,
    totalSeconds,
    profile,
    accel,
    runDir,
    disks,
    store,
    ok,
  };
}

/**
 * KVM when it really works, else TCG. /dev/kvm existing is not enough: on
 * our machines a KVM guest hangs at boot, so probe with a short boot and
 * remember the answer until the host reboots.
 */
export async function probeAccel(k: Kernel): Promise<"kvm" | "tcg"> {
  const forced = Deno.env.get("BDSNAP_VM_ACCEL");
  if (forced === "kvm" || forced === "tcg") return forced;
  try {
    const f = await Deno.open("/dev/kvm", { read: true, write: true });
    f.close();
  } catch {
    return "tcg";
  }
  const bootId = (await Deno.readTextFile("/proc/sys/kernel/random/boot_id")).trim();
  // Per host boot, so under /run when we may write there: every clone on
  // this machine (CI's fresh one too) shares the answer instead of probing.
  const memoDir = Deno.uid() === 0 ? "/run/bdsnap-vm" : cacheDir();
  const memo = `${memoDir}/accel-${bootId}.txt`;
  try {
    const v = (await Deno.readTextFile(memo)).trim();
    if (v === "kvm" || v === "tcg") return v;
  } catch {
    // not probed yet on this boot
  }
  log("probing KVM with a short boot");
  const r = await boot({
    kernel: k,
    command: "true",
    disks: 0,
    storeSize: 0,
    memory: 512,
    cpus: 1,
    timeout: 20,
    silent: true,
  }, "kvm");
  const accel = r.status === 0 ? "kvm" : "tcg";
  if (accel === "tcg") {
    log("KVM guest did not come up: using TCG (software emulation)");
    await Deno.remove(r.runDir, { recursive: true }).catch(() => {});
  }
  await Deno.mkdir(memoDir, { recursive: true });
  await Deno.writeTextFile(memo, accel + "\n");
  return accel;
}

function denoDir(): string {
  return Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;
}

async function sparseFile(path: string, size: number): Promise<void> {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  await f.truncate(size);
  f.close();
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

function stamp(): string {
  return new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "");
}

/** Sum the guest's profile lines ({"kind","seconds"} per step) by kind. */
export function parseProfile(text: string): VmResult["profile"] {
  const sums: VmResult["profile"] = {};
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const { kind, seconds } = JSON.parse(line) as { kind: string; seconds: number };
      const s = sums[kind] ??= { count: 0, seconds: 0 };
      s.count += 1;
      s.seconds += seconds;
    } catch {
      // a line cut by the power-off: leave it out
    }
  }
  return sums;
}

/** Parse sizes like 512M, 2G, 4096. */
export function parseSize(s: string): number {
  const m = /^(\d+)([KMGT]?)(i?B)?$/i.exec(s.trim());
  if (!m) throw new Error(`bad size '${s}': use e.g. 512M or 2G`);
  const mult: Record<string, number> = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };
  return Number(m[1]) * mult[m[2].toUpperCase()];
}
