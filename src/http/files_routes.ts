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
import { JsonlChecker } from "../train/data.ts";
import { FileInUseError, type FileRecord, type FileStore, type StagedFile } from "../store/db/file_store.ts";
import type { AppEnv } from "./context.ts";
import { ApiError } from "./errors.ts";
import { bodyLimitBytes } from "./limits.ts";
import { quotaError } from "./quotas.ts";
import { promptByteLimit } from "./_generation.ts";
import { multipartBoundary, MultipartError, partBytes, readMultipart } from "./_multipart.ts";

/** Room for the multipart framing and the `purpose` field around the file, bytes. */
const MULTIPART_SLACK = 64 * 1024;

/** Checks one uploaded file's text as it streams in (see {@linkcode FileValidator}). */
export interface FileCheck {
  /**
   * Checks the next piece of text (complete lines; a partial last line waits for the next piece).
   * Throws with `file:line: message` on a bad row.
   */
  push(text: string): void | Promise<void>;
  /** Checks the last line; returns the row count. Throws on a bad row or a file without usable rows. */
  finish(): { rows: number } | Promise<{ rows: number }>;
}

/** Starts checking one upload, named `filename` in messages. */
export type FileValidator = (filename: string) => FileCheck;

/** A bad row or bad encoding found while the file streamed in. */
class InvalidFileError extends Error {}

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
  return (filename) =>
    new JsonlChecker(filename, {
      tokenizer: model.tokenizer,
      seqLen: model.config.maxPositionEmbeddings,
      chatTemplate: model.chatTemplate,
      maxStringLength,
    });
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
  const tooLarge = () =>
    new ApiError(413, `Cannot store the file: it is larger than the limit of ${maxBytes} bytes`, {
      param: "file",
      code: "file_too_large",
    });

  app.post(
    "/v1/files",
    bodyLimitBytes(maxBytes + MULTIPART_SLACK, "file upload"),
    async function uploadFile(c) {
      const tenant = c.get("tenant");
      const contentType = c.req.header("content-type") ?? "";
      const boundary = multipartBoundary(contentType);
      const body = c.req.raw.body;
      if (!/^multipart\/form-data\b/i.test(contentType) || boundary === undefined || body === null) {
        throw new ApiError(
          400,
          'Send the upload as multipart/form-data with the fields "file" and "purpose" (content-type was ' +
            `${JSON.stringify(contentType || null)})`,
          { param: "file" },
        );
      }
      let purpose: unknown;
      let filename = "upload.jsonl";
      let staged: StagedFile | undefined;
      let rows = 0;
      try {
        // the file streams to staging while its rows are checked: memory is a chunk and the current line
        for await (const part of readMultipart(body, boundary)) {
          if (part.name === "purpose") {
            purpose = new TextDecoder().decode(await partBytes(part, 1024));
          } else if (part.name === "file") {
            if (staged) throw new ApiError(400, 'Send one file per upload (the field "file" came twice)');
            filename = part.filename || filename;
            const check = validate(filename);
            // a byte quota stops a length-less (chunked) upload where the announced length could not
            const budget = c.get("uploadByteBudget");
            const overBudget = budget !== undefined && budget.remaining < maxBytes;
            staged = await files.stage(checkedChunks(part.body, check, filename), {
              maxBytes: overBudget ? budget.remaining : maxBytes,
              tooLarge: () =>
                overBudget
                  ? quotaError(403, "bytes", {
                    tenant,
                    has: `the upload is larger than the ${budget.remaining} bytes it may still store`,
                    limit: budget.limit,
                  })
                  : tooLarge(),
            });
            try {
              ({ rows } = await check.finish());
            } catch (e) {
              throw new InvalidFileError((e as Error).message);
            }
          } else {
            for await (const _ of part.body) { /* an unknown field: skipped */ }
          }
        }
        if (purpose !== "fine-tune") {
          throw new ApiError(
            400,
            `Invalid purpose ${JSON.stringify(purpose ?? null)}: this server accepts "fine-tune"`,
            { param: "purpose" },
          );
        }
        if (!staged) {
          throw new ApiError(400, 'Missing file: send it as the multipart field "file"', { param: "file" });
        }
      } catch (e) {
        if (staged) await files.discard(staged);
        if (e instanceof InvalidFileError) {
          throw new ApiError(400, `Invalid file: ${e.message}`, { param: "file", code: "invalid_file" });
        }
        if (e instanceof MultipartError) {
          throw new ApiError(400, `Cannot read the multipart body: ${e.message}`);
        }
        throw e;
      }
      const record = await files.commit(staged!, { tenant, filename, purpose: "fine-tune", rows });
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

/** The file part's chunks, passed on after their text was checked (UTF-8, then rows). */
async function* checkedChunks(
  chunks: AsyncIterable<Uint8Array>,
  check: FileCheck,
  filename: string,
): AsyncGenerator<Uint8Array> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const decode = (chunk?: Uint8Array): string => {
    try {
      return chunk ? decoder.decode(chunk, { stream: true }) : decoder.decode();
    } catch {
      throw new InvalidFileError(`${filename} is not UTF-8 text`);
    }
  };
  const push = async (text: string) => {
    try {
      await check.push(text);
    } catch (e) {
      throw new InvalidFileError((e as Error).message);
    }
  };
  for await (const chunk of chunks) {
    await push(decode(chunk));
    yield chunk;
  }
  await push(decode());
}
