// The library API, for bun test suites and programs: the same operations the CLI runs.
export { save, type SaveOptions, type SaveResult, type BlockSource } from "./save.ts";
export { restore, type RestoreOptions, type RestoreResult, type BlockTarget } from "./restore.ts";
export { inspectFile, type InspectReport, type InspectOptions } from "./inspect.ts";
export { parseStream, type StreamInfo, type ParseOptions } from "./format/parse.ts";
export { FormatError } from "./format/errors.ts";
export { OptionError, CancelledError } from "./errors.ts";
export { ChannelError } from "./channels/pool.ts";
export { SysError, ShortIoError, ArgumentError } from "../ffi/libc.ts";
export type { Progress } from "./transfer.ts";
