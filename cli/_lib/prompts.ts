/**
 * Interactive prompts, behind one module of ours so that a later move to
 * another prompt library is a local change. Prompts draw on standard error,
 * so that standard output stays clean for data (--json).
 *
 * Ctrl-C during a prompt rejects with an error whose name is
 * "ExitPromptError"; see {@linkcode isPromptCancel}.
 * @module
 */
import process from "node:process";
import type * as Inquirer from "@inquirer/prompts";

const context = { output: process.stderr, clearPromptOnDone: false };

// Loaded on first use: the library is most of the CLI's start-up time, and
// most invocations (cron, scripts, --yes) never prompt.
let inquirer: Promise<typeof Inquirer> | undefined;
function lib(): Promise<typeof Inquirer> {
  return inquirer ??= import("@inquirer/prompts");
}

/** Hidden input (nothing echoed). */
export async function password(
  config: { message: string; mask?: boolean | string },
): Promise<string> {
  return await (await lib()).password({ mask: false, toggleMask: false, ...config }, context);
}

/** One line of visible input. */
export async function input(config: Parameters<typeof Inquirer.input>[0]): Promise<string> {
  return await (await lib()).input(config, context);
}

/** A yes/no question. */
export async function confirm(config: Parameters<typeof Inquirer.confirm>[0]): Promise<boolean> {
  return await (await lib()).confirm(config, context);
}

/** Choose one of several values. */
export async function select<T>(config: Parameters<typeof Inquirer.select<T>>[0]): Promise<T> {
  return await (await lib()).select<T>(config, context);
}

/** Did the user cancel the prompt (Ctrl-C, or the terminal went away)? */
export function isPromptCancel(e: unknown): boolean {
  return e instanceof Error && (e.name === "ExitPromptError" || e.name === "AbortPromptError");
}
