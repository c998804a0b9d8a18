"""Power cut, guest side: the checkable part of the workload.

The origin disk holds a small ext4 (FS_BYTES) and, beyond it, a raw region
of 4 KiB blocks written with O_DIRECT. Every block carries a tag repeated in
each 512-byte sector (so a torn block is seen):

  PRE  cycle block         written before the session (the pre-mount content)
  NEW  cycle block batch   written during the session

During the session the writer writes batches of BATCH blocks in an order
fixed by the cycle's seed, fsyncs the device (a flush) and prints
"@@SYNCED cycle k" after each completed flush. The host keeps the last such
line it received before it killed QEMU and passes k to the next boot.

  prepare CYCLE            write PRE tags; save the fs region's chunk hashes
  run CYCLE                the writer (runs until the power is cut)
  fsload DIR               fsync-heavy filesystem activity (background)
  verify CYCLE K STAGE     STAGE=origin: batches 1..K hold NEW (the writes survived);
                           STAGE=restored: every block holds PRE, except blocks of
                           batches > K, which may hold NEW (not yet flushed)
"""
import hashlib
import json
import mmap
import os
import random
import struct
import sys
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
    hashes = fs_hashes()
    with open(STATE + ".tmp", "w") as f:
        json.dump({"cycle": cycle, "fs_hashes": hashes}, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(STATE + ".tmp", STATE)


def fs_hashes():
    out = []
    fd = os.open(DEV, os.O_RDONLY | os.O_DIRECT)
    buf = aligned(1 << 20)
    for off in range(0, FS_BYTES, 1 << 20):
        n = os.preadv(fd, [buf], off)
        for i in range(0, n, BLOCK):
            out.append(hashlib.blake2b(buf[i:i + BLOCK], digest_size=8).hexdigest())
    os.close(fd)
    return out


def run(cycle):
    n = nblocks()
    seq = order(cycle, n)
    fd = os.open(DEV, os.O_RDWR | os.O_DIRECT)
    buf = aligned(BLOCK)
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
                ok = data == new if batch <= k else data in (pre, new)
            else:
                ok = data == pre if batch <= k else data in (pre, new)
                if ok and data == new:
                    unflushed_new += 1
            if not ok:
                if data not in (pre, new):
                    torn += 1
                lost += 1
                if len(bad) < 5:
                    bad.append(f"block {b} (batch {batch}): {data[:32].hex()}")
    os.close(fd)
    res = {"stage": stage, "cycle": cycle, "synced": k, "blocks": n, "lost": lost,
           "torn": torn, "unflushed_not_rolled_back": unflushed_new, "bad": bad}
    if stage == "restored":
        with open(STATE) as f:
            st = json.load(f)
        if st["cycle"] != cycle:
            raise SystemExit(f"state is for cycle {st['cycle']}, not {cycle}")
        now = fs_hashes()
        res["fs_chunks_differing"] = sum(1 for a, b in zip(now, st["fs_hashes"]) if a != b)
    print(json.dumps(res))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "prepare":
        prepare(int(sys.argv[2]))
    elif cmd == "run":
        run(int(sys.argv[2]))
    elif cmd == "fsload":
        fsload(sys.argv[2])
    elif cmd == "verify":
        verify(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        raise SystemExit(f"unknown command {cmd}")
