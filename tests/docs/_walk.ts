// The README walk's parser and script builder: fenced code blocks and the `<!-- walk: … -->` markers that
// tell the walk what to do with them.
//
// Markers sit on the line right before a block's opening fence:
//   <!-- walk: skip KIND reason -->   not run; KIND "network" blocks are replaced by a local substitute
//   <!-- walk: background -->        started in the background; the walk goes on once it prints
//                                     "Listening on", and stops it (SIGTERM to its process group) at the end
// Unmarked sh/bash blocks run in order in one bash process (set -euo pipefail), so variables carry over.
// python/ts/js blocks cannot run as shell: they must carry a skip marker. Other languages (json, jsonl, text,
// ini, caddyfile, dockerfile) are files and output, not commands.

/** A fenced code block of a Markdown file. */
export interface CodeBlock {
  /** The fence's info string (`sh`, `json`, …; "" when none). */
  lang: string;
  /** The code. */
  code: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The walk marker before it, if any. */
  marker?: { kind: "skip"; skipKind: string; reason: string } | { kind: "background" };
}

/** Languages the walk runs as shell. */
export const SHELL_LANGS = new Set(["sh", "bash", "shell"]);

/** Languages that are commands but not shell: they must be marked skip. */
export const OTHER_CODE_LANGS = new Set(["python", "py", "ts", "typescript", "js", "javascript"]);

/**
 * The fenced code blocks of a Markdown text, with their markers.
 *
 * @param text The Markdown.
 * @returns The blocks in order.
 * @throws {Error} On an unclosed fence or a malformed marker.
 */
export function codeBlocks(text: string): CodeBlock[] {
  const lines = text.split("\n");
  const blocks: CodeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]); i++) body.push(lines[i]);
    if (i >= lines.length) throw new Error(`Unclosed code fence at line ${start + 1}`);
    let marker: CodeBlock["marker"];
    let k = start - 1;
    while (k >= 0 && lines[k].trim() === "") k--; // a formatter keeps a blank line after the marker
    const before = k >= 0 ? lines[k] : "";
    const m = /^<!-- walk: (.*) -->$/.exec(before.trim());
    if (m) {
      const words = m[1].split(/\s+/);
      if (words[0] === "background") marker = { kind: "background" };
      else if (words[0] === "skip" && words.length >= 3) {
        marker = { kind: "skip", skipKind: words[1], reason: words.slice(2).join(" ") };
      } else throw new Error(`Malformed walk marker at line ${start}: ${before.trim()}`);
    }
    blocks.push({ lang: open[1], code: body.join("\n"), line: start + 1, marker });
  }
  return blocks;
}

/** Commands an unmarked block must not contain: the walk never installs, clones or downloads. */
const FORBIDDEN =
  /\b(sudo|npm install|apt-get|git clone|pip install)\b|https?:\/\/(?!localhost|127\.0\.0\.1)/;

/**
 * Throws when a block the walk would run installs software or reaches the network (it needs a skip marker).
 *
 * @param file The document's name.
 * @param blocks Its blocks.
 * @throws {Error} Naming the first such block.
 */
export function checkRunnable(file: string, blocks: CodeBlock[]): void {
  for (const b of blocks) {
    if (b.marker?.kind === "skip" || !SHELL_LANGS.has(b.lang)) continue;
    const bad = FORBIDDEN.exec(b.code);
    if (bad) throw new Error(`${file}:${b.line}: "${bad[0]}" in a block the walk runs: mark it skip`);
  }
}

/** What the walk does instead of a skipped block of a kind, run in the clone. */
export interface WalkSubstitutes {
  /** Shell text per skip kind (kinds without an entry are simply not run). */
  [kind: string]: string;
}

/**
 * The bash script that walks a document's blocks.
 *
 * @param file The document's name (for the labels).
 * @param blocks Its blocks.
 * @param substitutes Replacements of skipped blocks by kind.
 * @returns The script.
 * @throws {Error} When a block it would run installs software or reaches the network.
 */
export function walkScript(file: string, blocks: CodeBlock[], substitutes: WalkSubstitutes): string {
  checkRunnable(file, blocks);
  const out = [
    "set -euo pipefail",
    "WALK_BG=()",
    "walk_stop() {",
    '  for pid in "${WALK_BG[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done',
    '  for pid in "${WALK_BG[@]}"; do',
    '    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done',
    '    kill -KILL -- "-$pid" 2>/dev/null || true',
    "  done",
    "}",
    "trap walk_stop EXIT",
    "mkdir -p .walk",
  ];
  let n = 0;
  for (const block of blocks) {
    const label = `${file}:${block.line}`;
    if (block.marker?.kind === "skip") {
      const substitute = substitutes[block.marker.skipKind];
      if (substitute) {
        out.push(`echo "walk: ${label} (substitute for ${block.marker.skipKind})" >&2`, substitute);
      }
      continue;
    }
    if (!SHELL_LANGS.has(block.lang)) continue;
    n++;
    if (block.marker?.kind === "background") {
      const log = `.walk/background_${n}.log`;
      out.push(
        `echo "walk: ${label} (background)" >&2`,
        `cat > .walk/background_${n}.sh <<'WALK_BLOCK_EOF'`,
        block.code,
        "WALK_BLOCK_EOF",
        `setsid bash .walk/background_${n}.sh > ${log} 2>&1 &`,
        "WALK_BG+=($!)",
        "for _ in $(seq 1200); do",
        `  grep -q "Listening on" ${log} && break`,
        `  kill -0 "\${WALK_BG[-1]}" 2>/dev/null || { cat ${log} >&2; echo "walk: ${label} exited" >&2; exit 1; }`,
        "  sleep 0.1",
        "done",
        `grep -q "Listening on" ${log} || { cat ${log} >&2; echo "walk: ${label} never listened" >&2; exit 1; }`,
        `cat ${log} >&2`,
      );
    } else {
      out.push(`echo "walk: ${label}" >&2`, block.code);
    }
  }
  out.push('echo "walk: done" >&2');
  return out.join("\n") + "\n";
}
