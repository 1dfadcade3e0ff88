import { z } from "zod";
import { formatZodError } from "../../config/errors";
import { parseRedisSettings } from "../../components/data/redis";
import { configProblems } from "../support/module-checks";

describe("formatZodError", () => {
  it("names a field's full key after the module prefix", () => {
    expect(configProblems(() => parseRedisSettings({ failoverProfile: "instant" }))[0]).toMatch(/^keybuzz:redis\.failoverProfile: /);
  });

  it("names the module key alone, without a stray separator, for an issue of the object itself", () => {
    expect(configProblems(() => parseRedisSettings({ failoverProfil: "fast" }))).toEqual([
      expect.stringMatching(/^keybuzz:redis: Unrecognized key.*"failoverProfil"/),
    ]);
  });

  it("keeps a file prefix readable when the issue is the whole document", () => {
    const result = z.strictObject({ pins: z.record(z.string(), z.string()) }).safeParse("a string");
    if (result.success) throw new Error("expected a schema error");
    expect(formatZodError(result.error, "versions.yaml: ")[0]).toMatch(/^versions\.yaml: [^:]/);
  });
});
