/**
 * `deno task package [--out DIR] [--compile] [--deno PATH]`: the two Debian
 * packages, built with dpkg-deb alone (no debhelper), into DIR (dist/):
 *
 * - bdsnap-dkms_<version>_all.deb: the kernel module's sources for DKMS;
 * - bdsnap_<version>_amd64.deb: the program, self-contained: by default its
 *   sources with a pinned Deno runtime and their npm packages, run by
 *   /usr/sbin/bdsnap; with --compile one `deno compile` executable instead
 *   (deno compile downloads its runtime, denort, unless DENORT_BIN names it).
 *
 * <version> is cli/main.ts's VERSION. The npm packages are fetched once
 * from the registry into a fresh cache, so the package holds exactly what
 * the program imports. SOURCE_DATE_EPOCH (else the last commit's time)
 * dates the files, so a rebuild of the same commit gives the same packages.
 * docs/INSTALL.md says how to install them.
 * @module
 */

import { parseArgs } from "node:util";
import { VERSION } from "../cli/main.ts";
import { buildDeb } from "./package/deb.ts";
import { stageCli } from "./package/cli_deb.ts";
import { stageDkms } from "./package/dkms_deb.ts";
import { findDeno } from "./package/runtime.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

async function git(...args: string[]): Promise<string> {
  const r = await new Deno.Command("git", { args, cwd: REPO, stdout: "piped", stderr: "null" })
    .output().catch(() => null);
  return r?.success ? new TextDecoder().decode(r.stdout).trim() : "";
}

/** Debian's convention (DEBFULLNAME, DEBEMAIL), else git's identity. */
async function maintainer(): Promise<string> {
  const name = Deno.env.get("DEBFULLNAME") || await git("config", "user.name");
  const email = Deno.env.get("DEBEMAIL") || await git("config", "user.email");
  if (!name || !email) {
    throw new Error("no maintainer: set DEBFULLNAME and DEBEMAIL (or git's user.name, user.email)");
  }
  return `${name} <${email}>`;
}

async function build(
  name: string,
  out: string,
  stageFn: (stage: string) => Promise<Parameters<typeof buildDeb>[1]>,
): Promise<void> {
  const stage = await Deno.makeTempDir({ prefix: `${name}-stage-` });
  try {
    await Deno.chmod(stage, 0o755);
    const meta = await stageFn(stage);
    await buildDeb(stage, meta, out);
    const size = (await Deno.stat(out)).size;
    console.log(`${out} (${(size / 2 ** 20).toFixed(1)} MiB)`);
  } finally {
    await Deno.remove(stage, { recursive: true });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      out: { type: "string", default: "dist" },
      compile: { type: "boolean", default: false },
      deno: { type: "string" },
    },
  });
  try {
    if (!Deno.env.get("SOURCE_DATE_EPOCH")) {
      const t = await git("log", "-1", "--format=%ct");
      if (t) Deno.env.set("SOURCE_DATE_EPOCH", t);
    }
    // deno task runs in the repository; a relative --out is the caller's.
    const base = Deno.env.get("INIT_CWD") ?? Deno.cwd();
    const out = values.out!.startsWith("/") ? values.out! : `${base}/${values.out}`;
    await Deno.mkdir(out, { recursive: true });
    const who = await maintainer();
    const deno = await findDeno(values.deno);
    await build(
      "bdsnap-dkms",
      `${out}/bdsnap-dkms_${VERSION}_all.deb`,
      (stage) => stageDkms(REPO, stage, VERSION, who),
    );
    await build(
      "bdsnap",
      `${out}/bdsnap_${VERSION}_amd64.deb`,
      (stage) =>
        stageCli({
          repo: REPO,
          stage,
          version: VERSION,
          maintainer: who,
          deno,
          compile: values.compile!,
        }),
    );
  } catch (e) {
    console.error(`package: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
