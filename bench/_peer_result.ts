/**
 * What one engine run of the peers bench reports, and where Deno keeps npm packages (the peers load
 * their wasm files from their own package folders).
 *
 * @module
 */

/** One measured generation. */
export interface PeerRun {
  /** Engine (`weightlora`, `wllama`, `transformers.js`). */
  engine: string;
  /** Threads it ran with. */
  threads: number;
  /** Prompt tokens as the engine tokenized the prompt (BOS included). */
  promptTokens: number;
  /** Tokens computed by the decode loop (the generated tokens but the first, which the prefill gives). */
  decodeTokens: number;
  /** Wall time of the decode loop, ms. */
  decodeMs: number;
  /** decodeTokens / decodeMs, per second. */
  tokensPerS: number;
  /** Wall time of the prompt's forward pass, ms. */
  prefillMs: number;
  /** Model load (session creation), ms; start-up not included. */
  loadMs: number;
  /** Generated text. */
  text: string;
  /** Generated token ids, where the engine gives them. */
  tokenIds?: number[];
  /** Of `decodeMs`, the time inside `session.run` (ours only, warm runs): the rest is host work. */
  sessionRunMs?: number;
}

let npmCache: string | undefined;

/**
 * The folder of an npm package version in Deno's npm cache (`deno info --json`'s `npmCache`).
 *
 * @param name Package name.
 * @param version Exact version.
 * @returns Its folder.
 * @throws {Error} When it is not there (run `deno install`).
 */
export async function npmPackageDir(name: string, version: string): Promise<string> {
  if (npmCache === undefined) {
    const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped" })
      .output();
    npmCache = JSON.parse(new TextDecoder().decode(out.stdout)).npmCache as string;
  }
  const dir = `${npmCache}/registry.npmjs.org/${name}/${version}`;
  try {
    await Deno.stat(dir);
  } catch {
    throw new Error(`Cannot find npm package ${name}@${version} in ${npmCache}: run \`deno install\``);
  }
  return dir;
}
