// Packs in object storage, against a real Ceph RGW (scripts/ceph-rgw.sh; .ci/run starts it): save,
// restore, convert, inspect and verify with s3://BUCKET/KEY; a running QEMU guest saved into S3 and
// restored from it into a fresh QEMU; an interrupted upload that leaves the previous object and no
// pending upload; memory bounded while uploading; and each thing a user gets wrong (a missing bucket or
// key, wrong keys, an object that is not a pack, a truncated or corrupt one) as one line naming the object.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expectOneLineError, MAIN, type Run } from "../harness/cli.ts";
import { readCounter, requireQemu, waitCounterAbove, shmBytes, startGuest, stopAllGuests } from "../harness/qemu.ts";
import { abortPending, objectBytes, pendingUploads, putObject, requireS3, uniqueKey, type S3Fixture } from "../harness/s3.ts";
import { expectSameBytes } from "../harness/scratch.ts";
import { rssAnon } from "../harness/proc.ts";
import { MiB } from "../harness/units.ts";
import { syntheticImage } from "../src/memory/synthetic.ts";
import { qemuRestore, qemuSave } from "../src/qemu/drive.ts";

const s3 = await requireS3();
const PREFIX = uniqueKey("pack-tests");

/** `ramsnap ARGS...` with the environment changed by `env` (undefined removes a variable). */
async function ramsnapEnv(env: Record<string, string | undefined>, ...args: string[]): Promise<Run> {
  const merged: Record<string, string> = { ...(process.env as Record<string, string>), NO_COLOR: "1" };
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete merged[k];
    else merged[k] = v;
  }
  delete merged.RAMSNAP_TEST_FAULTS;
  const p = Bun.spawn([process.execPath, MAIN, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore", env: merged });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}
const ramsnap = (...args: string[]) => ramsnapEnv({}, ...args);

/** An image file of `size` bytes with the synthetic pattern `kind` (non-zero pages from a random pool). */
function writeImage(path: string, size: number, kind: "dense" | "clustered" | "scattered", seed = 7): Uint8Array<ArrayBuffer> {
  const img = syntheticImage(size, { seed, kind, nonZero: 0.5 });
  const buf = new Uint8Array(new ArrayBuffer(size));
  img.fill(buf, 0);
  writeFileSync(path, buf);
  return buf;
}

describe.skipIf(!s3)("packs in S3 (Ceph RGW)", () => {
  const f = s3 as S3Fixture;
  const url = (name: string) => `s3://${f.bucket}/${PREFIX}/${name}`;
  let dir = "";
  let image: Uint8Array<ArrayBuffer> = new Uint8Array();
  beforeAll(() => {
    dir = mkdtempSync("/tmp/ramsnap-s3-pack-");
    image = writeImage(join(dir, "ram0.img"), 24 * MiB + 12 * 1024, "clustered");
  });
  afterAll(async () => {
    await stopAllGuests();
    await abortPending(f.settings, f.bucket, PREFIX);
    rmSync(dir, { recursive: true, force: true });
  });

  test("save to s3://, inspect, verify, restore and extract from it, convert both ways: every byte back", async () => {
    const obj = url("a.rpk");
    const saved = await ramsnap("save", "-o", obj, "--block", `ram0=${join(dir, "ram0.img")}`, "--json");
    expect(saved.code).toBe(0);
    expect(JSON.parse(saved.stdout)).toMatchObject({ file: obj, format: "pack" });
    const inspected = JSON.parse((await ramsnap("inspect", obj, "--json")).stdout);
    expect(inspected.complete).toBe(true);
    expect(inspected.pack.storedBytes).toBeLessThan(inspected.pack.pageBytes);
    const verified = await ramsnap("verify", obj, "--json");
    expect(verified.code).toBe(0);
    expect(JSON.parse(verified.stdout).pagesChecked).toBe("all");
    const out = join(dir, "restored.img");
    expect((await ramsnap("restore", obj, "--block", `ram0=${out}`)).code).toBe(0);
    expectSameBytes(new Uint8Array(readFileSync(out)), image, "RAM restored from S3");
    expect((await ramsnap("extract", obj, "-o", join(dir, "ex"))).code).toBe(0);
    expectSameBytes(new Uint8Array(readFileSync(join(dir, "ex", "ram0.raw"))), image, "RAM extracted from S3");
    // local mapped-ram -> S3 pack -> local mapped-ram: the same file
    const local = join(dir, "a.ram");
    expect((await ramsnap("save", "-o", local, "--block", `ram0=${join(dir, "ram0.img")}`, "--no-manifest")).code).toBe(0);
    expect((await ramsnap("convert", local, url("b.rpk"), "--to", "pack", "--compress", "zstd:3")).code).toBe(0);
    const back = join(dir, "back.ram");
    expect((await ramsnap("convert", url("b.rpk"), back, "--to", "mapped-ram", "--no-manifest")).code).toBe(0);
    expectSameBytes(new Uint8Array(readFileSync(back)), new Uint8Array(readFileSync(local)), "mapped-ram file through an S3 pack");
  }, 60_000);

  test("Ctrl-C mid-upload: exit 130, the previous object byte for byte, no multipart upload left pending; the upload's memory stays bounded", async () => {
    const key = `${PREFIX}/interrupted.rpk`;
    const previous = new TextEncoder().encode("the previous object, which must survive\n");
    await putObject(f.settings, f.bucket, key, previous);
    const big = join(dir, "big.img");
    writeImage(big, 768 * MiB, "dense", 3);
    const merged = { ...(process.env as Record<string, string>), NO_COLOR: "1" };
    const p = Bun.spawn([process.execPath, MAIN, "save", "-o", `s3://${f.bucket}/${key}`, "--block", `ram0=${big}`, "--compress", "none"], { stdout: "pipe", stderr: "pipe", env: merged });
    let peak = 0;
    const deadline = Date.now() + 30_000;
    // Interrupt once the upload is under way (a part is pending in the store).
    while (Date.now() < deadline) {
      peak = Math.max(peak, rssAnon(p.pid));
      if ((await pendingUploads(f.settings, f.bucket, key)).length > 0) break;
      await Bun.sleep(20);
    }
    for (let i = 0; i < 10; i++) {
      peak = Math.max(peak, rssAnon(p.pid));
      await Bun.sleep(30);
    }
    p.kill("SIGINT");
    const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
    expect(code).toBe(130);
    expect(stderr).toMatch(/cancelled/);
    expect(await objectBytes(f.settings, f.bucket, key)).toEqual(previous);
    expect(await pendingUploads(f.settings, f.bucket, key)).toEqual([]);
    // 768 MiB of incompressible pages went through; ramsnap held a bounded amount of them.
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThan(256 * MiB);
    rmSync(big, { force: true });
  }, 90_000);

  test("what a user gets wrong, each one line naming the object", async () => {
    const img = `ram0=${join(dir, "ram0.img")}`;
    const out = `ram0=${join(dir, "never.img")}`;
    expectOneLineError(await ramsnap("save", "-o", "s3://no-such-bucket-ramsnap/x.rpk", "--block", img), "save", 1, /s3:\/\/no-such-bucket-ramsnap\/x\.rpk: .*no such bucket/i);
    expectOneLineError(await ramsnap("restore", url("missing.rpk"), "--block", out), "restore", 1, new RegExp(`${url("missing.rpk").replace(/[/.]/g, "\\$&")}: .*no such object`, "i"));
    expectOneLineError(await ramsnapEnv({ S3_SECRET_ACCESS_KEY: "wrong-secret" }, "save", "-o", url("w.rpk"), "--block", img), "save", 1, /w\.rpk: .*(access denied|signature|secret)/i);
    expectOneLineError(await ramsnapEnv({ S3_ACCESS_KEY_ID: "NOSUCHKEY" }, "inspect", url("a.rpk")), "inspect", 1, /a\.rpk: .*(access|key)/i);
    expectOneLineError(await ramsnapEnv({ S3_ACCESS_KEY_ID: undefined, AWS_ACCESS_KEY_ID: undefined }, "inspect", url("a.rpk")), "inspect", 2, /S3_ACCESS_KEY_ID/);
    // an object that is not a pack, and a pack cut short or with a byte flipped in an extent
    await putObject(f.settings, f.bucket, `${PREFIX}/junk.rpk`, new Uint8Array(4096).fill(7));
    expectOneLineError(await ramsnap("restore", url("junk.rpk"), "--block", out), "restore", 1, /junk\.rpk is not a ramsnap pack/);
    const pack = await objectBytes(f.settings, f.bucket, `${PREFIX}/a.rpk`);
    await putObject(f.settings, f.bucket, `${PREFIX}/cut.rpk`, pack.subarray(0, pack.length - 100));
    expectOneLineError(await ramsnap("restore", url("cut.rpk"), "--block", out), "restore", 1, /cut\.rpk: .*(truncated|footer)/);
    const bad = pack.slice();
    bad[64 + 100]! ^= 0xff; // inside the first stored extent
    await putObject(f.settings, f.bucket, `${PREFIX}/bad.rpk`, bad);
    expectOneLineError(await ramsnap("restore", url("bad.rpk"), "--block", out), "restore", 1, /bad\.rpk: block \d+, extent \d+ .*do not match their hash/);
    expectOneLineError(await ramsnap("verify", url("bad.rpk")), "verify", 1, /bad\.rpk: block \d+, extent \d+/);
  }, 60_000);

  test.skipIf(!requireQemu())(
    "a running QEMU guest saved into S3 by ramsnap's channels and restored from it into a fresh QEMU: RAM identical, it counts on",
    async () => {
      const obj = url("guest.rpk");
      const src = await startGuest({ name: "s3-src", ramMiB: 64, counter: true, running: true, pattern: { seed: 4, kind: "clustered", nonZero: 0.4 } });
      const dst = await startGuest({ name: "s3-dst", ramMiB: 64, counter: true, incoming: true, pattern: { seed: 9, kind: "dense" } });
      try {
        const saved = await qemuSave({ qmp: src.qmp, path: obj, channels: 4 });
        expect(saved).toMatchObject({ pagesBy: "ramsnap", file: obj, warnings: [] });
        const counter = await readCounter(src);
        const ram = await shmBytes(src);
        const restored = await qemuRestore({ qmp: dst.qmp, path: obj, channels: 4 });
        expect(restored).toMatchObject({ pagesBy: "ramsnap", warnings: [] });
        expectSameBytes(await shmBytes(dst), ram, "RAM restored from S3 into a fresh QEMU");
        expect(await readCounter(dst)).toBe(counter);
        await dst.qmp.execute("cont");
        expect(await waitCounterAbove(dst, counter)).toBeGreaterThan(counter);
      } finally {
        await Promise.all([src.stop(), dst.stop()]);
      }
    },
    90_000,
  );
});
