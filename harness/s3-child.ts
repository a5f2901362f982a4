// Harness: a process that begins an S3 upload and never finishes it, for the kill -9 test
// (test/s3-store.test.ts). Usage: bun harness/s3-child.ts BUCKET KEY MIB. It sends MIB MiB, prints
// "uploading" once those parts are in the store, then keeps the upload open until it is killed.
import { S3Upload, s3Settings } from "../src/io/s3.ts";

const [bucket, key, mib] = process.argv.slice(2);
const upload = await S3Upload.start({ bucket: bucket!, key: key!, url: `s3://${bucket}/${key}` }, s3Settings(), { partSize: 5 * 1024 * 1024, queueSize: 2 });
const chunk = new Uint8Array(1024 * 1024).fill(0xee);
for (let i = 0; i < Number(mib); i++) await upload.write(chunk);
await upload.write(new Uint8Array(0));
console.log("uploading");
setInterval(() => {}, 1000); // stays mid-upload until SIGKILL
