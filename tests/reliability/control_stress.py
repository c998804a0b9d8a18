"""Control under stress (guest side).

8 threads activate, deactivate, mount, write, unmount across 4 devices for
SECONDS; through the system calls and the ioctls alike. Meanwhile one thread
tries to unload the module every half second (an image file, the anchor, is
activated the whole time, so every attempt must be refused) and one reads
STATUS and LIST and checks they agree. Every call's result must be in the
set allowed for it; anything else, or an operation slower than 60 s, fails.
At the end everything is unmounted and deactivated and the counters must say
0 devices, 0 sessions.

  control_stress.py SECONDS DEV...   prints one JSON object
"""
import collections
import ctypes
import errno
import json
import os
import random
import struct
import sys
import threading
import time

import bdsnap_ctl as b

SECONDS = float(sys.argv[1])
DEVS = sys.argv[2:]
WORKERS = 8
ANCHOR = "/tmp/stress-anchor.img"
ALLOWED = {
    "activate": {0, errno.EALREADY},
    "deactivate": {0, errno.EALREADY},
    "mount": {0, errno.EBUSY},
    "umount": {0, errno.EBUSY, errno.EINVAL},
    "rmmod": {errno.EWOULDBLOCK, errno.EBUSY},
}

lock = threading.Lock()
counts = collections.Counter()
unexpected = []
slowest = [0.0, ""]
stop = threading.Event()


def record(op, e, took):
    with lock:
        counts[f"{op}:{b.errname(e)}"] += 1
        if took > slowest[0]:
            slowest[0], slowest[1] = took, op
        if e not in ALLOWED.get(op, {0}) or took > 60 * b.SLOW:
            if len(unexpected) < 20:
                unexpected.append(f"{op} -> {b.errname(e)} in {took:.1f} s")
            counts["unexpected"] += 1


def timed(op, f, *a):
    t = time.monotonic()
    e = f(*a)
    record(op, e, time.monotonic() - t)
    return e


def ioctl_target(fd, which, path):
    p, pw = path.encode(), b.PASSWORD
    arg = ctypes.create_string_buffer(struct.pack("<QQ", ctypes.cast(ctypes.c_char_p(p), ctypes.c_void_p).value,
                                                  ctypes.cast(ctypes.c_char_p(pw), ctypes.c_void_p).value))
    return b.ioctl(fd, b.IOCTLS[which], arg)


def worker(w):
    r = random.Random(w)
    fd = os.open("/dev/bdsnap", os.O_RDWR)
    mounted = {}  # mountpoint -> dev
    while not stop.is_set():
        dev = r.choice(DEVS)
        mp = f"/mnt/st/w{w}d{DEVS.index(dev)}"
        op = r.random()
        if op < 0.2:
            if r.random() < 0.5:
                timed("activate", b.activate, dev)
            else:
                timed("activate", ioctl_target, fd, "ACTIVATE", dev)
        elif op < 0.35:
            if r.random() < 0.5:
                timed("deactivate", b.deactivate, dev)
            else:
                timed("deactivate", ioctl_target, fd, "DEACTIVATE", dev)
        elif op < 0.6:
            if mp not in mounted and timed("mount", b.mount, dev, mp) == 0:
                mounted[mp] = dev
        elif op < 0.8:
            if mp in mounted:
                t = time.monotonic()
                try:
                    with open(f"{mp}/w{w}", "wb") as f:
                        f.write(os.urandom(r.choice([4096, 65536])))
                        f.flush()
                        os.fsync(f.fileno())
                    e = 0
                except OSError as x:
                    e = x.errno
                record("write", e, time.monotonic() - t)
        else:
            if mp in mounted and timed("umount", b.umount, mp) == 0:
                del mounted[mp]
    for mp in list(mounted):
        while timed("umount", b.umount, mp) == errno.EBUSY:
            time.sleep(0.1)
    os.close(fd)


def unloader():
    while not stop.wait(0.5):
        e = timed("rmmod", b.delete_module)
        if e == 0:
            with lock:
                unexpected.append("the module unloaded while an image file was activated")
            stop.set()


def checker():
    fd = os.open("/dev/bdsnap", os.O_RDWR)
    n = 0
    while not stop.wait(1.0):
        st = b.status(fd)
        lst = ctypes.create_string_buffer(b.SZ_LIST)
        arr = ctypes.create_string_buffer(b.SZ_DEVICE_INFO * 16)
        struct.pack_into("<QII", lst, 0, ctypes.addressof(arr), 16, 0)
        e = b.ioctl(fd, b.IOCTLS["LIST"], lst)
        count = struct.unpack_from("<QII", lst.raw)[2]
        n += 1
        # Both are snapshots taken a moment apart: only hard limits are checked.
        if e or not 1 <= count <= len(DEVS) + 1 or not 1 <= st["devices"] <= len(DEVS) + 1 \
                or st["sessions"] > len(DEVS):
            with lock:
                unexpected.append(f"status/list: errno {e}, list {count}, status {st}")
                counts["unexpected"] += 1
    counts["status_checks"] += n
    os.close(fd)


def main():
    for w in range(WORKERS):
        for i in range(len(DEVS)):
            os.makedirs(f"/mnt/st/w{w}d{i}", exist_ok=True)
    with open(ANCHOR, "wb") as f:
        f.truncate(16 << 20)
    assert b.activate(ANCHOR) == 0, "cannot activate the anchor"
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(WORKERS)]
    threads += [threading.Thread(target=unloader), threading.Thread(target=checker)]
    for t in threads:
        t.start()
    stop.wait(SECONDS)
    stop.set()
    for t in threads:
        t.join()
    for dev in DEVS + [ANCHOR]:
        e = b.deactivate(dev)
        if e not in (0, errno.EALREADY):
            unexpected.append(f"final deactivate {dev}: {b.errname(e)}")
    fd = os.open("/dev/bdsnap", os.O_RDWR)
    st = b.status(fd)
    os.close(fd)
    if st["devices"] or st["sessions"]:
        unexpected.append(f"after the end: {st}")
    ops = sum(v for k, v in counts.items() if ":" in k)
    print(json.dumps({"ops": ops, "counts": dict(counts), "unexpected": unexpected,
                      "slowest": {"seconds": round(slowest[0], 2), "op": slowest[1]},
                      "final_status": st}))


main()
