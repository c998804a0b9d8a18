"""bdsnap's control interface from Python (guest side, for tight loops).

Deno starts in seconds under TCG emulation; these loops call the system
calls and ioctls thousands of times, so they go through ctypes instead.
The ABI is kmod/include/uapi/bdsnap.h.
"""
import ctypes
import errno
import os

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.ioctl.restype = ctypes.c_int
libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                       ctypes.c_void_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]

PASSWORD = os.environ.get("BDSNAP_PASSWORD", "correct horse battery staple").encode()
PARAMS = "/sys/module/bdsnap/parameters"
# How many times slower this kernel is than Debian's (the debug kernel: 6);
# the hang detectors' limits are multiplied by it.
SLOW = int(os.environ.get("BDSNAP_SLOW", "1"))

# struct sizes (uapi/bdsnap.h)
SZ_TARGET = 16
SZ_VERSION = 32 + 256
SZ_STATUS = 64
SZ_DEVICE_INFO = 1024 + 256 + 6 * 4 + 5 * 8
SZ_LIST = 16
SZ_PASSWD_CHANGE = 16
MAGIC = 0xB5


def _ioc(direction, nr, size):
    return (direction << 30) | (size << 16) | (MAGIC << 8) | nr


IOC_W, IOC_R = 1, 2
IOCTLS = {
    "ACTIVATE": _ioc(IOC_W, 1, SZ_TARGET),
    "DEACTIVATE": _ioc(IOC_W, 2, SZ_TARGET),
    "VERSION": _ioc(IOC_R, 3, SZ_VERSION),
    "STATUS": _ioc(IOC_R, 4, SZ_STATUS),
    "LIST": _ioc(IOC_R | IOC_W, 5, SZ_LIST),
    "SET_PASSWORD": _ioc(IOC_W, 6, SZ_PASSWD_CHANGE),
}


def nr(name):
    with open(f"{PARAMS}/nr_{name}") as f:
        return int(f.read())


def errname(e):
    return "OK" if e == 0 else errno.errorcode.get(e, str(e))


def addr(x):
    """A syscall argument: bytes (kept alive by the caller), None or an int."""
    if x is None:
        return ctypes.c_ulong(0)
    if isinstance(x, int):
        return ctypes.c_ulong(x & 0xFFFFFFFFFFFFFFFF)
    return ctypes.c_char_p(x)


def raw_syscall(number, *args):
    """Returns 0 or the errno."""
    r = libc.syscall(ctypes.c_long(number), *[addr(a) for a in args])
    return 0 if r >= 0 else ctypes.get_errno()


def activate(path, password=PASSWORD, number=None):
    return raw_syscall(number or nr("activate"), path.encode() if isinstance(path, str) else path,
                       password)


def deactivate(path, password=PASSWORD, number=None):
    return raw_syscall(number or nr("deactivate"), path.encode() if isinstance(path, str) else path,
                       password)


def ioctl(fd, cmd, arg):
    """arg: an int (pointer) or a ctypes buffer. Returns 0 or the errno."""
    p = arg if isinstance(arg, int) else ctypes.addressof(arg)
    r = libc.ioctl(fd, cmd, ctypes.c_void_p(p))
    return 0 if r >= 0 else ctypes.get_errno()


def status(fd):
    """Module counters (STATUS ioctl) as a dict."""
    buf = ctypes.create_string_buffer(SZ_STATUS)
    e = ioctl(fd, IOCTLS["STATUS"], buf)
    if e:
        raise OSError(e, "STATUS")
    import struct
    v = struct.unpack("<II7Q", buf.raw)
    keys = ["devices", "sessions", "inflight_bytes", "inflight_peak", "inflight_limit",
            "chunks_saved", "bytes_saved", "sessions_failed", "auth_failures"]
    return dict(zip(keys, v))


def mount(src, target, fstype="ext4"):
    r = libc.mount(src.encode(), target.encode(), fstype.encode(), 0, None)
    return 0 if r == 0 else ctypes.get_errno()


def umount(target):
    r = libc.umount2(target.encode(), 0)
    return 0 if r == 0 else ctypes.get_errno()


def delete_module(name="bdsnap"):
    r = libc.syscall(ctypes.c_long(176), ctypes.c_char_p(name.encode()),
                     ctypes.c_ulong(os.O_NONBLOCK))
    return 0 if r == 0 else ctypes.get_errno()


PROT_NONE, PROT_READ, PROT_WRITE = 0, 1, 2
MAP_PRIVATE, MAP_ANONYMOUS = 0x02, 0x20


def guarded_string(data):
    """data placed so that it ends exactly at a PROT_NONE page: no NUL follows."""
    page = 4096
    n = (len(data) + page - 1) // page + 1
    base = libc.mmap(None, n * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    if base in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap")
    guard = base + (n - 1) * page
    start = guard - len(data)
    ctypes.memmove(start, data, len(data))
    libc.mprotect(guard, page, PROT_NONE)
    return start


def page(prot):
    """One anonymous page with the given protection; returns its address."""
    base = libc.mmap(None, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    libc.mprotect(base, 4096, prot)
    return base
