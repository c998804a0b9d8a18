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
import {
  confirm as inqConfirm,
  input as inqInput,
  password as inqPassword,
  select as inqSelect,
} from "@inquirer/prompts";

const context = { output: process.stderr, clearPromptOnDone: false };

/** Hidden input (nothing echoed). */
export function password(config: { message: string; mask?: boolean | string }): Promise<string> {
  return inqPassword({ mask: false, toggleMask: false, ...config }, context);
}

/** One line of visible input. */
export function input(config: Parameters<typeof inqInput>[0]): Promise<string> {
  return inqInput(config, context);
}

/** A yes/no question. */
export function confirm(config: Parameters<typeof inqConfirm>[0]): Promise<boolean> {
  return inqConfirm(config, context);
}

/** Choose one of several values. */
export function select<T>(config: Parameters<typeof inqSelect<T>>[0]): Promise<T> {
  return inqSelect<T>(config, context);
}

/** Did the user cancel the prompt (Ctrl-C, or the terminal went away)? */
export function isPromptCancel(e: unknown): boolean {
  return e instanceof Error && (e.name === "ExitPromptError" || e.name === "AbortPromptError");
}
