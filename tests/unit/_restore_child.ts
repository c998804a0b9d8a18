/**
 * Child process of interrupted_restore_test.ts: restores ROOT's session ID
 * into its recorded image, slowly (one small write at a time, with a pause),
 * printing "write DONE TOTAL" after each write, so that the parent can kill
 * it mid-way.
 *
 * Usage: deno run -A _restore_child.ts ROOT ID
 */
import { applyRestore } from "../../lib/apply.ts";
import { planRestore } from "../../lib/plan.ts";
import { listSessions } from "../../lib/store.ts";

const [root, id] = Deno.args;
const plan = planRestore(await listSessions(root, { liveSessions: new Set() }), id);
const pause = new Int32Array(new SharedArrayBuffer(4));
const out = new TextEncoder();
await applyRestore(plan, {
  ioSize: 4096,
  onProgress: (p) => {
    if (p.phase !== "write" || p.done === 0) return;
    Deno.stdout.writeSync(out.encode(`write ${p.done} ${p.total}\n`));
    Atomics.wait(pause, 0, 0, 20);
  },
});
Deno.stdout.writeSync(out.encode("done\n"));
