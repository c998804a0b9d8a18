"""Hung store, guest side: origin writers that log every operation, and the
watcher that decides whether they got through a store that stopped answering.

  writer KIND DIR LOG     KIND = buffered (64 KiB writes, fdatasync every 4th),
                          fsync (4 KiB new file + fsync + rename + dir fsync),
                          direct (O_DIRECT 64 KiB into fresh extents, fdatasync
                          every 8th). Every operation writes chunks the session
                          has not saved yet, so each one needs the store. Each
                          finished operation appends "start end D" (CLOCK_MONOTONIC;
                          D = 1 when it had to reach the device) to LOG; LOG.cur holds the start of the one in progress.
                          Stops between operations once DIR/stop exists.
  now                     CLOCK_MONOTONIC, for the shell
  watch T0 BOUND LOG...   after the store was suspended at T0: wait (at most
                          until T0 + BOUND) until a session failed (STATUS
                          sessions_failed went up) and every writer finished an
                          operation that reached the device and started after
                          that; print one JSON line
"""
import json
import mmap
import os
import sys
import time

import bdsnap_ctl


def now():
    return time.monotonic()


def writer(kind, d, log):
    os.makedirs(d, exist_ok=True)
    stop = f"{d}/stop"
    out = open(log, "a", buffering=1)
    cur = f"{log}.cur"
    data = os.urandom(64 << 10)
    i = 0
    if kind == "buffered":
        f = open(f"{d}/buffered", "wb", buffering=0)
    elif kind == "direct":
        fd = os.open(f"{d}/direct", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
        buf = mmap.mmap(-1, 64 << 10)
        buf.write(data)
    while not os.path.exists(stop):
        i += 1
        t = now()
        with open(cur, "w") as c:
            c.write(f"{t}\n")
        if kind == "buffered":
            if f.tell() >= (64 << 20):  # keep inside the disk: start a new file
                f.close()
                os.unlink(f"{d}/buffered")
                f = open(f"{d}/buffered", "wb", buffering=0)
            f.write(data)  # appended: new blocks
            if i % 4 == 0:
                os.fdatasync(f.fileno())
        elif kind == "direct":
            off = (i - 1) * (64 << 10)
            if off >= (48 << 20):  # keep inside the disk: start a new file
                os.close(fd)
                os.unlink(f"{d}/direct")
                fd = os.open(f"{d}/direct", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
                i, off = 1, 0
            os.pwrite(fd, buf, off)
            if i % 8 == 0:
                os.fdatasync(fd)
        else:
            name = f"{d}/s{i % 32}"
            with open(name + ".tmp", "wb") as g:
                g.write(data[:4096])
                g.flush()
                os.fsync(g.fileno())
            os.rename(name + ".tmp", name)
            dfd = os.open(d, os.O_RDONLY)
            os.fsync(dfd)
            os.close(dfd)
        e = now()
        # Whether the operation had to reach the device (a buffered write alone does not).
        dev = kind != "buffered" or i % 4 == 0
        out.write(f"{t:.3f} {e:.3f} {int(dev)}\n")
        with open(cur, "w") as c:
            c.write("0\n")
        time.sleep(0.05)


def ops(log):
    res = []
    try:
        with open(log) as f:
            for line in f:
                p = line.split()
                if len(p) == 3:
                    res.append((float(p[0]), float(p[1]), p[2] == "1"))
    except FileNotFoundError:
        pass
    return res


def in_progress(log):
    try:
        with open(f"{log}.cur") as f:
            v = float(f.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        v = 0
    return v


def failed_count():
    fd = os.open("/dev/bdsnap", os.O_RDWR)
    try:
        return bdsnap_ctl.status(fd)["sessions_failed"]
    finally:
        os.close(fd)


def watch(t0, bound, logs):
    base = int(os.environ.get("HS_FAILED_BEFORE", "0"))
    failed_at = None
    through = {}
    while True:
        t = now()
        if failed_at is None and failed_count() > base:
            failed_at = t
        if failed_at is not None:
            for log in logs:
                if log not in through:
                    after = [o for o in ops(log) if o[0] >= failed_at and o[2]]
                    if after:
                        through[log] = after[0][1]
        if (failed_at is not None and len(through) == len(logs)) or t > t0 + bound:
            break
        time.sleep(0.5)
    t = now()
    writers = {}
    for log in logs:
        done = [o for o in ops(log) if o[1] >= t0]
        cur = in_progress(log)
        # The longest operation that overlapped the suspension, the one in progress included.
        longest = max([e - max(s, t0) for s, e, _ in done] + [t - max(cur, t0) if cur else 0])
        writers[os.path.basename(log).split(".")[1]] = {
            "ops_after_suspend": len(done),
            "longest": round(longest, 1),
            "through": round(through[log] - t0, 1) if log in through else None,
            "stuck_for": round(t - cur, 1) if cur else 0,
        }
    print(json.dumps({
        "failed_after": round(failed_at - t0, 1) if failed_at is not None else None,
        "all_through": failed_at is not None and len(through) == len(logs),
        "waited": round(t - t0, 1),
        "writers": writers,
    }))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "writer":
        writer(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "now":
        print(f"{now():.3f}")
    elif cmd == "watch":
        watch(float(sys.argv[2]), float(sys.argv[3]), sys.argv[4:])
    else:
        raise SystemExit(f"unknown command {cmd}")
