import { spawn } from "child_process";
import * as fs from "fs";
import * as net from "net";
import { renderRabbitMqEndpointCheckScript, renderRabbitMqNodeScript, renderRabbitMqVerifyScript } from "../../components/data/rabbitmq";
import { renderStepScript } from "../../components/lib/remote";
import { loadVersions } from "../../config";
import { runBash } from "../support/bash-fakes";
import { shellcheckSteps, WAIT_UNTIL_ONCE } from "../support/module-checks";
import { tempDir } from "../support/tools";

const NODES = [1, 2, 3].map((n) => ({ name: `queue-0${n}`, address: `10.0.0.${125 + n}` }));
/** The AMQP 0-9-1 protocol header a client opens with (the spec's section 4.2.2: "AMQP" 0 0 9 1). */
const PROTOCOL_HEADER = Buffer.from("AMQP\x00\x00\x09\x01", "latin1");
/**
 * The first 11 bytes of a broker's Connection.Start: a method frame (type 1) on channel 0 with a
 * 4-byte payload size, then class 10 (connection), method 10 (start); the rest of the payload
 * (version, server properties, …) and the frame end (0xCE) follow.
 */
const CONNECTION_START = Buffer.from([0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0xf4, 0x00, 0x0a, 0x00, 0x0a, 0x00, 0x09, 0xce]);

/** A TCP server on 127.0.0.1 (ephemeral port) that answers the protocol header with `answer`. */
async function fakeBroker(answer: Buffer): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer((socket) => {
    socket.on("data", (data) => {
      if (data.equals(PROTOCOL_HEADER)) socket.end(answer);
      else socket.destroy();
    });
    socket.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  return { port: address.port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** Runs a whole step script in bash without blocking this process (the fake broker lives in it). */
function runStep(script: string, logDir: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn("bash", ["-c", script], { env: { ...process.env, KB_STEP_LOG_DIR: logDir } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

describe("the AMQP endpoint check (scripts/rabbitmq/endpoint-check.sh) in bash", () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir("rabbitmq-endpoint");
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("passes, as a whole step, when the address answers the protocol header with Connection.Start", async () => {
    const broker = await fakeBroker(CONNECTION_START);
    try {
      const body = renderRabbitMqEndpointCheckScript("127.0.0.1", broker.port);
      const result = await runStep(renderStepScript("rabbitmq endpoint check", [], body, { timeoutMinutes: 1 }), dir);
      expect(result.stdout).toContain(`rabbitmq endpoint: AMQP answers through 127.0.0.1:${broker.port}`);
      expect(result.status).toBe(0);
    } finally {
      await broker.close();
    }
  });

  it("fails, naming the address, when something else answers (an HTTP server on the port)", async () => {
    const broker = await fakeBroker(Buffer.from("HTTP/1.1 400 Bad Request\r\n\r\n"));
    try {
      const body = renderRabbitMqEndpointCheckScript("127.0.0.1", broker.port);
      const result = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
        const child = spawn("bash", ["-c", `set -euo pipefail\nkb_diagnose() { echo "$*" >&2; }\n${WAIT_UNTIL_ONCE}\n${body}`]);
        let stderr = "";
        child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
        child.on("close", (status) => resolve({ status, stderr }));
      });
      expect(result.stderr).toContain(`rabbitmq endpoint: no AMQP Connection.Start through 127.0.0.1:${broker.port}`);
      expect(result.status).not.toBe(0);
    } finally {
      await broker.close();
    }
  });

  it("fails when nothing listens", () => {
    const body = renderRabbitMqEndpointCheckScript("127.0.0.1", 9);
    const result = runBash(`${WAIT_UNTIL_ONCE}\n${body}`);
    expect(result.stderr).toContain("rabbitmq endpoint: no AMQP Connection.Start through 127.0.0.1:9");
    expect(result.status).not.toBe(0);
  });
});

describe("the rendered RabbitMQ step scripts and shellcheck", () => {
  it("shellcheck accepts the node, verification and endpoint-check steps", () => {
    const findings = shellcheckSteps({
      node: renderRabbitMqNodeScript(NODES[1], NODES, loadVersions().images.rabbitmq),
      verify: renderRabbitMqVerifyScript(NODES[0], NODES.length),
      "endpoint-check": renderRabbitMqEndpointCheckScript("10.0.0.10", 5672),
    });
    expect(findings).toEqual({ node: "", verify: "", "endpoint-check": "" });
  });
});
