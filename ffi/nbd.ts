/**
 * The kernel's network block device (drivers/block/nbd.c) driven through
 * its ioctl interface, as nbd-client does: a /dev/nbdN is given one end of
 * a socket pair and serves every I/O on it as a request to whoever holds
 * the other end (lib/nbd_protocol.ts is the wire format). `bdsnap view`
 * answers the requests from the store and the origin.
 *
 * @module
 */

import { close, ErrnoError, ioctlWord, ioctlWordAsync, O_RDWR, open, socketPair } from "./libc.ts";

// include/uapi/linux/nbd.h: _IO(0xab, n).
const NBD_SET_SOCK = 0xab00;
const NBD_SET_BLKSIZE = 0xab01;
const NBD_DO_IT = 0xab03;
const NBD_CLEAR_SOCK = 0xab04;
const NBD_CLEAR_QUE = 0xab05;
const NBD_SET_SIZE_BLOCKS = 0xab07;
const NBD_DISCONNECT = 0xab08;
const NBD_SET_TIMEOUT = 0xab09;
const NBD_SET_FLAGS = 0xab0a;

/** Transmission flags (include/uapi/linux/nbd.h). */
const NBD_FLAG_HAS_FLAGS = 1 << 0;
const NBD_FLAG_READ_ONLY = 1 << 1;

/** Where sysfs lists block devices. */
const SYS_BLOCK = "/sys/block";

/** A /dev/nbdN attached to our end of a socket pair. */
export interface NbdAttachment {
  /** The device, `/dev/nbdN`. */
  device: string;
  /** Our end of the socket: requests arrive here, replies go here. */
  socket: number;
  /** Settles when the device is disconnected (NBD_DO_IT returned). */
  done: Promise<void>;
}

/** The nbd devices that exist, `nbd0` first (empty when the module is not loaded). */
export function nbdDevices(sysBlock: string = SYS_BLOCK): string[] {
  const names: string[] = [];
  try {
    for (const e of Deno.readDirSync(sysBlock)) if (/^nbd\d+$/.test(e.name)) names.push(e.name);
  } catch {
    return [];
  }
  return names.sort((a, b) => Number(a.slice(3)) - Number(b.slice(3)));
}

/**
 * The thread serving `nbdN` (sysfs `pid`: the one inside NBD_DO_IT), or null
 * when the device is free.
 */
export function nbdServer(name: string, sysBlock: string = SYS_BLOCK): number | null {
  try {
    const pid = Number(Deno.readTextFileSync(`${sysBlock}/${name}/pid`).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/**
 * Attach the first free nbd device, read-only, of `size` bytes in blocks
 * of `blockSize`, to a new socket pair. Another process may take the same
 * device at the same moment: NBD_SET_SOCK then fails with EBUSY and the
 * next one is tried.
 *
 * @throws {Error} when no nbd device is free (load the nbd module with
 * more devices) or the kernel refuses.
 */
export function attachNbd(size: number, blockSize: number): NbdAttachment {
  for (const name of nbdDevices()) {
    if (nbdServer(name) !== null) continue;
    const device = `/dev/${name}`;
    let fd: number;
    try {
      fd = open(device, O_RDWR);
    } catch {
      continue;
    }
    const [ours, theirs] = socketPair();
    try {
      ioctlWord(`NBD_SET_SOCK ${device}`, fd, NBD_SET_SOCK, theirs);
    } catch (e) {
      close(fd);
      close(ours);
      close(theirs);
      if (e instanceof ErrnoError && e.code === "EBUSY") continue;
      throw e;
    }
    try {
      ioctlWord("NBD_SET_BLKSIZE", fd, NBD_SET_BLKSIZE, blockSize);
      ioctlWord("NBD_SET_SIZE_BLOCKS", fd, NBD_SET_SIZE_BLOCKS, Math.ceil(size / blockSize));
      ioctlWord("NBD_SET_FLAGS", fd, NBD_SET_FLAGS, NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY);
      // No request timeout: a request waits for its answer, never fails for slowness.
      ioctlWord("NBD_SET_TIMEOUT", fd, NBD_SET_TIMEOUT, 0);
    } catch (e) {
      ioctlWord("NBD_CLEAR_SOCK", fd, NBD_CLEAR_SOCK, 0);
      close(fd);
      close(ours);
      close(theirs);
      throw e;
    }
    // The kernel holds its own reference to the socket from NBD_SET_SOCK.
    close(theirs);
    const done = ioctlWordAsync(fd, NBD_DO_IT, 0).then(() => {
      try {
        ioctlWord("NBD_CLEAR_QUE", fd, NBD_CLEAR_QUE, 0);
        ioctlWord("NBD_CLEAR_SOCK", fd, NBD_CLEAR_SOCK, 0);
      } catch {
        // already torn down by the kernel
      } finally {
        close(fd);
      }
    });
    return { device, socket: ours, done };
  }
  throw new Error(
    "no free nbd device: load the nbd module (modprobe nbd nbds_max=16), or remove a view",
  );
}

/** Ask the kernel to disconnect `device`: its server sees the end of its socket. */
export function disconnectNbd(device: string): void {
  const fd = open(device, O_RDWR);
  try {
    ioctlWord(`NBD_DISCONNECT ${device}`, fd, NBD_DISCONNECT, 0);
  } finally {
    close(fd);
  }
}
