// Encoders for the pieces of QEMU's migration stream that ramsnap writes. Each returns bytes or appends
// to a ByteBuilder; none does I/O.
import type { ByteBuilder } from "./bytes.ts";
import {
  CAP_MAPPED_RAM,
  MAPPED_RAM_HEADER_VERSION,
  QEMU_VM_FILE_MAGIC,
  QEMU_VM_FILE_VERSION,
  RAM_FLAG_EOS,
  RAM_FLAG_MEM_SIZE,
  SUBSECTION_CAPABILITIES,
  SUBSECTION_TARGET_PAGE_BITS,
  SUBSECTION_UUID,
  Tag,
  VALIDATED_CAPABILITIES,
} from "./constants.ts";

export interface Configuration {
  machineType: string;
  /** Validated capabilities that are on, e.g. ["mapped-ram"]. Written in QEMU's order. */
  capabilities: string[];
  /** Only for targets whose page bits exceed their legacy minimum (not x86). */
  targetPageBits?: number;
  /** 16 raw bytes, only with QEMU's validate-uuid capability. */
  uuid?: Uint8Array;
}

export interface MappedRamHeader {
  version: number;
  pageSize: number;
  bitmapOffset: number;
  pagesOffset: number;
}

export function encodeFileHeader(b: ByteBuilder): ByteBuilder {
  return b.be32(QEMU_VM_FILE_MAGIC).be32(QEMU_VM_FILE_VERSION);
}

function subsection(b: ByteBuilder, name: string): ByteBuilder {
  return b.u8(Tag.Subsection).str8(name).be32(1);
}

export function encodeConfiguration(b: ByteBuilder, c: Configuration): ByteBuilder {
  b.u8(Tag.Configuration).str32(c.machineType);
  if (c.targetPageBits !== undefined) subsection(b, SUBSECTION_TARGET_PAGE_BITS).be32(c.targetPageBits);
  const unknown = c.capabilities.filter((x) => !(VALIDATED_CAPABILITIES as readonly string[]).includes(x));
  if (unknown.length) throw new RangeError(`capabilities not validated by QEMU: ${unknown.join(", ")}`);
  const caps = VALIDATED_CAPABILITIES.filter((x) => c.capabilities.includes(x));
  if (caps.length) {
    subsection(b, SUBSECTION_CAPABILITIES).be32(caps.length);
    for (const cap of caps) b.str8(cap);
  }
  if (c.uuid) {
    if (c.uuid.length !== 16) throw new RangeError("a UUID is 16 bytes");
    subsection(b, SUBSECTION_UUID).bytes(c.uuid);
  }
  return b;
}

/** Header of a START or FULL section: the type, id, name, instance and version. */
export function encodeSectionHeader(b: ByteBuilder, type: Tag.SectionStart | Tag.SectionFull, id: number, idstr: string, instance: number, version: number): ByteBuilder {
  return b.u8(type).be32(id).str8(idstr).be32(instance).be32(version);
}

/** Header of a PART or END section: the type and the id of its START. */
export function encodeSectionContinuation(b: ByteBuilder, type: Tag.SectionPart | Tag.SectionEnd, id: number): ByteBuilder {
  return b.u8(type).be32(id);
}

export function encodeFooter(b: ByteBuilder, id: number): ByteBuilder {
  return b.u8(Tag.SectionFooter).be32(id);
}

export function encodeCommand(b: ByteBuilder, command: number, payload = new Uint8Array(0)): ByteBuilder {
  return b.u8(Tag.Command).be16(command).be16(payload.length).bytes(payload);
}

export function encodeMappedRamHeader(b: ByteBuilder, h: MappedRamHeader): ByteBuilder {
  return b.be32(h.version).be64(h.pageSize).be64(h.bitmapOffset).be64(h.pagesOffset);
}

/** The RAM START payload's first word: the total of all block lengths, flagged MEM_SIZE. */
export function encodeMemSize(b: ByteBuilder, total: number): ByteBuilder {
  return b.be64(BigInt(total) | BigInt(RAM_FLAG_MEM_SIZE));
}

export function encodeEos(b: ByteBuilder): ByteBuilder {
  return b.be64(RAM_FLAG_EOS);
}

/** A RAM PART or END section as mapped-ram has it: nothing but EOS. */
export function encodeEmptyRamSection(b: ByteBuilder, type: Tag.SectionPart | Tag.SectionEnd, id: number): ByteBuilder {
  return encodeFooter(encodeEos(encodeSectionContinuation(b, type, id)), id);
}

/**
 * The vmdesc JSON trailer. QEMU's loader reads and discards it but warns when it is missing, and
 * analysis scripts need it. `devices` holds one description per FULL section; ramsnap writes none of its
 * own, so it is empty unless copied from a QEMU file.
 */
export function encodeVmdesc(b: ByteBuilder, json: string): ByteBuilder {
  const bytes = new TextEncoder().encode(json);
  return b.u8(Tag.VmDescription).be32(bytes.length).bytes(bytes);
}

/** The configuration section's description in the trailer, byte for byte as QEMU 10 writes it. */
export function describeConfigurationObject(c: Configuration): string {
  const caps = VALIDATED_CAPABILITIES.filter((x) => c.capabilities.includes(x));
  const nameBytes = new TextEncoder().encode(c.machineType).length;
  const fields = `[{"name": "len", "type": "uint32", "size": 4}, {"name": "name", "type": "buffer", "size": ${nameBytes}}]`;
  // QEMU describes all capability names as one field whose size is their counted strings together.
  const capBytes = caps.reduce((s, x) => s + 1 + x.length, 0);
  const subs = caps.length
    ? `, "subsections": [{"vmsd_name": "${SUBSECTION_CAPABILITIES}", "version": 1, "fields": [{"name": "caps_count", "type": "uint32", "size": 4}, ` +
      `{"name": "capabilities", "type": "capability", "size": ${capBytes}}]}]`
    : "";
  return `{"vmsd_name": "configuration", "version": 1, "fields": ${fields}${subs}}`;
}

/** The whole trailer of a stream without device sections (what ramsnap's own saves carry). */
export function describeConfiguration(c: Configuration, pageSize: number): string {
  return `{"configuration": ${describeConfigurationObject(c)}, "page_size": ${pageSize}, "devices": []}`;
}

export const MAPPED_RAM_CAPABILITIES = [CAP_MAPPED_RAM];
export const DEFAULT_HEADER_VERSION = MAPPED_RAM_HEADER_VERSION;
