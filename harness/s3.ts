// Harness: the real object store the S3 tests run against (Ceph RGW, brought up by scripts/ceph-rgw.sh;
// `eval "$(bash scripts/ceph-rgw.sh env)"` gives the S3_* variables). Never a mock: the behaviours under
// test (ranges, multipart uploads that stay invisible until completed, error replies) are the store's.
import { S3Client } from "bun";
import { abortUpload, listUploads, type PendingUpload } from "../src/io/s3-sign.ts";
import { s3Settings, type S3Location, type S3Settings } from "../src/io/s3.ts";

export interface S3Fixture {
  settings: S3Settings;
  bucket: string;
}

let checked: S3Fixture | null | undefined;

/** Why the store cannot be used, or null when it answers with the keys and bucket of the environment. */
async function problem(): Promise<string | null> {
  if (!process.env.S3_ENDPOINT || !process.env.S3_BUCKET) return "S3_ENDPOINT and S3_BUCKET are not set (eval \"$(bash scripts/ceph-rgw.sh env)\" after `bash scripts/ceph-rgw.sh start`)";
  try {
    await listUploads(s3Settings(), process.env.S3_BUCKET, "");
    return null;
  } catch (e) {
    return `${process.env.S3_ENDPOINT} bucket ${process.env.S3_BUCKET} does not answer (${(e as { code?: string }).code ?? e}); start it with bash scripts/ceph-rgw.sh start`;
  }
}

/**
 * The store's settings and bucket when one answers. Without one, CI fails hard (the S3 tests must never be
 * skipped there unnoticed); a local run warns loudly and gets null, e.g. `describe.skipIf(!(await requireS3()))`.
 */
export async function requireS3(): Promise<S3Fixture | null> {
  if (checked !== undefined) return checked;
  const why = await problem();
  if (why === null) return (checked = { settings: s3Settings(), bucket: process.env.S3_BUCKET! });
  if (process.env.CI) throw new Error(`${why}: S3 integration tests cannot be skipped in CI`);
  console.warn(
    `\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n` +
      `!!! ${why}\n` +
      `!!! SKIPPING the S3 integration tests (CI refuses to skip them).\n` +
      `!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n`,
  );
  return (checked = null);
}

/** A key no other test or run uses: `PREFIX/PID-TIME-RANDOM`. */
export function uniqueKey(prefix: string): string {
  return `${prefix}/${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

export function locationOf(bucket: string, key: string): S3Location {
  return { bucket, key, url: `s3://${bucket}/${key}` };
}

/** Multipart uploads pending (begun, neither completed nor aborted) under `prefix`. */
export function pendingUploads(settings: S3Settings, bucket: string, prefix: string): Promise<PendingUpload[]> {
  return listUploads(settings, bucket, prefix);
}

/** Aborts every pending upload under `prefix` (what a killed writer leaves), so the bucket stays clean. */
export async function abortPending(settings: S3Settings, bucket: string, prefix: string): Promise<number> {
  const list = await listUploads(settings, bucket, prefix);
  for (const u of list) await abortUpload(settings, bucket, u.key, u.uploadId);
  return list.length;
}

const client = (settings: S3Settings, bucket: string) => new S3Client({ ...settings, bucket });

export function objectExists(settings: S3Settings, bucket: string, key: string): Promise<boolean> {
  return client(settings, bucket).exists(key);
}

/** The whole object's bytes (for comparing; tests keep their objects small enough to hold). */
export async function objectBytes(settings: S3Settings, bucket: string, key: string): Promise<Uint8Array> {
  return client(settings, bucket).file(key).bytes();
}

/** Puts `data` at `key` in one request (the "previous object" an interrupted upload must leave alone). */
export async function putObject(settings: S3Settings, bucket: string, key: string, data: Uint8Array | string): Promise<void> {
  await client(settings, bucket).write(key, data);
}
