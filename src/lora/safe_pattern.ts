/**
 * A bounded, linear-time matcher for the regular expressions tenants put in `adapter_config.json`
 * (`target_modules` as a string, `rank_pattern` / `alpha_pattern` keys). JavaScript's `RegExp`
 * backtracks: `.{7}(.*)*!` takes seconds on a 40-character module name and blocks the whole server.
 * This matcher compiles the common subset of Python's `re` syntax to a Thompson NFA and simulates it
 * (Pike VM without captures), so a match costs O(pattern × text) whatever the pattern. Backreferences,
 * lookaround and possessive quantifiers are refused, and so are patterns longer than {@linkcode
 * MAX_PATTERN_LENGTH} characters or compiling to more than {@linkcode MAX_PROGRAM_SIZE} instructions.
 *
 * Supported: literals, `.`, escapes (`\.`, `\d \D \w \W \s \S`, escaped punctuation), classes (`[a-z0-9_]`,
 * `[^.]`), groups (`(…)`, `(?:…)`, `(?P<name>…)`, `(?<name>…)`), `|`, quantifiers `* + ? {n} {n,} {n,m}`
 * (lazy forms too: for a yes/no match they are the same), anchors `^` and `$`.
 *
 * @module
 */

/** The longest pattern accepted, in characters. */
export const MAX_PATTERN_LENGTH = 512;
/** The largest compiled program accepted, in instructions (counted repetition is expanded). */
export const MAX_PROGRAM_SIZE = 4096;
/** The largest bound of a counted repetition (`{n,m}`). */
export const MAX_REPEAT = 100;

/** A compiled pattern: `test` says whether the whole text matches (Python's `re.fullmatch`). */
export interface SafePattern {
  /** The source pattern. */
  readonly source: string;
  /** Instructions of the compiled program: a match costs at most size × text length steps. */
  readonly size: number;
  /** Whether the pattern matches the whole of `text`, in O(program × text) time. */
  test(text: string): boolean;
}

/** A character predicate: ranges of code units, possibly negated. */
interface CharSet {
  ranges: number[]; // pairs [lo, hi] inclusive
  negated: boolean;
}

type Node =
  | { kind: "set"; set: CharSet }
  | { kind: "begin" }
  | { kind: "end" }
  | { kind: "seq"; items: Node[] }
  | { kind: "alt"; options: Node[] }
  | { kind: "repeat"; node: Node; min: number; max: number }; // max = Infinity for unbounded

const DIGIT = [48, 57];
const WORD = [48, 57, 65, 90, 95, 95, 97, 122];
const SPACE = [9, 13, 32, 32];

function fail(source: string, at: number, message: string): never {
  throw new SyntaxError(`Pattern ${JSON.stringify(source)} at offset ${at}: ${message}`);
}

class Parser {
  #src: string;
  #pos = 0;
  #groups = 0;
  constructor(src: string) {
    this.#src = src;
  }

  parse(): Node {
    const node = this.#alternation();
    if (this.#pos < this.#src.length) fail(this.#src, this.#pos, "unbalanced ')'");
    return node;
  }

  #peek(): string | undefined {
    return this.#src[this.#pos];
  }

  #alternation(): Node {
    const options = [this.#sequence()];
    while (this.#peek() === "|") {
      this.#pos++;
      options.push(this.#sequence());
    }
    return options.length === 1 ? options[0] : { kind: "alt", options };
  }

  #sequence(): Node {
    const items: Node[] = [];
    while (this.#pos < this.#src.length && this.#peek() !== "|" && this.#peek() !== ")") {
      items.push(this.#quantified());
    }
    return { kind: "seq", items };
  }

  #quantified(): Node {
    let node = this.#atom();
    for (;;) {
      const c = this.#peek();
      let min: number, max: number;
      if (c === "*") [min, max] = [0, Infinity];
      else if (c === "+") [min, max] = [1, Infinity];
      else if (c === "?") [min, max] = [0, 1];
      else if (c === "{") {
        const m = /^\{(\d*)(?:(,)(\d*))?\}/.exec(this.#src.slice(this.#pos));
        if (!m || (m[1] === "" && m[2] === undefined)) {
          // Python treats a "{" that does not start a valid repetition as a literal.
          return node;
        }
        min = m[1] === "" ? 0 : Number(m[1]);
        max = m[2] === undefined ? min : m[3] === "" ? Infinity : Number(m[3]);
        if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) {
          fail(this.#src, this.#pos, `repetition bound over ${MAX_REPEAT}`);
        }
        if (max < min) fail(this.#src, this.#pos, `repetition {${min},${max}} has max below min`);
        this.#pos += m[0].length - 1;
      } else return node;
      if (node.kind === "begin" || node.kind === "end") {
        fail(this.#src, this.#pos, "nothing to repeat");
      }
      this.#pos++;
      if (this.#peek() === "?") this.#pos++; // lazy: the same yes/no answer
      else if (this.#peek() === "+") fail(this.#src, this.#pos, "possessive quantifiers are not supported");
      node = { kind: "repeat", node, min, max };
    }
  }

  #atom(): Node {
    const src = this.#src;
    const at = this.#pos;
    const c = src[this.#pos++];
    switch (c) {
      case "(":
        return this.#group(at);
      case "[":
        return { kind: "set", set: this.#class(at) };
      case ".":
        return { kind: "set", set: { ranges: [10, 10], negated: true } };
      case "^":
        return { kind: "begin" };
      case "$":
        return { kind: "end" };
      case "\\":
        return { kind: "set", set: this.#escape(at, false) };
      case "*":
      case "+":
      case "?":
        return fail(src, at, "nothing to repeat");
      default: {
        const code = c.charCodeAt(0);
        return { kind: "set", set: { ranges: [code, code], negated: false } };
      }
    }
  }

  #group(at: number): Node {
    const src = this.#src;
    if (src[this.#pos] === "?") {
      const rest = src.slice(this.#pos + 1);
      if (rest.startsWith(":")) this.#pos += 2;
      else if (/^P?<[A-Za-z_][A-Za-z0-9_]*>/.test(rest)) {
        this.#pos += 1 + rest.indexOf(">") + 1;
      } else if (/^(=|!|<=|<!)/.test(rest)) {
        fail(src, at, "lookaround assertions are not supported");
      } else if (rest.startsWith("P=")) {
        fail(src, at, "backreferences are not supported");
      } else fail(src, at, `group syntax "(?${rest.slice(0, 2)}" is not supported`);
    }
    if (++this.#groups > 100) fail(src, at, "more than 100 groups");
    const inner = this.#alternation();
    if (src[this.#pos] !== ")") fail(src, at, "missing ')'");
    this.#pos++;
    return inner;
  }

  #escape(at: number, inClass: boolean): CharSet {
    const src = this.#src;
    const c = src[this.#pos++];
    if (c === undefined) fail(src, at, "pattern ends with a backslash");
    const set = (ranges: number[], negated = false) => ({ ranges, negated });
    switch (c) {
      case "d":
        return set(DIGIT);
      case "D":
        return set(DIGIT, true);
      case "w":
        return set(WORD);
      case "W":
        return set(WORD, true);
      case "s":
        return set(SPACE);
      case "S":
        return set(SPACE, true);
      case "n":
        return set([10, 10]);
      case "t":
        return set([9, 9]);
    }
    if (/[0-9]/.test(c)) fail(src, at, "backreferences are not supported");
    if (/[A-Za-z]/.test(c)) {
      fail(src, at, `escape "\\${c}" is not supported${inClass ? " in a class" : ""}`);
    }
    const code = c.charCodeAt(0);
    return set([code, code]);
  }

  #class(at: number): CharSet {
    const src = this.#src;
    let negated = false;
    if (src[this.#pos] === "^") {
      negated = true;
      this.#pos++;
    }
    const ranges: number[] = [];
    let first = true;
    for (;;) {
      const c = src[this.#pos];
      if (c === undefined) fail(src, at, "missing ']'");
      if (c === "]" && !first) {
        this.#pos++;
        break;
      }
      first = false;
      let lo: number;
      if (c === "\\") {
        this.#pos++;
        const e = this.#escape(this.#pos - 1, true);
        if (e.negated || e.ranges.length !== 2 || e.ranges[0] !== e.ranges[1]) {
          if (e.negated) fail(src, this.#pos - 2, "negated escapes inside a class are not supported");
          ranges.push(...e.ranges);
          continue;
        }
        lo = e.ranges[0];
      } else {
        lo = c.charCodeAt(0);
        this.#pos++;
      }
      if (src[this.#pos] === "-" && src[this.#pos + 1] !== undefined && src[this.#pos + 1] !== "]") {
        this.#pos++;
        let hi: number;
        if (src[this.#pos] === "\\") {
          this.#pos++;
          const e = this.#escape(this.#pos - 1, true);
          if (e.negated || e.ranges[0] !== e.ranges[1]) fail(src, this.#pos, "bad class range");
          hi = e.ranges[0];
        } else hi = src.charCodeAt(this.#pos++);
        if (hi < lo) fail(src, this.#pos, "class range out of order");
        ranges.push(lo, hi);
      } else ranges.push(lo, lo);
    }
    return { ranges, negated };
  }
}

// Program: instructions in parallel arrays.
const OP_SET = 0, OP_SPLIT = 1, OP_JMP = 2, OP_MATCH = 3, OP_BEGIN = 4, OP_END = 5;

class Program {
  op: number[] = [];
  x: number[] = [];
  y: number[] = [];
  sets: (CharSet | null)[] = [];
  #source: string;
  constructor(source: string) {
    this.#source = source;
  }
  emit(op: number, x = 0, y = 0, set: CharSet | null = null): number {
    if (this.op.length >= MAX_PROGRAM_SIZE) {
      throw new RangeError(
        `Pattern ${JSON.stringify(this.#source)}: too complex, over ${MAX_PROGRAM_SIZE} instructions`,
      );
    }
    this.op.push(op);
    this.x.push(x);
    this.y.push(y);
    this.sets.push(set);
    return this.op.length - 1;
  }
}

function compileNode(p: Program, node: Node): void {
  switch (node.kind) {
    case "set":
      p.emit(OP_SET, 0, 0, node.set);
      return;
    case "begin":
      p.emit(OP_BEGIN);
      return;
    case "end":
      p.emit(OP_END);
      return;
    case "seq":
      for (const item of node.items) compileNode(p, item);
      return;
    case "alt": {
      // split L1, L2; L1: a; jmp end; L2: split ... ; last: z
      const jumps: number[] = [];
      for (let i = 0; i < node.options.length - 1; i++) {
        const split = p.emit(OP_SPLIT);
        p.x[split] = split + 1;
        compileNode(p, node.options[i]);
        jumps.push(p.emit(OP_JMP));
        p.y[split] = p.op.length;
      }
      compileNode(p, node.options[node.options.length - 1]);
      for (const j of jumps) p.x[j] = p.op.length;
      return;
    }
    case "repeat": {
      for (let i = 0; i < node.min; i++) compileNode(p, node.node);
      if (node.max === Infinity) {
        // L: split body, out; body; jmp L
        const split = p.emit(OP_SPLIT);
        p.x[split] = split + 1;
        compileNode(p, node.node);
        p.emit(OP_JMP, split);
        p.y[split] = p.op.length;
      } else {
        const splits: number[] = [];
        for (let i = node.min; i < node.max; i++) {
          const split = p.emit(OP_SPLIT);
          p.x[split] = split + 1;
          splits.push(split);
          compileNode(p, node.node);
        }
        for (const s of splits) p.y[s] = p.op.length;
      }
      return;
    }
  }
}

function inSet(set: CharSet, code: number): boolean {
  const r = set.ranges;
  let hit = false;
  for (let i = 0; i < r.length; i += 2) {
    if (code >= r[i] && code <= r[i + 1]) {
      hit = true;
      break;
    }
  }
  return hit !== set.negated;
}

/**
 * Compiles a tenant-supplied pattern into a linear-time matcher.
 *
 * @param source The pattern (Python `re` syntax, the subset listed in the module doc).
 * @returns A matcher whose `test` is a full match.
 * @throws {SyntaxError} When the pattern uses unsupported syntax (backreferences, lookaround, …) or is
 *   malformed, naming the offset.
 * @throws {RangeError} When the pattern is longer than {@linkcode MAX_PATTERN_LENGTH} characters or
 *   compiles to more than {@linkcode MAX_PROGRAM_SIZE} instructions.
 * @example
 * ```ts
 * import { compileSafePattern } from "./safe_pattern.ts";
 * const p = compileSafePattern(".*\\.(q|v)_proj");
 * console.assert(p.test("model.layers.0.self_attn.q_proj") && !p.test("model.layers.0.mlp.up_proj"));
 * ```
 */
export function compileSafePattern(source: string): SafePattern {
  if (source.length > MAX_PATTERN_LENGTH) {
    throw new RangeError(
      `Pattern ${
        JSON.stringify(source.slice(0, 40))
      }: ${source.length} characters long, over the limit of ${MAX_PATTERN_LENGTH}`,
    );
  }
  const ast = new Parser(source).parse();
  const p = new Program(source);
  compileNode(p, ast);
  p.emit(OP_MATCH);
  const { op, x, y, sets } = p;
  const n = op.length;
  const mark = new Int32Array(n).fill(-1);
  let clist = new Int32Array(n), nlist = new Int32Array(n);
  const stack = new Int32Array(n * 2 + 2);

  function test(text: string): boolean {
    mark.fill(-1);
    let generation = 0;
    let ccount = 0;
    // Adds the epsilon closure of `pc` at text position `pos` into `list`, returns the new length.
    const add = (list: Int32Array, count: number, start: number, pos: number): number => {
      let sp = 0;
      stack[sp++] = start;
      while (sp > 0) {
        const pc = stack[--sp];
        if (mark[pc] === generation) continue;
        mark[pc] = generation;
        switch (op[pc]) {
          case OP_JMP:
            stack[sp++] = x[pc];
            break;
          case OP_SPLIT:
            stack[sp++] = y[pc];
            stack[sp++] = x[pc];
            break;
          case OP_BEGIN:
            if (pos === 0) stack[sp++] = pc + 1;
            break;
          case OP_END:
            if (pos === text.length) stack[sp++] = pc + 1;
            break;
          default:
            list[count++] = pc;
        }
      }
      return count;
    };
    ccount = add(clist, 0, 0, 0);
    for (let pos = 0; pos <= text.length; pos++) {
      if (ccount === 0) return false;
      if (pos === text.length) break;
      const code = text.charCodeAt(pos);
      generation++;
      let ncount = 0;
      for (let i = 0; i < ccount; i++) {
        const pc = clist[i];
        if (op[pc] === OP_SET && inSet(sets[pc]!, code)) ncount = add(nlist, ncount, pc + 1, pos + 1);
      }
      [clist, nlist] = [nlist, clist];
      ccount = ncount;
    }
    for (let i = 0; i < ccount; i++) if (op[clist[i]] === OP_MATCH) return true;
    return false;
  }
  return { source, size: n, test };
}
