import * as http from "http";
import * as net from "net";
import { assertLoopback } from "../support/loopback/supervisor";

/**
 * Stand-ins for the backends this machine has no daemon of (no RabbitMQ, no MinIO in Debian's
 * test packages), each checking what the probe sends: an AMQP 0-9-1 broker that accepts only the
 * given PLAIN credentials and vhost, and an S3 endpoint that answers HEAD on one bucket only when
 * the request is SigV4-signed with the given access key. Both listen on a loopback address (port 0:
 * any free one).
 */

/** A listening stand-in; `close()` stops it (the endpoint is then refused, as a stopped daemon). */
export interface FakeEndpoint {
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

function listen(server: net.Server, address: string, port: number): Promise<FakeEndpoint> {
  assertLoopback(address);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, address, () => {
      resolve({
        address,
        port: (server.address() as net.AddressInfo).port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            if ("closeAllConnections" in server) (server as http.Server).closeAllConnections();
          }),
      });
    });
  });
}

/** An AMQP method frame on channel 0 (AMQP 0-9-1 §4.2.3): type 1, size, class, method, arguments, 0xCE. */
function methodFrame(classId: number, methodId: number, args: Buffer): Buffer {
  const payload = Buffer.concat([Buffer.from([classId >> 8, classId & 255, methodId >> 8, methodId & 255]), args]);
  const header = Buffer.alloc(7);
  header.writeUInt8(1, 0);
  header.writeUInt16BE(0, 1);
  header.writeUInt32BE(payload.length, 3);
  return Buffer.concat([header, payload, Buffer.from([0xce])]);
}

const shortString = (text: string) => Buffer.concat([Buffer.from([Buffer.byteLength(text)]), Buffer.from(text)]);
const longString = (text: string) => {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(Buffer.byteLength(text));
  return Buffer.concat([length, Buffer.from(text)]);
};

/** Reads the frames of a client connection: each complete frame's class, method and arguments. */
function frames(
  socket: net.Socket,
  onFrame: (classId: number, methodId: number, args: Buffer) => void,
  onHeader: (header: Buffer) => void,
) {
  let buffered = Buffer.alloc(0);
  let headerSeen = false;
  socket.on("data", (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    if (!headerSeen) {
      if (buffered.length < 8) return;
      onHeader(buffered.subarray(0, 8));
      buffered = buffered.subarray(8);
      headerSeen = true;
    }
    while (buffered.length >= 8) {
      const size = buffered.readUInt32BE(3);
      if (buffered.length < 8 + size) return;
      const payload = buffered.subarray(7, 7 + size);
      if (buffered[7 + size] !== 0xce) socket.destroy();
      buffered = buffered.subarray(8 + size);
      onFrame(payload.readUInt16BE(0), payload.readUInt16BE(2), payload.subarray(4));
    }
  });
}

/**
 * An AMQP 0-9-1 broker's connection handshake: Connection.Start (mechanism PLAIN), Tune once the
 * Start-Ok's PLAIN response is exactly "\0user\0password" (else the socket is closed, as RabbitMQ
 * does for a client without the authentication_failure_close capability), Open-Ok for `vhost`
 * only (else Connection.Close 530 NOT_ALLOWED), Close-Ok.
 */
export function fakeAmqpBroker(address: string, port: number, user: string, password: string, vhost = "/"): Promise<FakeEndpoint> {
  const server = net.createServer((socket) => {
    socket.on("error", () => socket.destroy());
    frames(
      socket,
      (classId, methodId, args) => {
        const method = `${classId}.${methodId}`;
        if (method === "10.11") {
          // Start-Ok: client-properties (table), mechanism (shortstr), response (longstr), locale.
          let offset = 4 + args.readUInt32BE(0);
          const mechanism = args.subarray(offset + 1, offset + 1 + args[offset]).toString();
          offset += 1 + args[offset];
          const response = args.subarray(offset + 4, offset + 4 + args.readUInt32BE(offset)).toString();
          if (mechanism !== "PLAIN" || response !== `\0${user}\0${password}`) return void socket.destroy();
          const tune = Buffer.alloc(8);
          tune.writeUInt16BE(2047, 0);
          tune.writeUInt32BE(131072, 2);
          tune.writeUInt16BE(60, 6);
          socket.write(methodFrame(10, 30, tune));
        } else if (method === "10.40") {
          const requested = args.subarray(1, 1 + args[0]).toString();
          if (requested === vhost) socket.write(methodFrame(10, 41, shortString("")));
          else {
            const code = Buffer.from([530 >> 8, 530 & 255]);
            const text = shortString(`NOT_ALLOWED - vhost ${requested} not found`);
            socket.write(methodFrame(10, 50, Buffer.concat([code, text, Buffer.from([0, 10, 0, 40])])));
          }
        } else if (method === "10.50") socket.end(methodFrame(10, 51, Buffer.alloc(0)));
      },
      (header) => {
        if (!header.equals(Buffer.from([65, 77, 81, 80, 0, 0, 9, 1]))) return void socket.end(Buffer.from("AMQP\0\0\x09\x01"));
        socket.write(
          methodFrame(10, 10, Buffer.concat([Buffer.from([0, 9, 0, 0, 0, 0]), longString("PLAIN AMQPLAIN"), longString("en_US")])),
        );
      },
    );
  });
  return listen(server, address, port);
}

/**
 * An S3 endpoint that knows one bucket: HEAD /<bucket> answers 200 when the request carries an AWS
 * SigV4 Authorization header for `accessKey` (service s3), 403 for another key or none, 404 for
 * another bucket. The signature itself is not recomputed: the header's shape proves the client signed.
 */
export function fakeS3(address: string, port: number, bucket: string, accessKey: string): Promise<FakeEndpoint> {
  const server = http.createServer((request, response) => {
    const authorization = request.headers.authorization ?? "";
    const signed = new RegExp(
      `^AWS4-HMAC-SHA256 Credential=${accessKey}/\\d{8}/[a-z0-9-]+/s3/aws4_request, SignedHeaders=[^,]+, Signature=[0-9a-f]{64}$`,
    );
    if (!signed.test(authorization)) response.statusCode = 403;
    else response.statusCode = request.method === "HEAD" && request.url === `/${bucket}` ? 200 : 404;
    response.end();
  });
  return listen(server, address, port);
}
