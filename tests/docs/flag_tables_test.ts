// The docs' flag tables match the flag declarations that the commands parse and print with --help; the
// README's speed table matches bench/results/models.json. `deno task docs` rewrites both.

import assert from "node:assert/strict";
import {
  benchRegion,
  COMMANDS,
  DOC_FILES,
  flagRegions,
  renderFlagTables,
  sameTable,
} from "../../src/cli/docs_tables.ts";
import {
  defaultLabel,
  defineCommand,
  type FlagSpec,
  flagTable,
  helpText,
  parseFlags,
} from "../../src/cli/_flags.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);

Deno.test("every command's flags are tabled in docs/cli.md, serve's also in the README, and all match", async () => {
  const seen = new Set<string>();
  for (const file of DOC_FILES) {
    const text = await Deno.readTextFile(`${ROOT}${file}`);
    for (const region of flagRegions(text)) {
      seen.add(`${file}:${region.name}`);
      assert.ok(
        sameTable(region.actual, region.expected),
        `${file}: the table of \`deno task ${region.name}\` differs from its flags; run \`deno task docs\`\n` +
          `expected:\n${region.expected}\nactual:\n${region.actual}`,
      );
    }
  }
  for (const name of COMMANDS.keys()) assert.ok(seen.has(`docs/cli.md:${name}`), `docs/cli.md lacks ${name}`);
  assert.ok(seen.has("README.md:serve"), "the README tables serve's flags");
});

Deno.test("the README's speed table is the one bench/results/models.json makes", async () => {
  const region = benchRegion(
    await Deno.readTextFile(`${ROOT}README.md`),
    await Deno.readTextFile(`${ROOT}bench/results/models.json`),
  );
  assert.ok(region, "README.md has a <!-- bench:models --> table");
  assert.ok(sameTable(region.actual, region.expected), `run \`deno task docs\`\n${region.expected}`);
});

Deno.test("--help, the parser and the tables come from one declaration", () => {
  const spec = defineCommand({
    name: "x",
    usage: ["[options]"],
    description: "A test command.",
    flags: [
      { name: "in", value: "F", required: true, doc: "Input." },
      { name: "n", value: "N", default: 3, doc: "A count." },
      { name: "seed", value: "S", defaultText: "random", doc: "A seed." },
      { name: "tag", value: "T", multiple: true, doc: "A tag | another." },
      { name: "dry", type: "boolean", doc: "Do nothing." },
    ],
  });
  assert.deepEqual({ ...parseFlags(spec, ["--in", "a", "--tag", "p", "--tag", "q"]) }, {
    in: "a",
    n: "3",
    tag: ["p", "q"],
  });
  assert.throws(() => parseFlags(spec, []), /Missing --in \(required\)/);
  assert.throws(() => parseFlags(spec, ["--in", "a", "--bogus"]), /Unknown option '--bogus'/);
  assert.throws(() => parseFlags(spec, ["--in", "a", "extra"]), /Unexpected argument 'extra'/);
  assert.equal(parseFlags(spec, ["-h"]).help, true, "--help needs no required flag");
  const help = helpText(spec);
  for (const f of spec.flags as readonly FlagSpec[]) {
    assert.ok(help.includes(`--${f.name}`), `--help lists --${f.name}`);
    if (!f.required) {
      assert.ok(help.includes(`Default: ${defaultLabel(f)}.`), `--help gives ${f.name}'s default`);
    }
  }
  assert.match(help, /--in F +Input\. Required\./);
  const table = flagTable(spec);
  assert.match(table, /\| `--n N` +\| 3 +\| A count\. +\|/);
  assert.match(table, /A tag \\\| another\./, "pipes are escaped");
  assert.equal(
    renderFlagTables("<!-- flags:serve -->\nSTALE\n<!-- /flags:serve -->").includes("STALE"),
    false,
  );
});
