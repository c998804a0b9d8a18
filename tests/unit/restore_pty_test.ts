/**
 * The interactive restore under a pseudo-terminal (util-linux `script`):
 * choosing the device and the session with the arrow keys, the typed-name
 * confirmation, and Ctrl-C, which must write nothing.
 */
import assert from "node:assert/strict";
import {
  type History,
  randomBytes,
  randomWrites,
  rng,
  simulate,
  writeHistory,
} from "../_store_writer.ts";

const hasScript = await new Deno.Command("script", {
  args: ["--version"],
  stdout: "null",
  stderr: "null",
})
  .output().then((o) => o.success, () => false);

const CONFIG = new URL("../../deno.json", import.meta.url).pathname;
const ENTRY = new URL("./_restore_cli.ts", import.meta.url).pathname;

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r/g;

/** A program running on a pseudo-terminal, driven by keystrokes. */
interface Pty {
  /** Everything shown so far, without escape sequences. */
  readonly text: string;
  waitFor(re: RegExp, ms?: number): Promise<void>;
  send(keys: string): Promise<void>;
  exit(): Promise<number>;
}

function pty(args: string[]): Pty {
  const cmd = "stty cols 200 rows 50; exec " +
    [Deno.execPath(), "run", "-A", "--config", CONFIG, ENTRY, ...args].map(shellQuote).join(" ");
  const child = new Deno.Command("script", {
    args: ["-qfec", cmd, "/dev/null"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { TERM: "xterm" },
  }).spawn();
  const writer = child.stdin.getWriter();
  let raw = "";
  const done = (async () => {
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) raw += chunk;
  })();
  const text = () => raw.replace(ANSI, "");
  return {
    get text() {
      return text();
    },
    async waitFor(re, ms = 15000) {
      const end = Date.now() + ms;
      while (!re.test(text())) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${re}; screen:\n${text()}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async send(keys) {
      await writer.write(new TextEncoder().encode(keys));
      await new Promise((r) => setTimeout(r, 150));
    },
    async exit() {
      const status = await child.status;
      await done;
      await writer.close().catch(() => {});
      await child.stderr.cancel();
      return status.code;
    },
  };
}

async function fixture(): Promise<
  { dir: string; root: string; image: string; ids: string[]; h: History }
> {
  const dir = await Deno.makeTempDir({ prefix: "bdsnap-pty-" });
  const root = `${dir}/store`;
  const image = `${dir}/disk.img`;
  const rand = rng(11);
  const h = simulate(
    randomBytes(rand, 128 * 1024),
    image,
    Array.from({ length: 3 }, () => ({ writes: randomWrites(rand, 128 * 1024, 6, 20000) })),
  );
  const ids = await writeHistory(root, h);
  await Deno.writeFile(image, h.final);
  return { dir, root, image, ids, h };
}

const DOWN = "\x1b[B";

Deno.test({
  name: "pty: interactive restore — choose device and session, type the name, restored",
  ignore: !hasScript,
  fn: async () => {
    const f = await fixture();
    const p = pty(["--store", f.root, "restore"]);
    await p.waitFor(/Device to restore/);
    await p.send("\r");
    await p.waitFor(/to its state before which mount\?/);
    // Each choice says its state and guarantee.
    await p.waitFor(/changed +closed, write-ahead/);
    // Newest first: two steps down is the oldest session.
    await p.send(DOWN);
    await p.send(DOWN);
    await p.send("\r");
    await p.waitFor(/Type .*disk\.img to confirm:/);
    assert.match(p.text, new RegExp(`state: +as before the mount of .*\\(session ${f.ids[0]}\\)`));
    assert.match(p.text, /the result is exact \(every session of the chain ended cleanly\)/);
    await p.send(f.image + "\r");
    assert.equal(await p.exit(), 0, p.text);
    if (Deno.env.get("BDSNAP_PTY_VERBOSE")) console.log(p.text);
    assert.match(p.text, /restored .*disk\.img to its state before the mount of/);
    assert.match(p.text, /verified: checksums of 3 session\(s\)/);
    assert.deepEqual(await Deno.readFile(f.image), f.h.before[0]);
    await Deno.remove(f.dir, { recursive: true });
  },
});

Deno.test({
  name: "pty: a wrong name or Ctrl-C at the confirmation writes nothing",
  ignore: !hasScript,
  fn: async () => {
    const f = await fixture();
    let p = pty(["--store", f.root, "restore", f.image]);
    await p.waitFor(/to its state before which mount\?/);
    await p.send("\r");
    await p.waitFor(/to confirm:/);
    await p.send("/dev/sda\r");
    assert.equal(await p.exit(), 1);
    assert.match(p.text, /the name typed does not match; nothing was written/);

    p = pty(["--store", f.root, "restore", "--session", f.ids[1]]);
    await p.waitFor(/to confirm:/);
    await p.send("\x03");
    assert.equal(await p.exit(), 1);
    assert.match(p.text, /cancelled; nothing was written/);
    assert.deepEqual(await Deno.readFile(f.image), f.h.final);
    await Deno.remove(f.dir, { recursive: true });
  },
});
