// Which save-file side serves a location. Today every location is a mapped-ram file on a local file
// system; a new side (a packed file, an object store) is chosen here by its location.
import type { MainStreamParts } from "../format/mapped-ram-stream.ts";
import { LocalMappedRamReader, LocalMappedRamWriter } from "./local-mapped-ram.ts";
import type { SaveFileLocation, SaveFileReader, SaveFileWriter } from "./side.ts";

/** Creates the save file and writes its stream up to the pages. */
export function createSaveFile(location: SaveFileLocation, parts: MainStreamParts): SaveFileWriter {
  return LocalMappedRamWriter.create(location, parts);
}

/** Opens a save file and reads its whole main stream. */
export function openSaveFile(location: SaveFileLocation): SaveFileReader {
  return LocalMappedRamReader.open(location);
}
