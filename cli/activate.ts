/**
 * `bdsnap activate DEV`: from now on every mount of DEV is a snapshot session.
 * @module
 */
import type { Command } from "./_lib/commander.ts";
import { registerTargetCommand } from "./_lib/activation.ts";

/** Register `activate`. */
export function register(program: Command): void {
  registerTargetCommand(program, "activate");
}
