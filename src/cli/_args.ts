// Shared command-line helpers: the usage error type and checked number flags.

/** A command-line mistake (exit status 2, with the usage hint). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Parses a numeric flag, or throws a {@linkcode UsageError} naming the flag and the expected range. */
export function numberFlag(
  name: string,
  text: string | undefined,
  check: (n: number) => boolean,
  expected: string,
): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || !check(n)) {
    throw new UsageError(`Invalid --${name} ${JSON.stringify(text)}: expected ${expected}`);
  }
  return n;
}

/** A positive integer flag with a default. */
export function positiveInt(name: string, text: string | undefined, fallback: number): number {
  return numberFlag(name, text, (n) => Number.isInteger(n) && n > 0, "a positive integer") ?? fallback;
}

/** A non-negative integer flag with a default. */
export function nonNegativeInt(name: string, text: string | undefined, fallback: number): number {
  return numberFlag(name, text, (n) => Number.isInteger(n) && n >= 0, "a non-negative integer") ?? fallback;
}

/** A non-negative number flag with a default. */
export function nonNegative(name: string, text: string | undefined, fallback: number): number {
  return numberFlag(name, text, (n) => n >= 0, "a number ≥ 0") ?? fallback;
}

/** `--train-nice`: the training threads' scheduling niceness, an integer from 0 to 19 (default 0). */
export function trainNiceFlag(text: string | undefined): number {
  return numberFlag(
    "train-nice",
    text,
    (n) => Number.isInteger(n) && n >= 0 && n <= 19,
    "an integer from 0 to 19",
  ) ??
    0;
}

/** A flag restricted to a set of words. */
export function oneOf<T extends string>(
  name: string,
  text: string | undefined,
  choices: readonly T[],
  fallback: T,
): T {
  if (text === undefined) return fallback;
  if (!(choices as readonly string[]).includes(text)) {
    throw new UsageError(`Invalid --${name} ${JSON.stringify(text)}: expected one of ${choices.join(", ")}`);
  }
  return text as T;
}

/** Runs a CLI entry point: usage errors exit 2 with a hint, other errors exit 1, both on stderr. */
export async function runCli(name: string, main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`${name}: ${e.message}\nRun \`deno task ${name} --help\` for the options.`);
      Deno.exit(2);
    }
    console.error(`${name}: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
