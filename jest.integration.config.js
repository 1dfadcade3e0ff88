/** Loopback clusters of real Debian daemons (`tests/<module>/*.loopback.test.ts`, npm run test:integration); slow, one suite at a time. */
module.exports = {
  preset: "ts-jest",
  testEnvironment: "node",
  roots: ["<rootDir>/tests"],
  testMatch: ["**/*.loopback.test.ts"],
  transform: { "^.+\\.ts$": ["ts-jest", { diagnostics: false }] },
  testTimeout: 300000,
  maxWorkers: 1,
  // Kill any daemon a previous or this run left behind (tests/support/loopback/reaper.ts).
  globalSetup: "<rootDir>/tests/support/loopback/global-reap.ts",
  globalTeardown: "<rootDir>/tests/support/loopback/global-reap.ts",
};
