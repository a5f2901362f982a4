// A small client for the QEMU Machine Protocol (QMP) over a unix socket.
//
// QMP is newline-delimited JSON. QEMU greets first, and accepts no command but
// `qmp_capabilities` until it has been sent. Each command carries an `id` that QEMU
// echoes, so several commands may be in flight at once. Events arrive at any time;
// they are buffered so that a caller can act first and wait for the event after.
//
// The connection is made with libc (ffi/socket.ts) and then handed to Bun by descriptor: Bun's sockets
// cannot pass file descriptors, and `add-fd` needs one attached (SCM_RIGHTS) to the very bytes of the
// command. Keeping the raw descriptor lets executeWithFd() sendmsg() on it while Bun does all the rest.

import type { Socket } from "bun";
import { statSync } from "node:fs";
import { closeSocket, connectUnix, sendWithFds } from "../../ffi/socket.ts";
import { SysError } from "../../ffi/errors.ts";
import { RamsnapError } from "../errors.ts";

const DEFAULT_TIMEOUT_MS = 10_000;
// A client that never waits for events must not grow without bound.
const MAX_BUFFERED_EVENTS = 1000;

export interface QmpVersion {
  major: number;
  minor: number;
  micro: number;
}

export interface QmpGreeting {
  version: { qemu: QmpVersion; package: string };
  capabilities: string[];
}

export interface QmpEvent {
  event: string;
  // biome-ignore lint/suspicious/noExplicitAny: QMP's JSON has a shape per command and event; callers narrow it
  data?: any;
  timestamp?: { seconds: number; microseconds: number };
}

/** QEMU refused a command; `desc` is QEMU's own error text, worth showing to the user as it is. */
export class QmpError extends RamsnapError {
  override name = "QmpError";
  readonly exitCode = 1;
  constructor(
    /** QEMU's error class, e.g. "GenericError" or "CommandNotFound". */
    readonly klass: string,
    readonly command: string,
    readonly desc: string,
  ) {
    super(`${command}: ${desc}`);
  }
}

/** The socket is missing, is not QMP, or the connection broke or timed out: nothing QEMU said. */
export class QmpConnectionError extends RamsnapError {
  override name = "QmpConnectionError";
  readonly exitCode = 1;
}

interface Waiter<T> {
  resolve: (value: T) => void;
  reject: (error: Error) => void;
  timer: Timer;
}

interface PendingCommand extends Waiter<unknown> {
  command: string;
}

interface EventWaiter extends Waiter<QmpEvent> {
  name: string;
  // biome-ignore lint/suspicious/noExplicitAny: QMP's JSON has a shape per command and event; callers narrow it
  match?: (data: any) => boolean;
}

export class QmpClient {
  readonly socketPath: string;
  readonly timeoutMs: number;
  #greeting: QmpGreeting | null = null;

  // Every byte in or out passes through #socket, #write and #onData, except the commands
  // that carry a descriptor: executeWithFd sends those on #rawFd, the same connection.
  #socket: Socket<undefined> | null = null;
  #rawFd = -1;
  #drainWaiters: (() => void)[] = [];
  #outQueue: Uint8Array[] = [];
  #decoder = new TextDecoder();
  #partialLine = "";

  #greetingWaiter: Waiter<QmpGreeting> | null = null;
  #nextId = 1;
  #pending = new Map<string, PendingCommand>();
  #events: QmpEvent[] = [];
  #eventWaiters = new Set<EventWaiter>();
  #closedReason: string | null = null;

  private constructor(socketPath: string, timeoutMs: number) {
    this.socketPath = socketPath;
    this.timeoutMs = timeoutMs;
  }

  /** Connects, checks the greeting and negotiates capabilities. `timeoutMs` is the default for every later wait. */
  static async connect(socketPath: string, opts: { timeoutMs?: number } = {}): Promise<QmpClient> {
    const client = new QmpClient(socketPath, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    try {
      await client.#open();
      await client.execute("qmp_capabilities");
      return client;
    } catch (error) {
      client.close();
      throw error;
    }
  }

  get greeting(): QmpGreeting {
    if (!this.#greeting) throw new QmpConnectionError(`QMP ${this.socketPath}: not connected`);
    return this.#greeting;
  }

  async execute<T = unknown>(command: string, args?: object, opts: { timeoutMs?: number } = {}): Promise<T> {
    const { id, line } = this.#command(command, args);
    const reply = this.#awaitReply(id, command, opts.timeoutMs);
    this.#write(line);
    return reply as Promise<T>;
  }

  /**
   * Runs a command with a file descriptor attached (SCM_RIGHTS), as `add-fd` and `getfd` want it. QEMU
   * takes its own copy on receipt; the caller's descriptor stays open and remains the caller's to close.
   */
  async executeWithFd<T = unknown>(command: string, args: object | undefined, fd: number, opts: { timeoutMs?: number } = {}): Promise<T> {
    const { id, line } = this.#command(command, args);
    // The descriptor must ride on this command's own bytes, so everything queued before it goes first.
    await this.#whenFlushed();
    if (this.#closedReason) throw new QmpConnectionError(`QMP ${command}: ${this.#closedReason}`);
    const reply = this.#awaitReply(id, command, opts.timeoutMs);
    const bytes = new TextEncoder().encode(`${line}\n`);
    const deadline = performance.now() + (opts.timeoutMs ?? this.timeoutMs);
    for (;;) {
      let sent: number;
      try {
        sent = sendWithFds(this.#rawFd, bytes, [fd]);
      } catch (error) {
        this.#fail(`sending ${command} failed: ${error instanceof Error ? error.message : String(error)}`);
        break;
      }
      if (sent > 0) {
        // The descriptor went with the first byte; the rest of the line is plain data.
        if (sent < bytes.length) {
          this.#outQueue.push(bytes.subarray(sent));
          this.#flush();
        }
        break;
      }
      if (performance.now() > deadline) {
        this.#fail(`QEMU did not read ${command} within ${opts.timeoutMs ?? this.timeoutMs} ms`);
        break;
      }
      await Bun.sleep(1); // the socket buffer is full: QEMU has not read what came before
      if (this.#closedReason) break;
    }
    return reply as Promise<T>;
  }

  #command(command: string, args: object | undefined): { id: string; line: string } {
    if (this.#closedReason) throw new QmpConnectionError(`QMP ${command}: ${this.#closedReason}`);
    const id = String(this.#nextId++);
    return { id, line: JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id }) };
  }

  #awaitReply(id: string, command: string, timeoutMs = this.timeoutMs): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new QmpConnectionError(`QMP ${command}: no reply from ${this.socketPath} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { command, resolve, reject, timer });
    });
  }

  #whenFlushed(): Promise<void> {
    if (this.#outQueue.length === 0 || this.#closedReason) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /** Runs a human-monitor command line (e.g. "info ramblock") and returns its text output. */
  async hmp(commandLine: string): Promise<string> {
    return this.execute<string>("human-monitor-command", { "command-line": commandLine });
  }

  /**
   * Resolves with the first event named `name` whose data passes `match`, and consumes it.
   * Buffered events that arrived before this call count, so a stale event from an earlier
   * action can satisfy the wait: call `discardEvents(name)` before the action if that matters.
   */
  async waitForEvent(
    name: string,
    // biome-ignore lint/suspicious/noExplicitAny: QMP's JSON has a shape per command and event; callers narrow it
    opts: { timeoutMs?: number; match?: (data: any) => boolean } = {},
  ): Promise<QmpEvent> {
    const index = this.#events.findIndex((e) => e.event === name && (!opts.match || opts.match(e.data)));
    if (index >= 0) return this.#events.splice(index, 1)[0]!;
    if (this.#closedReason) throw new QmpConnectionError(`QMP waiting for event ${name}: ${this.#closedReason}`);

    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    return new Promise<QmpEvent>((resolve, reject) => {
      const waiter: EventWaiter = {
        name,
        match: opts.match,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#eventWaiters.delete(waiter);
          reject(new QmpConnectionError(`QMP: event ${name} did not arrive on ${this.socketPath} within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.#eventWaiters.add(waiter);
    });
  }

  /** Drops buffered events: all of them, or only those named `name`. */
  discardEvents(name?: string): void {
    this.#events = name === undefined ? [] : this.#events.filter((e) => e.event !== name);
  }

  close(): void {
    this.#fail("connection closed by client");
    if (this.#socket) this.#socket.end(); // Bun owns the descriptor from Bun.connect on, and closes it
    else if (this.#rawFd >= 0) closeSocket(this.#rawFd);
    this.#socket = null;
    this.#rawFd = -1;
  }

  async #open(): Promise<void> {
    const greeting = new Promise<QmpGreeting>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          this.#rejectGreeting(
            `${this.socketPath} sent no QMP greeting within ${this.timeoutMs} ms: it is not a QMP socket, ` +
              `or another client (libvirt, a test, socat) is connected and QEMU serves one at a time`,
          ),
        this.timeoutMs,
      );
      this.#greetingWaiter = { resolve, reject, timer };
    });
    // If connecting fails, nobody awaits the greeting: keep its rejection from surfacing as unhandled.
    greeting.catch(() => {});

    try {
      this.#rawFd = connectUnix(this.socketPath);
    } catch (error) {
      this.#rejectGreeting("connect failed");
      throw new QmpConnectionError(describeConnectError(this.socketPath, error));
    }
    try {
      this.#socket = await connectFd({
        fd: this.#rawFd,
        socket: {
          data: (_socket, chunk) => this.#onData(chunk),
          drain: () => this.#flush(),
          close: (_socket, error) => this.#fail(error ? `connection lost: ${error.message}` : "connection closed by QEMU"),
          error: (_socket, error) => this.#fail(`socket error: ${error.message}`),
        },
      });
    } catch (error) {
      closeSocket(this.#rawFd); // Bun never took it
      this.#rawFd = -1;
      this.#rejectGreeting("connect failed");
      throw new QmpConnectionError(`cannot use QMP socket ${this.socketPath}: ${error instanceof Error ? error.message : String(error)}`);
    }
    this.#greeting = await greeting;
  }

  #write(json: string): void {
    this.#outQueue.push(new TextEncoder().encode(`${json}\n`));
    this.#flush();
  }

  // The socket write is non-blocking and may take only part of the data; the rest
  // stays queued until Bun reports "drain".
  #flush(): void {
    while (this.#socket && this.#outQueue.length > 0) {
      const head = this.#outQueue[0]!;
      const written = this.#socket.write(head);
      if (written < 0) {
        this.#fail("socket write failed");
        return;
      }
      if (written < head.length) {
        this.#outQueue[0] = head.subarray(written);
        return;
      }
      this.#outQueue.shift();
    }
    if (this.#outQueue.length === 0) this.#wakeDrainWaiters();
  }

  #wakeDrainWaiters(): void {
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const wake of waiters) wake();
  }

  #onData(chunk: Uint8Array): void {
    this.#partialLine += this.#decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = this.#partialLine.indexOf("\n")) >= 0) {
      const line = this.#partialLine.slice(0, newline).trim();
      this.#partialLine = this.#partialLine.slice(newline + 1);
      if (line) this.#onLine(line);
    }
  }

  #onLine(line: string): void {
    // biome-ignore lint/suspicious/noExplicitAny: QMP's JSON has a shape per command and event; callers narrow it
    let message: any;
    try {
      message = JSON.parse(line);
    } catch {
      // An HMP monitor (or anything else) speaks plain text.
      const shown = JSON.stringify(line.slice(0, 80));
      if (this.#greetingWaiter) this.#rejectGreeting(`${this.socketPath} is not a QMP socket (it sent ${shown})`);
      else this.#fail(`QEMU sent a line that is not JSON: ${shown}`);
      return;
    }

    if (this.#greetingWaiter) {
      // QEMU can write an event to a new connection before its greeting: when the previous client went away
      // (a killed ramsnap), the monitor is still in command mode until it handles the new connection, and an
      // event emitted in that window (seen in CI: RESUME) goes out first. It belongs to no one; drop it.
      if (typeof message?.event === "string" && message?.timestamp) return;
      if (!message?.QMP?.version?.qemu) {
        this.#rejectGreeting(`${this.socketPath} is not a QMP socket (it sent ${JSON.stringify(line.slice(0, 80))})`);
        return;
      }
      const waiter = this.#greetingWaiter;
      this.#greetingWaiter = null;
      clearTimeout(waiter.timer);
      waiter.resolve(message.QMP);
    } else if (typeof message?.event === "string") {
      this.#onEvent(message);
    } else if (message && ("return" in message || "error" in message)) {
      this.#onReply(message);
    }
  }

  #onReply(message: { id?: unknown; return?: unknown; error?: { class: string; desc: string } }): void {
    const id = String(message.id);
    const pending = this.#pending.get(id);
    if (!pending) return; // its wait already timed out
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    if (message.error) pending.reject(new QmpError(message.error.class, pending.command, message.error.desc));
    else pending.resolve(message.return);
  }

  #onEvent(event: QmpEvent): void {
    for (const waiter of this.#eventWaiters) {
      if (waiter.name === event.event && (!waiter.match || waiter.match(event.data))) {
        this.#eventWaiters.delete(waiter);
        clearTimeout(waiter.timer);
        waiter.resolve(event);
        return;
      }
    }
    this.#events.push(event);
    if (this.#events.length > MAX_BUFFERED_EVENTS) this.#events.shift();
  }

  #rejectGreeting(reason: string): void {
    const waiter = this.#greetingWaiter;
    if (!waiter) return;
    this.#greetingWaiter = null;
    clearTimeout(waiter.timer);
    waiter.reject(new QmpConnectionError(reason));
    this.close();
  }

  // The connection is unusable from here on: every wait in progress ends with the reason.
  #fail(reason: string): void {
    this.#closedReason ??= reason;
    this.#outQueue = [];
    this.#wakeDrainWaiters();
    this.#rejectGreeting(`${this.socketPath} is not a QMP socket (${reason} before any greeting)`);
    for (const [id, pending] of this.#pending) {
      this.#pending.delete(id);
      clearTimeout(pending.timer);
      pending.reject(new QmpConnectionError(`QMP ${pending.command}: ${this.#closedReason}`));
    }
    for (const waiter of this.#eventWaiters) {
      this.#eventWaiters.delete(waiter);
      clearTimeout(waiter.timer);
      waiter.reject(new QmpConnectionError(`QMP waiting for event ${waiter.name}: ${this.#closedReason}`));
    }
  }
}

// Bun.connect accepts an already connected descriptor at run time (FdSocketOptions), but bun-types 1.4.5
// declares no overload for it.
const connectFd = Bun.connect as unknown as (options: Bun.FdSocketOptions<undefined>) => Promise<Socket<undefined>>;

function describeConnectError(socketPath: string, error: unknown): string {
  if (!(error instanceof SysError)) return error instanceof Error ? error.message : String(error);
  const code = error.code;
  if (code === "ENOENT") return `QMP socket ${socketPath} does not exist`;
  const stat = statSync(socketPath, { throwIfNoEntry: false });
  if (stat && !stat.isSocket()) return `${socketPath} is not a QMP socket (not a unix socket at all)`;
  if (code === "ECONNREFUSED") return `nothing is listening on QMP socket ${socketPath} (has QEMU exited?)`;
  if (code === "EACCES") return `no permission to connect to QMP socket ${socketPath}`;
  if (code === "ENOTDIR") return `QMP socket ${socketPath} does not exist (a part of the path is not a directory)`;
  return `cannot connect to QMP socket ${socketPath}: ${error instanceof Error ? error.message : String(error)}`;
}
