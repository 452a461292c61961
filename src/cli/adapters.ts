/**
 * `deno task adapters`: fills a deployment's adapter folder or bucket without a server. `push` validates a
 * PEFT LoRA adapter folder (against the base model with `--model`) and stores it as a new immutable
 * version, printing the version id; `list` prints the adapters; `rm` deletes one. The flags are
 * {@linkcode ADAPTERS_COMMAND}.
 *
 *     deno task adapters push --to s3://adapters/prod --tenant acme --name story --model models/stories260K out/adapter
 *     deno task adapters list --from s3://adapters/prod
 *     deno task adapters rm --from s3://adapters/prod --tenant acme --name story
 *
 * S3 credentials, region and endpoint come from the `AWS_*` environment variables.
 *
 * @module
 */

import { parseHfConfig } from "../io/hf_config.ts";
import { readJsonFile } from "../io/_fs.ts";
import { parseSafetensors } from "../io/safetensors.ts";
import { parseAdapterConfigBytes, parseAdapterFiles } from "../serve/prepared_adapter.ts";
import {
  type AdapterFiles,
  type AdapterRecord,
  type AdapterStore,
  validateStoreName,
} from "../store/adapter_store.ts";
import { FolderAdapterStore } from "../store/folder_adapter_store.ts";
import { openAdapterStore, S3_ENV_VARIABLES } from "../store/open_adapter_store.ts";
import { S3AdapterStore } from "../store/s3_adapter_store.ts";
import { runCli, UsageError } from "./_args.ts";
import { defineCommand, type FlagSpec, helpText, parseFlags } from "./_flags.ts";

/** The flags of `deno task adapters`: the parser, `--help` and the docs' table all read them. */
export const ADAPTERS_COMMAND = defineCommand({
  name: "adapters",
  usage: [
    "push --to DIR|s3://BUCKET/PREFIX --tenant T --name N [--model DIR] ADAPTER_DIR",
    "list --from DIR|s3://BUCKET/PREFIX [--tenant T] [--json]",
    "rm --from DIR|s3://BUCKET/PREFIX --tenant T --name N",
  ],
  description:
    `Fills an adapter folder or bucket without a server (the layout deno task serve --adapters and the edge
handler read). push checks ADAPTER_DIR's adapter_config.json and adapter_model.safetensors (against the
base model with --model), stores them as a new immutable version and prints its id; list prints the
adapters (of one tenant, or all); rm deletes an adapter with all its versions. For s3:// locations,
${S3_ENV_VARIABLES.join(", ")} configure the client.`,
  flags: [
    { name: "to", value: "LOC", doc: "push: the folder or s3://BUCKET/PREFIX to write to." },
    { name: "from", value: "LOC", doc: "list, rm: the folder or s3://BUCKET/PREFIX to read." },
    { name: "tenant", value: "T", doc: "The tenant (push, rm; list: only this tenant)." },
    { name: "name", value: "N", doc: "The adapter name (push, rm)." },
    {
      name: "model",
      value: "DIR",
      defaultText: "structural checks only",
      doc: "push: validate against this base model folder's config.json (sites, shapes, ranks).",
    },
    { name: "json", type: "boolean", doc: "list: one JSON object per adapter and line." },
  ],
});

/** A parsed `deno task adapters` command line. */
export type AdaptersArgs =
  | { command: "push"; to: string; tenant: string; name: string; model?: string; dir: string }
  | { command: "list"; from: string; tenant?: string; json: boolean }
  | { command: "rm"; from: string; tenant: string; name: string };

const SUBCOMMANDS = ["push", "list", "rm"] as const;

/**
 * Parses a command line: the subcommand first, then flags (and `push`'s adapter folder).
 *
 * @param args Arguments without the program name.
 * @returns The command, or `"help"`.
 * @throws {UsageError} On an unknown subcommand, a missing or misplaced flag, or a bad name.
 */
export function parseAdaptersArgs(args: readonly string[]): AdaptersArgs | "help" {
  if (args.length === 0 || args[0] === "--help" || args[0] === "-h") return "help";
  const command = args[0] as (typeof SUBCOMMANDS)[number];
  if (!SUBCOMMANDS.includes(command)) {
    throw new UsageError(`Unknown command ${JSON.stringify(args[0])}: expected push, list or rm`);
  }
  // positionals (push's folder) apart from the flags and their values
  const valued = new Set(
    (ADAPTERS_COMMAND.flags as readonly FlagSpec[]).filter((f) => f.type !== "boolean").map((f) =>
      `--${f.name}`
    ),
  );
  const flags: string[] = [];
  const positionals: string[] = [];
  for (let i = 1; i < args.length; i++) {
    const arg = args[i];
    if (arg.startsWith("-")) {
      flags.push(arg);
      if (valued.has(arg) && i + 1 < args.length) flags.push(args[++i]);
    } else positionals.push(arg);
  }
  const v = parseFlags(ADAPTERS_COMMAND, flags);
  if (v.help) return "help";
  const allowed: Record<typeof command, string[]> = {
    push: ["to", "tenant", "name", "model"],
    list: ["from", "tenant", "json"],
    rm: ["from", "tenant", "name"],
  };
  for (const f of ADAPTERS_COMMAND.flags) {
    if (v[f.name as keyof typeof v] !== undefined && !allowed[command].includes(f.name)) {
      throw new UsageError(`--${f.name} does not apply to \`adapters ${command}\``);
    }
  }
  const need = (name: "to" | "from" | "tenant" | "name"): string => {
    const value = v[name];
    if (value === undefined || value === "") throw new UsageError(`adapters ${command}: missing --${name}`);
    return value;
  };
  const checked = (kind: string, value: string) => {
    try {
      validateStoreName(kind, value);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    return value;
  };
  if (command === "push") {
    if (positionals.length !== 1) {
      throw new UsageError(
        `adapters push takes one adapter folder, got ${positionals.length ? positionals.join(" ") : "none"}`,
      );
    }
    return {
      command,
      to: need("to"),
      tenant: checked("tenant", need("tenant")),
      name: checked("adapter name", need("name")),
      model: v.model,
      dir: positionals[0],
    };
  }
  if (positionals.length) {
    throw new UsageError(`adapters ${command} takes no arguments, got ${positionals.join(" ")}`);
  }
  if (command === "list") {
    const tenant = v.tenant === undefined ? undefined : checked("tenant", v.tenant);
    return { command, from: need("from"), tenant, json: v.json === true };
  }
  return {
    command,
    from: need("from"),
    tenant: checked("tenant", need("tenant")),
    name: checked("adapter name", need("name")),
  };
}

const LORA_KEY = /^base_model\.model\..+\.lora_[AB]\.weight$/;
const FLOAT_DTYPES = new Set(["float32", "float16", "bfloat16"]);

/**
 * Reads and validates a PEFT LoRA adapter folder: against a base model's `config.json` when given (the
 * checks an upload to the server gets), else its structure (a LoRA config, safetensors of float
 * `lora_A`/`lora_B` weights in pairs).
 *
 * @param dir The adapter folder.
 * @param options The base model folder, and the adapter's name for messages.
 * @returns The two files.
 * @throws {Error} When a file is missing or invalid, naming it.
 */
export async function readAdapterFolder(
  dir: string,
  options: { model?: string; source: string },
): Promise<AdapterFiles> {
  const read = async (file: string) => {
    try {
      return await Deno.readFile(`${dir}/${file}`);
    } catch (e) {
      const why = e instanceof Deno.errors.NotFound ? "the file does not exist" : (e as Error).message;
      throw new Error(`Cannot push ${dir}: cannot read ${dir}/${file}: ${why}`);
    }
  };
  const files = {
    config: await read("adapter_config.json"),
    weights: await read("adapter_model.safetensors"),
  };
  const { source } = options;
  if (options.model !== undefined) {
    const file = `${options.model.replace(/\/+$/, "")}/config.json`;
    const model = parseHfConfig(await readJsonFile(file), { file });
    parseAdapterFiles(files, { model, source });
    return files;
  }
  parseAdapterConfigBytes(files.config, source);
  const { tensors } = parseSafetensors(files.weights, { file: `${dir}/adapter_model.safetensors` });
  if (tensors.size === 0) {
    throw new Error(`Cannot load adapter "${source}": adapter_model.safetensors holds no tensors`);
  }
  for (const [key, tensor] of tensors) {
    if (!LORA_KEY.test(key)) {
      throw new Error(
        `Cannot load adapter "${source}": tensor "${key}" is not a LoRA weight (base_model.model.<module>.lora_A.weight or lora_B.weight)`,
      );
    }
    if (!FLOAT_DTYPES.has(tensor.dtype)) {
      throw new Error(
        `Cannot load adapter "${source}": tensor "${key}" has dtype ${tensor.dtype}, expected F32, F16 or BF16`,
      );
    }
    const pair = key.replace(
      /lora_([AB])\.weight$/,
      (_, ab: string) => `lora_${ab === "A" ? "B" : "A"}.weight`,
    );
    if (!tensors.has(pair)) {
      throw new Error(`Cannot load adapter "${source}": tensor "${key}" has no "${pair}"`);
    }
  }
  return files;
}

/** The tenants a store holds, for `list` without `--tenant`. */
async function tenantsOf(store: AdapterStore, location: string): Promise<string[]> {
  if (store instanceof FolderAdapterStore || store instanceof S3AdapterStore) return await store.tenants();
  throw new UsageError(`adapters list: cannot enumerate the tenants of ${location}: pass --tenant`);
}

function describe(record: AdapterRecord): string {
  const created = new Date(record.createdAt * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
  return [
    record.tenant,
    record.name,
    record.version,
    String(record.bytes),
    created,
    record.sha256.slice(0, 12),
  ]
    .join("\t");
}

/**
 * Runs one command.
 *
 * @param args The parsed command line.
 * @param out Where results go (stdout), and messages (stderr).
 * @returns The exit status.
 */
export async function runAdapters(
  args: AdaptersArgs,
  out: { print(line: string): void; note(line: string): void },
): Promise<number> {
  if (args.command === "push") {
    const files = await readAdapterFolder(args.dir, { model: args.model, source: args.name });
    const store = await openAdapterStore(args.to);
    const { record, replaced } = await store.put(args.tenant, args.name, files);
    out.note(
      `Pushed ${args.tenant}/${args.name} version ${record.version} (${record.bytes} bytes) to ${args.to}${
        replaced ? ", replacing the earlier version" : ""
      }${args.model === undefined ? "" : `; validated against ${args.model}`}`,
    );
    out.print(record.version);
    return 0;
  }
  const store = await openAdapterStore(args.from, { readOnly: args.command === "list" });
  if (args.command === "rm") {
    if (!(await store.delete(args.tenant, args.name))) {
      out.note(`adapters: no adapter "${args.name}" of tenant "${args.tenant}" in ${args.from}`);
      return 1;
    }
    out.note(`Removed ${args.tenant}/${args.name} from ${args.from}`);
    return 0;
  }
  const tenants = args.tenant === undefined ? await tenantsOf(store, args.from) : [args.tenant];
  let count = 0;
  if (!args.json) out.print(["tenant", "name", "version", "bytes", "created", "sha256"].join("\t"));
  for (const tenant of tenants) {
    for (const record of await store.list(tenant)) {
      count++;
      out.print(
        args.json
          ? JSON.stringify({
            tenant: record.tenant,
            name: record.name,
            version: record.version,
            bytes: record.bytes,
            created_at: record.createdAt,
            sha256: record.sha256,
          })
          : describe(record),
      );
    }
  }
  out.note(`${count} adapter${count === 1 ? "" : "s"} in ${args.from}`);
  return 0;
}

if (import.meta.main) {
  await runCli("adapters", async () => {
    const args = parseAdaptersArgs(Deno.args);
    if (args === "help") {
      console.log(helpText(ADAPTERS_COMMAND));
      return;
    }
    const status = await runAdapters(args, { print: (l) => console.log(l), note: (l) => console.error(l) });
    if (status !== 0) Deno.exit(status);
  });
}
