// The main stream's descriptor: plain (never O_DIRECT), because its records are small and unaligned.
// It serves the format code as a ByteSource/ByteSink.
import * as libc from "../../ffi/libc.ts";
import type { ByteSink, ByteSource } from "../format/bytes.ts";

export class MainFile implements ByteSource, ByteSink, Disposable {
  #closed = false;
  /** Size when opened; a reader works on a file nobody else is changing. */
  readonly size: number;

  private constructor(
    readonly name: string,
    readonly fd: number,
    /** Whether close() closes the descriptor (false for descriptors handed to us with --fd). */
    readonly owned: boolean,
  ) {
    this.size = libc.fstatx(fd, name).size;
  }

  static openRead(path: string): MainFile {
    return new MainFile(path, libc.open(path, libc.O_RDONLY), true);
  }

  /** `name` is what messages call the file (a save's target, while it is written under a temporary name). */
  static openWrite(path: string, flags = libc.O_CREAT, name = path): MainFile {
    return new MainFile(name, libc.open(path, libc.O_WRONLY | flags, 0o600), true);
  }

  /** Wraps a descriptor a caller opened; it stays open after close(). */
  static fromFd(fd: number, name = `fd ${fd}`): MainFile {
    return new MainFile(name, fd, false);
  }

  readAt(offset: number, length: number): Uint8Array {
    const n = Math.max(0, Math.min(length, this.size - offset));
    if (n === 0) return new Uint8Array(0);
    const buf = new Uint8Array(n);
    libc.preadFull(this.fd, libc.addressOf(buf), n, offset, { path: this.name });
    return buf;
  }

  writeAt(offset: number, bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    libc.pwriteFull(this.fd, libc.addressOf(bytes), bytes.length, offset, { path: this.name });
  }

  close(): void {
    if (this.#closed || !this.owned) return;
    this.#closed = true;
    libc.close(this.fd, this.name);
  }

  /** For a session that owns this file (channels/session.ts). */
  release(): void {
    this.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
