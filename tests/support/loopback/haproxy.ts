import * as http from "http";
import { assertLoopback } from "./supervisor";

/**
 * Names of the servers of HAProxy proxy `proxy` that its stats page (CSV export of the listener
 * renderHaproxyConfig adds) shows UP.
 */
export function haproxyUpServers(address: string, statsPort: number, proxy: string): Promise<string[]> {
  assertLoopback(address);
  const url = `http://${address}:${statsPort}/stats;csv`;
  return new Promise((resolve, reject) => {
    const request = http.get(url, { timeout: 2000, agent: false }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      // A request destroyed by its timeout after the headers came reports it here, not on the request.
      response.on("error", reject);
      response.on("close", () => reject(new Error("stats: the response ended early")));
      response.on("data", (chunk: string) => (body += chunk));
      response.on("end", () =>
        resolve(
          body
            .split("\n")
            .map((line) => line.split(","))
            // CSV columns: 0 pxname, 1 svname, 17 status (HAProxy management guide, "CSV format").
            .filter((fields) => fields[0] === proxy && !["FRONTEND", "BACKEND"].includes(fields[1]) && fields[17]?.startsWith("UP"))
            .map((fields) => fields[1])
            .sort(),
        ),
      );
    });
    request.on("timeout", () => request.destroy(new Error("stats: timeout")));
    request.on("error", reject);
  });
}
