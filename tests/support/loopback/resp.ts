import * as net from "net";
import { assertLoopback } from "./supervisor";

/**
 * A minimal RESP2 client (Redis and Sentinel speak it): enough to time writes precisely in the
 * failover scenarios without a client library deciding when to retry.
 */

/** A reply: simple string, integer, bulk string (null when absent) or array. */
export type RespValue = string | number | null | RespValue[];

/** An error reply of the server (`-READONLY ...`, `-NOREPLICAS ...`). */
export class RespError extends Error {}

interface Pending {
  resolve(value: RespValue): void;
  reject(error: Error): void;
}

/** Parses one reply from `buffer` at `offset`; undefined when incomplete. */
function parseReply(buffer: Buffer, offset: number): { value: RespValue | RespError; next: number } | undefined {
  if (offset >= buffer.length) return undefined;
  const lineEnd = buffer.indexOf("\r\n", offset);
  if (lineEnd < 0) return undefined;
  const type = String.fromCharCode(buffer[offset]);
  const line = buffer.toString("utf8", offset + 1, lineEnd);
  const afterLine = lineEnd + 2;
  switch (type) {
    case "+":
      return { value: line, next: afterLine };
    case "-":
      return { value: new RespError(line), next: afterLine };
    case ":":
      return { value: Number(line), next: afterLine };
    case "$": {
      const length = Number(line);
      if (length < 0) return { value: null, next: afterLine };
      if (buffer.length < afterLine + length + 2) return undefined;
      return { value: buffer.toString("utf8", afterLine, afterLine + length), next: afterLine + length + 2 };
    }
    case "*": {
      const count = Number(line);
      if (count < 0) return { value: null, next: afterLine };
      const items: RespValue[] = [];
      let next = afterLine;
      for (let index = 0; index < count; index++) {
        const item = parseReply(buffer, next);
        if (!item) return undefined;
        items.push(item.value instanceof RespError ? item.value.message : item.value);
        next = item.next;
      }
      return { value: items, next };
    }
    default:
      throw new Error(`RESP: unexpected reply type ${JSON.stringify(type)}`);
  }
}

/** One connection; commands are answered in order. */
export class RespClient {
  private buffer = Buffer.alloc(0);
  private readonly pending: Pending[] = [];
  private closedError: Error | undefined;
  /** Resolves with the time (ms epoch) the connection closed, whoever closed it. */
  readonly closed: Promise<number>;

  private constructor(private readonly socket: net.Socket) {
    this.closed = new Promise((resolve) => socket.once("close", () => resolve(Date.now())));
    socket.on("data", (chunk) => this.onData(chunk));
    socket.on("error", (error) => this.fail(error));
    socket.on("close", () => this.fail(new Error("RESP: connection closed")));
  }

  /** Connects (loopback only) and authenticates when `password` is given. */
  static async connect(address: string, port: number, password: string | undefined, timeoutMs = 1000): Promise<RespClient> {
    assertLoopback(address);
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const candidate = net.connect({ host: address, port });
      const timer = setTimeout(() => {
        candidate.destroy();
        reject(new Error(`RESP: connect to ${address}:${port} timed out`));
      }, timeoutMs);
      candidate.once("connect", () => {
        clearTimeout(timer);
        resolve(candidate);
      });
      candidate.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    socket.setNoDelay(true);
    const client = new RespClient(socket);
    if (password !== undefined) {
      try {
        await client.call(["AUTH", password], timeoutMs);
      } catch (error) {
        client.close();
        throw error;
      }
    }
    return client;
  }

  /** Sends one command; rejects on an error reply, a closed connection or after `timeoutMs`. */
  call(args: readonly (string | number)[], timeoutMs = 1000): Promise<RespValue> {
    if (this.closedError) return Promise.reject(this.closedError);
    const parts = args.map(String);
    const frame = `*${parts.length}\r\n` + parts.map((part) => `$${Buffer.byteLength(part)}\r\n${part}\r\n`).join("");
    return new Promise<RespValue>((resolve, reject) => {
      const timer = setTimeout(() => {
        const error = new Error(`RESP: ${parts[0]} timed out after ${timeoutMs} ms`);
        this.fail(error);
        reject(error);
      }, timeoutMs);
      this.pending.push({
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.socket.write(frame);
    });
  }

  close(): void {
    this.fail(new Error("RESP: closed by the client"));
  }

  private onData(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    let offset = 0;
    for (;;) {
      const reply = parseReply(this.buffer, offset);
      if (!reply) break;
      offset = reply.next;
      const waiter = this.pending.shift();
      if (!waiter) continue;
      if (reply.value instanceof RespError) waiter.reject(reply.value);
      else waiter.resolve(reply.value);
    }
    this.buffer = this.buffer.subarray(offset);
  }

  private fail(error: Error): void {
    if (!this.closedError) this.closedError = error;
    this.socket.destroy();
    for (const waiter of this.pending.splice(0)) waiter.reject(error);
  }
}

/** Opens a connection, runs one command, closes it. */
export async function respCall(
  address: string,
  port: number,
  password: string | undefined,
  args: readonly (string | number)[],
  timeoutMs = 2000,
): Promise<RespValue> {
  const client = await RespClient.connect(address, port, password, timeoutMs);
  try {
    return await client.call(args, timeoutMs);
  } finally {
    client.close();
  }
}
