import { INVENTORY_KEYS } from "../../config";
import { readStackConfig } from "../../scripts/lib/mock-engine";

/** The inventory keys of a stack file's `keybuzz:` config, parsed (as `parseInventory` receives them). */
export function rawStackConfig(stack: string): Record<string, unknown> {
  const { config } = readStackConfig(stack);
  const raw: Record<string, unknown> = {};
  for (const [key, text] of Object.entries(config)) {
    const name = key.slice("keybuzz:".length);
    if (!key.startsWith("keybuzz:") || !(INVENTORY_KEYS as string[]).includes(name)) continue;
    try {
      raw[name] = JSON.parse(text);
    } catch {
      raw[name] = text;
    }
  }
  return raw;
}
