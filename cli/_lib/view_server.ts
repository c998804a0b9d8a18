/**
 * The process behind one view (`bdsnap view --serve`, started by `bdsnap
 * view`): it attaches a free /dev/nbdN to a socket pair, answers the
 * kernel's requests from a {@linkcode ViewReader}, and records itself in
 * /run/bdsnap/views (cli/_lib/views.ts) while it serves.
 *
 * It ends, and the device goes away, when `bdsnap view --remove` or
 * SIGTERM disconnects the device, or when the view can no longer be exact:
 * the origin was deactivated (the module is checked every second, so this
 * holds with no reader too), written outside any session, or its session
 * failed. Reads in flight then get EIO, never wrong data.
 * @module
 */

import { attachNbd, disconnectNbd, type NbdAttachment } from "../../ffi/nbd.ts";
import { alloc, readAsync, write } from "../../ffi/libc.ts";
import * as control from "../../ffi/control.ts";
import { RestoreError } from "../../lib/errors.ts";
import { type PlanOptions, planRestore } from "../../lib/plan.ts";
import {
  decodeRequest,
  encodeReply,
  NBD_CMD,
  NBD_ERR,
  REPLY_SIZE,
  REQUEST_SIZE,
} from "../../lib/nbd_protocol.ts";
import { type LiveState, ViewReader, type ViewSource } from "../../lib/view_reader.ts";
import { dropView, saveView } from "./views.ts";
import { liveSessionIds, readStore } from "./store_view.ts";

/** Largest origin read at a time; bigger requests are read in pieces of this. */
const IO_SIZE = 1 << 20;
/** How often an idle view checks that its origin is still activated. */
const LIVE_CHECK_MS = 1000;

/** What a view server is asked to serve. */
export interface ServeRequest {
  /** The origin as activated. */
  origin: string;
  /** The store root. */
  root: string;
  /** The session whose pre-mount state is shown. */
  session: string;
  /** Planner options (device, identity; open sessions are always allowed). */
  plan: PlanOptions;
}

/** The module's state of `origin` now, or null when it is not activated (or not loaded). */
export function liveState(origin: string): LiveState | null {
  let devices: control.DeviceInfo[];
  try {
    devices = control.list();
  } catch {
    return null;
  }
  const d = devices.find((x) => x.name === origin);
  if (!d) return null;
  return {
    failed: d.state === 2,
    sessions: d.sessions,
    openSession: d.state === 1 ? d.sessionId : "",
    unmountedWrites: d.unmountedWrites,
  };
}

/** The view's source: the store under `root` and the module's state of `origin`. */
export function viewSource(r: ServeRequest): ViewSource {
  return {
    plan: async () =>
      planRestore(await readStore(r.root, liveSessionIds()), r.session, {
        ...r.plan,
        allowOpen: true,
      }),
    live: () => liveState(r.origin),
  };
}

/**
 * Serve the view until its device is disconnected. `ready` is called with
 * the device once it answers (the parent prints it and goes).
 */
export async function serveView(r: ServeRequest, ready: (device: string) => void): Promise<void> {
  const source = viewSource(r);
  const reader = await ViewReader.open(source, r.origin, { ioSize: IO_SIZE });
  // 512-byte logical blocks: a filesystem made with 1 KiB blocks (mkfs.ext4 on
  // a small device) would not mount on a device of 4 KiB ones.
  const blockSize = 512;
  let att: NbdAttachment;
  try {
    att = attachNbd(reader.size, blockSize);
  } catch (e) {
    reader.close();
    throw e;
  }
  const device = att.device;
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    try {
      disconnectNbd(device);
    } catch {
      // already disconnected
    }
  };
  const onTerm = () => end();
  Deno.addSignalListener("SIGTERM", onTerm);
  const timer = setInterval(() => {
    if (source.live() === null) end();
  }, LIVE_CHECK_MS);
  try {
    saveView({
      device,
      pid: Deno.pid,
      origin: r.origin,
      session: r.session,
      holds: reader.plan.sessions.map((s) => s.id),
      created: new Date().toISOString(),
      mountpoint: null,
    });
    ready(device);
    await answer(att.socket, reader, end);
  } finally {
    end();
    await att.done;
    clearInterval(timer);
    Deno.removeSignalListener("SIGTERM", onTerm);
    dropView(device);
    reader.close();
  }
}

/** Answer requests until the socket ends or the kernel says disconnect. */
async function answer(socket: number, reader: ViewReader, end: () => void): Promise<void> {
  const header = alloc(REQUEST_SIZE);
  let buf = alloc(REPLY_SIZE + IO_SIZE);
  for (;;) {
    if (!await readFull(socket, header)) return;
    const req = decodeRequest(header);
    if (req.type === NBD_CMD.disconnect) return;
    let error = 0;
    let length = 0;
    if (req.type === NBD_CMD.read) {
      if (buf.length < REPLY_SIZE + req.length) buf = alloc(REPLY_SIZE + req.length);
      try {
        await reader.read(buf.subarray(REPLY_SIZE, REPLY_SIZE + req.length), req.offset);
        length = req.length;
      } catch (e) {
        error = NBD_ERR.EIO;
        logError(e);
        // Not a passing I/O error: the view can no longer be exact, so it goes.
        if (e instanceof RestoreError && e.code !== "io") end();
      }
    } else if (req.type !== NBD_CMD.flush) {
      // A write or trim: the device is read-only (the kernel refuses them first).
      error = NBD_ERR.EPERM;
      if (req.type === NBD_CMD.write) await skip(socket, req.length);
    }
    encodeReply(buf, req.handle, error);
    writeAll(socket, buf.subarray(0, REPLY_SIZE + length));
  }
}

function logError(e: unknown): void {
  try {
    console.error(`bdsnap view: ${e instanceof Error ? e.message : String(e)}`);
  } catch {
    // nobody is listening any more
  }
}

async function readFull(fd: number, buf: Uint8Array<ArrayBuffer>): Promise<boolean> {
  let done = 0;
  while (done < buf.length) {
    const n = await readAsync(fd, buf.subarray(done));
    if (n <= 0) return false;
    done += n;
  }
  return true;
}

async function skip(fd: number, bytes: number): Promise<void> {
  const sink = alloc(Math.min(bytes, 1 << 16));
  while (bytes > 0) {
    const n = await readAsync(fd, sink.subarray(0, Math.min(bytes, sink.length)));
    if (n <= 0) return;
    bytes -= n;
  }
}

function writeAll(fd: number, buf: Uint8Array<ArrayBuffer>): void {
  let done = 0;
  while (done < buf.length) done += write(fd, buf.subarray(done));
}
