// Command-line flags declared once: the parser, `--help` and the Markdown tables of the docs are all made
// from the same list, so adding a flag is one entry in its command's `flags`.

import { parseArgs } from "node:util";
import { UsageError } from "./_args.ts";

/** One flag of a command. */
export interface FlagSpec {
  /** Long name without the dashes (`max-tokens`). */
  readonly name: string;
  /** One-letter alias. */
  readonly short?: string;
  /** `boolean` flags take no value. @default "string" */
  readonly type?: "string" | "boolean";
  /** The flag may be repeated (its value is a list). */
  readonly multiple?: boolean;
  /** Placeholder of the value in the help (`DIR`, `N`). @default "X" */
  readonly value?: string;
  /** The default the parser fills in (as text for string flags). */
  readonly default?: string | number;
  /** How the help describes a default that is computed or absent (`steps / 10`, `random`). */
  readonly defaultText?: string;
  /** The command fails without it. */
  readonly required?: boolean;
  /** Heading of the help section it is listed under. */
  readonly group?: string;
  /** What it does, one or more sentences. */
  readonly doc: string;
}

/** A command: its usage lines, description and flags. */
export interface CommandSpec<Fs extends readonly FlagSpec[] = readonly FlagSpec[]> {
  /** `deno task` name. */
  readonly name: string;
  /** Usage lines after `deno task NAME`. */
  readonly usage: readonly string[];
  /** What the command does (printed under the usage). */
  readonly description: string;
  /** The flags, in help order (`--help` is added). */
  readonly flags: Fs;
  /** Text printed after the flags. */
  readonly footer?: string;
}

type ValueOf<F> = F extends { type: "boolean" } ? boolean
  : F extends { multiple: true } ? string[]
  : string;

/** Parsed values by flag name; flags with a default are always present. */
export type FlagValues<Fs extends readonly FlagSpec[]> =
  & { [F in Fs[number] as F["name"]]?: ValueOf<F> }
  & { help?: boolean };

/**
 * Declares a command (keeps the flag names' literal types for {@linkcode parseFlags}).
 *
 * @param spec The command.
 * @returns The same object.
 */
export function defineCommand<const Fs extends readonly FlagSpec[]>(spec: CommandSpec<Fs>): CommandSpec<Fs> {
  return spec;
}

/**
 * Parses a command line against a command's flags: unknown flags, missing values and positionals are
 * {@linkcode UsageError}s; defaults are filled in; required flags are checked unless `--help` is given.
 *
 * @param spec The command.
 * @param args Arguments without the program name.
 * @returns The values by flag name.
 * @throws {UsageError} On a bad command line.
 */
export function parseFlags<const Fs extends readonly FlagSpec[]>(
  spec: CommandSpec<Fs>,
  args: readonly string[],
): FlagValues<Fs> {
  const options: Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }> = {
    help: { type: "boolean", short: "h" },
  };
  for (const f of spec.flags) {
    options[f.name] = { type: f.type ?? "string", ...(f.short ? { short: f.short } : {}) };
    if (f.multiple) options[f.name].multiple = true;
  }
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ args: [...args], options, strict: true, allowPositionals: false }));
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\. To specify a positional.*$/s, ""));
  }
  if (values.help) return values as FlagValues<Fs>;
  for (const f of spec.flags) {
    if (values[f.name] === undefined && f.default !== undefined) values[f.name] = String(f.default);
    if (f.required && (values[f.name] === undefined || values[f.name] === "")) {
      throw new UsageError(`Missing --${f.name} (required)`);
    }
  }
  return values as FlagValues<Fs>;
}

function flagLabel(f: FlagSpec): string {
  const value = f.type === "boolean" ? "" : ` ${f.value ?? "X"}`;
  return `${f.short ? `-${f.short}, ` : ""}--${f.name}${value}`;
}

/**
 * The default of a flag as the help and the docs show it.
 *
 * @param f The flag.
 * @returns `required`, the default value, its description, `off` for a boolean, or `none`.
 */
export function defaultLabel(f: FlagSpec): string {
  if (f.required) return "required";
  if (f.defaultText !== undefined) return f.defaultText;
  if (f.default !== undefined) return String(f.default);
  return f.type === "boolean" ? "off" : "none";
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/**
 * The `--help` text of a command: usage, description, then each flag with its default, by group.
 *
 * @param spec The command.
 * @returns The text (no trailing newline).
 */
export function helpText(spec: CommandSpec): string {
  const out = spec.usage.map((u, i) => `${i === 0 ? "Usage: " : "       "}deno task ${spec.name} ${u}`);
  out.push("", ...spec.description.split("\n"));
  const help: FlagSpec = { name: "help", short: "h", type: "boolean", doc: "Show this help." };
  const flags = [...spec.flags, help];
  const column = Math.min(28, Math.max(...flags.map((f) => flagLabel(f).length)) + 4);
  const groups = [...new Set(flags.map((f) => f.group ?? "Options"))];
  for (const group of groups) {
    out.push("", `${group}:`);
    for (const f of flags.filter((x) => (x.group ?? "Options") === group)) {
      const label = `  ${flagLabel(f)}`;
      const doc = f.name === "help"
        ? f.doc
        : `${f.doc} ${f.required ? "Required" : `Default: ${defaultLabel(f)}`}.`;
      const lines = wrap(doc, 110 - column);
      const first = label.length + 2 > column ? [label] : [label.padEnd(column) + lines.shift()];
      out.push(...first, ...lines.map((l) => " ".repeat(column) + l));
    }
  }
  if (spec.footer) out.push("", ...spec.footer.split("\n"));
  return out.join("\n");
}

/**
 * A Markdown table of a command's flags (`flag | default | meaning`), as the docs embed it.
 *
 * @param spec The command.
 * @returns The table, one row per flag, ending with a newline.
 */
export function flagTable(spec: CommandSpec): string {
  const escape = (s: string) => s.replaceAll("|", "\\|");
  const rows = spec.flags.map((f) => [
    `\`${escape(flagLabel(f))}\``,
    escape(defaultLabel(f)),
    escape(f.doc),
  ]);
  const head = ["flag", "default", "meaning"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [line(head), `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`, ...rows.map(line)].join("\n") +
    "\n";
}
