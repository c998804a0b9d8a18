/**
 * `deno task bench --quick` on one kernel (BDSNAP_BENCH_KERNEL, the run's
 * full-tier kernel, else the newest of BDSNAP_TEST_KERNELS):
 * proves the benchmark still runs end to end and reports every figure. It
 * never asserts a speed or a target: numbers are ratios within one run, and
 * under emulation they only mean something in a full run.
 */
import assert from "node:assert/strict";
import { REPO } from "../../scripts/vm/paths.ts";
import { CONFIGS, PHASES, WORKLOADS } from "../../scripts/bench/spec.ts";
import type { BenchResult } from "../../scripts/bench/report.ts";

const series = Deno.env.get("BDSNAP_BENCH_KERNEL") ??
  (Deno.env.get("BDSNAP_TEST_KERNELS") ?? "6.12").split(",").at(-1)!;

function positive(x: unknown, what: string): void {
  assert.ok(typeof x === "number" && Number.isFinite(x) && x > 0, `${what}: ${x}`);
}

Deno.test(`[${series}] deno task bench --quick reports every configuration and workload`, async () => {
  const out = await Deno.makeTempDir({ prefix: "bdsnap-bench-" });
  try {
    const p = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${REPO}/scripts/bench.ts`, "--quick", "--kernel", series, "--out", out],
      cwd: REPO,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    const log = dec.decode(p.stdout) + dec.decode(p.stderr);
    assert.equal(p.code, 0, `bench --quick failed:\n${log.slice(-6000)}`);

    const names = [...Deno.readDirSync(out)].map((e) => e.name);
    const base = names.find((n) => n.endsWith(`-${series}-quick.json`))?.replace(/\.json$/, "");
    assert.ok(base, `no result file in ${names.join(", ")}`);
    for (const ext of ["svg", "md"]) {
      assert.ok(names.includes(`${base}.${ext}`), `no ${base}.${ext}`);
    }
    const svg = await Deno.readTextFile(`${out}/${base}.svg`);
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>\s*$/);

    const r: BenchResult = JSON.parse(await Deno.readTextFile(`${out}/${base}.json`));
    assert.equal(r.mode, "quick");
    assert.equal(r.kernel.series, series);
    assert.deepEqual(r.guest.errors, []);
    assert.deepEqual(r.guest.configs, [...CONFIGS]);

    for (const w of WORKLOADS) {
      for (const c of CONFIGS) {
        const run = r.guest.results[w.id]?.[c];
        assert.ok(run, `no result for ${w.id} on ${c}`);
        for (const ph of PHASES) {
          const x = run[ph];
          const at = `${w.id}/${c}/${ph}`;
          for (
            const k of ["bytes", "ios", "mib_s", "iops", "clat_p50_us", "clat_p99_us"] as const
          ) {
            positive(x[k], `${at} ${k}`);
          }
        }
        for (const ph of PHASES) {
          // Device counters of every phase: the origin was written, a store was seen.
          const io = r.io[w.id]?.[ph]?.[c];
          assert.ok(io, `no I/O counters for ${w.id}/${c}/${ph}`);
          positive(io.origin_write, `${w.id}/${c}/${ph} origin bytes written per user byte`);
          if (c === "raw") assert.equal(io.store_write, null);
          else assert.equal(typeof io.store_write, "number", `${w.id}/${c}/${ph} store counters`);
        }
        if (c !== "raw") {
          // Every block written for the first time was saved (plus a few of the filesystem's own);
          // dm-thin counts 64 KiB pool blocks, which random 4 KiB writes share.
          const first = run.first.chunks ?? 0;
          const least = c === "dm-thin" ? 1 : w.bytes.quick / 4096;
          assert.ok(first >= least, `${w.id}/${c}: ${first} chunks saved`);
          assert.ok(run.memory && run.memory.chunks === first, `${w.id}/${c}: memory figures`);
          assert.equal(typeof run.memory.own_per_chunk, "number");
        }
      }
      for (const ph of PHASES) {
        const x = r.ratios[w.id][ph];
        for (
          const k of [
            "bdsnap_raw",
            "bdsnap_dm",
            "dm_raw",
            "p99_bdsnap_dm",
            "bdsnap_thin",
            "thin_raw",
            "p99_bdsnap_thin",
          ] as const
        ) {
          positive(x[k], `ratio ${w.id}/${ph} ${k}`);
        }
      }
    }
    positive(r.guest.inflight?.peak, "in-flight peak");
    positive(r.guest.inflight?.limit, "in-flight limit");
    positive(r.guest.restore?.bytes, "restored bytes");
    positive(r.guest.restore?.mib_s, "restore MiB/s");
    positive(r.guest.restore?.raw_mib_s, "raw sequential write MiB/s");
    positive(r.restore_ratio, "restore ratio");
    positive(r.restore_host?.ratio, "restore ratio on the host");
    positive(r.guest.mount?.plain.total_ms, "plain mount+umount");
    positive(r.guest.mount?.activated.total_ms, "activated mount+umount");
    positive(r.mount_ratio, "mount ratio");
    // Flushes are only counted on a volatile write cache: every disk must have had one.
    assert.ok(r.guest.write_cache, "no write-cache record");
    for (const [d, wc] of Object.entries(r.guest.write_cache)) assert.equal(wc, "write back", d);
    // Every target is evaluated; whether it is met is not this test's business.
    assert.equal(r.targets.length, 5 * WORKLOADS.length + 1);
    for (const t of r.targets) positive(t.value, t.target);
    const md = await Deno.readTextFile(`${out}/${base}.md`);
    for (const t of r.targets) assert.ok(md.includes(t.target), `${t.target} not in the .md`);
    assert.match(md, /\| (met|\*\*missed\*\*) \|/);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
