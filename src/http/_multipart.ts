// A streaming multipart/form-data reader: parts are handed out one at a time with their body as a stream
// of chunks, so that an upload is never held in memory whole (memory: about one read chunk plus the
// boundary). Used by the adapter upload route.

/** One part of a multipart body. */
export interface MultipartPart {
  /** The field name (`Content-Disposition: form-data; name="…"`). */
  name: string;
  /** The file name, for file fields. */
  filename?: string;
  /** The part's bytes; read them before asking for the next part (the rest is skipped otherwise). */
  body: AsyncIterable<Uint8Array>;
}

/** A malformed multipart body. */
export class MultipartError extends Error {
  /** @param message Why. */
  constructor(message: string) {
    super(message);
    this.name = "MultipartError";
  }
}

const MAX_HEADER_BYTES = 16 * 1024;
const CRLF = new Uint8Array([13, 10]);
const utf8 = new TextEncoder();

/**
 * The boundary of a `multipart/form-data` content type.
 *
 * @param contentType The header.
 * @returns The boundary, or `undefined` when it has none.
 */
export function multipartBoundary(contentType: string): string | undefined {
  const match = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(contentType);
  return match ? (match[1] ?? match[2]) : undefined;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array, from: number): number {
  const first = needle[0];
  const last = haystack.length - needle.length;
  for (let i = haystack.indexOf(first, from); i >= 0 && i <= last; i = haystack.indexOf(first, i + 1)) {
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}

/**
 * Reads a multipart body part by part.
 *
 * @param body The request body.
 * @param boundary From {@linkcode multipartBoundary}.
 * @returns The parts, in order.
 * @throws {MultipartError} When the body is malformed or ends early.
 */
export async function* readMultipart(
  body: ReadableStream<Uint8Array>,
  boundary: string,
): AsyncGenerator<MultipartPart> {
  const reader = body.getReader();
  const delimiter = utf8.encode(`\r\n--${boundary}`);
  // every delimiter, the first included, is preceded by CRLF
  let buf: Uint8Array = CRLF;
  let ended = false;
  const more = async (): Promise<boolean> => {
    if (ended) return false;
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await reader.read();
    } catch (e) {
      // a size limit's error is the caller's to turn into a response; anything else is a broken upload
      if ((e as { status?: number }).status !== undefined) throw e;
      throw new MultipartError(`The upload ended early: ${(e as Error).message}`);
    }
    const { done, value } = chunk;
    if (done) {
      ended = true;
      return false;
    }
    const next = new Uint8Array(buf.length + value.length);
    next.set(buf);
    next.set(value, buf.length);
    buf = next;
    return true;
  };
  try {
    // skip the preamble up to the first delimiter
    for (;;) {
      const at = indexOf(buf, delimiter, 0);
      if (at >= 0) {
        buf = buf.subarray(at + delimiter.length);
        break;
      }
      buf = buf.subarray(Math.max(0, buf.length - delimiter.length));
      if (!(await more())) throw new MultipartError("The multipart body has no part (no boundary found)");
    }
    for (;;) {
      while (buf.length < 2) {
        if (!(await more())) throw new MultipartError("The multipart body ends inside a boundary");
      }
      if (buf[0] === 45 && buf[1] === 45) return; // "--": the closing delimiter
      // the headers, up to an empty line
      let end: number;
      while ((end = indexOf(buf, utf8.encode("\r\n\r\n"), 0)) < 0) {
        if (buf.length > MAX_HEADER_BYTES) {
          throw new MultipartError("A multipart part's headers are too long");
        }
        if (!(await more())) throw new MultipartError("The multipart body ends inside a part's headers");
      }
      const headers = new TextDecoder().decode(buf.subarray(0, end));
      buf = buf.subarray(end + 4);
      const disposition = /^content-disposition:(.*)$/im.exec(headers)?.[1] ?? "";
      const name = /\bname="([^"]*)"/i.exec(disposition)?.[1];
      if (name === undefined) throw new MultipartError("A multipart part has no Content-Disposition name");
      const filename = /\bfilename="([^"]*)"/i.exec(disposition)?.[1];
      let finished = false;
      const partBody = async function* (): AsyncGenerator<Uint8Array> {
        for (;;) {
          const at = indexOf(buf, delimiter, 0);
          if (at >= 0) {
            if (at > 0) yield buf.slice(0, at);
            buf = buf.subarray(at + delimiter.length);
            finished = true;
            return;
          }
          const safe = buf.length - delimiter.length;
          if (safe > 0) {
            yield buf.slice(0, safe);
            buf = buf.subarray(safe);
          }
          if (!(await more())) throw new MultipartError(`The multipart body ends inside the part "${name}"`);
        }
      };
      const stream = partBody();
      yield { name, filename, body: stream };
      if (!finished) { for await (const _ of stream) { /* skip what the reader left */ } }
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * Collects a small part's bytes.
 *
 * @param part The part.
 * @param maxBytes The most bytes accepted.
 * @returns The bytes.
 * @throws {MultipartError} When the part is larger.
 */
export async function partBytes(part: MultipartPart, maxBytes: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const chunk of part.body) {
    n += chunk.length;
    if (n > maxBytes) throw new MultipartError(`The field "${part.name}" is larger than ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
