// The save-file side for a mapped-ram file on a local file system. Two descriptors on one file, as in
// QEMU since 9.1: the main stream's (plain, small unaligned records) and the channels' (O_DIRECT when
// asked, whole aligned runs of pages at their fixed slots). A file written by path goes through
// io/output.ts: a temporary name, renamed over the target only once complete and on disk.
import * as libc from "../../ffi/libc.ts";
import type { Chunk } from "../channels/jobs.ts";
import type { PagesFrom, PagesTo } from "../channels/messages.ts";
import type { ChannelIo } from "../channels/session.ts";
import { RefusedError } from "../errors.ts";
import { StreamWriter } from "../format/bytes.ts";
import type { MappedRamLayout } from "../format/layout.ts";
import { writeBitmaps, writeBlockList, type MainStreamParts } from "../format/mapped-ram-stream.ts";
import { parseStream, type StreamInfo } from "../format/parse.ts";
import { openDirect, probeDirect } from "../io/direct.ts";
import { MainFile } from "../io/main-file.ts";
import { OutputFile } from "../io/output.ts";
import type { SaveFileLocation, SaveFileReader, SaveFileWriter } from "./side.ts";

export class LocalMappedRamWriter implements SaveFileWriter {
  readonly layout: MappedRamLayout;
  #directFd: number | undefined;
  #channelFd: number | undefined;

  private constructor(
    readonly out: OutputFile,
    readonly parts: MainStreamParts,
    readonly location: SaveFileLocation,
  ) {
    const w = new StreamWriter(out.main, location.offset);
    parts.head(w);
    this.layout = writeBlockList(w, parts.blocks, parts.pageSize);
    w.flush();
  }

  /** Creates the file (a temporary one beside a path) and writes everything before the pages. */
  static create(location: SaveFileLocation, parts: MainStreamParts): LocalMappedRamWriter {
    const out = OutputFile.open(location, location.offset);
    try {
      return new LocalMappedRamWriter(out, parts, location);
    } catch (e) {
      out.abandon();
      out.close();
      throw e;
    }
  }

  get name(): string {
    return this.out.name;
  }

  get staleRemoved(): readonly string[] {
    return this.out.staleRemoved;
  }

  openChannels(direct: boolean): ChannelIo {
    const probeAt = this.layout.blocks[0]!.pagesOffset;
    if (direct && this.location.directFd !== undefined) probeDirect(this.location.directFd, this.name, "write", probeAt);
    else if (direct) this.#directFd = openDirect(this.out.writePath!, "write", probeAt, this.name);
    this.#channelFd = this.location.directFd ?? this.#directFd ?? this.out.main.fd;
    return { fd: this.#channelFd, direct, name: this.name };
  }

  pagesTo(_block: number, c: Chunk): PagesTo {
    return { kind: "slots", fileOffset: c.fileOffset };
  }

  finish(bitmaps: readonly Uint8Array[]): void {
    // Pages must be on disk before the bitmaps and EOF that make the file complete.
    if (this.#channelFd !== undefined) libc.fsync(this.#channelFd, this.name);
    writeBitmaps(this.out.main, this.layout, bitmaps);
    const w = new StreamWriter(this.out.main, this.layout.end);
    this.parts.tail(w);
    w.flush();
    this.out.commit();
  }

  release(): void {
    if (this.#directFd !== undefined) libc.close(this.#directFd, this.name);
    this.#directFd = undefined;
    // A save that did not finish must not leave a file that could pass for one.
    this.out.abandon();
    this.out.close();
  }
}

export class LocalMappedRamReader implements SaveFileReader {
  readonly kind = "mapped-ram";
  #directFd: number | undefined;

  private constructor(
    readonly main: MainFile,
    readonly info: StreamInfo,
    readonly location: SaveFileLocation,
  ) {}

  /** Opens the file and parses its whole stream; anything but a complete mapped-ram file is refused. */
  static open(location: SaveFileLocation): LocalMappedRamReader {
    const main = location.path !== undefined ? MainFile.openRead(location.path) : MainFile.fromFd(location.fd!);
    try {
      const info = parseStream(main, { base: location.offset, keepBitmaps: true });
      if (info.ramFormat === null) throw new RefusedError(`${main.name} is a stream without RAM; restore reads mapped-ram files`);
      if (info.ramFormat !== "mapped-ram") {
        throw new RefusedError(`${main.name} is a classic (not mapped-ram) stream; restore reads mapped-ram files (ramsnap extract reads both, or convert it --to mapped-ram)`);
      }
      return new LocalMappedRamReader(main, info, location);
    } catch (e) {
      main.close();
      throw e;
    }
  }

  get name(): string {
    return this.main.name;
  }

  get path(): string | undefined {
    return this.location.path;
  }

  openChannels(direct: boolean): ChannelIo {
    const probeAt = this.info.blocks.find((b) => b.mapped)!.mapped!.pagesOffset;
    if (direct && this.location.directFd !== undefined) probeDirect(this.location.directFd, this.name, "read", probeAt);
    else if (direct) this.#directFd = openDirect(this.location.path!, "read", probeAt, this.name);
    return { fd: this.location.directFd ?? this.#directFd ?? this.main.fd, direct, name: this.name };
  }

  pagesFrom(_block: number, c: Chunk): PagesFrom {
    return { kind: "slots", fileOffset: c.fileOffset };
  }

  release(): void {
    if (this.#directFd !== undefined) libc.close(this.#directFd, this.name);
    this.#directFd = undefined;
    this.main.close();
  }
}
