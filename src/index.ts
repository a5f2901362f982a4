// The library API, for bun test suites and programs: the same operations the CLI runs.
export { save, type SaveOptions, type SaveResult, type BlockSource } from "./save.ts";
export { restore, type RestoreOptions, type RestoreResult, type BlockTarget } from "./restore.ts";
export { inspectFile, type InspectReport, type InspectOptions } from "./inspect.ts";
export { verify, type VerifyOptions, type VerifyReport } from "./verify.ts";
export { extract, type ExtractOptions, type ExtractResult } from "./extract.ts";
export { convert, type ConvertOptions, type ConvertResult } from "./convert/index.ts";
export { diff, type DiffOptions, type DiffReport } from "./diff.ts";
export { doctor, type DoctorReport } from "./doctor.ts";
export { parseStream, type StreamInfo, type ParseOptions } from "./format/parse.ts";
export { readPageMap, type PageMap } from "./format/pages.ts";
export { FormatError } from "./format/errors.ts";
export { RamsnapError, OptionError, RefusedError, CancelledError, IntegrityError, ChannelError, StorageError } from "./errors.ts";
export { LibcError, SysError, ShortIoError, ArgumentError } from "../ffi/libc.ts";
export type { Progress } from "./channels/session.ts";
