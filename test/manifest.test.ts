// The integrity manifest (FILE.sums): what save --manifest writes, what verify and restore --verify make of
// damage to the pages and to the main stream, and the manifests convert and save --like write. Damage is done
// to copies at exact offsets, and each report must name the block, the extent and its byte range.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { IntegrityError, RefusedError } from "../src/errors.ts";
import { restore } from "../src/restore.ts";
import { save } from "../src/save.ts";
import { flipByte, readRange } from "../harness/corrupt.ts";
import { migrateToFile, requireQemu, shmBytes, startGuest, stopAllGuests } from "../harness/qemu.ts";
import { readBytes, sameFiles, scratchDir, writeImage } from "../harness/scratch.ts";
import { expectOneLineError, ramsnap, type Run } from "../harness/cli.ts";
import { syntheticImage } from "../src/memory/synthetic.ts";
import { MiB, PAGE } from "../harness/units.ts";

const EXTENT = MiB;
const disk = scratchDir("ramsnap-sums");
const shm = scratchDir("ramsnap-sums", "/dev/shm");
afterAll(async () => {
  await stopAllGuests();
  disk.cleanup();
  shm.cleanup();
});

async function ok(...args: string[]): Promise<Run> {
  const r = await ramsnap(...args);
  if (r.code !== 0) throw new Error(`ramsnap ${args.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  return r;
}

const hex = (n: number) => `0x${n.toString(16)}`;
const xxh3 = (b: Uint8Array) => Bun.hash.xxHash3(b).toString(16).padStart(16, "0");
/** The xxh3 of each 1 MiB of an image: what the manifest must hold for it. */
const extentHashes = (img: Uint8Array) => Array.from({ length: Math.ceil(img.length / EXTENT) }, (_, e) => xxh3(img.subarray(e * EXTENT, Math.min(img.length, (e + 1) * EXTENT))));

/** A copy of a save file and its manifest under a new name. */
function copyWithSums(file: string, name: string): string {
  const to = join(disk.path, name);
  copyFileSync(file, to);
  copyFileSync(`${file}.sums`, `${to}.sums`);
  return to;
}

// Two blocks: 12 MiB with data and zero pages interleaved, and 2 MiB + 3 pages (a short last extent).
const img0 = join(shm.path, "ram0.img");
const img1 = join(shm.path, "extra.img");
const map0 = writeImage(img0, 12 * MiB, { kind: "scattered", seed: 61, nonZero: 0.4 });
writeImage(img1, 2 * MiB + 3 * PAGE, { kind: "dense", seed: 62 });
/** A present page in extent `e` of ram0 (the pattern makes several per MiB). */
const presentPageIn = (e: number) => {
  for (let p = (e * EXTENT) / PAGE; p < ((e + 1) * EXTENT) / PAGE; p++) if (map0[p]) return p;
  throw new Error(`no data page in extent ${e}`);
};
const absentPageIn = (e: number) => {
  for (let p = (e * EXTENT) / PAGE; p < ((e + 1) * EXTENT) / PAGE; p++) if (!map0[p]) return p;
  throw new Error(`no zero page in extent ${e}`);
};

let file = "";
let layout: { blocks: { name: string; bitmapOffset: number; pagesOffset: number }[]; trailer: { offset: number; length: number } };

beforeAll(async () => {
  file = join(disk.path, "vm.ram");
  const s = await ramsnap("save", "-o", file, "--block", `ram0=${img0}`, "--block", `extra=${img1}`, "--channels", "3", "--manifest", "--json");
  expect(s.stderr).toBe("");
  expect(s.code).toBe(0);
  expect(JSON.parse(s.stdout).manifest).toBe(`${file}.sums`);
  layout = JSON.parse((await ok("inspect", file, "--json")).stdout);
});

describe("save --manifest", () => {
  test("writes FILE.sums: the JSON shape, and a hash of every 1 MiB of each block as a loader sees it", async () => {
    const m = JSON.parse(readFileSync(`${file}.sums`, "utf8"));
    expect(Object.keys(m).sort()).toEqual(["algorithm", "blocks", "extentBytes", "format", "mainStream", "offset", "version"]);
    expect(m).toMatchObject({ format: "ramsnap-sums", version: 1, algorithm: "xxh3-64", extentBytes: EXTENT, offset: 0 });
    expect(m.mainStream.xxh3).toMatch(/^[0-9a-f]{16}$/);
    expect(m.mainStream.bytes).toBeGreaterThan(0);
    expect(m.mainStream.bytes).toBeLessThan(Bun.file(file).size);
    expect(m.blocks.map((b: any) => [b.name, b.length, b.extents.length])).toEqual([
      ["ram0", 12 * MiB, 12],
      ["extra", 2 * MiB + 3 * PAGE, 3],
    ]);
    expect(m.blocks[0].extents).toEqual(extentHashes(await readBytes(img0)));
    expect(m.blocks[1].extents).toEqual(extentHashes(await readBytes(img1)));
  });

  test("verify passes: structure, main stream and every extent", async () => {
    const v = await ramsnap("verify", file);
    expect(v.stderr).toBe("");
    expect(v.code).toBe(0);
    expect(v.stdout).toContain(`manifest ${file}.sums: main stream and every extent match`);
    expect(v.stdout.trimEnd().endsWith("OK")).toBe(true);
    const j = JSON.parse((await ok("verify", file, "--json")).stdout);
    expect(j.ok).toBe(true);
    expect(j.manifest).toEqual({ path: `${file}.sums`, mainStreamOk: true, bad: [], mismatched: [], ok: true });
  });
});

describe("damage the manifest catches", () => {
  const ram0 = () => layout.blocks.find((b) => b.name === "ram0")!;

  test("a flipped byte in a present page: verify names the block, the first bad extent and its bytes; exit 1", async () => {
    const bad = copyWithSums(file, "page-flip.ram");
    // two damaged extents, 3 and 7: the report names the first
    for (const e of [7, 3]) flipByte(bad, ram0().pagesOffset + presentPageIn(e) * PAGE + 100, 0x10);
    const v = await ramsnap("verify", bad);
    expect(v.code).toBe(1);
    expect(v.stdout).toContain(`manifest ${bad}.sums: block ram0, first bad extent 3 (bytes ${hex(3 * EXTENT)}-${hex(4 * EXTENT - 1)})`);
    expect(v.stdout).not.toContain("main stream (header");
    expect(v.stdout.trimEnd().endsWith("FAILED")).toBe(true);
    const j = JSON.parse((await ramsnap("verify", bad, "--json")).stdout);
    expect(j.ok).toBe(false);
    expect(j.manifest).toMatchObject({ mainStreamOk: true, bad: [{ block: "ram0", extent: 3, offset: 3 * EXTENT, length: EXTENT }], mismatched: [] });
  });

  test("the short last extent of a block is named with its real length", async () => {
    const bad = copyWithSums(file, "tail-flip.ram");
    const extra = layout.blocks.find((b) => b.name === "extra")!;
    flipByte(bad, extra.pagesOffset + 2 * MiB + PAGE + 7);
    const j = JSON.parse((await ramsnap("verify", bad, "--json")).stdout);
    expect(j.manifest.bad).toEqual([{ block: "extra", extent: 2, offset: 2 * EXTENT, length: 3 * PAGE }]);
  });

  test("a flipped byte inside the trailer (still valid JSON): main stream mismatch; exit 1", async () => {
    const bad = copyWithSums(file, "trailer-flip.ram");
    const json = new TextDecoder().decode(readRange(bad, layout.trailer.offset + 5, layout.trailer.length));
    const at = json.indexOf('"uint32"');
    expect(at).toBeGreaterThan(0);
    flipByte(bad, layout.trailer.offset + 5 + at + 5, 0x01); // "uint32" -> "uint22": still a string
    expect((await ok("inspect", bad)).stdout).toContain("complete"); // the structure is fine
    const v = await ramsnap("verify", bad);
    expect(v.code).toBe(1);
    expect(v.stdout).toContain(`manifest ${bad}.sums: the main stream (header, block list, bitmaps, device state) does not match`);
    expect(v.stdout).not.toContain("first bad extent");
    const j = JSON.parse((await ramsnap("verify", bad, "--json")).stdout);
    expect(j.manifest).toMatchObject({ mainStreamOk: false, bad: [], ok: false });
  });

  test("a bitmap bit set for a zero page (the page still reads as zeros): main stream mismatch only", async () => {
    const bad = copyWithSums(file, "bitmap-flip.ram");
    const p = absentPageIn(5);
    const before = flipByte(bad, ram0().bitmapOffset + (p >> 3), 1 << (p & 7));
    expect(before.before & (1 << (p & 7))).toBe(0);
    const j = JSON.parse((await ramsnap("verify", bad, "--json")).stdout);
    expect(j.ok).toBe(false);
    expect(j.manifest).toMatchObject({ mainStreamOk: false, bad: [], mismatched: [] });
  });
});

describe("restore --verify", () => {
  test("intact: restores and says every extent matched", async () => {
    const out = join(shm.path, "intact.out");
    const r = await ramsnap("restore", file, "--block", `ram0=${out}`, "--block", `extra=${join(shm.path, "intact-extra.out")}`, "--verify");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`every restored extent matches ${file}.sums`);
    expect(await sameFiles(img0, out)).toBeNull();
    const lib = await restore({ path: file, blocks: [{ name: "extra", path: join(shm.path, "lib-extra.out") }], verify: true, channels: 2 });
    expect(lib.verifiedWith).toBe(`${file}.sums`);
  });

  test("a corrupted page: IntegrityError naming the extent, exit 1, and the target it created is removed", async () => {
    const bad = copyWithSums(file, "restore-flip.ram");
    flipByte(bad, layout.blocks[0]!.pagesOffset + presentPageIn(9) * PAGE + 1);
    const out = join(shm.path, "corrupt.out");
    const r = await ramsnap("restore", bad, "--block", `ram0=${out}`, "--verify", "--channels", "2");
    expectOneLineError(r, "restore", 1, new RegExp(`block ram0, extent 9 \\(bytes ${hex(9 * EXTENT)}-${hex(10 * EXTENT - 1)}\\) does not match .*restore-flip\\.ram\\.sums`));
    expect(existsSync(out)).toBe(false);

    const lib = join(shm.path, "corrupt-lib.out");
    const e = await restore({ path: bad, blocks: [{ name: "ram0", path: lib }], verify: true }).then(
      () => null,
      (x) => x,
    );
    expect(e).toBeInstanceOf(IntegrityError);
    expect((e as Error).message).toMatch(/block ram0, extent 9 /);
    expect(existsSync(lib)).toBe(false);
    // without --verify the same file restores (the damage is only in the data)
    await ok("restore", bad, "--block", `ram0=${lib}`);
  });

  test("a damaged main stream is refused before any target is touched", async () => {
    const bad = copyWithSums(file, "restore-main.ram");
    const p = absentPageIn(2);
    flipByte(bad, layout.blocks[0]!.bitmapOffset + (p >> 3), 1 << (p & 7));
    const out = join(shm.path, "main.out");
    expectOneLineError(await ramsnap("restore", bad, "--block", `ram0=${out}`, "--verify"), "restore", 1, /the main stream .* does not match .*restore-main\.ram\.sums/);
    expect(existsSync(out)).toBe(false);
  });

  test("without a manifest: a clear error, exit 1, nothing created", async () => {
    const bare = join(disk.path, "bare.ram");
    copyFileSync(file, bare);
    const out = join(shm.path, "bare.out");
    expectOneLineError(await ramsnap("restore", bare, "--block", `ram0=${out}`, "--verify"), "restore", 1, /--verify: .*bare\.ram\.sums does not exist \(save with --manifest to write one\)/);
    expect(existsSync(out)).toBe(false);
    const e = await restore({ path: bare, blocks: [{ name: "ram0", path: out }], verify: true }).then(
      () => null,
      (x) => x,
    );
    expect(e).toBeInstanceOf(RefusedError);
    expect(existsSync(out)).toBe(false);
  });

  test("a manifest that is not one: a clear error, nothing created", async () => {
    const odd = copyWithSums(file, "odd.ram");
    writeFileSync(`${odd}.sums`, '{"format": "something else"}\n');
    const out = join(shm.path, "odd.out");
    expectOneLineError(await ramsnap("restore", odd, "--block", `ram0=${out}`, "--verify"), "restore", 1, /odd\.ram\.sums is not a ramsnap manifest/);
    expect(existsSync(out)).toBe(false);
    expectOneLineError(await ramsnap("verify", odd), "verify", 1, /odd\.ram\.sums is not a ramsnap manifest/);
    // right format line, damaged body: still a clear error, not a TypeError
    const good = JSON.parse(readFileSync(`${file}.sums`, "utf8"));
    for (const body of [{ ...good, mainStream: null }, { ...good, blocks: [null] }, { ...good, blocks: [{ name: "ram0", length: 12 * MiB, extents: 3 }] }]) {
      writeFileSync(`${odd}.sums`, JSON.stringify(body));
      expectOneLineError(await ramsnap("verify", odd), "verify", 1, /odd\.ram\.sums is not a ramsnap manifest: its main stream or block list is malformed/);
      expectOneLineError(await ramsnap("restore", odd, "--block", `ram0=${out}`, "--verify"), "restore", 1, /is not a ramsnap manifest/);
      expect(existsSync(out)).toBe(false);
    }
  });
});

describe.skipIf(!requireQemu())("manifests of files re-laid from QEMU saves", () => {
  const RAM_MIB = 32;
  const pattern = syntheticImage(RAM_MIB * MiB, { kind: "scattered", seed: 63, nonZero: 0.3 });
  let classic = "";
  let mapped = "";
  let guestRam: Uint8Array;

  beforeAll(async () => {
    classic = join(disk.path, "qemu.sav");
    mapped = join(disk.path, "qemu.ram");
    for (const [to, mappedRam] of [
      [classic, false],
      [mapped, true],
    ] as const) {
      const g = await startGuest({ name: "sums", ramMiB: RAM_MIB, pattern });
      try {
        await migrateToFile(g, `file:${to}`, { mappedRam });
        guestRam = await shmBytes(g);
      } finally {
        await g.stop();
      }
    }
  }, 60_000);

  test("convert --to mapped-ram --manifest: the manifest verifies, and holds the guest's RAM", async () => {
    const out = join(disk.path, "converted.ram");
    await ok("convert", classic, out, "--to", "mapped-ram", "--manifest", "--channels", "2");
    const m = JSON.parse(readFileSync(`${out}.sums`, "utf8"));
    expect(m.blocks.find((b: any) => b.name === "ram0").extents).toEqual(extentHashes(guestRam));
    const j = JSON.parse((await ok("verify", out, "--json")).stdout);
    expect(j.ok).toBe(true);
    expect(j.manifest.ok).toBe(true);
    expect(j.manifest.mismatched).toEqual([]);
    const r = await ok("restore", out, "--block", `ram0=${join(shm.path, "converted.out")}`, "--verify");
    expect(r.stdout).toContain("every restored extent matches");
  }, 60_000);

  test("save --like --manifest: the manifest verifies, and holds the new image's RAM", async () => {
    const out = join(disk.path, "like.ram");
    const edited = join(shm.path, "edited.img");
    writeImage(edited, RAM_MIB * MiB, { kind: "clustered", seed: 64, nonZero: 0.5 });
    await ok("save", "--like", mapped, "-o", out, "--block", `ram0=${edited}`, "--manifest", "--channels", "2");
    const m = JSON.parse(readFileSync(`${out}.sums`, "utf8"));
    expect(m.blocks.find((b: any) => b.name === "ram0").extents).toEqual(extentHashes(await readBytes(edited)));
    const v = await ok("verify", out, "--block", `ram0=${edited}`);
    expect(v.stdout).toContain(`manifest ${out}.sums: main stream and every extent match`);
    expect(v.stdout).toContain("ram0: all 8192 pages match");
    // a library save with a manifest beside the QEMU file's re-lay verifies as well
    const libFile = join(disk.path, "lib.ram");
    const res = await save({ path: libFile, blocks: [{ name: "ram0", path: edited }], manifest: true, channels: 2 });
    expect(res.manifest).toBe(`${libFile}.sums`);
    expect((await ok("verify", libFile)).stdout).toContain("main stream and every extent match");
  }, 60_000);
});
