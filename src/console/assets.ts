/**
 * The console's static assets — its stylesheet and its one script — read once from `assets/` beside this
 * file and served by the app itself under `/console/assets/` (no CDN, no external request), gzipped for
 * clients that accept it, with a content hash as version so that pages can ask browsers to cache them for
 * good.
 *
 * @module
 */

/** One served file. */
export interface ConsoleAsset {
  /** Content type. */
  type: string;
  /** The bytes. */
  body: Uint8Array<ArrayBuffer>;
  /** The bytes, gzipped (for clients that accept it). */
  gzip: Uint8Array<ArrayBuffer>;
}

/** The loaded assets. */
export interface ConsoleAssets {
  /** By file name (`console.css`, `console.js`). */
  files: Map<string, ConsoleAsset>;
  /** A short hash of every file (the `?v=` of their URLs). */
  version: string;
}

const FILES: Record<string, string> = {
  "console.css": "text/css; charset=utf-8",
  "console.js": "text/javascript; charset=utf-8",
};

let loaded: Promise<ConsoleAssets> | undefined;

/**
 * Reads the assets (once per process).
 *
 * @returns The files and their version.
 * @throws {Error} When a file cannot be read (naming it).
 */
export function loadConsoleAssets(): Promise<ConsoleAssets> {
  loaded ??= (async () => {
    const files = new Map<string, ConsoleAsset>();
    const all: number[] = [];
    for (const [name, type] of Object.entries(FILES)) {
      const url = new URL(`./assets/${name}`, import.meta.url);
      let body: Uint8Array<ArrayBuffer>;
      try {
        body = await Deno.readFile(url);
      } catch (e) {
        throw new Error(`Cannot read the console asset ${url.pathname}: ${(e as Error).message}`);
      }
      const gzip = new Uint8Array(
        await new Response(new Blob([body]).stream().pipeThrough(new CompressionStream("gzip")))
          .arrayBuffer(),
      );
      files.set(name, { type, body, gzip });
      all.push(...body);
    }
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(all)));
    const version = [...digest.slice(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join("");
    return { files, version };
  })();
  loaded.catch(() => (loaded = undefined));
  return loaded;
}
