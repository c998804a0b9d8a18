/**
 * `deno task vm --kernel 6.1|6.12|6.12-rt|newest|debug [--disks N --disk-size S] -- <command>`
 *
 * Provisions the kernel, builds kmod/ for it, boots it under QEMU and runs
 * the command in the guest. Exits with the command's status, or 1 when the
 * kernel log shows a bug (the dmesg gate) or the VM timed out.
 * @module
 */
import { parseArgs } from "node:util";
import { ensureHostTools } from "./host_tools.ts";
import { parseSeries, provisionKernel } from "./kernels.ts";
import { buildKmod } from "./kmod.ts";
import { parseSize, runVm } from "./qemu.ts";

const USAGE = `usage: deno task vm --kernel 6.1|6.12|6.12-rt|newest|debug [options] -- <command…>

options:
  --kernel SERIES     Debian kernel series to boot: 6.1 (Debian 12), 6.12 (the newer of
                      Debian 12's security suite and Debian 13; the default), 6.12-rt
                      (Debian 13's PREEMPT_RT), newest (the highest 7.x or later of
                      trixie-backports and sid, looked up afresh on every run), or debug:
                      Debian's 6.12 source built with KASAN, lockdep…
  --disks N           test disks, /dev/vd* listed in $BDSNAP_TEST_DISKS (default 2)
  --disk-size S       size of each test disk, e.g. 512M, 2G (default 1G)
  --store-size S      size of the /snapshot store disk (default 2G; 0 = none)
  --memory MIB        guest memory (default 2048)
  --cpus N            guest CPUs (default 2)
  --timeout SECONDS   kill the VM after this long (default 900)
  --accel kvm|tcg     skip the KVM probe
  --append ARGS       extra kernel command line (e.g. slub_debug=U,kmalloc-16)
  --no-build          do not rebuild kmod/ first
  --refresh           re-download the newest kernel of the series (debug: rebuild
                      if a newer source package is out)
  --keep              keep the run directory (logs and disk images)

In the guest: the host root read-only with a tmpfs overlay, the repository at
the same path, \`bdsnap\` on PATH, the module at $BDSNAP_MODULE, the store disk
at /snapshot.`;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      kernel: { type: "string", default: "6.12" },
      disks: { type: "string", default: "2" },
      "disk-size": { type: "string", default: "1G" },
      "store-size": { type: "string", default: "2G" },
      memory: { type: "string", default: "2048" },
      cpus: { type: "string", default: "2" },
      timeout: { type: "string", default: "900" },
      accel: { type: "string" },
      append: { type: "string" },
      "no-build": { type: "boolean", default: false },
      refresh: { type: "boolean", default: false },
      keep: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length === 0) {
    console.error(USAGE);
    return 2;
  }
  const accel = values.accel;
  if (accel !== undefined && accel !== "kvm" && accel !== "tcg") {
    console.error(`--accel must be kvm or tcg`);
    return 2;
  }
  await ensureHostTools();
  const kernel = await provisionKernel(parseSeries(values.kernel!), values.refresh);
  if (!values["no-build"]) await buildKmod(kernel);

  const r = await runVm({
    kernel,
    command: positionals.map(shellWord).join(" "),
    disks: Number(values.disks),
    diskSize: parseSize(values["disk-size"]!),
    storeSize: parseSize(values["store-size"]!),
    memory: Number(values.memory),
    cpus: Number(values.cpus),
    timeout: Number(values.timeout),
    accel,
    append: values.append,
    keep: values.keep,
    stream: true,
  });
  const boot = r.bootSeconds === null
    ? "never reached the command"
    : `${r.bootSeconds.toFixed(1)} s`;
  console.error(
    `[vm] ${kernel.release} (${r.accel}): boot to command ${boot}, total ${
      r.totalSeconds.toFixed(1)
    } s`,
  );
  for (const f of r.findings) console.error(`[vm] kernel log: ${f.kind}: ${f.line}`);
  if (r.timedOut) console.error(`[vm] timed out after ${values.timeout} s`);
  if (r.findings.length > 0 || r.timedOut) return 1;
  if (r.status === null) {
    console.error("[vm] the guest did not report an exit status");
    return 1;
  }
  return r.status;
}

/** A single shell word: one positional stays one argument in the guest. */
function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    console.error(`[vm] ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
