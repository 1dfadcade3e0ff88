/**
 * Unit tests (mock engine, render functions, `*.test.ts`) and real-tool checks (`*.tools.test.ts`),
 * in tests/<module>/. The loopback clusters (`*.loopback.test.ts`) run separately (jest.integration.config.js).
 */
module.exports = {
  preset: "ts-jest",
  testEnvironment: "node",
  roots: ["<rootDir>/tests"],
  testPathIgnorePatterns: ["/node_modules/", "\\.loopback\\.test\\.ts$"],
  transform: { "^.+\\.ts$": ["ts-jest", { diagnostics: false }] },
  // Whole-program mock runs and real tools share 2 cores in CI: give them room.
  testTimeout: 180000,
};
