// Byte-level reading and writing of the main stream. QEMU's stream is big-endian and sequential, but
// mapped-ram makes it seek: past each block's page array on write, and to bitmaps on read. So the
// reader and writer sit on positional sources and sinks, and keep their own position.
import { FormatError } from "./errors.ts";

/** Something that can be read at any offset: a file, or bytes in memory (tests). */
export interface ByteSource {
  readonly name: string;
  readonly size: number;
  /** Reads up to `length` bytes at `offset`; fewer only at the end of the source. */
  readAt(offset: number, length: number): Uint8Array;
}

/** Something that can be written at any offset. */
export interface ByteSink {
  readonly name: string;
  writeAt(offset: number, bytes: Uint8Array): void;
}

export class MemorySource implements ByteSource {
  constructor(
    readonly bytes: Uint8Array,
    readonly name = "<memory>",
  ) {}
  get size(): number {
    return this.bytes.length;
  }
  readAt(offset: number, length: number): Uint8Array {
    return this.bytes.subarray(offset, Math.min(offset + length, this.bytes.length));
  }
}

/** A growable in-memory sink; holes read as zero, like a sparse file. */
export class MemorySink implements ByteSink {
  #buf = new Uint8Array(1024);
  #size = 0;
  constructor(readonly name = "<memory>") {}
  writeAt(offset: number, bytes: Uint8Array): void {
    const end = offset + bytes.length;
    if (end > this.#buf.length) {
      const grown = new Uint8Array(Math.max(end, this.#buf.length * 2));
      grown.set(this.#buf.subarray(0, this.#size));
      this.#buf = grown;
    }
    this.#buf.set(bytes, offset);
    this.#size = Math.max(this.#size, end);
  }
  /** Extends the logical size without writing (like ftruncate growing a file). */
  truncate(size: number): void {
    if (size > this.#buf.length) this.writeAt(size, new Uint8Array(0));
    if (size < this.#size) this.#buf.fill(0, size, this.#size);
    this.#size = size;
  }
  bytes(): Uint8Array {
    return this.#buf.slice(0, this.#size);
  }
}

const textDecoder = new TextDecoder("latin1");
const textEncoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

export function latin1(bytes: Uint8Array): string {
  return textDecoder.decode(bytes);
}

/** Encodes values into a growing buffer (big-endian, QEMU's counted strings). */
export class ByteBuilder {
  #buf = new Uint8Array(256);
  #dv = new DataView(this.#buf.buffer);
  #len = 0;

  get length(): number {
    return this.#len;
  }
  #room(n: number): number {
    const at = this.#len;
    if (at + n > this.#buf.length) {
      const grown = new Uint8Array(Math.max(at + n, this.#buf.length * 2));
      grown.set(this.#buf.subarray(0, at));
      this.#buf = grown;
      this.#dv = new DataView(grown.buffer);
    }
    this.#len += n;
    return at;
  }
  // #room() may replace #buf and #dv, so it runs before #dv is read.
  u8(v: number): this {
    const at = this.#room(1);
    this.#dv.setUint8(at, v);
    return this;
  }
  be16(v: number): this {
    const at = this.#room(2);
    this.#dv.setUint16(at, v);
    return this;
  }
  be32(v: number): this {
    const at = this.#room(4);
    this.#dv.setUint32(at, v);
    return this;
  }
  be64(v: number | bigint): this {
    if (typeof v === "number" && !Number.isSafeInteger(v)) throw new RangeError(`be64 value ${v} is not a safe integer`);
    const at = this.#room(8);
    this.#dv.setBigUint64(at, BigInt(v));
    return this;
  }
  bytes(b: Uint8Array): this {
    const at = this.#room(b.length); // may replace #buf, so not inline
    this.#buf.set(b, at);
    return this;
  }
  /** QEMU's counted string: one length byte, then the bytes, no terminator. */
  str8(s: string): this {
    const b = textEncoder.encode(s);
    if (b.length > 255) throw new RangeError(`"${s}" is longer than 255 bytes`);
    return this.u8(b.length).bytes(b);
  }
  /** A be32 length, then the bytes (the configuration section's machine name). */
  str32(s: string): this {
    const b = textEncoder.encode(s);
    return this.be32(b.length).bytes(b);
  }
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

/**
 * Sequential reader with seeks, over a ByteSource. Every read names what it expected, so a truncated or
 * corrupt file produces "<file>: at offset N: expected X" rather than a RangeError.
 */
export class StreamReader {
  #chunk: Uint8Array = new Uint8Array(0);
  #chunkStart = 0;
  #pos: number;
  static readonly CHUNK = 1 << 20;

  constructor(
    readonly source: ByteSource,
    start = 0,
  ) {
    this.#pos = start;
  }

  get position(): number {
    return this.#pos;
  }
  get file(): string {
    return this.source.name;
  }
  get atEnd(): boolean {
    return this.#pos >= this.source.size;
  }

  seek(pos: number): void {
    this.#pos = pos;
  }

  error(detail: string, offset = this.#pos): FormatError {
    return new FormatError(this.source.name, offset, detail);
  }

  /** Returns a view of the next n bytes without consuming them. */
  peek(n: number, what: string): Uint8Array {
    const rel = this.#pos - this.#chunkStart;
    if (rel < 0 || rel + n > this.#chunk.length) {
      this.#chunk = this.source.readAt(this.#pos, Math.max(n, StreamReader.CHUNK));
      this.#chunkStart = this.#pos;
    }
    const at = this.#pos - this.#chunkStart;
    if (at + n > this.#chunk.length) {
      throw this.error(`file ends ${this.#chunk.length - at} bytes into ${what} (${n} bytes expected); the file is truncated`);
    }
    return this.#chunk.subarray(at, at + n);
  }

  /** Steps over n bytes that must exist (page data in a classic stream). */
  skip(n: number, what: string): void {
    if (this.#pos + n > this.source.size) {
      throw this.error(`file ends ${this.source.size - this.#pos} bytes into ${what} (${n} bytes expected); the file is truncated`);
    }
    this.#pos += n;
  }

  bytes(n: number, what: string): Uint8Array {
    const b = this.peek(n, what);
    this.#pos += n;
    return b;
  }
  u8(what: string): number {
    return this.bytes(1, what)[0]!;
  }
  be16(what: string): number {
    const b = this.bytes(2, what);
    return (b[0]! << 8) | b[1]!;
  }
  be32(what: string): number {
    const b = this.bytes(4, what);
    return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
  }
  be64big(what: string): bigint {
    const b = this.bytes(8, what);
    return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0);
  }
  /** A be64 that must fit a JS number (sizes and offsets do: 2^53 bytes is 8 PiB). */
  be64(what: string): number {
    const at = this.#pos;
    const v = this.be64big(what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.error(`${what} is 0x${v.toString(16)}, too large to be a size or offset`, at);
    return Number(v);
  }
  str8(what: string): string {
    const n = this.u8(`length of ${what}`);
    // UTF-8, as str8() in ByteBuilder writes it (and as QMP reports block names)
    return utf8Decoder.decode(this.bytes(n, what));
  }
}

/**
 * Buffered sequential writer over a ByteSink, with seeks (mapped-ram's main stream jumps over each page
 * array). Small records accumulate and go out in one positional write on flush or seek.
 */
export class StreamWriter {
  #pending = new ByteBuilder();
  #pendingAt: number;

  constructor(
    readonly sink: ByteSink,
    start = 0,
  ) {
    this.#pendingAt = start;
  }

  get position(): number {
    return this.#pendingAt + this.#pending.length;
  }

  /** Appends encoded bytes; `build` gets the builder for the stream's current position. */
  write(build: (b: ByteBuilder) => unknown): void {
    build(this.#pending);
    if (this.#pending.length >= 1 << 16) this.flush();
  }

  flush(): void {
    if (this.#pending.length === 0) return;
    this.sink.writeAt(this.#pendingAt, this.#pending.finish());
    this.#pendingAt += this.#pending.length;
    this.#pending = new ByteBuilder();
  }

  seek(pos: number): void {
    this.flush();
    this.#pendingAt = pos;
  }
}
