// Numbers fixed by QEMU's migration stream (savevm.c, ram.c); see the mapped-ram format notes.

export const QEMU_VM_FILE_MAGIC = 0x5145564d; // "QEVM"
export const QEMU_VM_FILE_VERSION = 3;
export const QEMU_VM_FILE_VERSION_OBSOLETE = 2;

export enum Tag {
  EOF = 0x00,
  SectionStart = 0x01,
  SectionPart = 0x02,
  SectionEnd = 0x03,
  SectionFull = 0x04,
  Subsection = 0x05,
  VmDescription = 0x06,
  Configuration = 0x07,
  Command = 0x08,
  SectionFooter = 0x7e,
}

export const SECTION_TYPE_NAMES: Record<number, string> = {
  0x01: "START",
  0x02: "PART",
  0x03: "END",
  0x04: "FULL",
};

export const COMMAND_NAMES: Record<number, string> = {
  0: "INVALID", 1: "OPEN_RETURN_PATH", 2: "PING", 3: "POSTCOPY_ADVISE", 4: "POSTCOPY_LISTEN",
  5: "POSTCOPY_RUN", 6: "POSTCOPY_RAM_DISCARD", 7: "PACKAGED", 8: "ENABLE_COLO", 9: "POSTCOPY_RESUME",
  10: "RECV_BITMAP", 11: "SWITCHOVER_START",
};
export const MIG_CMD_SWITCHOVER_START = 11;

/** RAM is registered as an old-style iterative handler with this name and version. */
export const RAM_IDSTR = "ram";
export const RAM_VERSION = 4;

// RAM flags, kept in the low bits of a be64 word whose high bits are a page address or a size.
export const RAM_FLAG_FULL = 0x001;
export const RAM_FLAG_ZERO = 0x002;
export const RAM_FLAG_MEM_SIZE = 0x004;
export const RAM_FLAG_PAGE = 0x008;
export const RAM_FLAG_EOS = 0x010;
export const RAM_FLAG_CONTINUE = 0x020;
export const RAM_FLAG_XBZRLE = 0x040;
export const RAM_FLAG_HOOK = 0x080;
export const RAM_FLAG_COMPRESS_PAGE = 0x100;
export const RAM_FLAG_MULTIFD_FLUSH = 0x200;
/** Flags stay below this because QEMU supports targets with 1 KiB pages. */
export const RAM_FLAGS_MASK = 0x3ff;

export const MAPPED_RAM_HEADER_VERSION = 1;
export const MAPPED_RAM_HEADER_SIZE = 28;
/** Every block's page array starts on this absolute file-offset boundary. */
export const MAPPED_RAM_FILE_OFFSET_ALIGNMENT = 0x100000;

export const CAP_MAPPED_RAM = "mapped-ram";
export const CAP_X_IGNORE_SHARED = "x-ignore-shared";
/** The capabilities QEMU validates in the configuration section, in QEMU's enum order. */
export const VALIDATED_CAPABILITIES = [CAP_X_IGNORE_SHARED, CAP_MAPPED_RAM] as const;

export const SUBSECTION_TARGET_PAGE_BITS = "configuration/target-page-bits";
export const SUBSECTION_CAPABILITIES = "configuration/capabilities";
export const SUBSECTION_UUID = "configuration/uuid";

export const DEFAULT_PAGE_SIZE = 4096;
export const DEFAULT_MACHINE_TYPE = "pc-q35-10.0";
