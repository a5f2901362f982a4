// Harness: a Bun Worker that reads ranges with src/io/s3.ts's readRange from settings posted to it as
// plain data, as the channels' Workers will (test/s3-store.test.ts).
import { readRange, type S3Location, type S3Settings } from "../src/io/s3.ts";

declare const self: Worker;

self.onmessage = async (ev: MessageEvent<{ settings: S3Settings; loc: S3Location; ranges: [number, number][] }>) => {
  const { settings, loc, ranges } = ev.data;
  try {
    self.postMessage({ pieces: await Promise.all(ranges.map(([o, n]) => readRange(settings, loc, o, n))) });
  } catch (e) {
    self.postMessage({ error: (e as Error).message });
  }
};
