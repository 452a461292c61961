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
import { InvalidAdapterError, parseAdapterFiles } from "../serve/prepared_adapter.ts";
import {
  type AdapterFiles,
  type AdapterRecord,
  AdapterVersionGoneError,
  ReadOnlyStoreError,
  validateStoreName,
} from "../store/adapter_store.ts";
import { encodeTar } from "../io/tar.ts";
import type { AppEnv } from "./context.ts";
import { ApiError } from "./errors.ts";
import { bodyLimitBytes } from "./limits.ts";
import type { QuotaGuard } from "./quotas.ts";

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
      if (!type.startsWith("multipart/form-data")) {
        throw new ApiError(
          400,
          `Expected a multipart/form-data upload with fields name, adapter_config.json and adapter_model.safetensors, got content type "${type}"`,
          { code: "invalid_upload" },
        );
      }
      let form: FormData;
      try {
        form = await c.req.formData();
      } catch (e) {
        if (e instanceof ApiError) throw e;
        throw new ApiError(400, `Cannot read the multipart upload: ${(e as Error).message}`, {
          code: "invalid_upload",
        });
      }
      const name = form.get("name");
      if (typeof name !== "string") {
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
      const file = async (field: string): Promise<Uint8Array> => {
        const value = form.get(field);
        if (!(value instanceof File)) {
          throw new ApiError(400, `The upload has no file field "${field}"`, {
            param: field,
            code: "invalid_upload",
          });
        }
        return new Uint8Array(await value.arrayBuffer());
      };
      const files = {
        config: await file("adapter_config.json"),
        weights: await file("adapter_model.safetensors"),
      };
      let summary;
      try {
        summary = parseAdapterFiles(files, { model: engine.config, source: name });
      } catch (e) {
        if (e instanceof InvalidAdapterError) {
          throw new ApiError(400, e.message, { code: "invalid_adapter" });
        }
        throw e;
      }
      let result;
      try {
        const bytes = files.config.byteLength + files.weights.byteLength;
        const put = async () => {
          await options.quotas?.checkAdapter(tenant, { name, bytes });
          return await store.put(tenant, name, files);
        };
        result = options.quotas ? await options.quotas.serialize(tenant, put) : await put();
      } catch (e) {
        if (e instanceof ReadOnlyStoreError) throw new ApiError(403, e.message, { code: "read_only_store" });
        throw e;
      }
      engine.cache.invalidate(tenant, name);
      const ranks = [...summary.sites.values()].map((s) => s.rank);
      return c.json({
        ...adapterObject(result.record, engine.modelId),
        replaced: result.replaced,
        sites: summary.sites.size,
        rank: Math.max(...ranks),
      }, result.replaced ? 200 : 201);
    },
  );

  return app;
}
