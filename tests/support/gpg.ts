import * as fs from "fs";
import * as path from "path";
import { requireTool, run, tempDir } from "./tools";

/** A throw-away OpenPGP signing key made with the real gpg: its fingerprint and its armored public key file. */
export interface TestKey {
  /** 40 upper-case hex digits, as `gpg --with-colons` prints them. */
  readonly fingerprint: string;
  /** Path of the armored public key (what a repository serves as Release.key). */
  readonly file: string;
}

/** Generates keys in one fresh gpg home (ed25519, 1 day, no passphrase). @throws Error when gpg fails. */
export function testKeyMaker(): (uid: string) => TestKey {
  const gpg = requireTool("gpg");
  const home = tempDir("gpg-home");
  fs.chmodSync(home, 0o700);
  return (uid) => {
    const created = run(gpg, ["--homedir", home, "--batch", "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "1d"]);
    if (created.status !== 0) throw new Error(created.stderr);
    const listing = run(gpg, ["--homedir", home, "--batch", "--with-colons", "--list-keys", uid]).stdout;
    const fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(listing)?.[1] ?? "";
    const file = path.join(home, `${fingerprint}.asc`);
    fs.writeFileSync(file, run(gpg, ["--homedir", home, "--batch", "--armor", "--export", fingerprint]).stdout);
    return { fingerprint, file };
  };
}

/** A fake `curl` body that serves the file named by $KB_TEST_KEY as the download (`-o FILE`). */
export const FAKE_CURL_SERVING_KB_TEST_KEY = 'while [ $# -gt 0 ]; do if [ "$1" = -o ]; then cp "$KB_TEST_KEY" "$2"; fi; shift; done';
