/** Loopback clusters of real Debian daemons (npm run test:integration); slow, one suite at a time. */
module.exports = {
  preset: "ts-jest",
  testEnvironment: "node",
  roots: ["<rootDir>/tests/integration"],
  transform: { "^.+\\.ts$": ["ts-jest", { diagnostics: false }] },
  testTimeout: 300000,
  maxWorkers: 1,
};
