/** Unit tests (mock engine, render functions) and real-tool checks; tests/integration runs separately. */
module.exports = {
  preset: "ts-jest",
  testEnvironment: "node",
  roots: ["<rootDir>/tests"],
  testPathIgnorePatterns: ["/node_modules/", "<rootDir>/tests/integration/"],
  transform: { "^.+\\.ts$": ["ts-jest", { diagnostics: false }] },
  // Whole-program mock runs and real tools share 2 cores in CI: give them room.
  testTimeout: 180000,
};
