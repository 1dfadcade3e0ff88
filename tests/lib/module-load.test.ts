import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

/**
 * Each module loads on its own, first, in a fresh process: an import cycle through config/ (a
 * settings file importing config/index, which loads every module's settings) leaves a constant
 * undefined at load time, and which test file sees it depends on jest's order (found by CI in a
 * clean root: components/data/postgres first failed with "Cannot read properties of undefined").
 */
const root = path.join(__dirname, "../..");
const modules = fs.readdirSync(path.join(root, "components")).flatMap((area) =>
  fs
    .readdirSync(path.join(root, "components", area), { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && fs.existsSync(path.join(root, "components", area, entry.name, "index.ts")))
    .map((entry) => `components/${area}/${entry.name}`),
);

describe("every module loads first in a fresh process", () => {
  it("finds the modules", () => {
    expect(modules.length).toBeGreaterThan(10);
  });

  it.each(modules)("%s", (module) => {
    const result = spawnSync(process.execPath, ["-e", `require("ts-node").register({ transpileOnly: true }); require("./${module}");`], {
      cwd: root,
      encoding: "utf8",
      timeout: 60_000,
    });
    expect([result.status, result.stderr.split("\n").find((line) => /Error/.test(line)) ?? ""]).toEqual([0, ""]);
  });
});
