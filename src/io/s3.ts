// Objects in S3-compatible storage (AWS, Ceph RGW, MinIO): an upload that appears at its key only when
// committed, and an object read by ranges. Built on Bun's S3Client; the two calls it lacks (listing and
// aborting multipart uploads) are signed in s3-sign.ts. Settings are plain data so a Worker can be handed
// them and read ranges with its own client (`readRange`).
import { S3Client } from "bun";
import { OptionError, StorageError } from "../errors.ts";
import { abortUpload, endpointOf, listUploads, type S3Settings } from "./s3-sign.ts";

export type { S3Settings } from "./s3-sign.ts";

export interface S3Location {
  bucket: string;
  key: string;
  /** s3://BUCKET/KEY, as messages name it. */
  url: string;
}

/** `s3://BUCKET/KEY` (KEY may hold slashes); null when `text` is not an s3:// URL. */
export function parseS3Url(text: string): S3Location | null {
  if (!text.startsWith("s3://")) return null;
  const rest = text.slice("s3://".length);
  const slash = rest.indexOf("/");
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const key = slash < 0 ? "" : rest.slice(slash + 1);
  if (bucket === "") throw new OptionError(`${text}: no bucket name (expected s3://BUCKET/KEY)`);
  if (key === "") throw new OptionError(`${text}: no object key after the bucket (expected s3://BUCKET/KEY)`);
  return { bucket, key, url: text };
}

const pick = (env: Record<string, string | undefined>, ...names: string[]): string | undefined => {
  for (const n of names) if (env[n]) return env[n];
  return undefined;
};

/**
 * Endpoint, region and keys from the environment: S3_* first, then the AWS tools' names. An endpoint means
 * a store other than AWS, addressed path-style (ENDPOINT/BUCKET/KEY), which RGW and MinIO serve.
 */
export function s3Settings(env: Record<string, string | undefined> = process.env): S3Settings {
  const endpoint = pick(env, "S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL");
  if (endpoint !== undefined && !/^https?:\/\/[^/\s]+\/?$/.test(endpoint)) {
    throw new OptionError(`S3_ENDPOINT "${endpoint}" is not an http:// or https:// address (e.g. http://127.0.0.1:7480)`);
  }
  const accessKeyId = pick(env, "S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID");
  const secretAccessKey = pick(env, "S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY");
  if (!accessKeyId || !secretAccessKey) {
    const missing = [accessKeyId ? null : "S3_ACCESS_KEY_ID", secretAccessKey ? null : "S3_SECRET_ACCESS_KEY"].filter(Boolean).join(" and ");
    throw new OptionError(`no S3 credentials: set ${missing} (or the AWS_* names: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)`);
  }
  return {
    endpoint: endpoint?.replace(/\/$/, ""),
    region: pick(env, "S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION") ?? "us-east-1",
    accessKeyId,
    secretAccessKey,
    sessionToken: pick(env, "S3_SESSION_TOKEN", "AWS_SESSION_TOKEN"),
    virtualHostedStyle: endpoint === undefined,
  };
}

/** A client for one bucket; every setting passed, so nothing is taken from the environment behind our back. */
function clientFor(s: S3Settings, bucket: string): S3Client {
  return new S3Client({ ...s, bucket });
}

const CREDENTIALS = "(S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY)";

/** Why a call failed, in words: the part of a one-line message after the object's URL. */
function reason(code: string, loc: S3Location, s: S3Settings): string {
  const at = endpointOf(s);
  switch (code) {
    case "NoSuchBucket":
      return `no such bucket "${loc.bucket}" at ${at}`;
    case "NoSuchKey":
    case "NotFound":
      return `no such object at ${at}`;
    case "InvalidAccessKeyId":
      return `access denied: the access key is not known at ${at} (S3_ACCESS_KEY_ID)`;
    case "SignatureDoesNotMatch":
      return `access denied: the secret does not match the access key (S3_SECRET_ACCESS_KEY)`;
    case "AccessDenied":
      return `access denied: the access key or secret is wrong, or the key may not use bucket "${loc.bucket}" ${CREDENTIALS}`;
    case "ConnectionRefused":
    case "ECONNREFUSED":
      return `cannot reach the endpoint ${at} (connection refused)`;
    default:
      return /^(E[A-Z]+|Connection\w*|FailedToOpenSocket|Timeout\w*|TimeoutError|UnableToConnect)$/.test(code)
        ? `cannot reach the endpoint ${at} (${code})`
        : `the store answered ${code}`;
  }
}

/** Any failure of a call about `loc` as one StorageError line (a RamsnapError passes through). */
export function storageError(e: unknown, loc: S3Location, s: S3Settings): Error {
  if (e instanceof StorageError || e instanceof OptionError) return e;
  const code = (e as { code?: string })?.code ?? (e as { name?: string })?.name ?? "UnknownError";
  return new StorageError(`${loc.url}: ${reason(code, loc, s)}`, code);
}

/**
 * The real cause of a failed HEAD: Bun's stat() sees only a status (a missing bucket reads as NoSuchKey,
 * wrong keys as UnknownError), so a signed call whose reply has a body tells which it was.
 */
async function diagnose(e: unknown, loc: S3Location, s: S3Settings): Promise<Error> {
  try {
    await listUploads(s, loc.bucket, loc.key);
  } catch (cause) {
    return storageError(cause, loc, s);
  }
  return storageError(e, loc, s);
}

/** Deletes the object at `loc` (no error if there is none). */
export async function removeObject(loc: S3Location, s: S3Settings): Promise<void> {
  try {
    await clientFor(s, loc.bucket).delete(loc.key);
  } catch (e) {
    throw await diagnose(e, loc, s);
  }
}

/** An object being read by ranges; `open` learns its size and proves the bucket, the keys and the object. */
export class S3Object {
  private constructor(
    readonly loc: S3Location,
    readonly settings: S3Settings,
    readonly size: number,
    private readonly client: S3Client,
  ) {}

  static async open(loc: S3Location, settings: S3Settings): Promise<S3Object> {
    const client = clientFor(settings, loc.bucket);
    try {
      const stat = await client.file(loc.key).stat();
      return new S3Object(loc, settings, stat.size, client);
    } catch (e) {
      throw await diagnose(e, loc, settings);
    }
  }

  /** Exactly `length` bytes from `offset`; a range past the end or a short reply is an error naming both. */
  read(offset: number, length: number): Promise<Uint8Array> {
    return readWith(this.client, this.settings, this.loc, offset, length, this.size);
  }
}

async function readWith(client: S3Client, s: S3Settings, loc: S3Location, offset: number, length: number, size?: number): Promise<Uint8Array> {
  const what = `${loc.url}: ${length} bytes at offset ${offset}`;
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new OptionError(`${what}: the offset and length must be whole numbers, not negative`);
  }
  if (size !== undefined && offset + length > size) throw new StorageError(`${what}: past the end of the object (${size} bytes)`);
  if (length === 0) return new Uint8Array(0);
  let bytes: Uint8Array;
  try {
    bytes = await client.file(loc.key).slice(offset, offset + length).bytes();
  } catch (e) {
    const code = (e as { code?: string })?.code;
    if (code === "InvalidRange") throw new StorageError(`${what}: past the end of the object`, code);
    throw storageError(e, loc, s);
  }
  if (bytes.length !== length) throw new StorageError(`${what}: short read, ${bytes.length} bytes came back`);
  return bytes;
}

// One client per settings and bucket in each thread: a Worker reading many ranges signs with the same one.
const clients = new Map<string, S3Client>();

/** A ranged read for Workers, which receive settings as data: the client is built once per thread and bucket. */
export function readRange(s: S3Settings, loc: S3Location, offset: number, length: number): Promise<Uint8Array> {
  const id = JSON.stringify([s.endpoint, s.region, s.accessKeyId, s.secretAccessKey, s.sessionToken, loc.bucket]);
  let client = clients.get(id);
  if (!client) clients.set(id, (client = clientFor(s, loc.bucket)));
  return within(readWith(client, s, loc, offset, length), CALL_TIMEOUT_MS, () => new StorageError(`${loc.url}: ${length} bytes at offset ${offset}: no answer from ${s.endpoint ?? "S3"} in ${CALL_TIMEOUT_MS / 1000} s`));
}

/**
 * How long one part's flush or one ranged read may take before the store counts as gone. An endpoint that
 * stops answering must end the run with an error, not hold it (and a Ctrl-C, which waits for the channels'
 * jobs in hand) forever; 8 MiB in 2 minutes is 70 KB/s.
 */
const CALL_TIMEOUT_MS = 120_000;

/** `p`, or `error()` once `ms` have passed without it settling. */
function within<T>(p: Promise<T>, ms: number, error: () => Error): Promise<T> {
  let timer: Timer | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(error()), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

const MiB = 1024 * 1024;

export interface UploadOptions {
  /** Bytes per multipart part; default 8 MiB, at least 5 MiB (S3's minimum for all parts but the last). */
  partSize?: number;
  /** Parts in flight at once; default 4. */
  queueSize?: number;
}

/**
 * A multipart upload to one key, fed by appends. Nothing appears at the key until `commit`; `abort` (or a
 * killed process: a multipart upload is invisible until completed) leaves the previous object there, byte
 * for byte. Bun's writer has no backpressure (its write() buffers everything), so `write` waits for the
 * parts in flight after every few parts: memory stays near partSize x (2 x queueSize + 1).
 */
export class S3Upload {
  /** Bytes appended so far. */
  position = 0;
  private state: "open" | "committed" | "aborted" = "open";
  private unflushed = 0;
  // Appends run one after another in call order, whoever calls; a failure sticks to every later one.
  private chain: Promise<void> = Promise.resolve();

  private constructor(
    readonly loc: S3Location,
    readonly settings: S3Settings,
    private readonly writer: Bun.NetworkSink,
    private readonly flushEvery: number,
    /** Uploads already pending for this key when we began: not ours to abort. */
    private readonly before: Set<string>,
  ) {}

  static async start(loc: S3Location, settings: S3Settings, opts: UploadOptions = {}): Promise<S3Upload> {
    const partSize = opts.partSize ?? 8 * MiB;
    const queueSize = opts.queueSize ?? 4;
    if (!Number.isSafeInteger(partSize) || partSize < 5 * MiB) throw new OptionError(`${loc.url}: part size ${partSize} is below S3's minimum of 5 MiB`);
    if (!Number.isSafeInteger(queueSize) || queueSize < 1 || queueSize > 64) throw new OptionError(`${loc.url}: queue size ${queueSize} is not within 1..64`);
    // Proves the endpoint, the keys and the bucket before any byte is buffered, and notes the uploads
    // another writer has pending for this key (abort must leave those alone).
    let pending: Awaited<ReturnType<typeof listUploads>>;
    try {
      pending = await listUploads(settings, loc.bucket, loc.key);
    } catch (e) {
      throw storageError(e, loc, settings);
    }
    const before = new Set(pending.filter((u) => u.key === loc.key).map((u) => u.uploadId));
    const writer = clientFor(settings, loc.bucket).file(loc.key).writer({ partSize, queueSize, retry: 1 });
    // Waiting for the parts in flight after every half queue, not every full one, holds half as much in
    // Bun's buffer while a queue is still being sent (ramsnap's memory bound: bench/PACK-FINAL.md).
    return new S3Upload(loc, settings, writer, Math.max(partSize, (partSize * queueSize) / 2), before);
  }

  /** Appends `bytes` (copied before this resolves: the caller may reuse its buffer then). */
  write(bytes: Uint8Array): Promise<void> {
    this.chain = this.chain.then(() => this.append(bytes));
    return this.chain;
  }

  private async append(bytes: Uint8Array): Promise<void> {
    if (this.state !== "open") throw new StorageError(`${this.loc.url}: write after the upload was ${this.state}`);
    this.writer.write(bytes);
    this.position += bytes.length;
    this.unflushed += bytes.length;
    if (this.unflushed < this.flushEvery) return;
    this.unflushed = 0;
    try {
      await within(Promise.resolve(this.writer.flush()), CALL_TIMEOUT_MS, () => new StorageError(`${this.loc.url}: the upload's parts got no answer from ${this.settings.endpoint ?? "S3"} in ${CALL_TIMEOUT_MS / 1000} s`));
    } catch (e) {
      throw storageError(e, this.loc, this.settings);
    }
  }

  /** Sends what is buffered and completes the upload: only now does the object appear at the key. */
  async commit(): Promise<void> {
    await this.chain;
    if (this.state !== "open") throw new StorageError(`${this.loc.url}: commit after the upload was ${this.state}`);
    try {
      await this.writer.end();
    } catch (e) {
      // Not completed: the upload stays open, so the abort that follows deletes its parts.
      throw storageError(e, this.loc, this.settings);
    }
    this.state = "committed";
  }

  /**
   * Abandons the upload: the parts sent so far are deleted and the key keeps what it had. Bun's writer
   * cannot be aborted (end(err) would complete it), so it is drained, left unended, and the upload it
   * began is found by listing the key's pending uploads and aborted with a signed DELETE.
   */
  async abort(): Promise<void> {
    if (this.state !== "open") return;
    this.state = "aborted";
    await this.chain.catch(() => {});
    await this.drain();
    this.writer.unref(); // the unended writer must not keep the process alive
    try {
      for (const u of await listUploads(this.settings, this.loc.bucket, this.loc.key)) {
        if (u.key === this.loc.key && !this.before.has(u.uploadId)) await abortUpload(this.settings, this.loc.bucket, u.key, u.uploadId);
      }
    } catch (e) {
      throw storageError(e, this.loc, this.settings);
    }
  }

  /**
   * Waits until no part is in flight, so the upload (if one was begun) is listed before we look and no part
   * lands after the abort. flush() resolves with 0 only once Bun's queue is empty; bounded, since a
   * failed upload's flush may never settle.
   */
  private async drain(): Promise<void> {
    const until = Date.now() + 30_000;
    while (Date.now() < until) {
      const flushed = await Promise.race([(async () => this.writer.flush())().catch(() => 0), Bun.sleep(until - Date.now()).then(() => 0)]);
      if (flushed === 0) return;
    }
  }
}
