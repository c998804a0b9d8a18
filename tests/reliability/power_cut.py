"""Power cut, guest side: the workload and the checks.

The origin disk holds a small ext4 (FS_BYTES) and, beyond it, a raw region
of 4 KiB blocks written with O_DIRECT. Every raw block carries a tag
repeated in each 512-byte sector (so a torn block is seen):

  PRE  cycle block         written before the session (the pre-mount content)
  NEW  cycle block batch   written during the session

During the session the raw writer writes batches of BATCH blocks in an order
fixed by the cycle's seed, fsyncs the device (a flush) and prints
"@@SYNCED cycle k" after each completed flush. The host keeps the last such
line it received before the cut and passes k to the next boot. Beside it, in
the filesystem: buffered writers with an occasional fsync, an O_DIRECT
writer, and fsync-heavy small-file churn.

  prepare CYCLE            write PRE tags; save the fs region's chunk hashes
                           and the whole device's sha256 (the pre-mount state)
  run CYCLE                the raw writer (runs until the power is cut); with
                           CUT_SYSRQ_DELAY=S it resets the machine itself
                           (sysrq b) S seconds after its first flush
  fsload DIR               fsync-heavy small files (background)
  bufload DIR              buffered overwrites, fsync one write in 8 (background)
  directload DIR           O_DIRECT 4-64 KiB writes into a file (background)
  verify CYCLE K STAGE     STAGE=origin: batches 1..K hold NEW (the writes survived)
                           STAGE=restored: the whole device's sha256 is the
                           pre-mount one; every block that differs is counted
"""
import hashlib
import json
import mmap
import os
import random
import struct
import sys
import threading
import time

BLOCK = 4096
BATCH = 8
FS_BYTES = int(os.environ.get("CUT_FS_BYTES", str(48 << 20)))
STATE = os.environ.get("CUT_STATE", "/rel/state")
DEV = os.environ["CUT_DEV"]


def dev_size():
    fd = os.open(DEV, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def nblocks():
    return (dev_size() - FS_BYTES) // BLOCK


def tag(kind, cycle, block, batch=0):
    head = struct.pack("<4sIQQQ", kind, 0xB5D5, cycle, block, batch)  # 32 bytes
    return head * (BLOCK // len(head))


def order(cycle, n):
    blocks = list(range(n))
    random.Random(cycle * 7919 + 1).shuffle(blocks)
    return blocks


def aligned(size):
    return mmap.mmap(-1, size)  # page aligned, as O_DIRECT wants


def prepare(cycle):
    n = nblocks()
    fd = os.open(DEV, os.O_RDWR | os.O_DIRECT)
    step = 256
    buf = aligned(step * BLOCK)
    for b0 in range(0, n, step):
        cnt = min(step, n - b0)
        buf.seek(0)
        for b in range(b0, b0 + cnt):
            buf.write(tag(b"PRE_", cycle, b))
        os.pwrite(fd, memoryview(buf)[:cnt * BLOCK], FS_BYTES + b0 * BLOCK)
    os.fsync(fd)
    os.close(fd)
    sha, hashes = device_hashes()
    with open(STATE + ".tmp", "w") as f:
        json.dump({"cycle": cycle, "sha256": sha, "fs_hashes": hashes}, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(STATE + ".tmp", STATE)
    print(sha)


def device_hashes():
    """sha256 of the whole device, and a short hash of each fs-region chunk."""
    sha = hashlib.sha256()
    chunks = []
    fd = os.open(DEV, os.O_RDONLY | os.O_DIRECT)
    buf = aligned(1 << 20)
    size = dev_size()
    for off in range(0, size, 1 << 20):
        n = os.preadv(fd, [buf], off)
        sha.update(buf[:n])
        for i in range(0, n, BLOCK):
            if off + i < FS_BYTES:
                chunks.append(hashlib.blake2b(buf[i:i + BLOCK], digest_size=8).hexdigest())
    os.close(fd)
    return sha.hexdigest(), chunks


def sysrq_reset(delay):
    def reset():
        with open("/proc/sysrq-trigger", "w") as f:
            f.write("b")  # immediate reset: no sync, no unmount
    t = threading.Timer(delay, reset)
    t.daemon = True
    t.start()


def run(cycle):
    n = nblocks()
    seq = order(cycle, n)
    fd = os.open(DEV, os.O_RDWR | os.O_DIRECT)
    buf = aligned(BLOCK)
    sysrq = os.environ.get("CUT_SYSRQ_DELAY")
    k = 0
    while True:
        k += 1
        batch = seq[(k - 1) * BATCH:k * BATCH]
        for b in batch:
            buf.seek(0)
            buf.write(tag(b"NEW_", cycle, b, k))
            os.pwrite(fd, buf, FS_BYTES + b * BLOCK)
        os.fsync(fd)  # blkdev_fsync: a flush to the device
        print(f"@@SYNCED {cycle} {k}", flush=True)
        if k == 1 and sysrq:
            sysrq_reset(float(sysrq))
        if not batch:
            time.sleep(0.05)


def fsload(d):
    """Small files, overwrites, renames, unlinks, each step fsynced."""
    os.makedirs(d, exist_ok=True)
    r = random.Random(os.getpid())
    i = 0
    while True:
        i += 1
        name = f"{d}/f{i % 64}"
        with open(name + ".tmp", "wb") as f:
            f.write(os.urandom(r.choice([512, 4096, 20000, 65536])))
            f.flush()
            os.fsync(f.fileno())
        os.rename(name + ".tmp", name)
        if i % 7 == 0:
            try:
                os.unlink(f"{d}/f{r.randrange(64)}")
            except FileNotFoundError:
                pass
        dfd = os.open(d, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)


def bufload(d):
    """Buffered overwrites and appends in a few files; fsync one write in 8.
    The guest's writeback runs every 0.5 s (power_cut.sh), so most of these
    writes reach the device without a flush."""
    os.makedirs(d, exist_ok=True)
    r = random.Random(os.getpid() * 31)
    files = [open(f"{d}/b{i}", "w+b") for i in range(4)]
    i = 0
    while True:
        i += 1
        f = r.choice(files)
        size = r.choice([4096, 16384, 65536])
        f.seek(r.randrange(0, 2 << 20, 4096))
        f.write(os.urandom(size))
        if i % 8 == 0:
            f.flush()
            os.fsync(f.fileno())


def directload(d):
    """O_DIRECT writes of 4-64 KiB at random aligned offsets of a 4 MiB file
    (written once through, then overwritten), fdatasync every 16."""
    os.makedirs(d, exist_ok=True)
    size = 4 << 20
    path = f"{d}/direct"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    r = random.Random(os.getpid() * 17)
    buf = aligned(64 << 10)
    buf.write(os.urandom(64 << 10))
    for off in range(0, size, 64 << 10):
        os.pwrite(fd, buf, off)
    os.fdatasync(fd)
    i = 0
    while True:
        i += 1
        n = r.choice([4096, 16384, 65536])
        os.pwrite(fd, memoryview(buf)[:n], r.randrange(0, size - n + 1, 4096))
        if i % 16 == 0:
            os.fdatasync(fd)


def verify(cycle, k, stage):
    n = nblocks()
    seq = order(cycle, n)
    written = {b: (i // BATCH) + 1 for i, b in enumerate(seq)}  # block -> its batch
    fd = os.open(DEV, os.O_RDONLY | os.O_DIRECT)
    buf = aligned(1 << 20)
    lost = torn = unflushed_new = 0
    bad = []
    for off in range(0, n * BLOCK, 1 << 20):
        got = os.preadv(fd, [buf], FS_BYTES + off)
        for i in range(0, got, BLOCK):
            b = (off + i) // BLOCK
            if b >= n:
                break
            data = buf[i:i + BLOCK]
            batch = written[b]
            pre = tag(b"PRE_", cycle, b)
            new = tag(b"NEW_", cycle, b, batch)
            if stage == "origin":
                # Flushed writes must be there; later ones may or may not be.
                ok = data == new if batch <= k else data in (pre, new)
            else:
                # After the restore every block is its pre-mount self.
                ok = data == pre
                if data == new:
                    unflushed_new += batch > k
            if not ok:
                if data not in (pre, new):
                    torn += 1
                lost += 1
                if len(bad) < 5:
                    bad.append(f"block {b} (batch {batch}, synced {k}): {data[:32].hex()}")
    os.close(fd)
    res = {"stage": stage, "cycle": cycle, "synced": k, "blocks": n, "lost": lost,
           "torn": torn, "bad": bad}
    if stage == "restored":
        with open(STATE) as f:
            st = json.load(f)
        if st["cycle"] != cycle:
            raise SystemExit(f"state is for cycle {st['cycle']}, not {cycle}")
        sha, now = device_hashes()
        fs_diff = [i for i, (a, b) in enumerate(zip(now, st["fs_hashes"])) if a != b]
        res.update({
            "sha256": sha,
            "sha256_before": st["sha256"],
            "exact": sha == st["sha256"],
            "raw_blocks_differing": lost,
            "unflushed_new": unflushed_new,
            "fs_chunks_differing": len(fs_diff),
            "fs_chunks_first": fs_diff[:8],
        })
        res["lost"] = lost + len(fs_diff)
    print(json.dumps(res))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "prepare":
        prepare(int(sys.argv[2]))
    elif cmd == "run":
        run(int(sys.argv[2]))
    elif cmd == "fsload":
        fsload(sys.argv[2])
    elif cmd == "bufload":
        bufload(sys.argv[2])
    elif cmd == "directload":
        directload(sys.argv[2])
    elif cmd == "verify":
        verify(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        raise SystemExit(f"unknown command {cmd}")
