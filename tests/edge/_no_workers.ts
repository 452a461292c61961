// Imported first by `_isolate_main.ts`, so that it runs before any module of the server: removes the web
// `Worker` constructor, as an edge isolate has none. Deno has no permission that denies Workers (a `blob:`
// or `data:` Worker starts under any permissions; only a file Worker needs read access to its code), and
// `deno serve` ignores `--preload` (Deno 2.9.6), so the harness takes the global away here.

delete (globalThis as { Worker?: unknown }).Worker;
