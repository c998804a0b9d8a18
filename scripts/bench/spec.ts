/**
 * What the benchmark runs and the shape of what it reports, shared by the
 * host (`scripts/bench.ts`, `report.ts`) and the guest (`guest.ts`).
 * @module
 */

const MiB = 1024 ** 2;

/**
 * The configurations, on equal virtual disks, all giving the same guarantee
 * (except raw, which keeps nothing): a write that overwrites data the
 * snapshot still needs reaches the device only after the old data is
 * durable (bdsnap's write-ahead pre-images; dm-snapshot's persistent
 * exception store; dm-thin shares blocks and commits its metadata on flush).
 */
export const CONFIGS = ["raw", "bdsnap", "dm-snapshot", "dm-thin"] as const;
export type Config = typeof CONFIGS[number];

/** The two phases of every workload. */
export const PHASES = ["first", "rewrite"] as const;
export type Phase = typeof PHASES[number];

/** One fio workload. */
export interface Workload {
  id: string;
  label: string;
  /** `direct`: direct I/O on the preallocated file; `ext4`: new files, buffered, with fsync. */
  kind: "direct" | "ext4";
  rw: "randwrite" | "write";
  bs: string;
  iodepth: number;
  ioengine: "libaio" | "psync";
  /** fsync every N writes (ext4 workload). */
  fsync?: number;
  /** Bytes written per phase, in quick and full mode. */
  bytes: { quick: number; full: number };
}

/**
 * Ordered so that the 1 MiB sequential workload, which covers the whole
 * file, comes last: its bdsnap session is the one the restore step restores.
 */
export const WORKLOADS: readonly Workload[] = [
  {
    id: "4k-randwrite-qd1",
    label: "4 KiB random write, QD1",
    kind: "direct",
    rw: "randwrite",
    bs: "4k",
    iodepth: 1,
    ioengine: "libaio",
    bytes: { quick: 4 * MiB, full: 16 * MiB },
  },
  {
    id: "4k-randwrite-qd32",
    label: "4 KiB random write, QD32",
    kind: "direct",
    rw: "randwrite",
    bs: "4k",
    iodepth: 32,
    ioengine: "libaio",
    bytes: { quick: 8 * MiB, full: 64 * MiB },
  },
  {
    id: "ext4-fsync",
    label: "ext4 files, 4 KiB random write, fsync every 16",
    kind: "ext4",
    rw: "randwrite",
    bs: "4k",
    iodepth: 1,
    ioengine: "psync",
    fsync: 16,
    bytes: { quick: 4 * MiB, full: 16 * MiB },
  },
  {
    id: "1m-seqwrite",
    label: "1 MiB sequential write, QD4",
    kind: "direct",
    rw: "write",
    bs: "1m",
    iodepth: 4,
    ioengine: "libaio",
    bytes: { quick: 64 * MiB, full: 512 * MiB },
  },
];

/** Disk and file sizes per mode. */
export interface Sizes {
  /** The preallocated, fully written file every direct workload writes into. */
  file: number;
  /** Each of the target disks (raw, bdsnap, dm-snapshot origin) and the dm-thin volume. */
  targetDisk: number;
  /** The bdsnap store disk, and the dm-snapshot COW disk (the same size). */
  storeDisk: number;
  /** dm-thin's pool data disk: the thin volume (targetDisk) plus room for the snapshot's blocks. */
  thinDataDisk: number;
  /** dm-thin's pool metadata disk. */
  thinMetaDisk: number;
  /** dm-thin's pool block size (LVM's default thin chunk, also the kernel's minimum). */
  thinBlock: number;
  /** Mount/unmount repetitions per case. */
  mountReps: number;
  /** Rounds of every workload × configuration; figures are medians over rounds. */
  rounds: number;
}

export function sizes(quick: boolean): Sizes {
  const thin = { thinMetaDisk: 32 * MiB, thinBlock: 64 * 1024 };
  return quick
    ? {
      file: 64 * MiB,
      targetDisk: 256 * MiB,
      storeDisk: 256 * MiB,
      thinDataDisk: 576 * MiB,
      ...thin,
      mountReps: 3,
      rounds: 1,
    }
    : {
      file: 512 * MiB,
      targetDisk: 768 * MiB,
      storeDisk: 768 * MiB,
      thinDataDisk: 1600 * MiB,
      ...thin,
      mountReps: 15,
      rounds: 5,
    };
}

/**
 * One block device's counters over a phase: differences of
 * /sys/block/<dev>/stat (Documentation/admin-guide/iostats.rst: fields 1
 * and 3 are reads completed and sectors read, 5 and 7 writes completed and
 * sectors written, 16 flush requests completed; 512-byte sectors).
 * Flushes are counted only because the guest switches every disk to a
 * volatile write cache (virtio-blk `cache_type` "write back"): on a
 * write-through device the block layer drops flushes before counting them.
 */
export interface DevIo {
  /** The block device whose stat file was read, e.g. "vdb". */
  dev: string;
  reads: number;
  read_bytes: number;
  writes: number;
  write_bytes: number;
  flushes: number;
  /**
   * Writes submitted with REQ_FUA (the block:block_bio_queue tracepoint, rwbs
   * "…WF…", counted with a hist trigger): a commit record each, dm-snapshot's
   * exception commits on its COW disk, ext4's journal commit blocks on
   * bdsnap's store. Absent when tracing was not available.
   */
  fua_writes?: number;
}

/**
 * Where each configuration's I/O lands. origin: the device the filesystem
 * lives on (dm-thin: the pool's data disk, which holds the volume, the
 * snapshot's shared blocks and the copies). store: where the saved data
 * and its metadata go (bdsnap: the store disk under /snapshot;
 * dm-snapshot: the COW device; dm-thin: the pool's metadata disk — its
 * copies land on the data disk, so they are in origin).
 */
export interface PhaseIo {
  origin: DevIo;
  store: DevIo | null;
}

/** One fio phase, as measured in the guest. */
export interface PhaseResult {
  /** Bytes written by fio. */
  bytes: number;
  ios: number;
  /** fio's own job runtime. */
  fio_seconds: number;
  /** syncfs after fio (bdsnap: until every pre-image is in the store and fsynced). */
  drain_seconds: number;
  /** bytes / (fio + drain): the figure the ratios use. */
  mib_s: number;
  /** ios / (fio + drain). */
  iops: number;
  /** fio's own bandwidth (without the drain). */
  fio_mib_s: number;
  /** Completion latency percentiles, microseconds. */
  clat_p50_us: number;
  clat_p99_us: number;
  /** ext4 workload: fsync latency percentiles, microseconds. */
  sync_p50_us?: number;
  sync_p99_us?: number;
  /**
   * Chunks saved during the phase (bdsnap: module counter, 4 KiB; dm-snapshot:
   * COW chunks, 4 KiB; dm-thin: pool data blocks allocated, 64 KiB).
   */
  chunks?: number;
  /** Device counters over fio + drain. */
  io?: PhaseIo;
}

/** Kernel memory change across a first-write phase (after drop_caches both times). */
export interface MemoryDelta {
  /** Chunks saved in between. */
  chunks: number;
  /** Δ of the implementation's own slab caches (bdsnap_*; dm_exception, dm_snap_*, kcopyd_job). */
  own_slab_bytes: number;
  own_per_chunk: number | null;
  /** Δ(SUnreclaim + SReclaimable) in bytes: the whole kernel, noisy. */
  slab_bytes: number;
  /** Δ of what /proc/meminfo does not attribute (direct page allocations, vmalloc). */
  other_bytes: number;
  slab_per_chunk: number | null;
  total_per_chunk: number | null;
  /** The slab caches that grew most: name → bytes. */
  top_caches: Record<string, number>;
}

/** One configuration running one workload (one round, or the medians over rounds). */
export interface RunResult {
  first: PhaseResult;
  rewrite: PhaseResult;
  memory?: MemoryDelta;
  /** bdsnap: the module's in-flight pre-image peak since load, after this run. */
  inflight_peak?: number;
  session?: string;
}

/** Medians over the rounds, and every round. */
export interface AggregateResult extends RunResult {
  rounds: RunResult[];
}

/** What the guest writes (BENCH_OUT). */
export interface GuestReport {
  quick: boolean;
  release: string;
  sizes: Sizes;
  configs: Config[];
  results: Record<string, Partial<Record<Config, AggregateResult>>>;
  inflight?: { peak: number; limit: number; per_workload: Record<string, number> };
  /**
   * The store's sync protocol on the store's ext4 without the module
   * (guest.ts storeProbe): per batch of pre-images, what the store disk
   * wrote and how many flushes each fdatasync caused.
   */
  store_probe?: Array<{
    /** append: kmod/store.c's files, growing; prealloc: written beforehand; one-file: one sync. */
    mode: "append" | "prealloc" | "one-file";
    batch_bytes: number;
    batches: number;
    write_bytes_per_batch: number;
    write_bytes_per_data_byte: number;
    writes_per_batch: number;
    flushes_per_batch: number;
    /** Flushes during the data write + fdatasync of blocks.dat (one-file: the only sync). */
    flushes_dat_sync: number;
    /** Flushes during the record write + fdatasync of blocks.map. */
    flushes_map_sync: number;
    ms_per_batch: number;
  }>;
  /** The disks' write cache as the guest saw it during the run ("write back"). */
  write_cache?: Record<string, string>;
  restore?: {
    session: string;
    bytes: number;
    /** Where the bench file starts on the device (the raw write's offset). */
    offset: number;
    /** The CLI's own seconds: checksum verification, writing, fsync (no read-back). */
    seconds: number;
    /** Wall clock of the whole `bdsnap restore` command (Deno start-up included). */
    wall_seconds: number;
    mib_s: number;
    /** fio 1 MiB direct sequential write of the same bytes at the same place. */
    raw_seconds: number;
    raw_mib_s: number;
  };
  mount?: {
    /** Alternating plain and activated mounts of the bdsnap disk. */
    reps: number;
    /** Medians, milliseconds. */
    plain: { mount_ms: number; umount_ms: number; total_ms: number };
    activated: { mount_ms: number; umount_ms: number; total_ms: number };
  };
  errors: string[];
  seconds: number;
}
