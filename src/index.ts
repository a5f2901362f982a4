// The library API, for bun test suites and programs: the same operations the CLI runs.
export { save, type SaveOptions, type SaveResult, type BlockSource } from "./save.ts";
export { restore, type RestoreOptions, type RestoreResult, type BlockTarget } from "./restore.ts";
export { inspectFile, type InspectReport, type InspectOptions } from "./inspect.ts";
export { verify, type VerifyOptions, type VerifyReport } from "./verify.ts";
export { extract, type ExtractOptions, type ExtractResult } from "./extract.ts";
export { rewrite as convert, type RewriteOptions as ConvertOptions, type RewriteResult as ConvertResult } from "./rewrite.ts";
export { diff, type DiffOptions, type DiffReport } from "./diff.ts";
export { doctor, type DoctorReport } from "./doctor.ts";
export { parseStream, type StreamInfo, type ParseOptions } from "./format/parse.ts";
export { readPageMap, type PageMap } from "./format/pages.ts";
export { FormatError } from "./format/errors.ts";
export { OptionError, CancelledError, IntegrityError } from "./errors.ts";
export { ChannelError } from "./channels/pool.ts";
export { SysError, ShortIoError, ArgumentError } from "../ffi/libc.ts";
export type { Progress } from "./transfer.ts";
