// The few S3 calls Bun's S3Client does not make, signed with AWS Signature Version 4: listing the pending
// multipart uploads of a key and aborting one. Bun's multipart writer cannot be aborted (its `end(err)`
// ignores the error and completes the upload, and it never shows its upload id), so an abandoned upload
// is found by listing and aborted here. Kept to what those calls need: no body, no chunked signing.

/** Where and as whom to talk to the store; plain data, so it can be posted to a Worker. */
export interface S3Settings {
  /** http(s)://host[:port] without a trailing slash; undefined means AWS itself. */
  endpoint?: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** false (path style: ENDPOINT/BUCKET/KEY) when an endpoint is given, as RGW and MinIO expect. */
  virtualHostedStyle: boolean;
}

/** A failed signed call: the store's error code (from its XML reply) or the network's (ConnectionRefused ...). */
export class S3CallError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The endpoint named in messages: the configured one, or AWS's for the region. */
export function endpointOf(s: S3Settings): string {
  return s.endpoint ?? `https://s3.${s.region}.amazonaws.com`;
}

// RFC 3986 unreserved characters stay; everything else is %XX, as SigV4's canonical form requires.
const encode = (text: string): string => encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

function urlOf(s: S3Settings, bucket: string, key: string): URL {
  const path = key.split("/").map(encode).join("/");
  if (s.virtualHostedStyle) {
    const base = new URL(endpointOf(s));
    return new URL(`${base.protocol}//${bucket}.${base.host}/${path}`);
  }
  return new URL(`${endpointOf(s)}/${encode(bucket)}${key === "" ? "" : `/${path}`}`);
}

const hex = (data: string): string => new Bun.CryptoHasher("sha256").update(data).digest("hex");
const hmac = (key: string | Uint8Array, data: string): Uint8Array => new Bun.CryptoHasher("sha256", key).update(data).digest() as Uint8Array;
const EMPTY_SHA256 = hex("");

/** Headers that sign `method` on `url` (no body) for `s` at time `now`. */
export function signV4(s: S3Settings, method: string, url: URL, now = new Date()): Record<string, string> {
  const amzDate = now.toISOString().replace(/[-:]|\.\d{3}/g, "");
  const day = amzDate.slice(0, 8);
  const headers: Record<string, string> = { host: url.host, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": amzDate };
  if (s.sessionToken) headers["x-amz-security-token"] = s.sessionToken;
  const names = Object.keys(headers).sort();
  const query = [...url.searchParams]
    .map(([k, v]) => `${encode(k)}=${encode(v)}`)
    .sort()
    .join("&");
  const canonical = [method, url.pathname, query, ...names.map((n) => `${n}:${headers[n]!.trim()}`), "", names.join(";"), EMPTY_SHA256].join("\n");
  const scope = `${day}/${s.region}/s3/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, hex(canonical)].join("\n");
  const key = hmac(hmac(hmac(hmac(`AWS4${s.secretAccessKey}`, day), s.region), "s3"), "aws4_request");
  const signature = new Bun.CryptoHasher("sha256", key).update(toSign).digest("hex");
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${s.accessKeyId}/${scope}, SignedHeaders=${names.join(";")}, Signature=${signature}`;
  return headers;
}

/** One signed call without a body; the reply's text, or an S3CallError with the store's or the network's code. */
async function call(s: S3Settings, method: "GET" | "DELETE", bucket: string, key: string, query: Record<string, string>): Promise<string> {
  const url = urlOf(s, bucket, key);
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  let res: Response;
  try {
    res = await fetch(url, { method, headers: signV4(s, method, url), signal: AbortSignal.timeout(30_000) });
  } catch (e) {
    const err = e as { code?: string; name?: string; message?: string };
    throw new S3CallError(err.code ?? err.name ?? "NetworkError", err.message ?? String(e));
  }
  const text = await res.text();
  if (res.ok) return text;
  const code = element(text, "Code") || `HTTP${res.status}`;
  throw new S3CallError(code, `${method} ${url.pathname}: ${res.status} ${code}`);
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/** The text of the first <name> element in a reply (the replies here are flat enough for a pattern). */
function element(xml: string, name: string): string {
  const raw = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1] ?? "";
  return raw.replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => ENTITIES[e]!);
}

export interface PendingUpload {
  key: string;
  uploadId: string;
}

/** The multipart uploads begun and neither completed nor aborted whose key starts with `prefix`. */
export async function listUploads(s: S3Settings, bucket: string, prefix: string): Promise<PendingUpload[]> {
  const out: PendingUpload[] = [];
  let marker: Record<string, string> = {};
  for (;;) {
    const xml = await call(s, "GET", bucket, "", { uploads: "", prefix, ...marker });
    for (const [, u] of xml.matchAll(/<Upload>(.*?)<\/Upload>/gs)) out.push({ key: element(u!, "Key"), uploadId: element(u!, "UploadId") });
    if (element(xml, "IsTruncated") !== "true") return out;
    marker = { "key-marker": element(xml, "NextKeyMarker"), "upload-id-marker": element(xml, "NextUploadIdMarker") };
  }
}

/** Aborts one pending multipart upload: its parts go, and whatever object is at `key` stays as it was. */
export async function abortUpload(s: S3Settings, bucket: string, key: string, uploadId: string): Promise<void> {
  try {
    await call(s, "DELETE", bucket, key, { uploadId });
  } catch (e) {
    // Already gone (aborted by Bun's own rollback after a failed part, or by a concurrent abort): done.
    if (!(e instanceof S3CallError && e.code === "NoSuchUpload")) throw e;
  }
}
