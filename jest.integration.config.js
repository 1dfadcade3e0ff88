/** Loopback clusters of real Debian daemons (npm run test:integration); slow, one suite at a time. */
module.exports = {
  preset: "ts-jest",
  testEnvironment: "node",
  roots: ["<rootDir>/tests/integration"],
  transform: { "^.+\\.ts$": ["ts-jest", { diagnostics: false }] },
  testTimeout: 300000,
  maxWorkers: 1,
  // Kill any daemon a previous or this run left behind (tests/integration/support/reaper.ts).
  globalSetup: "<rootDir>/tests/integration/support/global-reap.ts",
  globalTeardown: "<rootDir>/tests/integration/support/global-reap.ts",
};
