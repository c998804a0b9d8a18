import assert from "node:assert/strict";
import {
  DEFAULT_ITERATIONS,
  formatHash,
  fromHex,
  hashPassword,
  iterationsFrom,
  parseHash,
  pbkdf2Sha256,
  toHex,
  verifyPassword,
} from "../../lib/kdf.ts";

Deno.test("kdf: RFC 7914 PBKDF2-HMAC-SHA256 vectors", async () => {
  const enc = new TextEncoder();
  assert.equal(
    toHex(await pbkdf2Sha256("passwd", enc.encode("salt"), 1, 64)),
    "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc" +
      "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783",
  );
  assert.equal(
    toHex(await pbkdf2Sha256("Password", enc.encode("NaCl"), 80000, 64)),
    "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56" +
      "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d",
  );
});

Deno.test("kdf: hash string matches python3 hashlib.pbkdf2_hmac (UTF-8 password)", async () => {
  const salt = Uint8Array.from({ length: 16 }, (_, i) => i);
  const h = await hashPassword("correct horse ✓", { iterations: 1000, salt });
  // python3 -c "import hashlib; print(hashlib.pbkdf2_hmac('sha256',
  //   'correct horse ✓'.encode(), bytes(range(16)), 1000, 32).hex())"
  assert.equal(
    h,
    "pbkdf2-sha256$1000$000102030405060708090a0b0c0d0e0f$" +
      "c8b83388c24b5d42b31bdf705ac87b78e193a1954417fd571fdfbac6814ecaa2",
  );
});

Deno.test("kdf: cross-check with python3 when it is installed", async () => {
  let out: string;
  try {
    const r = await new Deno.Command("python3", {
      args: [
        "-c",
        "import hashlib,sys;print(hashlib.pbkdf2_hmac('sha256',sys.argv[1].encode(),bytes.fromhex(sys.argv[2]),int(sys.argv[3]),32).hex())",
        "pässwörd 123",
        "ffeeddccbbaa99887766554433221100",
        "4096",
      ],
      stdout: "piped",
    }).output();
    out = new TextDecoder().decode(r.stdout).trim();
  } catch {
    return; // no python3: the fixed vectors above still hold
  }
  const h = await hashPassword("pässwörd 123", {
    iterations: 4096,
    salt: fromHex("ffeeddccbbaa99887766554433221100"),
  });
  assert.equal(parseHash(h).key.length, 32);
  assert.equal(toHex(parseHash(h).key), out);
});

Deno.test("kdf: new hashes have a random 16-byte salt and verify", async () => {
  const a = await hashPassword("hunter2hunter2", { iterations: 1000 });
  const b = await hashPassword("hunter2hunter2", { iterations: 1000 });
  assert.notEqual(a, b);
  assert.match(a, /^pbkdf2-sha256\$1000\$[0-9a-f]{32}\$[0-9a-f]{64}$/);
  assert.ok(a.length < 256, "fits BDSNAP_HASH_MAX");
  assert.equal(await verifyPassword("hunter2hunter2", a), true);
  assert.equal(await verifyPassword("hunter2hunter3", a), false);
  assert.equal(await verifyPassword("", a), false);
});

Deno.test("kdf: parseHash refuses malformed strings", () => {
  const good = "pbkdf2-sha256$1000$000102030405060708090a0b0c0d0e0f$" + "ab".repeat(32);
  assert.equal(formatHash(parseHash(good)), good);
  for (
    const bad of [
      "",
      "bcrypt$1000$00$00",
      "pbkdf2-sha256$0$000102030405060708090a0b0c0d0e0f$" + "ab".repeat(32),
      "pbkdf2-sha256$x$000102030405060708090a0b0c0d0e0f$" + "ab".repeat(32),
      "pbkdf2-sha256$1000$0001$" + "ab".repeat(32), // salt too short
      "pbkdf2-sha256$1000$000102030405060708090a0b0c0d0e0f$abcd", // key too short
      "pbkdf2-sha256$1000$zz0102030405060708090a0b0c0d0e0f$" + "ab".repeat(32),
      good + "$extra",
    ]
  ) {
    assert.throws(() => parseHash(bad), SyntaxError, bad);
  }
});

Deno.test("kdf: iterations from option, environment, default", async () => {
  assert.equal(iterationsFrom(undefined, ""), DEFAULT_ITERATIONS);
  assert.equal(DEFAULT_ITERATIONS, 200000);
  assert.equal(iterationsFrom(undefined, "5000"), 5000);
  assert.equal(iterationsFrom(3000, "5000"), 3000);
  assert.throws(() => iterationsFrom(undefined, "12abc"), RangeError);
  assert.throws(() => iterationsFrom(10), RangeError);
  await assert.rejects(() => hashPassword("x", { iterations: 999 }), RangeError);
});
