import { requireTool } from "../tools";

/** What a suite needs of its cluster. */
interface Stoppable {
  stop(): Promise<void>;
}

/**
 * Registers the suite's lifecycle: checks `tools` are installed and starts the cluster before the
 * tests (bounded by `startMs`), stops it after them, also when a test failed. Returns the running
 * cluster's accessor, which throws in every test when the start failed.
 */
export function clusterForSuite<T extends Stoppable>(tools: readonly string[], start: () => Promise<T>, startMs = 300_000): () => T {
  let cluster: T | undefined;
  beforeAll(async () => {
    for (const tool of tools) requireTool(tool);
    cluster = await start();
  }, startMs);
  afterAll(async () => {
    await cluster?.stop();
  }, 120_000);
  return () => {
    if (!cluster) throw new Error("the cluster did not start");
    return cluster;
  };
}
