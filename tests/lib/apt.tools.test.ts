import * as fs from "fs";
import * as path from "path";
import { commonScript } from "../../components/lib/scripts";
import { renderStepScript } from "../../components/lib/remote";
import { runBash } from "../support/bash-fakes";
import { FAKE_CURL_SERVING_KB_TEST_KEY, testKeyMaker } from "../support/gpg";
import { requireTool, run, tempDir } from "../support/tools";

/** scripts/common/apt.sh in real bash, with fake apt-get / cloud-init / curl and the real gpg. */

const APT = commonScript("apt.sh");
const LISTS_LOCK_ERROR =
  "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 1234 (apt-get)\nE: Unable to lock directory /var/lib/apt/lists/";

/** A fake apt-get that fails with the lists-lock error `failures` times, then succeeds; counts its calls in `counter`. */
function flakyAptGet(counter: string, failures: number): string {
  return [
    `calls=$(( $(cat ${counter} 2>/dev/null || echo 0) + 1 ))`,
    `echo "$calls" >${counter}`,
    `echo "$*" >>${counter}.args`,
    `if [ "$calls" -le ${failures} ]; then printf '%s\\n' ${JSON.stringify(LISTS_LOCK_ERROR)} >&2; exit 100; fi`,
    `echo "apt-get $1 done"`,
  ].join("\n");
}

describe("kb_apt_get (scripts/common/apt.sh)", () => {
  it("retries while another process holds the lists lock, then succeeds", () => {
    const counter = path.join(tempDir("apt"), "calls");
    const result = runBash(`${APT}\nKB_APT_RETRY_SECONDS=0\nkb_apt_get update`, { "apt-get": flakyAptGet(counter, 2) });
    expect(result.stderr).toContain("apt-get update: an apt lock is held by another process (attempt 2/30); retrying in 0 s");
    expect(result.status).toBe(0);
    expect(fs.readFileSync(counter, "utf8").trim()).toBe("3");
    // Every call waits for dpkg's locks and never asks a conffile question.
    const args = fs.readFileSync(`${counter}.args`, "utf8").trim().split("\n");
    for (const line of args) {
      expect(line).toContain("-o DPkg::Lock::Timeout=120");
      expect(line).toContain("-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold");
      expect(line).toMatch(/-y -qq update$/);
    }
  });

  it("gives up after KB_APT_ATTEMPTS when the lock is never released, with the reason", () => {
    const counter = path.join(tempDir("apt"), "calls");
    const result = runBash(`${APT}\nKB_APT_RETRY_SECONDS=0 KB_APT_ATTEMPTS=4\nkb_apt_get install curl`, {
      "apt-get": flakyAptGet(counter, 1000),
    });
    expect(result.status).toBe(100);
    expect(fs.readFileSync(counter, "utf8").trim()).toBe("4");
    expect(result.stderr).toContain("apt-get install: an apt lock was still held by another process after 4 attempts, 0 s apart");
    expect(result.stderr).toContain("Could not get lock /var/lib/apt/lists/lock");
  });

  it("does not retry any other failure", () => {
    const counter = path.join(tempDir("apt"), "calls");
    const result = runBash(`${APT}\nKB_APT_RETRY_SECONDS=0\nkb_apt_get install nosuchpackage`, {
      "apt-get": `echo x >>${counter}; echo 'E: Unable to locate package nosuchpackage' >&2; exit 100`,
    });
    expect(result.status).toBe(100);
    expect(fs.readFileSync(counter, "utf8").trim().split("\n")).toHaveLength(1);
    expect(result.stderr).toContain("Unable to locate package");
  });
});

describe("kb_wait_cloud_init (scripts/common/apt.sh)", () => {
  it("waits for cloud-init, and goes on when it finished with errors", () => {
    const ok = runBash(`${APT}\nkb_wait_cloud_init\necho after`, { "cloud-init": "sleep 0.2; exit 0" });
    expect(ok.status).toBe(0);
    expect(ok.stdout).toBe("after\n");
    const degraded = runBash(`${APT}\nkb_wait_cloud_init\necho after`, { "cloud-init": "exit 2" });
    expect(degraded.status).toBe(0);
    expect(degraded.stderr).toContain("cloud-init finished with errors (status exit code 2)");
  });

  it("is bounded: a cloud-init that never finishes fails the step with a clear message", () => {
    const result = runBash(`${APT}\nKB_CLOUD_INIT_TIMEOUT_SECONDS=1\nkb_wait_cloud_init\necho after`, { "cloud-init": "sleep 30" });
    expect(result.status).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain("cloud-init has not finished after 1 s");
  });

  it("goes on at once on a host without cloud-init", () => {
    // PATH without any cloud-init: only the fakes directory and bash's own tools.
    const result = runBash(`${APT}\nPATH=/nonexistent\nkb_wait_cloud_init\necho after`);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe("after\n");
  });
});

describe("kb_apt_key (scripts/common/apt.sh) with the real gpg", () => {
  const gpg = requireTool("gpg");
  const makeKey = testKeyMaker();
  const repositoryKey = makeKey("KeyBuzz test repository <repo@keybuzz.invalid>");
  const otherKey = makeKey("Someone else <other@keybuzz.invalid>");
  const curl = FAKE_CURL_SERVING_KB_TEST_KEY;
  // Inside the whole step preamble (kb_write, kb_is_changed), as a step runs it (as root, like the tests).
  const keyStep = (keyring: string, expected: string) =>
    renderStepScript(
      "key test",
      [],
      `${APT}\nkb_apt_key https://repo.invalid/Release.key ${expected} ${keyring}\n` +
        `if kb_is_changed ${keyring}; then echo changed=1; else echo changed=0; fi`,
    );

  it("installs a key with the pinned fingerprint, and leaves it alone when unchanged", () => {
    const keyring = path.join(tempDir("keyring"), "keyrings", "repo.gpg");
    const first = runBash(keyStep(keyring, repositoryKey.fingerprint), { curl }, { KB_TEST_KEY: repositoryKey.file });
    expect(first.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^keybuzz step key test: .* log \(root only\): /)]);
    expect(first.stdout).toBe("changed=1\n");
    expect((fs.statSync(keyring).mode & 0o777).toString(8)).toBe("644");
    const shown = run(gpg, ["--homedir", tempDir("gpg-show"), "--batch", "--show-keys", "--with-colons", keyring]).stdout;
    expect(shown).toContain(`fpr:::::::::${repositoryKey.fingerprint}:`);
    const second = runBash(keyStep(keyring, repositoryKey.fingerprint), { curl }, { KB_TEST_KEY: repositoryKey.file });
    expect(second.stdout).toBe("changed=0\n");
  });

  it("refuses a key with another fingerprint, naming both, and keeps the installed one", () => {
    const keyring = path.join(tempDir("keyring"), "repo.gpg");
    fs.writeFileSync(keyring, "previous keyring");
    const result = runBash(keyStep(keyring, repositoryKey.fingerprint), { curl }, { KB_TEST_KEY: otherKey.file });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(`has the fingerprint(s) '${otherKey.fingerprint}', expected ${repositoryKey.fingerprint}; refusing it`);
    expect(fs.readFileSync(keyring, "utf8")).toBe("previous keyring");
  });

  it("refuses a key file that carries a second primary key besides the pinned one", () => {
    const both = path.join(tempDir("keys"), "both.asc");
    fs.writeFileSync(both, fs.readFileSync(repositoryKey.file, "utf8") + fs.readFileSync(otherKey.file, "utf8"));
    const keyring = path.join(tempDir("keyring"), "repo.gpg");
    const result = runBash(keyStep(keyring, repositoryKey.fingerprint), { curl }, { KB_TEST_KEY: both });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain("refusing it");
    expect(fs.existsSync(keyring)).toBe(false);
  });

  it("fails clearly when the download fails", () => {
    const keyring = path.join(tempDir("keyring"), "repo.gpg");
    const result = runBash(keyStep(keyring, repositoryKey.fingerprint), { curl: "exit 22" });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain("cannot download the apt signing key https://repo.invalid/Release.key");
  });
});
