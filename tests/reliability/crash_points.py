"""Every crash point, guest side (crash_points.sh runs it).

  prepare                  tag the origin's raw region (past the filesystem)
  work DIR SECONDS         the write-heavy workload on the mounted origin
  replay INITIAL LOG ...   replay the dm-log-writes log to many points and
                           check each (see replay())

The log (drivers/md/dm-log-writes.c): sector 0 holds the super
(le64 magic 0x6a736677736872, le64 version 1, le64 nr_entries, le32
sectorsize); from byte `sectorsize` on, each entry is one sectorsize-long
header (le64 sector, le64 nr_sectors, le64 flags, le64 data_len; a MARK's
label follows the header in the same sector) followed, unless it is a
DISCARD, by nr_sectors * sectorsize bytes of data. Sectors are in units of
sectorsize. Completed writes are logged when the flush after them completes
(FUA writes at once), so the log's order is the order in which writes became
durable, and replaying a prefix 0..k gives a state the disks could hold
after a crash.

One log covers origin and store (two dm-linear devices over one log-writes
device), so a prefix is a crash of both at the same instant.
"""
import hashlib
import json
import mmap
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time

BLOCK = 4096
MIB = 1 << 20
FS_BYTES = int(os.environ.get("CP_FS_MIB", "16")) * MIB
DEV = os.environ.get("CP_DEV", "")

LOG_MAGIC = 0x6A736677736872
F_FLUSH, F_FUA, F_DISCARD, F_MARK = 1, 2, 4, 8

MAP_MAGIC = b"BDSNAPMP"
MAP_F_WRITE_AHEAD, MAP_F_FAILED = 1, 2


# --- CRC-32C -----------------------------------------------------------------

def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_TABLE = _crc_table()


def crc32c_py(data):
    c = 0xFFFFFFFF
    t = _TABLE
    for b in bytes(data):
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


class AlgCrc:
    """The kernel's crc32c through AF_ALG (algif_hash): fast under TCG."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_ALG, socket.SOCK_SEQPACKET, 0)
        self.sock.bind(("hash", "crc32c"))

    def __call__(self, data):
        op, _ = self.sock.accept()
        try:
            mv = memoryview(data)
            for i in range(0, len(mv), 1 << 16):
                op.send(mv[i:i + (1 << 16)], socket.MSG_MORE)
            op.send(b"")
            return int.from_bytes(op.recv(4), "little")
        finally:
            op.close()


def make_crc():
    try:
        f = AlgCrc()
        probe = os.urandom(200_000)
        if f(b"123456789") == 0xE3069283 and f(probe) == crc32c_py(probe):
            return f, "AF_ALG"
    except OSError:
        pass
    return crc32c_py, "python"


# --- workload ----------------------------------------------------------------

def aligned(size):
    return mmap.mmap(-1, size)


def dev_size(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def raw_blocks():
    return (dev_size(DEV) - FS_BYTES) // BLOCK


def tag(kind, block, n=0):
    head = struct.pack("<4sIQQQ", kind, 0xC5A5, 0, block, n)
    return head * (BLOCK // len(head))


def prepare():
    n = raw_blocks()
    fd = os.open(DEV, os.O_RDWR | os.O_DIRECT)
    buf = aligned(256 * BLOCK)
    for b0 in range(0, n, 256):
        cnt = min(256, n - b0)
        buf.seek(0)
        for b in range(b0, b0 + cnt):
            buf.write(tag(b"PRE_", b))
        os.pwrite(fd, memoryview(buf)[:cnt * BLOCK], FS_BYTES + b0 * BLOCK)
    os.fsync(fd)
    os.close(fd)


def work(d, seconds):
    """Four writers until the deadline: fsync-heavy small files, buffered
    overwrites (fsync one in 8), an O_DIRECT file (fdatasync one in 16), raw
    O_DIRECT 4 KiB writes past the filesystem's end (fsync of the device after
    every 8)."""
    counts = {}
    errors = []
    deadline = [0.0]
    # The clock starts when every writer is set up (the O_DIRECT file's first fill is slow).
    ready = threading.Barrier(5, action=lambda: deadline.__setitem__(0, time.monotonic() + seconds))

    def loop(name, step, setup=None):
        def body():
            try:
                st = setup() if setup else None
            except Exception as e:
                errors.append(f"{name} setup: {e!r}")
                st = None
            ready.wait()
            if st is None and setup:
                return
            try:
                i = 0
                while time.monotonic() < deadline[0]:
                    i += 1
                    step(st, i)
                counts[name] = i
            except Exception as e:  # reported, fails the workload
                errors.append(f"{name}: {e!r}")
        return threading.Thread(target=body)

    os.makedirs(f"{d}/small", exist_ok=True)
    r = random.Random(1)

    def small(_, i):
        name = f"{d}/small/f{i % 48}"
        with open(name + ".tmp", "wb") as f:
            f.write(os.urandom(r.choice([512, 4096, 20000, 65536])))
            f.flush()
            os.fsync(f.fileno())
        os.rename(name + ".tmp", name)
        if i % 7 == 0:
            try:
                os.unlink(f"{d}/small/f{r.randrange(48)}")
            except FileNotFoundError:
                pass
        dfd = os.open(f"{d}/small", os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)

    def buf_setup():
        return [open(f"{d}/b{i}", "w+b") for i in range(3)]

    def buffered(files, i):
        f = files[i % 3]
        f.seek(random.randrange(0, MIB, 4096))
        f.write(os.urandom(random.choice([4096, 16384, 65536])))
        if i % 8 == 0:
            f.flush()
            os.fsync(f.fileno())

    def direct_setup():
        fd = os.open(f"{d}/direct", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
        buf = aligned(64 << 10)
        buf.write(os.urandom(64 << 10))
        for off in range(0, MIB, 64 << 10):
            os.pwrite(fd, buf, off)
        os.fdatasync(fd)
        return fd, buf

    def direct(st, i):
        fd, buf = st
        n = random.choice([4096, 16384, 65536])
        os.pwrite(fd, memoryview(buf)[:n], random.randrange(0, MIB - n + 1, 4096))
        if i % 16 == 0:
            os.fdatasync(fd)

    def raw_setup():
        return os.open(DEV, os.O_RDWR | os.O_DIRECT), aligned(BLOCK), raw_blocks()

    def raw(st, i):
        fd, buf, n = st
        for _ in range(8):
            b = random.randrange(n)
            buf.seek(0)
            buf.write(tag(b"NEW_", b, i))
            os.pwrite(fd, buf, FS_BYTES + b * BLOCK)
        os.fsync(fd)

    threads = [loop("small_files", small), loop("buffered", buffered, buf_setup),
               loop("o_direct_file", direct, direct_setup), loop("raw_batches", raw, raw_setup)]
    for t in threads:
        t.start()
    ready.wait()
    for t in threads:
        t.join()
    print(f"workload: {json.dumps(counts)}")
    if errors:
        raise SystemExit("; ".join(errors))


# --- the log -----------------------------------------------------------------

class Log:
    def __init__(self, path):
        self.fd = os.open(path, os.O_RDONLY)
        magic, version, nr, ss = struct.unpack_from("<QQQI", os.pread(self.fd, 28, 0))
        if magic != LOG_MAGIC or version != 1:
            raise SystemExit(f"{path}: not a dm-log-writes log (magic {magic:#x}, version {version})")
        self.ss = ss
        self.entries = []  # (sector, nr_sectors, flags, data position, mark)
        pos = ss
        for _ in range(nr):
            h = os.pread(self.fd, ss, pos)
            sector, nsec, flags, dlen = struct.unpack_from("<QQQQ", h)
            mark = h[32:32 + dlen].decode(errors="replace") if flags & F_MARK else None
            pos += ss
            self.entries.append((sector, nsec, flags, pos, mark))
            if not flags & F_DISCARD:
                pos += nsec * ss

    def mark(self, label):
        for i, e in enumerate(self.entries):
            if e[4] == label:
                return i
        raise SystemExit(f"no mark {label!r} in the log")

    def apply(self, i, img):
        """Apply entry i to img; return its byte range (or None)."""
        sector, nsec, flags, pos, _ = self.entries[i]
        if not nsec:
            return None
        a, n = sector * self.ss, nsec * self.ss
        if a + n > len(img):
            raise SystemExit(f"entry {i} writes past D ({a}+{n})")
        if flags & F_DISCARD:
            img[a:a + n] = bytes(n)
        else:
            data = os.pread(self.fd, n, pos)
            if len(data) != n:
                raise SystemExit(f"entry {i}: log ends inside its data")
            img[a:a + n] = data
        return a, a + n


# --- the store: recover, read, apply (docs/FORMAT.md) ---------------------------

W = "/dev/shm/cp"
MNT = "/mnt/cp-store"
BLKFLSBUF = 0x1261


def sh(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


class StoreDev:
    """One loop device over an image of the crashed store (in /dev/shm). Each
    recovery writes the store's range of the replayed image into the file,
    drops the loop device's cache and mounts it read-write: ext4 replays its
    journal, as after a real crash. mount(2) itself, not mount(8): a process
    start-up costs much under emulation."""

    def __init__(self, size):
        import bdsnap_ctl
        self.ctl = bdsnap_ctl
        self.img = f"{W}/store.img"
        with open(self.img, "wb") as f:
            f.truncate(size)
        r = sh("losetup", "-f", "--show", self.img)
        if r.returncode:
            raise SystemExit(f"losetup: {r.stderr.strip()}")
        self.loop = r.stdout.strip()
        self.fd = os.open(self.img, os.O_RDWR)
        # Written through a shared mapping: a plain copy into the file's
        # (tmpfs) pages, where pwrite costs a page-cache walk per page.
        self.mm = mmap.mmap(self.fd, size)

    def load(self, data):
        self.mm[:] = data
        lfd = os.open(self.loop, os.O_RDONLY)
        try:
            import fcntl
            fcntl.ioctl(lfd, BLKFLSBUF)
        finally:
            os.close(lfd)

    def mount(self):
        e = self.ctl.mount(self.loop, MNT)
        if e == 0:
            return ""
        first = os.strerror(e)
        f = sh("e2fsck", "-fy", self.loop)
        e = self.ctl.mount(self.loop, MNT)
        if e == 0:
            return f"mount failed ({first}), mounted after e2fsck -fy (exit {f.returncode})"
        raise RuntimeError(f"crashed store not mountable: {first}; after e2fsck: {os.strerror(e)}")

    def umount(self):
        e = self.ctl.umount(MNT)
        if e:
            raise RuntimeError(f"umount {MNT}: {os.strerror(e)}")

    def close(self):
        self.mm.close()
        os.close(self.fd)
        sh("losetup", "-d", self.loop)


def read_session(sid):
    d = f"{MNT}/{sid}"
    if not os.path.isdir(d):
        return None
    s = {}
    for f in ("meta.json", "blocks.map", "blocks.dat"):
        try:
            with open(f"{d}/{f}", "rb") as fh:
                s[f] = fh.read()
        except FileNotFoundError:
            s[f] = None
    s["others"] = sorted(x for x in os.listdir(MNT) if x not in ("lost+found", sid))
    return s


class Applier:
    """A minimal reader and applier of one session, from docs/FORMAT.md."""

    def __init__(self, crc, origin_bytes):
        self.crc = crc
        self.size = origin_bytes
        self.verified = {}  # record index -> (dat_offset, length, data_crc, data)

    def check(self, s, diff, premount):
        """Restore the crashed origin from session s, on paper: `diff` is the
        set of 4 KiB chunks where the crashed origin differs from `premount`.
        The restored origin equals the pre-mount image exactly when every
        valid record's data equals the pre-mount content at its place and
        every differing chunk is covered by a record (the rest of the device
        is the crashed origin, which equals the pre-mount image there).
        Returns allowed (bool), why, records, torn, state, exact, recs."""
        out = {"records": 0, "torn": "", "state": "none", "allowed": True, "why": "",
               "recs": []}

        def refuse(why):
            out["allowed"] = False
            out["why"] = out["why"] or why

        def finish():
            recs = out["recs"]
            covered = set()
            wrong = []
            for i, dev_off, data in recs:
                for c in range(dev_off, dev_off + len(data), BLOCK):
                    covered.add(c)
                v = self.verified[i]
                if v[4] is None:
                    v[4] = data == premount[dev_off:dev_off + len(data)]
                if not v[4]:
                    wrong.append(dev_off)
            uncovered = sorted(diff - covered)
            out["exact"] = not wrong and not uncovered
            out["wrong_records"] = wrong
            out["uncovered"] = uncovered
            return out

        if s is None:
            out["state"] = "no session directory"
            refuse("no session directory")
            return finish()
        meta = None
        try:
            meta = json.loads(s["meta.json"]) if s["meta.json"] else None
        except ValueError as e:
            refuse(f"meta.json unreadable: {e}")
        if meta is None:
            refuse("meta.json missing or empty")
        m = s["blocks.map"] or b""
        dat = s["blocks.dat"] or b""
        if len(m) < 64:
            refuse(f"blocks.map {len(m)} bytes: no header (damaged)")
            out["state"] = "damaged"
            return finish()
        (magic, version, hsize, rsize, chunk, dsize, lbs, flags, ferr, frec) = struct.unpack_from(
            "<8sIIIIQIIII", m)
        hcrc = struct.unpack_from("<I", m, 60)[0]
        if magic != MAP_MAGIC or version != 1 or hsize != 64 or rsize != 32:
            refuse("bad header (damaged)")
        elif hcrc != self.crc(m[:60]):
            refuse("bad header_crc (damaged)")
        elif flags & ~(MAP_F_WRITE_AHEAD | MAP_F_FAILED):
            refuse(f"unknown header flags {flags:#x} (damaged)")
        elif chunk % BLOCK:
            refuse(f"chunk_size {chunk}: this applier handles multiples of {BLOCK}")
        if not out["allowed"]:
            out["state"] = "damaged"
            return finish()
        if dsize != self.size:
            refuse(f"device_size {dsize}, the origin is {self.size}")
        state = (meta or {}).get("state", "?")
        out["state"] = {"open": "interrupted"}.get(state, state)
        write_ahead = bool(flags & MAP_F_WRITE_AHEAD) and (meta or {}).get("durability") == "write-ahead"
        if flags & MAP_F_FAILED:
            out["state"] = "failed"
            refuse(f"FAILED in the header (errno {ferr}, {frec} records)")
        elif state == "open" and not write_ahead:
            refuse("interrupted and not write-ahead")
        elif state not in ("open", "closed"):
            refuse(f"meta.json state {state!r}")
        # Records, in order, up to the torn tail.
        n_full = (len(m) - 64) // 32
        expect_dat = 0
        seen = set()
        recs = out["recs"]
        for i in range(n_full):
            r = m[64 + 32 * i:96 + 32 * i]
            dev_off, dat_off, length, dcrc, seq, rcrc = struct.unpack("<QQIIII", r)
            torn = ("bad record_crc" if rcrc != self.crc(r[:28]) else
                    f"seq {seq}" if seq != i else
                    f"dat_offset {dat_off}, expected {expect_dat}" if dat_off != expect_dat else
                    f"data past blocks.dat's end ({dat_off}+{length} > {len(dat)})"
                    if dat_off + length > len(dat) else "")
            if torn:
                out["torn"] = f"record {i}: {torn}"
                break
            if (not length or length % chunk or dev_off % chunk or dev_off + length > self.size):
                refuse(f"record {i}: dev_offset {dev_off} length {length} (damaged)")
                break
            data = dat[dat_off:dat_off + length]
            v = self.verified.get(i)
            if not (v and v[:3] == [dat_off, length, dcrc] and v[3] == data):
                if self.crc(data) != dcrc:
                    refuse(f"record {i}: data_crc mismatch at blocks.dat offset {dat_off} (damaged)")
                    break
                self.verified[i] = [dat_off, length, dcrc, data, None]
            for c in range(dev_off, dev_off + length, chunk):
                if c in seen:
                    refuse(f"record {i}: chunk {c} saved twice (rule 3)")
                seen.add(c)
            recs.append((i, dev_off, data))
            expect_dat = dat_off + length
        else:
            if (len(m) - 64) % 32:
                out["torn"] = f"record {n_full}: incomplete ({(len(m) - 64) % 32} bytes)"
        out["records"] = len(recs)
        if state == "closed" and (out["torn"] or meta.get("records") != len(recs) or
                                  meta.get("bytes") != len(dat)):
            refuse(f"closed, but {len(recs)} records/{len(dat)} bytes, torn {out['torn']!r}, "
                   f"meta {meta.get('records')}/{meta.get('bytes')} (damaged)")
        return finish()


def cli_restore(store, sid, crashed, premount_sha):
    """The real restorer on the recovered store: `bdsnap restore --target`
    into an image of the crashed origin, then the image's sha256."""
    target = f"{W}/target.img"
    with open(target, "wb") as f:
        f.write(crashed)
    store.mount()
    try:
        r = sh("bdsnap", "--store", MNT, "--json", "restore", "--session", sid, "--target", target,
               "--yes")
    finally:
        store.umount()
    res = {"exit": r.returncode, "exact": None, "sha_ok": False, "error": ""}
    try:
        j = json.loads(r.stdout)
        res["exact"] = j.get("exact")
        if r.returncode:
            res["error"] = json.dumps(j)[:300]
    except ValueError:
        res["error"] = (r.stderr.strip() or r.stdout.strip())[:300]
    h = hashlib.sha256()
    with open(target, "rb") as f:
        while chunk := f.read(4 * MIB):
            h.update(chunk)
    res["sha_ok"] = h.hexdigest() == premount_sha
    os.unlink(target)
    return res


class Timer:
    def __init__(self):
        self.t = {}

    def __call__(self, name):
        timer = self

        class Ctx:
            def __enter__(self):
                self.s = time.monotonic()

            def __exit__(self, *exc):
                timer.t[name] = timer.t.get(name, 0) + time.monotonic() - self.s
        return Ctx()

    def summary(self):
        return ", ".join(f"{k} {v:.0f} s" for k, v in self.t.items())


def replay(a):
    t0 = time.monotonic()
    tm = Timer()
    crc, crc_how = make_crc()
    os.makedirs(W, exist_ok=True)
    os.makedirs(MNT, exist_ok=True)
    with tm("log index"):
        log = Log(a.log)
    ents = log.entries
    P, F = log.mark("premount"), log.mark("final")
    O, S = a.origin_bytes, a.store_bytes
    with open(a.initial, "rb") as f:
        img = bytearray(f.read())
    if len(img) != O + S:
        raise SystemExit(f"initial image {len(img)} bytes, expected {O + S}")
    flush_pts = [i for i in range(P, F + 1) if ents[i][2] & (F_FLUSH | F_FUA)] if a.flush_points else []
    rng = random.Random(a.seed)
    span = range(P, F + 1)
    sampled = rng.sample(span, min(a.points, len(span)))
    points = sorted(set(flush_pts) | set(sampled) | {P, F})
    flush_set = set(flush_pts)
    cli_at = set(points[::a.cli_every]) | {points[-1]} | ({flush_pts[-1]} if flush_pts else set())
    writes = sum(1 for e in ents[P:F + 1] if e[1])
    print(f"log: {len(ents)} entries, sectorsize {log.ss}; window {P}..{F}: {writes} writes, "
          f"{len(flush_pts)} FLUSH/FUA; {len(points)} points ({len(sampled)} sampled, seed "
          f"{a.seed}); CRC-32C via {crc_how}", flush=True)

    applier = Applier(crc, O)
    store = StoreDev(S)
    premount = None
    diff = set()  # 4 KiB chunks where the replayed origin differs from the pre-mount image
    store_dirty, session = True, None
    recoveries = 0
    res = {"points": 0, "exact": 0, "inexact": 0, "flush_points": len(flush_pts),
           "sampled": len(sampled), "no_session": 0, "unchanged_unrestorable": 0,
           "refused_changed": 0, "cli_checked": 0, "cli_exact": 0, "cli_problems": 0,
           "store_fsck": 0, "max_records": 0, "torn_tails": 0, "max_changed_chunks": 0,
           "states": {}}
    first_bad = None
    problems = []
    nxt = 0
    try:
        for k in points:
            with tm("replay"):
                while nxt <= k:
                    rg = log.apply(nxt, img)
                    if rg and rg[1] > O:
                        store_dirty = True
                    if rg and premount is not None and rg[0] < O:
                        for c in range(rg[0] // BLOCK * BLOCK, min(rg[1], O), BLOCK):
                            if img[c:c + BLOCK] != premount[c:c + BLOCK]:
                                diff.add(c)
                            else:
                                diff.discard(c)
                    if nxt == P:
                        premount = bytes(img[:O])
                        got = hashlib.sha256(premount).hexdigest()
                        if got != a.premount:
                            raise SystemExit(f"replayer check: origin at mark premount has sha256 "
                                             f"{got}, the device had {a.premount}")
                    nxt += 1
            if store_dirty:
                with tm("store load"):
                    store.load(memoryview(img)[O:])
                with tm("store mount (journal)"):
                    note = store.mount()
                if note:
                    res["store_fsck"] += 1
                    problems.append(f"point {k}: {note}")
                try:
                    with tm("store read"):
                        session = read_session(a.session)
                finally:
                    with tm("store umount"):
                        store.umount()
                recoveries += 1
                store_dirty = False
            with tm("check"):
                out = applier.check(session, diff, premount)
            exact = out["exact"]
            changed = bool(diff)
            res["points"] += 1
            res["states"][out["state"]] = res["states"].get(out["state"], 0) + 1
            res["max_records"] = max(res["max_records"], out["records"])
            res["max_changed_chunks"] = max(res["max_changed_chunks"], len(diff))
            res["torn_tails"] += bool(out["torn"])
            if session is None:
                res["no_session"] += 1
            bad = []
            if not exact:
                bad.append("restored origin differs from the pre-mount image")
            if not out["allowed"]:
                if changed:
                    res["refused_changed"] += 1
                    bad.append(f"the restorer would refuse: {out['why']}")
                else:
                    res["unchanged_unrestorable"] += 1
            if session is not None and session["others"]:
                bad.append(f"other entries in the store: {session['others']}")
            if exact and not bad:
                res["exact"] += 1
            else:
                res["inexact"] += not exact
                if first_bad is None:
                    # Where it differs, and which log entries wrote there.
                    where = out["uncovered"][:4] + out["wrong_records"][:4]
                    writers = {}
                    for c in where:
                        writers[c] = [j for j in range(P, k + 1) if ents[j][1] and
                                      ents[j][0] * log.ss < c + BLOCK and
                                      (ents[j][0] + ents[j][1]) * log.ss > c][-4:]
                    first_bad = {
                        "point": k, "window": [P, F], "entry": list(ents[k][:3]),
                        "kind": "FLUSH/FUA" if k in flush_set else "sampled",
                        "problems": bad, "state": out["state"], "records": out["records"],
                        "torn": out["torn"], "why": out["why"], "changed_chunks": len(diff),
                        "uncovered_chunks": len(out["uncovered"]),
                        "first_uncovered": out["uncovered"][:8],
                        "records_not_premount": out["wrong_records"][:8],
                        "last_writes_there": {str(c): [[j, *ents[j][:3]] for j in js]
                                              for c, js in writers.items()},
                    }
                    print("FIRST FAILING POINT " + json.dumps(first_bad), flush=True)
            if k in cli_at and session is not None:
                with tm("bdsnap restore"):
                    c = cli_restore(store, a.session, memoryview(img)[:O], a.premount)
                res["cli_checked"] += 1
                ok = c["exit"] == 0 and c["exact"] is True and c["sha_ok"]
                # The real restorer must agree with the applier: restore when it may, exactly.
                agree = ok if out["allowed"] else c["exit"] != 0
                res["cli_exact"] += ok
                if not agree or (not ok and changed):
                    res["cli_problems"] += 1
                    problems.append(
                        f"point {k}: bdsnap restore exit {c['exit']}, exact {c['exact']}, sha256 "
                        f"{'=' if c['sha_ok'] else '!='} pre-mount; applier: allowed "
                        f"{out['allowed']} ({out['why']}), exact {exact}; {c['error']}")
            if res["points"] % 100 == 0:
                print(f"  {res['points']}/{len(points)} points, {res['exact']} exact, "
                      f"{int(time.monotonic() - t0)} s: {tm.summary()}", flush=True)
    finally:
        store.close()
    # The replayer reproduces the devices: at the final mark, their last states.
    fo = hashlib.sha256(img[:O]).hexdigest()
    fs = hashlib.sha256(img[O:]).hexdigest()
    if fo != a.final_origin or fs != a.final_store:
        problems.append(f"replayer check: at mark final origin {fo[:12]} (device {a.final_origin[:12]}),"
                        f" store {fs[:12]} (device {a.final_store[:12]})")
    secs = int(time.monotonic() - t0)
    ok = res["exact"] == res["points"] and not problems and res["cli_checked"] > 0
    note = (f"{res['points']} crash points of {writes} writes ({res['flush_points']} FLUSH/FUA + "
            f"{res['sampled']} sampled, seed {a.seed}): {res['exact']} exact, {res['inexact']} inexact"
            f"; {res['cli_checked']} also through bdsnap restore ({res['cli_exact']} exact); "
            f"up to {res['max_records']} records and {res['max_changed_chunks']} changed origin "
            f"chunks, {res['torn_tails']} points with a torn tail; states {json.dumps(res['states'])}"
            f"; {recoveries} store recoveries; session closed as {a.closed_state}; "
            f"replay {secs} s ({tm.summary()}), setup and workload {a.setup_seconds} s")
    if first_bad:
        note += f"; first failing point {json.dumps(first_bad)}"
    if problems:
        note += "; " + "; ".join(problems[:5])
    res.update({"entries": len(ents), "writes": writes, "replay_seconds": secs,
                "setup_seconds": a.setup_seconds, "first_failing": first_bad, "crc": crc_how,
                "times": {k: round(v, 1) for k, v in tm.t.items()}})
    print("@@RUN " + json.dumps({"ok": ok, "lost": res["inexact"], "note": note, "metrics": res}))
    return 0


def main():
    cmd = sys.argv[1]
    if cmd == "prepare":
        prepare()
    elif cmd == "work":
        work(sys.argv[2], float(sys.argv[3]))
    elif cmd == "replay":
        import argparse
        p = argparse.ArgumentParser()
        p.add_argument("initial")
        p.add_argument("log")
        for opt in ("origin-bytes", "store-bytes", "points", "seed", "cli-every", "flush-points",
                    "setup-seconds"):
            p.add_argument(f"--{opt}", type=int, required=True)
        for opt in ("premount", "final-origin", "final-store", "session", "closed-state"):
            p.add_argument(f"--{opt}", required=True)
        sys.exit(replay(p.parse_args(sys.argv[2:])))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
