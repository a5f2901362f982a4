// The only module that makes socket calls into libc. It exists because Bun's own sockets cannot pass file
// descriptors: handing QEMU a descriptor (QMP add-fd) needs sendmsg() with an SCM_RIGHTS control message on
// the very connection the command travels on. Same rules as libc.ts: every result checked, errno turned into
// SysError, every number validated before it crosses into C (bun:ffi turns NaN into 0 without a word).
import { dlopen, FFIType, read } from "bun:ffi";
import { addressOf } from "./libc.ts";
import { ArgumentError, SysError } from "./errors.ts";

const lib = dlopen("libc.so.6", {
  socket: { args: ["i32", "i32", "i32"], returns: "i32" },
  connect: { args: ["i32", "ptr", "u32"], returns: "i32" },
  sendmsg: { args: ["i32", "ptr", "i32"], returns: FFIType.i64_fast },
  close: { args: ["i32"], returns: "i32" },
  __errno_location: { args: [], returns: "ptr" },
  strerror: { args: ["i32"], returns: "cstring" },
});
const c = lib.symbols;

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_DONTWAIT = 0x40;
// A peer that went away must give EPIPE, not kill the process with SIGPIPE.
const MSG_NOSIGNAL = 0x4000;
const EINTR = 4;
const EAGAIN = 11;

/** sun_path is 108 bytes on Linux, and the path needs its terminating NUL. */
export const MAX_UNIX_PATH_BYTES = 107;
/** The kernel refuses more descriptors than this in one SCM_RIGHTS message (SCM_MAX_FD). */
export const MAX_FDS_PER_MESSAGE = 253;

// x86_64 Linux struct layouts (glibc): sockaddr_un { u16 family; char path[108] };
// msghdr { ptr name; u32 namelen (+4 pad); ptr iov; u64 iovlen; ptr control; u64 controllen; i32 flags (+4) };
// cmsghdr { u64 len; i32 level; i32 type; data... } padded to 8 bytes (CMSG_ALIGN).
const SOCKADDR_UN_BYTES = 110;
const MSGHDR_BYTES = 56;
const CMSGHDR_BYTES = 16;
const cmsgAlign = (n: number) => (n + 7) & ~7;

function errno(): number {
  const loc = c.__errno_location();
  return loc ? read.i32(loc, 0) : 0;
}

function fail(call: string, path: string | undefined, e = errno()): never {
  throw new SysError(call, e, path, String(c.strerror(e) ?? "unknown error"));
}

function fdArg(call: string, fd: number): number {
  if (!Number.isSafeInteger(fd) || fd < 0 || fd > 0x7fffffff) throw new ArgumentError(call, `bad descriptor ${String(fd)}`);
  return fd;
}

/**
 * A blocking connect to a unix stream socket; returns the connected descriptor (close-on-exec). Connecting
 * to a unix socket completes at once or fails at once (ENOENT, ECONNREFUSED, EACCES, ...): it never waits
 * for the peer to accept, so blocking here cannot stall the event loop.
 */
export function connectUnix(path: string): number {
  if (typeof path !== "string" || path.length === 0 || path.includes("\0")) throw new ArgumentError("connect", "bad socket path");
  const encoded = new TextEncoder().encode(path);
  if (encoded.length > MAX_UNIX_PATH_BYTES) {
    throw new ArgumentError("connect", `socket path ${path} is ${encoded.length} bytes; a unix socket path can have at most ${MAX_UNIX_PATH_BYTES}`);
  }
  const addr = new Uint8Array(SOCKADDR_UN_BYTES);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(encoded, 2);

  const fd = c.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("socket", path);
  for (;;) {
    if (c.connect(fd, addr, 2 + encoded.length + 1) === 0) return fd;
    const e = errno();
    if (e === EINTR) continue;
    c.close(fd);
    fail("connect", path, e);
  }
}

export function closeSocket(fd: number): void {
  if (c.close(fdArg("close", fd)) !== 0) fail("close", undefined);
}

/**
 * One sendmsg() of `data` with `fds` attached as SCM_RIGHTS; never blocks. Returns the bytes sent:
 * 0 means the socket buffer is full and nothing went, descriptors included (try again when it drains).
 * The descriptors travel with the first byte, so a short count still delivered them: send the rest as
 * plain data. The caller keeps its own copies of the descriptors open, and may close them afterwards.
 */
export function sendWithFds(sock: number, data: Uint8Array, fds: readonly number[]): number {
  fdArg("sendmsg", sock);
  if (data.byteLength === 0) throw new ArgumentError("sendmsg", "descriptors need at least one byte of data to travel with");
  if (fds.length === 0 || fds.length > MAX_FDS_PER_MESSAGE) {
    throw new ArgumentError("sendmsg", `needs 1 to ${MAX_FDS_PER_MESSAGE} descriptors, got ${fds.length}`);
  }
  for (const fd of fds) fdArg("sendmsg", fd);

  const iov = new BigUint64Array([BigInt(addressOf(data)), BigInt(data.byteLength)]);
  const payload = 4 * fds.length;
  const control = new Uint8Array(cmsgAlign(CMSGHDR_BYTES + payload));
  const cv = new DataView(control.buffer);
  cv.setBigUint64(0, BigInt(CMSGHDR_BYTES + payload), true); // CMSG_LEN: header + data, unpadded
  cv.setInt32(8, SOL_SOCKET, true);
  cv.setInt32(12, SCM_RIGHTS, true);
  fds.forEach((fd, i) => {
    cv.setInt32(CMSGHDR_BYTES + 4 * i, fd, true);
  });

  const msg = new Uint8Array(MSGHDR_BYTES);
  const mv = new DataView(msg.buffer);
  mv.setBigUint64(16, BigInt(addressOf(iov)), true);
  mv.setBigUint64(24, 1n, true);
  mv.setBigUint64(32, BigInt(addressOf(control)), true);
  mv.setBigUint64(40, BigInt(control.byteLength), true);

  for (;;) {
    const n = Number(c.sendmsg(sock, msg, MSG_DONTWAIT | MSG_NOSIGNAL));
    // msghdr holds only raw addresses: touch the arrays after the call so the collector keeps them until here.
    keepAlive(iov, control, data);
    if (n >= 0) return n;
    const e = errno();
    if (e === EINTR) continue;
    if (e === EAGAIN) return 0;
    fail("sendmsg", undefined, e);
  }
}

// biome-ignore lint/correctness/noUnusedVariables: written, never read: it keeps the views reachable until sendmsg returns
let sink = 0;
function keepAlive(...views: ArrayBufferView[]): void {
  for (const v of views) sink ^= v.byteLength;
}
