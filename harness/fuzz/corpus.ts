// The fuzz corpus: save files made at run time, by QEMU and by ramsnap. Only the parent process loads this
// module (children get the seed specs), so children never start a guest or the QEMU harness's janitor.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { convert } from "../../src/convert/index.ts";
import { save } from "../../src/save.ts";
import { syntheticImage } from "../../src/memory/synthetic.ts";
import * as q from "../qemu.ts";
import { writeImage } from "../scratch.ts";
import { MiB, PAGE } from "../units.ts";
import type { SeedSpec } from "./seed.ts";

/**
 * Makes the seed files in `dir`: two QEMU saves of a small guest whose RAM is mostly zero (mapped-ram with
 * multifd, and classic), and ramsnap's own files: a save of a 32 MiB mostly-zero image (four channel jobs),
 * a save of the guest's RAM and a short second block with a manifest, `save --like` of the QEMU file with a
 * manifest, and a classic conversion of the QEMU file.
 *
 * The guest is 16 MiB by default: a parse of a file with device sections reads up to 16 MiB at its end to
 * find the trailer, and that read is most of a case's time, so the files stay below that.
 */
export async function makeCorpus(dir: string, ramMiB = 16): Promise<SeedSpec[]> {
  mkdirSync(dir, { recursive: true });
  // Mostly zero: at the default 16 MiB, two of the guest's eight 2 MiB units hold data.
  const pattern = syntheticImage(ramMiB * MiB, { kind: "clustered", seed: 2026, nonZero: 0.15 });
  const ram = join(dir, "ram0.img");
  const specs: SeedSpec[] = [];
  for (const [name, file, how] of [
    ["qemu-mapped", "qemu-mapped.ram", { mappedRam: true, multifd: true, channels: 2 }],
    ["qemu-classic", "qemu-classic.sav", { mappedRam: false }],
  ] as const) {
    const g = await q.startGuest({ name: "fuzz-seed", ramMiB, pattern });
    try {
      await q.migrateToFile(g, `file:${join(dir, file)}`, how);
      if (!existsSync(ram)) writeFileSync(ram, await q.shmBytes(g));
    } finally {
      await g.stop();
    }
    specs.push({ name, path: join(dir, file), manifest: false });
  }
  const small = join(dir, "small.img");
  const smallBytes = new Uint8Array(2 * MiB + 5 * PAGE);
  for (let p = 0; p < smallBytes.length; p += 3 * PAGE) smallBytes.fill((p / PAGE) & 0xff | 1, p, p + 64);
  writeFileSync(small, smallBytes);
  const big = join(dir, "big.img");
  writeImage(big, 32 * MiB, { kind: "clustered", seed: 2025, nonZero: 0.15 });
  await save({ path: join(dir, "ramsnap.ram"), blocks: [{ name: "ram0", path: big }], channels: 2 });
  specs.push({ name: "ramsnap", path: join(dir, "ramsnap.ram"), manifest: false });
  await save({ path: join(dir, "ramsnap-sums.ram"), blocks: [{ name: "ram0", path: ram }, { name: "extra", path: small }], channels: 2, manifest: true });
  specs.push({ name: "ramsnap-sums", path: join(dir, "ramsnap-sums.ram"), manifest: true });
  await convert({ input: specs[0]!.path, output: join(dir, "ramsnap-like.ram"), to: "mapped-ram", replace: [{ name: "ram0", path: ram }], channels: 2, manifest: true });
  specs.push({ name: "ramsnap-like", path: join(dir, "ramsnap-like.ram"), manifest: true });
  await convert({ input: specs[0]!.path, output: join(dir, "ramsnap-classic.sav"), to: "classic", channels: 1 });
  specs.push({ name: "ramsnap-classic", path: join(dir, "ramsnap-classic.sav"), manifest: false });
  return specs;
}

