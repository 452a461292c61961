// Protobuf wire-format primitives for the ONNX codec: a chunked writer that never copies large byte
// fields until the final concatenation, and a bounds-checked reader that returns zero-copy views.

const TEXT_ENCODER = new TextEncoder();
const TEXT_DECODER = new TextDecoder("utf-8", { fatal: true });
const TWO_32 = 4294967296;

/** Wire types of the protobuf encoding. */
export const WIRE = { varint: 0, fixed64: 1, bytes: 2, fixed32: 5 } as const;

/** Byte fields at least this long are referenced, not copied, until {@linkcode Writer.finish}. */
const BIG_CHUNK = 4096;

/** A writer's buffer grows up to this size before it is cut into a chunk. */
const MAX_SCRATCH = 1 << 16;

/** Idle child writers of {@linkcode Writer.messageField}. */
const WRITER_POOL: Writer[] = [];

/** Appends protobuf fields; submessages are encoded into child writers and spliced in by reference. */
export class Writer {
  #chunks: Uint8Array[] = [];
  #scratch = new Uint8Array(256);
  #pos = 0;
  #flushed = 0;

  /** Bytes written so far. */
  get length(): number {
    return this.#flushed + this.#pos;
  }

  #reserve(n: number): void {
    if (this.#pos + n <= this.#scratch.length) return;
    if (this.#pos + n <= MAX_SCRATCH) {
      // Grow (copying what is there) rather than cut a chunk: fewer, larger chunks.
      const grown = new Uint8Array(Math.min(MAX_SCRATCH, Math.max(this.#scratch.length * 2, this.#pos + n)));
      grown.set(this.#scratch.subarray(0, this.#pos));
      this.#scratch = grown;
      return;
    }
    this.#flush();
    if (n > this.#scratch.length) this.#scratch = new Uint8Array(n);
  }

  #flush(): void {
    if (this.#pos === 0) return;
    this.#chunks.push(this.#scratch.slice(0, this.#pos));
    this.#flushed += this.#pos;
    this.#pos = 0;
  }

  /** Writes an unsigned or signed integer as a varint (negative values as 10-byte two's complement). */
  varint(value: number): void {
    this.#reserve(10);
    const buf = this.#scratch;
    if (value < 0) {
      let big = BigInt.asUintN(64, BigInt(value));
      while (big >= 0x80n) {
        buf[this.#pos++] = Number(big & 0x7fn) | 0x80;
        big >>= 7n;
      }
      buf[this.#pos++] = Number(big);
      return;
    }
    let lo = value >>> 0;
    let hi = Math.floor(value / TWO_32) >>> 0;
    while (hi > 0 || lo > 0x7f) {
      buf[this.#pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    buf[this.#pos++] = lo;
  }

  /** Writes an exact 64-bit integer as a varint (negative values as 10-byte two's complement). */
  varintBig(value: bigint): void {
    this.#reserve(10);
    const buf = this.#scratch;
    let big = BigInt.asUintN(64, value);
    while (big >= 0x80n) {
      buf[this.#pos++] = Number(big & 0x7fn) | 0x80;
      big >>= 7n;
    }
    buf[this.#pos++] = Number(big);
  }

  /** Writes a field tag. */
  tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  /** Writes raw bytes with no tag or length (large arrays are referenced, not copied). */
  raw(bytes: Uint8Array): void {
    if (bytes.length >= BIG_CHUNK) {
      this.#flush();
      this.#chunks.push(bytes);
      this.#flushed += bytes.length;
      return;
    }
    this.#reserve(bytes.length);
    this.#scratch.set(bytes, this.#pos);
    this.#pos += bytes.length;
  }

  /** Writes a length-delimited bytes field. */
  bytesField(field: number, bytes: Uint8Array): void {
    this.tag(field, WIRE.bytes);
    this.varint(bytes.length);
    this.raw(bytes);
  }

  /** Writes a UTF-8 string field. */
  stringField(field: number, text: string): void {
    if (text.length <= 64) {
      // Short ASCII strings (names, op types) go straight into the scratch buffer.
      let ascii = true;
      for (let i = 0; i < text.length && ascii; i++) ascii = text.charCodeAt(i) < 0x80;
      if (ascii) {
        this.tag(field, WIRE.bytes);
        this.varint(text.length);
        this.#reserve(text.length);
        for (let i = 0; i < text.length; i++) this.#scratch[this.#pos++] = text.charCodeAt(i);
        return;
      }
    }
    this.bytesField(field, TEXT_ENCODER.encode(text));
  }

  /** Writes a varint field. */
  varintField(field: number, value: number): void {
    this.tag(field, WIRE.varint);
    this.varint(value);
  }

  /** Writes a float (fixed32) field. */
  floatField(field: number, value: number): void {
    this.tag(field, WIRE.fixed32);
    this.#reserve(4);
    new DataView(this.#scratch.buffer).setFloat32(this.#pos, value, true);
    this.#pos += 4;
  }

  /** Writes a nested message field, encoded by `encode` into a child writer. */
  messageField(field: number, encode: (child: Writer) => void): void {
    // Child writers are reused (messages nest as a stack), so a small message costs no allocation.
    const child = WRITER_POOL.pop() ?? new Writer();
    try {
      encode(child);
      this.tag(field, WIRE.bytes);
      this.varint(child.length);
      if (child.#chunks.length === 0) {
        // Small message: copy its bytes into this writer's buffer.
        this.#reserve(child.#pos);
        this.#scratch.set(child.#scratch.subarray(0, child.#pos), this.#pos);
        this.#pos += child.#pos;
      } else {
        child.#flush();
        this.#flush();
        for (const chunk of child.#chunks) this.#chunks.push(chunk);
        this.#flushed += child.#flushed;
      }
    } finally {
      child.#reset();
      WRITER_POOL.push(child);
    }
  }

  #reset(): void {
    this.#chunks = [];
    this.#pos = 0;
    this.#flushed = 0;
    if (this.#scratch.length > 4096) this.#scratch = new Uint8Array(256);
  }

  /** Concatenates everything written into one buffer (the only copy of large byte fields). */
  finish(): Uint8Array {
    this.#flush();
    if (this.#chunks.length === 1) return this.#chunks[0];
    const out = new Uint8Array(this.#flushed);
    let offset = 0;
    for (const chunk of this.#chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }
}

/** Reads protobuf fields from a byte range; every read is bounds-checked and errors name the offset. */
export class Reader {
  readonly buf: Uint8Array;
  pos: number;
  readonly end: number;
  /** Message being read, for error messages. */
  readonly context: string;

  constructor(buf: Uint8Array, context: string, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    this.context = context;
  }

  /** Throws an error (a RangeError unless `kind` says otherwise) naming the byte offset and message being read. */
  fail(what: string, kind: RangeErrorConstructor | TypeErrorConstructor = RangeError): never {
    throw new kind(`Cannot decode ONNX protobuf: ${what} at byte ${this.pos} in ${this.context}`);
  }

  /** True while bytes remain in this message. */
  more(): boolean {
    return this.pos < this.end;
  }

  /** Reads a varint as a JS number; 64-bit values are read as signed two's complement. */
  varint(): number {
    let lo = 0;
    let shift = 0;
    let byte = 0;
    const start = this.pos;
    // low 28 bits fast path
    for (; shift < 28; shift += 7) {
      if (this.pos >= this.end) this.fail("truncated varint");
      byte = this.buf[this.pos++];
      lo |= (byte & 0x7f) << shift;
      if (byte < 0x80) return lo >>> 0;
    }
    let big = BigInt(lo >>> 0);
    for (; shift < 70; shift += 7) {
      if (this.pos >= this.end) this.fail("truncated varint");
      byte = this.buf[this.pos++];
      big |= BigInt(byte & 0x7f) << BigInt(shift);
      if (byte < 0x80) return Number(BigInt.asIntN(64, big));
    }
    this.pos = start;
    return this.fail("varint longer than 10 bytes");
  }

  /** Reads a varint as an exact signed 64-bit integer (for int64 tensor values beyond 2^53). */
  varintBig(): bigint {
    let big = 0n;
    const start = this.pos;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.pos >= this.end) this.fail("truncated varint");
      const byte = this.buf[this.pos++];
      big |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return BigInt.asIntN(64, big);
    }
    this.pos = start;
    return this.fail("varint longer than 10 bytes");
  }

  /** Reads a length prefix and returns the end offset of the delimited range. */
  #delimited(): number {
    const length = this.varint();
    if (length < 0 || this.pos + length > this.end) {
      this.fail(`length ${length} runs past the end of the message (${this.end - this.pos} bytes left)`);
    }
    return this.pos + length;
  }

  /** Reads a length-delimited field as a zero-copy view. */
  bytes(): Uint8Array {
    const end = this.#delimited();
    const view = this.buf.subarray(this.pos, end);
    this.pos = end;
    return view;
  }

  /** Reads a length-delimited UTF-8 string. */
  string(): string {
    const bytes = this.bytes();
    // Names are short and ASCII: decoding them in JS avoids TextDecoder's per-call cost.
    if (bytes.length <= 64) {
      let text = "";
      for (let i = 0; i < bytes.length; i++) {
        if (bytes[i] >= 0x80) return this.#utf8(bytes);
        text += String.fromCharCode(bytes[i]);
      }
      return text;
    }
    return this.#utf8(bytes);
  }

  #utf8(bytes: Uint8Array): string {
    try {
      return TEXT_DECODER.decode(bytes);
    } catch {
      return this.fail("invalid UTF-8 string");
    }
  }

  /** Returns a reader over a nested message. */
  message(context: string): Reader {
    const end = this.#delimited();
    const child = new Reader(this.buf, context, this.pos, end);
    this.pos = end;
    return child;
  }

  /** Reads a little-endian float32. */
  float(): number {
    if (this.pos + 4 > this.end) this.fail("truncated fixed32");
    const value = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return value;
  }

  /** Reads a field tag: returns [field number, wire type]. */
  tag(): [number, number] {
    const key = this.varint();
    const field = Math.floor(key / 8);
    if (field === 0) this.fail("field number 0");
    return [field, key & 7];
  }

  /** Skips a field of the given wire type and returns its whole encoding (tag included) as a view. */
  skip(tagStart: number, wireType: number): Uint8Array {
    switch (wireType) {
      case WIRE.varint:
        this.varint();
        break;
      case WIRE.fixed64:
        if (this.pos + 8 > this.end) this.fail("truncated fixed64");
        this.pos += 8;
        break;
      case WIRE.bytes:
        this.pos = this.#delimited();
        break;
      case WIRE.fixed32:
        if (this.pos + 4 > this.end) this.fail("truncated fixed32");
        this.pos += 4;
        break;
      default:
        this.fail(`unsupported wire type ${wireType}`);
    }
    return this.buf.subarray(tagStart, this.pos);
  }

  /**
   * Reads a repeated scalar field that may be packed (wire type 2) or not (one value per tag).
   * `readOne` reads one element at the current position.
   */
  repeated(wireType: number, elementWire: number, readOne: () => void): void {
    if (wireType === WIRE.bytes && elementWire !== WIRE.bytes) {
      const end = this.#delimited();
      const outerEnd = this.end;
      // Temporarily narrow the end so element reads are bounds-checked against the packed range.
      (this as { end: number }).end = end;
      try {
        while (this.pos < end) readOne();
      } finally {
        (this as { end: number }).end = outerEnd;
      }
      return;
    }
    if (wireType !== elementWire) this.fail(`wire type ${wireType} where ${elementWire} was expected`);
    readOne();
  }
}
