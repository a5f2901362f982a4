// Where a pack's bytes live: a local file or an object in S3-compatible storage. A pack is written in one
// sequential pass (PackOutput) and read by ranges (PackInput); both are the same to the pack code.
import * as libc from "../../../ffi/libc.ts";
import type { PackStoreRef } from "../../channels/messages.ts";
import { MainFile } from "../../io/main-file.ts";
import { OutputFile } from "../../io/output.ts";
import { parseS3Url, S3Object, s3Settings, S3Upload } from "../../io/s3.ts";

/** A pack being written, front to back. Nothing appears under its name before `commit`. */
export interface PackOutput {
  readonly name: string;
  /** Appends; resolves once the bytes may be let go (an upload's memory stays bounded). */
  write(bytes: Uint8Array): void | Promise<void>;
  commit(): Promise<void>;
  /** Leaves whatever the name held before, and nothing else behind. */
  abort(): Promise<void>;
  readonly staleRemoved: readonly string[];
}

/** A pack being read by ranges. */
export interface PackInput {
  readonly name: string;
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Synchronous reads, where the medium has them (a local file). */
  readSync?: (offset: number, length: number) => Uint8Array;
  /** How the channels reach the same bytes. */
  readonly ref: PackStoreRef;
  close(): void;
}

export async function createPackOutput(location: { path?: string; fd?: number }): Promise<PackOutput> {
  const s3 = location.path !== undefined ? parseS3Url(location.path) : null;
  if (s3) {
    const upload = await S3Upload.start(s3, s3Settings());
    return { name: s3.url, write: (b) => upload.write(b), commit: () => upload.commit(), abort: () => upload.abort(), staleRemoved: [] };
  }
  return new LocalPackOutput(OutputFile.open(location, 0));
}

export async function openPackInput(location: { path?: string; fd?: number }): Promise<PackInput> {
  const s3 = location.path !== undefined ? parseS3Url(location.path) : null;
  if (s3) {
    const settings = s3Settings();
    const object = await S3Object.open(s3, settings);
    return { name: s3.url, size: object.size, read: (o, n) => object.read(o, n), ref: { kind: "s3", settings, location: s3 }, close: () => {} };
  }
  const main = location.path !== undefined ? MainFile.openRead(location.path) : MainFile.fromFd(location.fd!);
  const readSync = (offset: number, length: number) => main.readAt(offset, length);
  return { name: main.name, size: main.size, read: async (o, n) => readSync(o, n), readSync, ref: { kind: "file", fd: main.fd, path: main.name }, close: () => main.close() };
}

/** A local pack: written under a temporary name beside the target and renamed once complete (io/output.ts). */
class LocalPackOutput implements PackOutput {
  #at = 0;
  constructor(readonly out: OutputFile) {}
  get name(): string {
    return this.out.name;
  }
  get staleRemoved(): readonly string[] {
    return this.out.staleRemoved;
  }
  write(bytes: Uint8Array): void {
    if (bytes.length) libc.pwriteFull(this.out.main.fd, libc.addressOf(bytes), bytes.length, this.#at, { path: this.name });
    this.#at += bytes.length;
  }
  async commit(): Promise<void> {
    this.out.commit();
    this.out.close();
  }
  async abort(): Promise<void> {
    this.out.abandon();
    this.out.close();
  }
}
