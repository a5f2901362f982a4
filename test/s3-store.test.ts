// The object-store transport (src/io/s3.ts) against a real Ceph RGW (scripts/ceph-rgw.sh; .ci/run starts
// it): multipart uploads that appear only when committed, ranged reads, bounded memory, aborts and kills
// that leave the previous object, and one-line errors. parseS3Url and s3Settings need no store.
import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { OptionError, StorageError } from "../src/errors.ts";
import { parseS3Url, readRange, removeObject, S3Object, s3Settings, S3Upload, type S3Location } from "../src/io/s3.ts";
import { abortPending, locationOf, objectBytes, objectExists, pendingUploads, putObject, requireS3, uniqueKey } from "../harness/s3.ts";
import { MiB } from "../harness/units.ts";

describe("parseS3Url", () => {
  test("bucket and a key with slashes", () => {
    expect(parseS3Url("s3://b1/a/b/c.rpk")).toEqual({ bucket: "b1", key: "a/b/c.rpk", url: "s3://b1/a/b/c.rpk" });
  });
  test("not an s3:// URL: null", () => {
    expect(parseS3Url("/tmp/x.rpk")).toBeNull();
    expect(parseS3Url("S3:/b/k")).toBeNull();
  });
  test("empty bucket or key: OptionError naming the text", () => {
    for (const t of ["s3://", "s3:///k", "s3://bucket", "s3://bucket/"]) {
      expect(() => parseS3Url(t)).toThrow(OptionError);
      expect(() => parseS3Url(t)).toThrow(t);
    }
  });
});

describe("s3Settings", () => {
  test("S3_* win over AWS_*; an endpoint means path style", () => {
    const s = s3Settings({ S3_ENDPOINT: "http://127.0.0.1:7480/", S3_ACCESS_KEY_ID: "a", S3_SECRET_ACCESS_KEY: "s", AWS_ACCESS_KEY_ID: "x", AWS_REGION: "eu-west-1" });
    expect(s).toEqual({ endpoint: "http://127.0.0.1:7480", region: "eu-west-1", accessKeyId: "a", secretAccessKey: "s", sessionToken: undefined, virtualHostedStyle: false });
  });
  test("AWS_* alone; no endpoint: AWS, virtual-hosted, us-east-1 by default", () => {
    const s = s3Settings({ AWS_ACCESS_KEY_ID: "x", AWS_SECRET_ACCESS_KEY: "y", AWS_SESSION_TOKEN: "t" });
    expect(s).toEqual({ endpoint: undefined, region: "us-east-1", accessKeyId: "x", secretAccessKey: "y", sessionToken: "t", virtualHostedStyle: true });
    expect(s3Settings({ AWS_ACCESS_KEY_ID: "x", AWS_SECRET_ACCESS_KEY: "y", AWS_DEFAULT_REGION: "ap-south-1", AWS_ENDPOINT_URL: "https://s3.example" }).region).toBe("ap-south-1");
  });
  test("missing keys: OptionError naming the variables", () => {
    expect(() => s3Settings({})).toThrow(/set S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY/);
    expect(() => s3Settings({ S3_ACCESS_KEY_ID: "a" })).toThrow(/set S3_SECRET_ACCESS_KEY \(/);
    expect(() => s3Settings({ S3_ACCESS_KEY_ID: "a", S3_SECRET_ACCESS_KEY: "s", S3_ENDPOINT: "127.0.0.1:7480" })).toThrow(OptionError);
  });
});

const fx = await requireS3();
const PREFIX = uniqueKey("s3-store-test");

/** Deterministic bytes that differ at every offset (a misplaced range shows). */
function pattern(offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (((offset + i) * 2654435761) >>> 13) & 0xff;
  return out;
}

/** Expects `p` to reject with one line, of `type`, starting with the object's URL and matching `rest`. */
async function expectOneLine(p: Promise<unknown>, type: typeof StorageError | typeof OptionError, loc: S3Location, rest: RegExp): Promise<void> {
  const e = await p.then(
    () => null,
    (err: unknown) => err as Error,
  );
  expect(e).toBeInstanceOf(type);
  expect(e!.message.split("\n")).toHaveLength(1);
  expect(e!.message.startsWith(`${loc.url}: `)).toBe(true);
  expect(e!.message).toMatch(rest);
  expect((e as StorageError).exitCode).toBe(type === OptionError ? 2 : 1);
}

describe.skipIf(!fx)("S3 objects on a real Ceph RGW", () => {
  const { settings, bucket } = fx ?? ({} as NonNullable<typeof fx>);
  const loc = (name: string) => locationOf(bucket, `${PREFIX}/${name}`);

  afterAll(async () => {
    if (!fx) return;
    await abortPending(settings, bucket, PREFIX);
  });

  test("a 40 MiB upload in parts round-trips; ranged reads return the right bytes", async () => {
    const l = loc("roundtrip.rpk");
    const size = 40 * MiB;
    const up = await S3Upload.start(l, settings, { partSize: 5 * MiB, queueSize: 2 });
    // Odd chunk sizes, some awaited one by one and some handed at once: the appends keep call order.
    const step = 3 * MiB + 17;
    const writes: Promise<void>[] = [];
    for (let pos = 0; pos < size; pos += step) {
      const w = up.write(pattern(pos, Math.min(step, size - pos)));
      if (pos < size / 2) await w;
      else writes.push(w);
    }
    await Promise.all(writes);
    expect(up.position).toBe(size);
    expect(await objectExists(settings, bucket, l.key)).toBe(false); // nothing at the key before commit
    await up.commit();

    const obj = await S3Object.open(l, settings);
    expect(obj.size).toBe(size);
    const ranges: [number, number][] = [[0, 1], [12345, 7], [size - 1, 1], [5 * MiB - 3, 10], [10 * MiB - 1, 6 * MiB + 2], [size - 4097, 4097], [7, 0]];
    for (const [offset, length] of ranges) expect(await obj.read(offset, length)).toEqual(pattern(offset, length));
    // Parallel ranged reads as Workers make them (readRange builds its own client), covering the object.
    const piece = 5 * MiB + 4099;
    const starts = Array.from({ length: Math.ceil(size / piece) }, (_, i) => i * piece);
    const pieces = await Promise.all(starts.map((s) => readRange(settings, l, s, Math.min(piece, size - s))));
    for (const [i, p] of pieces.entries()) expect(p).toEqual(pattern(starts[i]!, p.length));
    // The same from a Worker, handed the settings as data.
    const worker = new Worker(join(import.meta.dir, "../harness/s3-worker.ts"));
    try {
      const reply = new Promise<any>((resolve) => (worker.onmessage = (ev) => resolve(ev.data)));
      worker.postMessage({ settings, loc: l, ranges: [[1, 3], [size - 5 * MiB - 1, 5 * MiB + 1]] });
      const { pieces, error } = await reply;
      expect(error).toBeUndefined();
      expect(pieces[0]).toEqual(pattern(1, 3));
      expect(pieces[1]).toEqual(pattern(size - 5 * MiB - 1, 5 * MiB + 1));
    } finally {
      worker.terminate();
    }
    await expectOneLine(obj.read(size - 10, 11), StorageError, l, new RegExp(`11 bytes at offset ${size - 10}: past the end`));
    await removeObject(l, settings);
    expect(await objectExists(settings, bucket, l.key)).toBe(false);
  });

  test("memory stays bounded while 512 MiB are uploaded", async () => {
    const l = loc("big.rpk");
    const total = 512 * MiB;
    const chunk = new Uint8Array(4 * MiB);
    Bun.gc(true);
    const base = process.memoryUsage().rss;
    let peak = 0;
    const up = await S3Upload.start(l, settings, { partSize: 8 * MiB, queueSize: 4 });
    for (let pos = 0; pos < total; pos += chunk.length) {
      new DataView(chunk.buffer).setFloat64(0, pos); // generated on the fly: each chunk differs
      await up.write(chunk);
      peak = Math.max(peak, process.memoryUsage().rss - base);
    }
    await up.commit();
    console.log(`s3: 512 MiB uploaded, RSS grew by at most ${(peak / MiB).toFixed(0)} MiB`);
    expect(peak).toBeLessThan(256 * MiB);
    expect((await S3Object.open(l, settings)).size).toBe(total);
    await removeObject(l, settings);
  });

  test("abort mid-upload leaves the previous object byte for byte and no pending upload", async () => {
    for (const sent of [23 * MiB, 1 * MiB]) {
      // 23 MiB: parts in the store; 1 MiB: still in Bun's buffer, no multipart begun yet.
      const l = loc(`abort-${sent}.rpk`);
      const previous = pattern(99, 3 * MiB + 5);
      await putObject(settings, bucket, l.key, previous);
      const up = await S3Upload.start(l, settings, { partSize: 5 * MiB, queueSize: 2 });
      for (let pos = 0; pos < sent; pos += MiB) await up.write(pattern(pos, MiB));
      expect(await pendingUploads(settings, bucket, l.key)).toHaveLength(sent > 5 * MiB ? 1 : 0); // parts in the store, or none
      await up.abort();
      await expectOneLine(up.write(new Uint8Array(1)), StorageError, l, /write after the upload was aborted/);
      Bun.gc(true); // the abandoned writer is collected: that must not complete or put anything either
      await Bun.sleep(200);
      expect(await objectBytes(settings, bucket, l.key)).toEqual(previous);
      expect(await pendingUploads(settings, bucket, l.key)).toEqual([]);
      await removeObject(l, settings);
    }
  });

  test("kill -9 of an uploading process leaves the previous object", async () => {
    const l = loc("killed.rpk");
    const previous = pattern(7, MiB);
    await putObject(settings, bucket, l.key, previous);
    const child = Bun.spawn(["bun", join(import.meta.dir, "../harness/s3-child.ts"), bucket, l.key, "20"], { stdout: "pipe", stderr: "pipe" });
    const reader = child.stdout.getReader();
    let out = "";
    while (!out.includes("uploading")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the uploading child ended early: ${out} ${await new Response(child.stderr).text()}`);
      out += new TextDecoder().decode(value);
    }
    expect((await pendingUploads(settings, bucket, l.key)).map((u) => u.key)).toEqual([l.key]); // truly mid-upload
    child.kill("SIGKILL");
    expect(await child.exited).not.toBe(0);
    expect(await objectBytes(settings, bucket, l.key)).toEqual(previous);
    expect(await abortPending(settings, bucket, l.key)).toBe(1); // what a killed writer leaves: parts, no object
    await removeObject(l, settings);
  });

  test("errors: one line naming the object, StorageError (exit 1)", async () => {
    const l = loc("errors.rpk");
    await putObject(settings, bucket, l.key, "x");
    const missingBucket = locationOf(`ramsnap-no-such-${process.pid}`, "k.rpk");
    await expectOneLine(S3Object.open(missingBucket, settings), StorageError, missingBucket, new RegExp(`no such bucket "${missingBucket.bucket}" at ${settings.endpoint}$`));
    await expectOneLine(S3Upload.start(missingBucket, settings), StorageError, missingBucket, /no such bucket/);
    await expectOneLine(readRange(settings, missingBucket, 0, 1), StorageError, missingBucket, /no such bucket/);
    const wrongSecret = { ...settings, secretAccessKey: "wrong" };
    await expectOneLine(S3Object.open(l, wrongSecret), StorageError, l, /access denied: the secret does not match the access key \(S3_SECRET_ACCESS_KEY\)$/);
    await expectOneLine(S3Upload.start(l, wrongSecret), StorageError, l, /access denied/);
    await expectOneLine(readRange(wrongSecret, l, 0, 1), StorageError, l, /access denied/);
    const wrongKey = { ...settings, accessKeyId: "RAMSNAPNOSUCHKEY" };
    await expectOneLine(S3Object.open(l, wrongKey), StorageError, l, /access denied: the access key is not known at .* \(S3_ACCESS_KEY_ID\)$/);
    const nowhere = { ...settings, endpoint: "http://127.0.0.1:1" };
    await expectOneLine(S3Object.open(l, nowhere), StorageError, l, /cannot reach the endpoint http:\/\/127\.0\.0\.1:1 \(connection refused\)$/);
    await expectOneLine(S3Upload.start(l, nowhere), StorageError, l, /cannot reach the endpoint http:\/\/127\.0\.0\.1:1 \(connection refused\)$/);
    await expectOneLine(readRange(nowhere, l, 0, 1), StorageError, l, /connection refused/);
    const missing = loc("not-there.rpk");
    await expectOneLine(S3Object.open(missing, settings), StorageError, missing, /no such object at /);
    await expectOneLine(readRange(settings, missing, 0, 1), StorageError, missing, /no such object at /);
    await expectOneLine(S3Upload.start(l, settings, { partSize: MiB }), OptionError, l, /below S3's minimum/);
    await removeObject(l, settings);
  });
});
