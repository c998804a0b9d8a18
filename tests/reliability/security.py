"""Security checks (guest side). Prints one JSON object.

  security.py unpriv DEV    as an unprivileged user: every entry point refused
  security.py rate SECONDS  as root: wrong-password attempts per second
"""
import ctypes
import errno
import json
import os
import struct
import sys
import threading
import time

import bdsnap_ctl as b


def target(path, pw):
    bufs = [ctypes.create_string_buffer(path.encode()), ctypes.create_string_buffer(pw)]
    s = ctypes.create_string_buffer(struct.pack("<QQ", *(ctypes.addressof(x) for x in bufs)))
    return s, bufs


def unpriv(dev):
    """Every system call and ioctl with valid arguments and the correct password."""
    out = {"uid": os.getuid(), "calls": {}}
    out["calls"]["sys_activate"] = b.errname(b.activate(dev))
    out["calls"]["sys_deactivate"] = b.errname(b.deactivate(dev))
    try:
        fd = os.open("/dev/bdsnap", os.O_RDWR)
    except OSError as e:
        out["open"] = b.errname(e.errno)
        # The node is 0600; the host's second pass opens it up to reach the ioctls' own check.
        try:
            fd = os.open("/dev/bdsnap", os.O_RDONLY)
        except OSError:
            print(json.dumps(out))
            return
    else:
        out["open"] = "OK"
    t, _keep = target(dev, b.PASSWORD)
    arr = ctypes.create_string_buffer(b.SZ_DEVICE_INFO * 4)
    lst = ctypes.create_string_buffer(struct.pack("<QII", ctypes.addressof(arr), 4, 0))
    old = ctypes.create_string_buffer(b.PASSWORD)
    new = ctypes.create_string_buffer(b"pbkdf2-sha256$1000$" + b"00" * 16 + b"$" + b"00" * 32)
    pc = ctypes.create_string_buffer(struct.pack("<QQ", ctypes.addressof(old), ctypes.addressof(new)))
    args = {"ACTIVATE": t, "DEACTIVATE": t, "VERSION": ctypes.create_string_buffer(b.SZ_VERSION),
            "STATUS": ctypes.create_string_buffer(b.SZ_STATUS), "LIST": lst, "SET_PASSWORD": pc}
    for name, cmd in b.IOCTLS.items():
        out["calls"][f"ioctl_{name}"] = b.errname(b.ioctl(fd, cmd, args[name]))
    # Whatever the call said, nothing may have come back.
    out["list_leaked"] = arr.raw.strip(b"\0") != b""
    os.close(fd)
    print(json.dumps(out))


def rate(seconds):
    """Wrong passwords, one caller then four at once: attempts per second."""
    dev = "/dev/null"  # the password is checked before the path's kind

    def attempt():
        t = time.monotonic()
        e = b.activate(dev, b"wrong password")
        return e, time.monotonic() - t

    res = {}
    end = time.monotonic() + seconds
    n, delays, errs = 0, [], set()
    while time.monotonic() < end:
        e, d = attempt()
        n += 1
        delays.append(d)
        errs.add(b.errname(e))
    res["single"] = {"attempts": n, "per_second": round(n / seconds, 2),
                     "last_delay_s": round(delays[-1], 2), "errnos": sorted(errs)}
    counts = [0] * 4

    def worker(i):
        while time.monotonic() < end2:
            attempt()
            counts[i] += 1

    end2 = time.monotonic() + seconds
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    res["four_threads"] = {"attempts": sum(counts), "per_second": round(sum(counts) / seconds, 2)}
    # A correct password still works at once after the storm (and resets the delay).
    t = time.monotonic()
    e = b.activate("/dev/null")
    res["correct_after"] = {"errno": b.errname(e), "seconds": round(time.monotonic() - t, 2)}
    print(json.dumps(res))


if __name__ == "__main__":
    if sys.argv[1] == "unpriv":
        unpriv(sys.argv[2])
    else:
        rate(float(sys.argv[2]))
