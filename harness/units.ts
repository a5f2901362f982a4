// Sizes, defined once for the tests, the benchmarks and the scripts. PAGE is the 4 KiB target page every
// synthetic image, guest and save file here uses.
export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
export const PAGE = 4 * KiB;
