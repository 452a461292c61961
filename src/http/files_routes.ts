/**
 * `/files` routes shaped like OpenAI's Files API, for fine-tuning data: `POST /files` (multipart `file`
 * + `purpose=fine-tune`, validated on upload — a bad row is a 400 naming its line), `GET /files`,
 * `GET /files/{id}`, `GET /files/{id}/content`, `DELETE /files/{id}`. A tenant (the `tenant` context
 * variable, set by the auth middleware) sees only its own files.
 *
 * @module
 */

import { Hono } from "hono";
import type { JobModel } from "../jobs/create_job.ts";
import { parseJsonlAsync } from "../train/data.ts";
import { FileInUseError, type FileRecord, type FileStore } from "../store/db/file_store.ts";
import type { AppEnv } from "./context.ts";
import { ApiError } from "./errors.ts";
import { bodyLimitBytes } from "./limits.ts";

/** Room for the multipart framing and the `purpose` field around the file, bytes. */
const MULTIPART_SLACK = 64 * 1024;
import { promptByteLimit } from "./_generation.ts";

/** Checks an uploaded file's text; throws with `file:line: message` on a bad row. Returns the row count. */
export type FileValidator = (text: string, filename: string) => { rows: number } | Promise<{ rows: number }>;

/** Options of {@linkcode filesRoutes}. */
export interface FilesRoutesOptions {
  /** The file store. */
  files: FileStore;
  /** Validates uploads (see {@linkcode jsonlValidator}). */
  validate: FileValidator;
  /**
   * Largest upload in bytes (the file; the body may have 64 KiB more for its multipart framing), enforced
   * while the body streams in.
   * @default {67108864} (64 MiB)
   */
  maxBytes?: number;
}

/**
 * The validator that tokenizes every row with a served model, as training will (`{"prompt",
 * "completion"}`, `{"text"}`, `{"messages"}` or `{"input_ids"}` rows), handing the event loop back every
 * 10 ms so that other requests go on while a large file is tokenised.
 *
 * @param model A served model (tokenizer, config, chat template).
 * @returns A {@linkcode FileValidator}.
 */
export function jsonlValidator(
  model: Pick<JobModel, "tokenizer" | "config" | "chatTemplate">,
): FileValidator {
  // a longer string gives at least seqLen tokens whatever follows: tokenise only that much of it
  const maxStringLength = promptByteLimit(model);
  return async (text, filename) => {
    const data = await parseJsonlAsync(text, filename, {
      tokenizer: model.tokenizer,
      seqLen: model.config.maxPositionEmbeddings,
      chatTemplate: model.chatTemplate,
      maxStringLength,
    });
    return { rows: data.examples.length };
  };
}

/**
 * A file as OpenAI's API shows it.
 *
 * @param file The record.
 * @returns The `file` object.
 */
export function fileObject(file: FileRecord): Record<string, unknown> {
  return {
    id: file.id,
    object: "file",
    bytes: file.bytes,
    created_at: file.createdAt,
    filename: file.filename,
    purpose: file.purpose,
    status: "processed",
    status_details: null,
  };
}

/**
 * The `/files` sub-app (mount it at `/`, behind the auth middleware; `createApp`'s `routes` does that).
 *
 * @param options Store, validator, size limit.
 * @returns A Hono app.
 * @example
 * ```ts ignore
 * app.route("/", filesRoutes({ files: new FileStore(db), validate: jsonlValidator(model) }));
 * ```
 */
export function filesRoutes(options: FilesRoutesOptions): Hono<AppEnv> {
  const { files, validate } = options;
  const maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
  const app = new Hono<AppEnv>();
  const tooLarge = (bytes: number) =>
    new ApiError(413, `Cannot store the file: it has ${bytes} bytes, the limit is ${maxBytes}`, {
      param: "file",
      code: "file_too_large",
    });

  app.post(
    "/v1/files",
    bodyLimitBytes(maxBytes + MULTIPART_SLACK, "file upload"),
    async function uploadFile(c) {
      const tenant = c.get("tenant");
      let body: Record<string, unknown>;
      try {
        body = await c.req.parseBody();
      } catch (e) {
        throw new ApiError(400, `Cannot read the multipart body: ${(e as Error).message}`);
      }
      const purpose = body.purpose;
      if (purpose !== "fine-tune") {
        throw new ApiError(
          400,
          `Invalid purpose ${JSON.stringify(purpose ?? null)}: this server accepts "fine-tune"`,
          {
            param: "purpose",
          },
        );
      }
      const file = body.file;
      if (!(file instanceof File)) {
        throw new ApiError(400, 'Missing file: send it as the multipart field "file"', { param: "file" });
      }
      if (file.size > maxBytes) throw tooLarge(file.size);
      const filename = file.name || "upload.jsonl";
      const content = new Uint8Array(await file.arrayBuffer());
      let text: string;
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(content);
      } catch {
        throw new ApiError(400, `Invalid file ${filename}: it is not UTF-8 text`, {
          param: "file",
          code: "invalid_file",
        });
      }
      let rows: number;
      try {
        ({ rows } = await validate(text, filename));
      } catch (e) {
        throw new ApiError(400, `Invalid file: ${(e as Error).message}`, {
          param: "file",
          code: "invalid_file",
        });
      }
      const record = await files.create({ tenant, filename, purpose, content, rows });
      return c.json(fileObject(record));
    },
  );

  app.get("/v1/files", async function listFiles(c) {
    const list = await files.list(c.get("tenant"), c.req.query("purpose") || undefined);
    return c.json({ object: "list", data: list.map(fileObject), has_more: false });
  });

  app.get("/v1/files/:id", async function getFile(c) {
    const record = await files.get(c.get("tenant"), c.req.param("id"));
    if (!record) throw notFound(c.req.param("id"));
    return c.json(fileObject(record));
  });

  app.get("/v1/files/:id/content", async function fileContent(c) {
    const content = await files.content(c.get("tenant"), c.req.param("id"));
    if (!content) throw notFound(c.req.param("id"));
    return c.body(content as Uint8Array<ArrayBuffer>, 200, { "content-type": "application/jsonl" });
  });

  app.delete("/v1/files/:id", async function deleteFile(c) {
    const id = c.req.param("id");
    let deleted: boolean;
    try {
      deleted = await files.delete(c.get("tenant"), id);
    } catch (e) {
      if (e instanceof FileInUseError) {
        throw new ApiError(409, e.message, { param: "file_id", code: "file_in_use" });
      }
      throw e;
    }
    if (!deleted) throw notFound(id);
    return c.json({ id, object: "file", deleted: true });
  });

  return app;
}

function notFound(id: string): ApiError {
  return new ApiError(404, `No such file: ${id}`, { param: "file_id", code: "file_not_found" });
}
