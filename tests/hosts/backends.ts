import * as path from "path";
import { HostStep } from "./plan";

/**
 * One stand-in backend of a HAProxy listener: the address and check port it listens on, the one
 * request the listener's check sends, and the file it logs each request's answer to.
 */
export interface BackendStandin {
  /** The haproxy.cfg `listen` section it stands behind. */
  readonly listener: string;
  readonly address: string;
  readonly port: number;
  /** The check is `check-ssl` (verified against the listener's `ca-file`). */
  readonly tls: boolean;
  readonly method: string;
  /** Path and query, as the check sends it. */
  readonly uri: string;
  /** The `Authorization` header the check sends, or null. */
  readonly authorization: string | null;
  readonly log: string;
}

/** The decoded stdin files of a step (one file per base64 line). */
export function stdinFiles(step: HostStep): string[] {
  return step.stdin
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => Buffer.from(line, "base64").toString("utf8"));
}

/**
 * The stand-in backends the rendered haproxy.cfg's HTTP checks need (`option httpchk`, `http-check
 * send`): for each such listener, its first server on a host the tier does not boot and not taken
 * by another listener on the same check port, answering that listener's request (method, URI,
 * Authorization header) on the check port, over TLS when the check is `check-ssl`. Listeners with a
 * `tcp-check` (Redis) keep their real backends. Pure.
 */
export function backendStandins(haproxyCfg: string, bootedAddresses: readonly string[], logDir: string): BackendStandin[] {
  const standins: BackendStandin[] = [];
  for (const section of haproxyCfg.split(/^listen /m).slice(1)) {
    const lines = section.split("\n").map((line) => line.trim());
    const httpchk = lines.find((line) => line.startsWith("option httpchk"))?.split(/\s+/);
    if (httpchk === undefined) continue;
    const listener = lines[0];
    // `http-check send meth M uri U ... hdr Authorization "V"` (HAProxy 2.2+), else `option httpchk M U`.
    const send = lines.find((line) => line.startsWith("http-check send ")) ?? "";
    const method = /\bmeth (\S+)/.exec(send)?.[1] ?? httpchk[2] ?? "OPTIONS";
    const uri = /\buri (\S+)/.exec(send)?.[1] ?? httpchk[3] ?? "/";
    const authorization = /\bhdr Authorization "([^"]+)"/.exec(send)?.[1] ?? null;
    const defaults = lines.find((line) => line.startsWith("default-server ")) ?? "";
    const checkPort = /\bport (\d+)/.exec(defaults)?.[1];
    const servers = lines
      .filter((line) => line.startsWith("server "))
      .map((line) => {
        const [address, port] = line.split(/\s+/)[2].split(":");
        return { address, port: Number(checkPort ?? port) };
      });
    const free = servers.find(
      (server) =>
        !bootedAddresses.includes(server.address) &&
        !standins.some((standin) => standin.address === server.address && standin.port === server.port),
    );
    if (free === undefined) throw new Error(`haproxy.cfg listener ${listener}: no server address free for a stand-in backend`);
    standins.push({
      listener,
      ...free,
      tls: /\bcheck-ssl\b/.test(defaults),
      method,
      uri,
      authorization,
      log: path.join(logDir, `backend-standin-${free.address}-${free.port}.log`),
    });
  }
  return standins;
}
