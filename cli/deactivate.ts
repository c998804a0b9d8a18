/**
 * `bdsnap deactivate DEV`: no more sessions for DEV; a session still mounted
 * ends at its unmount.
 * @module
 */
import type { Command } from "./_lib/commander.ts";
import { registerTargetCommand } from "./_lib/activation.ts";

/** Register `deactivate`. */
export function register(program: Command): void {
  registerTargetCommand(program, "deactivate");
}
