// Which save-file side serves a location: a pack for a name ending in .rpk, an s3:// URL, or (reading) a
// file that starts with a pack's magic; a mapped-ram file otherwise.
import { DEFAULT_ZSTD_LEVEL } from "../options.ts";
import type { MainStreamParts } from "../format/mapped-ram-stream.ts";
import { PACK_MAGIC } from "../format/pack.ts";
import { RefusedError } from "../errors.ts";
import type { ByteSource } from "../format/bytes.ts";
import { MainFile } from "../io/main-file.ts";
import { parseS3Url } from "../io/s3.ts";
import { LocalMappedRamReader, LocalMappedRamWriter } from "./local-mapped-ram.ts";
import { PackReader } from "./pack/reader.ts";
import { PackWriter } from "./pack/writer.ts";
import type { SaveFileLocation, SaveFileReader, SaveFileWriter, SaveFormat } from "./side.ts";

/** The format a location is written in when none is asked for. */
export function formatOf(location: { path?: string; format?: SaveFormat }): SaveFormat {
  if (location.format) return location.format;
  const path = location.path ?? "";
  return path.endsWith(".rpk") || parseS3Url(path) ? "pack" : "mapped-ram";
}

/** Creates the save file and writes its stream up to the pages. */
export async function createSaveFile(location: SaveFileLocation, parts: MainStreamParts): Promise<SaveFileWriter> {
  if (formatOf(location) === "pack") return PackWriter.create(location, parts, location.compression ?? { kind: "zstd", level: DEFAULT_ZSTD_LEVEL });
  return LocalMappedRamWriter.create(location, parts);
}

/** Opens a save file and reads its whole main stream. */
export async function openSaveFile(location: SaveFileLocation): Promise<SaveFileReader> {
  if (isPack(location)) return PackReader.open(location);
  return LocalMappedRamReader.open(location);
}

/** Whether a location holds a pack: an s3:// URL, or a file whose first bytes are the pack magic. */
export function isPack(location: { path?: string; fd?: number }): boolean {
  if (location.path !== undefined && parseS3Url(location.path)) return true;
  let f: MainFile;
  try {
    f = location.path !== undefined ? MainFile.openRead(location.path) : MainFile.fromFd(location.fd!);
  } catch {
    return location.path?.endsWith(".rpk") ?? false; // the side that opens it says what is wrong
  }
  // A read that fails (EIO) is the file's problem, not a sign that it is no pack: it is reported.
  using _ = f;
  return new TextDecoder("latin1").decode(f.readAt(0, PACK_MAGIC.length)) === PACK_MAGIC;
}

/** A save file's stream to parse: the file itself, or a pack's image (its structure checked on open). */
export async function openStream(path: string, offset: number): Promise<{ source: ByteSource; pack?: PackReader } & Disposable> {
  if (isPack({ path })) {
    const pack = await PackReader.open({ path, offset });
    return { source: pack.main, pack, [Symbol.dispose]: () => pack.release() };
  }
  const main = MainFile.openRead(path);
  return { source: main, [Symbol.dispose]: () => main.close() };
}

/** For commands that work on a mapped-ram or classic file's bytes in place: a pack is refused, with the way out. */
export function refusePack(path: string, what: string): void {
  if (isPack({ path })) throw new RefusedError(`${path} is a pack (docs/pack-format.md): ${what} reads mapped-ram and classic files; convert it --to mapped-ram first`);
}
