// Harness: plain S3 transfers with Bun's S3Client, the reference a benchmark holds ramsnap's S3 saves and
// restores to (bench/pack.ts). A process of its own, so it is timed as the ramsnap CLI is: spawn to exit.
//
//   bun harness/s3-plain.ts put FILE KEY [--part-mib 8] [--queue 4]   a multipart upload of FILE's bytes
//   bun harness/s3-plain.ts get KEY [--parallel 4] [--range-mib 8]    ranged GETs in parallel, bytes dropped
//
// The bucket and the store come from S3_BUCKET and the S3_* settings (scripts/ceph-rgw.sh env). Prints one
// JSON line: {"bytes": N, "seconds": S} (S: the transfer alone, after the process started).
import { S3Client } from "bun";
import { parseArgs } from "node:util";
import { s3Settings } from "../src/io/s3.ts";

const MiB = 1024 * 1024;
const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    "part-mib": { type: "string", default: "8" },
    queue: { type: "string", default: "4" },
    parallel: { type: "string", default: "4" },
    "range-mib": { type: "string", default: "8" },
  },
});
const [op, ...rest] = positionals;
const bucket = process.env.S3_BUCKET;
if (!bucket) throw new Error("S3_BUCKET is not set");
const client = new S3Client({ ...s3Settings(), bucket });
const t0 = performance.now();
let bytes = 0;

if (op === "put") {
  const [file, key] = rest;
  if (!file || !key) throw new Error("usage: put FILE KEY");
  // The writer Bun's S3Client gives (multipart, partSize and queueSize as ramsnap's upload uses), fed the
  // file as it streams, waiting on flush() every half queue as ramsnap does: Bun's writer has no backpressure.
  const partSize = Number(opt["part-mib"]) * MiB;
  const queueSize = Number(opt.queue);
  const writer = client.file(key).writer({ partSize, queueSize, retry: 1 });
  let unflushed = 0;
  for await (const chunk of Bun.file(file).stream()) {
    writer.write(chunk);
    bytes += chunk.length;
    unflushed += chunk.length;
    if (unflushed >= (partSize * queueSize) / 2) {
      unflushed = 0;
      await writer.flush();
    }
  }
  await writer.end();
} else if (op === "get") {
  const [key] = rest;
  if (!key) throw new Error("usage: get KEY");
  const size = (await client.file(key).stat()).size;
  const range = Number(opt["range-mib"]) * MiB;
  let next = 0;
  const worker = async () => {
    for (;;) {
      const from = next;
      if (from >= size) return;
      next += range;
      const to = Math.min(size, from + range);
      const got = await client.file(key).slice(from, to).bytes();
      if (got.length !== to - from) throw new Error(`${key}: ${got.length} bytes at ${from}, not ${to - from}`);
      bytes += got.length;
    }
  };
  await Promise.all(Array.from({ length: Number(opt.parallel) }, worker));
} else {
  throw new Error("usage: bun harness/s3-plain.ts put FILE KEY | get KEY");
}
console.log(JSON.stringify({ bytes, seconds: (performance.now() - t0) / 1000 }));
