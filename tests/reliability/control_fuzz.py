"""Control-interface fuzzing (guest side).

Random and hostile arguments to both system calls and every ioctl of
/dev/bdsnap (plus unknown ioctl numbers), from FUZZERS threads at once,
while one more thread keeps activating and deactivating a real disk with
correct arguments. Pointers: NULL, small integers, kernel addresses,
unmapped, PROT_NONE and read-only pages, strings that end at a PROT_NONE
page without a NUL, structs that straddle one; lengths from 0 to beyond
PATH_MAX; LIST capacities up to 2^32-1; garbage password hashes.

What must hold (the kernel log is checked by the host): every call returns
(no call slower than 30 s), no SET_PASSWORD succeeds (the correct old
password is never given), nothing is activated with a wrong password, the
real disk's activations keep working, and the password is unchanged.

  control_fuzz.py CASES DEV STORE_DEV   prints one JSON object
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

CASES = int(sys.argv[1])
DEV, STORE = sys.argv[2], sys.argv[3]
FUZZERS = 4
NR_ACT, NR_DEACT = b.nr("activate"), b.nr("deactivate")

lock = threading.Lock()
hist = collections.Counter()
problems = []
slowest = [0.0, ""]
legit = collections.Counter()
done = threading.Event()
keep = []  # buffers referenced by pointers in flight


class Pool:
    """Addresses that are valid, invalid or hostile in various ways."""

    def __init__(self):
        self.none = b.page(b.PROT_NONE)
        self.ro = b.page(b.PROT_READ)
        self.guard_end = b.guarded_string(b"x" * 8) + 8  # first byte of a PROT_NONE page
        # Made once and reused: every one costs two mappings.
        self.unterminated = [b.guarded_string(os.urandom(n).replace(b"\0", b"a"))
                             for n in (1, 2, 255, 256, 257, 4095, 4096, 4097, 8192, 8999)]
        self.bad_hash = b.guarded_string(b"pbkdf2-sha256$1000$")

    def bad_pointer(self, r):
        return r.choice([0, 1, 0xFFF, 0x10000, self.none, self.ro + 4095, self.guard_end - 1,
                         0xFFFF888000000000, 0xFFFFFFFF81000000, 0xFFFFFFFFFFFFFFFF,
                         0x00007FFFFFFFF000, 0x8000000000000000, r.getrandbits(64)])

    def string(self, r, password=False):
        """A pointer to a string-ish thing, and whether it is a correct password."""
        k = r.random()
        if k < 0.25:
            return self.bad_pointer(r), False
        if k < 0.45:  # unterminated, ending at a PROT_NONE page
            return r.choice(self.unterminated), False
        if password:
            if k < 0.9:
                return self.keep(b.PASSWORD), True
            return self.keep(r.choice([b"", b"x" * 255, b"y" * 256, b"z" * 5000,
                                       b.PASSWORD + b"\x00junk", bytes(r.getrandbits(8) or 1 for _ in range(40))])), False
        choices = [DEV.encode(), STORE.encode(), b"/", b"/dev/null", b"/proc/self/mem", b"",
                   b"/dev/" + b"a" * 300, b"/" + b"b" * 4094, b"/" + b"c" * 4095, b"/" + b"d" * 5000,
                   b"/tmp/../dev/./" + os.path.basename(DEV).encode(), b"\xff\xfe/dev/x",
                   b"/sys/module/bdsnap/parameters/nr_activate", b"/tmp", b"/dev/bdsnap",
                   bytes(r.getrandbits(8) or 1 for _ in range(r.randrange(1, 200)))]
        return self.keep(r.choice(choices)), False

    def keep(self, data):
        buf = ctypes.create_string_buffer(data)
        with lock:
            keep.append(buf)
            if len(keep) > 5000:
                del keep[:2500]
        return ctypes.addressof(buf)

    def struct_buf(self, r, data, size):
        """A struct in normal memory, straddling a PROT_NONE page, or a bad pointer."""
        k = r.random()
        if k < 0.15:
            return self.bad_pointer(r)
        if k < 0.3:
            cut = r.randrange(1, size)
            ctypes.memmove(self.guard_end - cut, data, cut)  # the rest of the struct is unreadable
            return self.guard_end - cut
        return self.keep(data.ljust(size, b"\0")[:size])


def note(kind, e, took):
    with lock:
        hist[f"{kind}:{b.errname(e)}"] += 1
        if took > slowest[0]:
            slowest[0], slowest[1] = took, kind
        if took > 30 * b.SLOW:
            problems.append(f"{kind} took {took:.1f} s")


def one_case(r, pool, fd):
    k = r.random()
    t = time.monotonic()
    if k < 0.3:  # the two system calls, raw
        which = r.choice(["activate", "deactivate"])
        path, _ = pool.string(r)
        pw, good = pool.string(r, password=True)
        if not good and r.random() < 0.97:
            pw = pool.bad_pointer(r)  # a wrong password costs a rate-limit delay: keep them rare
        extra = [r.getrandbits(64) for _ in range(4)]
        e = b.raw_syscall(NR_ACT if which == "activate" else NR_DEACT, path, pw, *extra)
        kind = f"sys_{which}"
        if e == 0 and which == "activate":
            if not good:
                problems.append("activation succeeded without the correct password")
            cleanup_activation(path)
    else:
        names = list(b.IOCTLS)
        if k < 0.9:
            name = r.choice(names)
            cmd = b.IOCTLS[name]
        else:
            name = "unknown"
            cmd = r.choice([(r.randrange(4) << 30) | (r.randrange(1 << 14) << 16) | (0xB5 << 8) | r.randrange(256),
                            r.getrandbits(32), b.IOCTLS[r.choice(names)] ^ (1 << r.randrange(30))])
        arg = ioctl_arg(r, pool, name)
        e = b.ioctl(fd, cmd, arg)
        kind = f"ioctl_{name}"
        if e == 0 and name == "SET_PASSWORD":
            problems.append("SET_PASSWORD succeeded without the old password")
        if e == 0 and name == "ACTIVATE":
            cleanup_activation(None)
    note(kind, e, time.monotonic() - t)


def ioctl_arg(r, pool, name):
    if r.random() < 0.2:
        return pool.bad_pointer(r)
    if name in ("ACTIVATE", "DEACTIVATE"):
        p, _ = pool.string(r)
        pw, good = pool.string(r, password=True)
        if not good and r.random() < 0.97:
            pw = pool.bad_pointer(r)
        return pool.struct_buf(r, struct.pack("<QQ", p, pw), b.SZ_TARGET)
    if name == "VERSION":
        return r.choice([pool.ro, pool.none, pool.keep(b"\0" * b.SZ_VERSION), pool.guard_end - 100])
    if name == "STATUS":
        return r.choice([pool.ro, pool.none, pool.keep(b"\0" * b.SZ_STATUS), pool.guard_end - 10])
    if name == "LIST":
        cap = r.choice([0, 1, 2, 16, 0x7FFFFFFF, 0xFFFFFFFF, r.getrandbits(32)])
        arr = r.choice([0, pool.none, pool.ro, pool.guard_end - b.SZ_DEVICE_INFO // 2,
                        pool.keep(b"\0" * b.SZ_DEVICE_INFO * 2), pool.bad_pointer(r)])
        return pool.struct_buf(r, struct.pack("<QII", arr, cap, r.getrandbits(32)), b.SZ_LIST)
    if name == "SET_PASSWORD":
        old = r.choice([0, pool.bad_pointer(r), pool.keep(b"wrong")]) if r.random() < 0.98 \
            else pool.keep(b"wrong password")
        if old and r.random() < 0.97:
            old = pool.bad_pointer(r)  # a readable wrong password is rate-limited: keep them rare
        new = r.choice([pool.keep(b"pbkdf2-sha256$0$00$00"),
                        pool.keep(b"pbkdf2-sha256$4294967295$" + b"00" * 16 + b"$" + b"00" * 32),
                        pool.keep(b"x" * 300), pool.bad_hash,
                        pool.bad_pointer(r), pool.keep(b"")])
        return pool.struct_buf(r, struct.pack("<QQ", old, new), b.SZ_PASSWD_CHANGE)
    return pool.keep(bytes(r.getrandbits(8) for _ in range(64)))


def cleanup_activation(path):
    """A fuzzed activation succeeded (a valid path and password): undo it."""
    with lock:
        hist["activations_undone"] += 1
    fd = os.open("/dev/bdsnap", os.O_RDWR)
    lst = ctypes.create_string_buffer(b.SZ_LIST)
    arr = ctypes.create_string_buffer(b.SZ_DEVICE_INFO * 8)
    struct.pack_into("<QII", lst, 0, ctypes.addressof(arr), 8, 0)
    b.ioctl(fd, b.IOCTLS["LIST"], lst)
    n = min(8, struct.unpack_from("<QII", lst.raw)[2])
    for i in range(n):
        name = arr.raw[i * b.SZ_DEVICE_INFO:i * b.SZ_DEVICE_INFO + 1024].split(b"\0")[0]
        if name != DEV.encode():
            b.deactivate(name)
    os.close(fd)


def fuzzer(i, cases):
    r = random.Random(1000 + i)
    pool = Pool()
    fd = os.open("/dev/bdsnap", os.O_RDWR)
    for _ in range(cases):
        one_case(r, pool, fd)
    os.close(fd)


def legit_user():
    while not done.is_set():
        e = b.activate(DEV)
        legit[f"activate:{b.errname(e)}"] += 1
        e = b.deactivate(DEV)
        legit[f"deactivate:{b.errname(e)}"] += 1


def main():
    threads = [threading.Thread(target=fuzzer, args=(i, CASES // FUZZERS)) for i in range(FUZZERS)]
    lt = threading.Thread(target=legit_user)
    t0 = time.monotonic()
    for t in threads + [lt]:
        t.start()
    for t in threads:
        t.join()
    done.set()
    lt.join()
    b.deactivate(DEV)
    # The password still works and nothing the fuzzers did is left behind.
    if b.activate(DEV) != 0 or b.deactivate(DEV) != 0:
        problems.append("the correct password no longer works after fuzzing")
    fd = os.open("/dev/bdsnap", os.O_RDWR)
    st = b.status(fd)
    os.close(fd)
    if st["devices"] or st["sessions"]:
        problems.append(f"left activated after fuzzing: {st}")
    legit_ok = legit["activate:OK"]
    bad_legit = {k: v for k, v in legit.items() if not k.endswith(":OK") and "EALREADY" not in k}
    if legit_ok == 0 or bad_legit:
        problems.append(f"real activations under fuzzing: {dict(legit)}")
    print(json.dumps({"cases": sum(v for k, v in hist.items() if ":" in k),
                      "seconds": round(time.monotonic() - t0, 1), "errnos": dict(hist),
                      "legit": dict(legit), "slowest": [round(slowest[0], 2), slowest[1]],
                      "problems": problems[:20], "auth_failures": st["auth_failures"]}))


main()
