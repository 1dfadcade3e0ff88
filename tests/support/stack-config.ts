import { readStackConfig } from "../../scripts/lib/mock-engine";

/** The `keybuzz:` config of a stack file, parsed (as `parseInventory` receives it). */
export function rawStackConfig(stack: string): Record<string, unknown> {
  const { config } = readStackConfig(stack);
  const raw: Record<string, unknown> = {};
  for (const [key, text] of Object.entries(config)) {
    if (!key.startsWith("keybuzz:") || key === "keybuzz:sshPrivateKey") continue;
    try {
      raw[key.slice("keybuzz:".length)] = JSON.parse(text);
    } catch {
      raw[key.slice("keybuzz:".length)] = text;
    }
  }
  return raw;
}
