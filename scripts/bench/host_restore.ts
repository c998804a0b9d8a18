/**
 * The restore again, on the host's own CPU: the restorer is user-space
 * code (checksums, copies), which software emulation slows down far more
 * than it slows the host's disk. The session the guest restored is copied
 * out of the store disk image with debugfs (nothing is mounted), restored
 * into an image file of the device's size with `bdsnap restore --target`,
 * and compared with fio writing the same bytes into the same file with
 * 1 MiB direct sequential writes.
 * @module
 */
import { runChecked } from "../vm/_process.ts";
import { REPO } from "../vm/paths.ts";

const MiB = 1024 ** 2;

/** What the host measured. */
export interface HostRestore {
  bytes: number;
  /** The CLI's own seconds (verify, write, fsync; read-back is opt-in and off). */
  seconds: number;
  mib_s: number;
  raw_mib_s: number;
  ratio: number;
}

export async function hostRestore(opts: {
  storeImage: string;
  session: string;
  deviceBytes: number;
  offset: number;
  workDir: string;
}): Promise<HostRestore> {
  const store = `${opts.workDir}/store`;
  const target = `${opts.workDir}/target.img`;
  await Deno.mkdir(store, { recursive: true });
  await runChecked("debugfs", ["-R", `rdump /${opts.session} ${store}`, opts.storeImage]);
  // Written, not sparse: neither side pays for allocating blocks.
  await runChecked("dd", [
    "if=/dev/zero",
    `of=${target}`,
    "bs=4M",
    `count=${opts.deviceBytes / (4 * MiB)}`,
    "conv=fsync",
    "status=none",
  ]);
  const out = await runChecked(Deno.execPath(), [
    "run",
    "-A",
    `${REPO}/cli/main.ts`,
    "--store",
    store,
    "--json",
    "restore",
    "--session",
    opts.session,
    "--target",
    target,
    "--yes",
  ], { env: { BDSNAP_CONFIG_DIR: `${opts.workDir}/etc`, NO_COLOR: "1" } });
  const r = JSON.parse(out);
  const bytes = r.written_bytes as number;
  const size = Math.max(MiB, Math.floor(bytes / MiB) * MiB);
  const fio = JSON.parse(
    await runChecked("fio", [
      "--name=raw-seq",
      `--filename=${target}`,
      "--rw=write",
      "--bs=1m",
      "--direct=1",
      "--ioengine=libaio",
      "--iodepth=1",
      `--offset=${opts.offset}`,
      `--size=${size}`,
      "--end_fsync=1",
      "--output-format=json",
    ]),
  ).jobs[0];
  const mibS = bytes / MiB / r.seconds;
  const rawMibS = fio.write.io_bytes / MiB / (Math.max(1, fio.job_runtime) / 1000);
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return {
    bytes,
    seconds: round(r.seconds),
    mib_s: round(mibS),
    raw_mib_s: round(rawMibS),
    ratio: round(mibS / rawMibS),
  };
}
