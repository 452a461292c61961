/**
 * The tenant adapter routes: `POST /v1/adapters` (multipart: `name`, `adapter_config.json`,
 * `adapter_model.safetensors`; creates 201 or replaces 200), `GET /v1/adapters`,
 * `GET /v1/adapters/{name}`, `GET /v1/adapters/{name}/content` (an uncompressed tar of the two PEFT files,
 * to load elsewhere), `DELETE /v1/adapters/{name}`. Uploads are validated against the base model
 * before they are stored; a tenant only ever sees its own adapters (another tenant's name is a 404).
 *
 * @module
 */

import { Hono } from "hono";
import type { ServeEngine } from "../serve/engine.ts";
import type { AdapterSummary } from "../serve/adapter_validator.ts";
import { InvalidAdapterError } from "../serve/prepared_adapter.ts";
import { BlobStore, type StagedBlob } from "../store/blob_store.ts";
import {
  type AdapterFiles,
  type AdapterRecord,
  type AdapterStore,
  AdapterVersionGoneError,
  type PutAdapterResult,
  ReadOnlyStoreError,
  validateStoreName,
} from "../store/adapter_store.ts";
import { encodeTar } from "../io/tar.ts";
import type { AppEnv } from "./context.ts";
import { ApiError } from "./errors.ts";
import { bodyLimitBytes } from "./limits.ts";
import type { QuotaGuard } from "./quotas.ts";
import { multipartBoundary, MultipartError, partBytes, readMultipart } from "./_multipart.ts";

/** The largest `adapter_config.json` accepted, bytes. */
const MAX_CONFIG_BYTES = 1 << 20;

/** A store that commits weights already streamed to its blob folder (the database store). */
interface StagingStore extends AdapterStore {
  blobs: BlobStore;
  putStaged(
    tenant: string,
    name: string,
    adapter: { config: Uint8Array; weights: StagedBlob },
  ): Promise<PutAdapterResult>;
}

function isStagingStore(store: AdapterStore): store is StagingStore {
  const s = store as Partial<StagingStore>;
  return s.blobs instanceof BlobStore && typeof s.putStaged === "function";
}

let uploads: Promise<BlobStore> | undefined;

/** Where an upload's weights are staged: the store's blob folder, or a temporary folder. */
function stagingFor(store: AdapterStore): Promise<BlobStore> {
  if (isStagingStore(store)) return Promise.resolve(store.blobs);
  uploads ??= Deno.makeTempDir({ prefix: "weightlora-uploads-" }).then((dir) => new BlobStore(dir));
  return uploads;
}

/** Options of {@linkcode adapterRoutes}. */
export interface AdapterRoutesOptions {
  /** The engine (base model, store, cache). */
  engine: ServeEngine;
  /**
   * Largest upload (both files), bytes.
   * @default {64 MiB}
   */
  maxAdapterBytes?: number;
  /** Tenants' quotas of adapters and bytes (none when absent). */
  quotas?: QuotaGuard;
}

/** The API object of a stored adapter. */
function adapterObject(record: AdapterRecord, base: string): Record<string, unknown> {
  return {
    id: record.name,
    object: "adapter",
    created_at: record.createdAt,
    owned_by: record.tenant,
    base_model: base,
    version: record.version,
    bytes: record.bytes,
    sha256: record.sha256,
  };
}

function notFound(name: string): ApiError {
  return new ApiError(404, `No adapter named "${name}" exists for this API key`, {
    param: "name",
    code: "adapter_not_found",
  });
}

/**
 * The adapter routes, to mount behind the tenant middleware.
 *
 * @param options Engine and upload limit.
 * @returns A Hono app with the routes.
 */
export function adapterRoutes(options: AdapterRoutesOptions): Hono<AppEnv> {
  const { engine } = options;
  const store = engine.store;
  const maxBytes = options.maxAdapterBytes ?? 64 * 2 ** 20;
  const app = new Hono<AppEnv>();
  const writable = () => {
    if (store.readOnly) {
      throw new ApiError(
        403,
        "This server's adapter store is read-only: uploads and deletions are disabled",
        {
          code: "read_only_store",
        },
      );
    }
  };

  app.get("/v1/adapters", async (c) => {
    const records = await store.list(c.get("tenant"));
    return c.json({ object: "list", data: records.map((r) => adapterObject(r, engine.modelId)) });
  });

  app.get("/v1/adapters/:name", async (c) => {
    const name = c.req.param("name");
    let record: AdapterRecord | undefined;
    try {
      record = await store.get(c.get("tenant"), name);
    } catch (e) {
      if (e instanceof RangeError) throw notFound(name);
      throw e;
    }
    if (!record) throw notFound(name);
    return c.json(adapterObject(record, engine.modelId));
  });

  app.get("/v1/adapters/:name/content", async (c) => {
    const name = c.req.param("name");
    const tenant = c.get("tenant");
    // a replaced version may vanish between get and read: resolve again
    for (let attempt = 0; attempt < 3; attempt++) {
      let record: AdapterRecord | undefined;
      try {
        record = await store.get(tenant, name);
      } catch (e) {
        if (e instanceof RangeError) throw notFound(name);
        throw e;
      }
      if (!record) throw notFound(name);
      let files: AdapterFiles;
      try {
        files = await store.read(record);
      } catch (e) {
        if (e instanceof AdapterVersionGoneError) continue;
        throw e;
      }
      const tar = encodeTar([
        { name: "adapter_config.json", data: files.config, mtime: record.createdAt },
        { name: "adapter_model.safetensors", data: files.weights, mtime: record.createdAt },
      ]);
      return c.body(tar as Uint8Array<ArrayBuffer>, 200, {
        "content-type": "application/x-tar",
        "content-disposition": `attachment; filename="${name}.tar"`,
        "x-adapter-version": record.version,
      });
    }
    throw notFound(name);
  });

  app.delete("/v1/adapters/:name", async (c) => {
    writable();
    const name = c.req.param("name");
    const tenant = c.get("tenant");
    let deleted: boolean;
    try {
      deleted = await store.delete(tenant, name);
    } catch (e) {
      if (e instanceof RangeError) throw notFound(name);
      throw e;
    }
    if (!deleted) throw notFound(name);
    engine.cache.invalidate(tenant, name);
    return c.json({ id: name, object: "adapter.deleted", deleted: true });
  });

  app.post(
    "/v1/adapters",
    (_c, next) => {
      writable();
      return next();
    },
    bodyLimitBytes(maxBytes, "adapter upload"),
    async (c) => {
      const tenant = c.get("tenant");
      const type = c.req.header("content-type") ?? "";
      const boundary = multipartBoundary(type);
      const body = c.req.raw.body;
      if (!type.startsWith("multipart/form-data") || !boundary || !body) {
        throw new ApiError(
          400,
          `Expected a multipart/form-data upload with fields name, adapter_config.json and adapter_model.safetensors, got content type "${type}"`,
          { code: "invalid_upload" },
        );
      }
      // the weights stream to a staging file (beside the database in database mode), never whole in memory
      const staging = await stagingFor(store);
      let name: string | undefined;
      let config: Uint8Array | undefined;
      let staged: StagedBlob | undefined;
      try {
        for await (const part of readMultipart(body, boundary)) {
          if (part.name === "name") name = new TextDecoder().decode(await partBytes(part, 1024));
          else if (part.name === "adapter_config.json") config = await partBytes(part, MAX_CONFIG_BYTES);
          else if (part.name === "adapter_model.safetensors" && part.filename !== undefined && !staged) {
            staged = await staging.stage(part.body, {
              maxBytes,
              tooLarge: () =>
                new ApiError(
                  413,
                  `The adapter upload is larger than the server's limit of ${maxBytes} bytes`,
                  {
                    code: "request_too_large",
                  },
                ),
            });
          }
        }
      } catch (e) {
        if (staged) await staging.discard(staged);
        if (e instanceof MultipartError) {
          throw new ApiError(400, `Cannot read the multipart upload: ${e.message}`, {
            code: "invalid_upload",
          });
        }
        throw e;
      }
      try {
        if (name === undefined) {
          throw new ApiError(400, 'The upload has no text field "name"', {
            param: "name",
            code: "invalid_upload",
          });
        }
        try {
          validateStoreName("adapter name", name);
        } catch (e) {
          throw new ApiError(400, (e as Error).message, { param: "name", code: "invalid_value" });
        }
        if (name === engine.modelId) {
          throw new ApiError(400, `Invalid adapter name "${name}": it is the base model's id`, {
            param: "name",
            code: "invalid_value",
          });
        }
        for (
          const [field, value] of [["adapter_config.json", config], ["adapter_model.safetensors", staged]]
        ) {
          if (value === undefined) {
            throw new ApiError(400, `The upload has no file field "${field}"`, {
              param: field as string,
              code: "invalid_upload",
            });
          }
        }
        const weights = staged!;
        let summary: AdapterSummary;
        try {
          summary = await engine.validator.validate({
            config: config!,
            weightsPath: weights.path,
            source: name,
          });
        } catch (e) {
          if (e instanceof InvalidAdapterError) {
            throw new ApiError(400, e.message, { code: "invalid_adapter" });
          }
          throw e;
        }
        let result;
        try {
          const bytes = config!.byteLength + weights.bytes;
          const put = async () => {
            await options.quotas?.checkAdapter(tenant, { name: name!, bytes });
            if (isStagingStore(store)) {
              return await store.putStaged(tenant, name!, { config: config!, weights });
            }
            return await store.put(tenant, name!, {
              config: config!,
              weights: await Deno.readFile(weights.path),
            });
          };
          result = options.quotas ? await options.quotas.serialize(tenant, put) : await put();
        } catch (e) {
          if (e instanceof ReadOnlyStoreError) {
            throw new ApiError(403, e.message, { code: "read_only_store" });
          }
          throw e;
        }
        engine.cache.invalidate(tenant, name);
        return c.json({
          ...adapterObject(result.record, engine.modelId),
          replaced: result.replaced,
          sites: summary.sites,
          rank: summary.rank,
        }, result.replaced ? 200 : 201);
      } finally {
        if (staged) await staging.discard(staged); // no-op once committed
      }
    },
  );

  return app;
}
