import * as fs from "fs";
import * as path from "path";
import { commonScript } from "../../components/lib/scripts";
import { loadVersions, parseInventory, serversOf } from "../../config";
import { parseExportersSettings } from "../../components/observability/exporters";
import { deployedScrapeJobs } from "../../components/observability/monitoring";
import {
  exporterPortsOf,
  OLD_SSHD_DROP_IN,
  renderBaseOsScript,
  renderSshdDropIn,
  renderVerifyScript,
  SSHD_DROP_IN,
  sshdEffectiveSettings,
} from "../../components/os/base-os";
import { shellQuote } from "../../components/lib/remote";
import { runProgram } from "../../scripts/lib/mock-engine";
import { runBash } from "../support/bash-fakes";
import { rawStackConfig } from "../support/stack-config";
import { requireTool, run, tempDir } from "../support/tools";

/**
 * An sshd configuration laid out like Ubuntu's: the main file includes `sshd_config.d/*.conf` first,
 * then sets PasswordAuthentication itself. Returns the main file's path.
 */
function ubuntuLikeSshdConfig(dropIns: Readonly<Record<string, string>>): string {
  const keygen = requireTool("ssh-keygen");
  const dir = tempDir("sshd");
  const dropInDir = path.join(dir, "sshd_config.d");
  fs.mkdirSync(dropInDir);
  for (const [name, content] of Object.entries(dropIns)) fs.writeFileSync(path.join(dropInDir, name), content);
  expect(run(keygen, ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "host_key")]).status).toBe(0);
  const config = path.join(dir, "sshd_config");
  fs.writeFileSync(
    config,
    `Include ${dropInDir}/*.conf\nHostKey ${path.join(dir, "host_key")}\nListenAddress 127.0.0.1:2222\nPasswordAuthentication yes\n`,
  );
  fs.mkdirSync("/run/sshd", { recursive: true });
  return config;
}

/** What cloud-init writes on a Hetzner image that was given a root password (its ssh_pwauth). */
const CLOUD_INIT_DROP_IN = "PasswordAuthentication yes\n";

describe("real tools on the rendered base OS files", () => {
  it("sshd -t accepts the rendered sshd drop-in, and the steps' check finds every setting in the real sshd -T", () => {
    const sshd = requireTool("sshd");
    const config = ubuntuLikeSshdConfig({ [path.basename(SSHD_DROP_IN)]: renderSshdDropIn() });
    const test = run(sshd, ["-t", "-f", config]);
    expect(test.stderr).toBe("");
    expect(test.status).toBe(0);
    const expected = `KB_SSHD_EXPECTED=${shellQuote(sshdEffectiveSettings().join("\n"))}`;
    const check = runBash(`${expected}\n${commonScript("sshd.sh")}\nkb_sshd_missing_settings`, {
      sshd: `exec ${sshd} -f ${config} "$@"`,
    });
    expect(check.stderr).toBe("");
    expect(check.stdout).toBe("");
    expect(check.status).toBe(0);
    // Without our drop-in the same check names what is missing.
    const bare = ubuntuLikeSshdConfig({});
    const missing = runBash(`${expected}\n${commonScript("sshd.sh")}\nkb_sshd_missing_settings`, {
      sshd: `exec ${sshd} -f ${bare} "$@"`,
    });
    expect(missing.stdout.split("\n")).toEqual(expect.arrayContaining(["passwordauthentication no", "maxauthtries 3", "maxsessions 4"]));
  });

  it("the sshd check reads OpenSSH 9's `without-password` and later releases' `prohibit-password` as the same setting", () => {
    const expected = `KB_SSHD_EXPECTED=${shellQuote("port 22\npermitrootlogin prohibit-password\npasswordauthentication no")}`;
    for (const spelling of ["without-password", "prohibit-password"]) {
      for (const order of [
        [`permitrootlogin ${spelling}`, "port 22", "passwordauthentication no"],
        ["port 22", "passwordauthentication no", `permitrootlogin ${spelling}`],
      ]) {
        const check = runBash(`${expected}\n${commonScript("sshd.sh")}\nkb_sshd_missing_settings`, {
          sshd: `printf '%s\\n' ${order.map((line) => shellQuote(line)).join(" ")}`,
        });
        expect([spelling, order[0], check.stdout]).toEqual([spelling, order[0], ""]);
      }
    }
    const other = runBash(`${expected}\n${commonScript("sshd.sh")}\nkb_sshd_missing_settings`, {
      sshd: "printf '%s\\n' 'port 22' 'permitrootlogin yes' 'passwordauthentication no'",
    });
    expect(other.stdout).toBe("permitrootlogin prohibit-password\n");
  });

  it("our drop-in wins over cloud-init's 50-cloud-init.conf (sshd keeps the first value it reads)", () => {
    const sshd = requireTool("sshd");
    const ours = ubuntuLikeSshdConfig({ "50-cloud-init.conf": CLOUD_INIT_DROP_IN, [path.basename(SSHD_DROP_IN)]: renderSshdDropIn() });
    expect(run(sshd, ["-T", "-f", ours]).stdout.split("\n")).toContain("passwordauthentication no");
    // The mechanism, shown with the old name: read after cloud-init's file, it loses.
    const old = ubuntuLikeSshdConfig({ "50-cloud-init.conf": CLOUD_INIT_DROP_IN, [path.basename(OLD_SSHD_DROP_IN)]: renderSshdDropIn() });
    expect(run(sshd, ["-T", "-f", old]).stdout.split("\n")).toContain("passwordauthentication yes");
  });

  it("the base OS step's sshd check fails the step when another drop-in overrides ours", () => {
    const sshd = requireTool("sshd");
    const inventory = parseInventory(rawStackConfig("prod"));
    const script = renderBaseOsScript("redis-01", "redis", inventory, loadVersions(), []);
    // The step's SSH section, run against a real sshd whose config has cloud-init's file first.
    const section = script.slice(script.indexOf("# 6. SSH hardening"), script.indexOf("# 7. UFW"));
    const preamble = script.slice(0, script.indexOf("\n# Base OS hardening"));
    const log = path.join(tempDir("sshd-step"), "systemctl.log");
    const check = (dropIns: Readonly<Record<string, string>>, oldDropIn = "/nonexistent/99-keybuzz.conf") => {
      const config = ubuntuLikeSshdConfig(dropIns);
      const variables = preamble.replace(`KB_OLD_SSHD_DROP_IN='${OLD_SSHD_DROP_IN}'`, `KB_OLD_SSHD_DROP_IN='${oldDropIn}'`);
      return runBash(`kb_is_changed() { return 1; }\n${variables}\n${section}\necho sshd-ok`, {
        sshd: `exec ${sshd} -f ${config} "$@"`,
        systemctl: `echo "systemctl $*" >>${log}`,
      });
    };
    const overridden = check({ "00-aaa.conf": CLOUD_INIT_DROP_IN, [path.basename(SSHD_DROP_IN)]: renderSshdDropIn() });
    expect(overridden.status).toBe(1);
    expect(overridden.stderr).toContain("sshd does not apply 'passwordauthentication no' (sshd -T)");
    const applied = check({ "50-cloud-init.conf": CLOUD_INIT_DROP_IN, [path.basename(SSHD_DROP_IN)]: renderSshdDropIn() });
    expect(applied.stderr).toBe("");
    expect(applied.stdout).toBe("sshd-ok\n");
    // Unchanged drop-in, no old file: no reload.
    expect(fs.existsSync(log)).toBe(false);
  });

  it("the base OS step retries timedatectl when timedated does not answer in time, and sets the zone only when it differs", () => {
    const inventory = parseInventory(rawStackConfig("prod"));
    const script = renderBaseOsScript("redis-01", "redis", inventory, loadVersions(), []);
    const section = script.slice(script.indexOf("# 2. Timezone and NTP"), script.indexOf("# 3. Swap"));
    const dir = tempDir("timedatectl");
    // Bounded retries as the step preamble's kb_wait_until does them, without its sleeps.
    const retryFiveTimes =
      'kb_wait_until() { local message=$3; shift 3; for _ in 1 2 3 4 5; do if "$@"; then return 0; fi; done; kb_diagnose "$message"; return 1; }';
    const timedated = (failures: number, zone: string) =>
      runBash(`${retryFiveTimes}\n${section}\necho clock-ok`, {
        timedatectl: `calls=$(cat ${dir}/calls 2>/dev/null || echo 0); echo $((calls + 1)) >${dir}/calls; echo "timedatectl $*" >>${dir}/log
if [ "$calls" -lt ${failures} ]; then echo "Failed to query server: Connection timed out" >&2; exit 1; fi
case "$1" in show) echo ${zone} ;; esac`,
      });
    const reset = () => {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir);
    };
    reset();
    const slow = timedated(2, "Etc/UTC");
    expect(slow.stdout).toBe("clock-ok\n");
    expect(fs.readFileSync(path.join(dir, "log"), "utf8")).toContain("timedatectl set-timezone Europe/Paris\n");
    reset();
    const converged = timedated(0, "Europe/Paris");
    expect(converged.status).toBe(0);
    expect(fs.readFileSync(path.join(dir, "log"), "utf8")).toBe("timedatectl show -p Timezone --value\ntimedatectl set-ntp true\n");
    reset();
    const dead = timedated(100, "Etc/UTC");
    expect(dead.status).not.toBe(0);
    expect(dead.stderr).toContain("base OS: timedatectl cannot set the time zone Europe/Paris");
  });

  it("the base OS step removes the old 99-keybuzz.conf of an earlier run and reloads sshd", () => {
    const sshd = requireTool("sshd");
    const inventory = parseInventory(rawStackConfig("prod"));
    const script = renderBaseOsScript("redis-01", "redis", inventory, loadVersions(), []);
    const section = script.slice(script.indexOf("# 6. SSH hardening"), script.indexOf("# 7. UFW"));
    const preamble = script.slice(0, script.indexOf("\n# Base OS hardening"));
    const config = ubuntuLikeSshdConfig({ [path.basename(SSHD_DROP_IN)]: renderSshdDropIn() });
    const oldDropIn = path.join(path.dirname(config), "sshd_config.d", path.basename(OLD_SSHD_DROP_IN));
    fs.writeFileSync(oldDropIn, renderSshdDropIn());
    const log = path.join(path.dirname(config), "systemctl.log");
    const variables = preamble.replace(`KB_OLD_SSHD_DROP_IN='${OLD_SSHD_DROP_IN}'`, `KB_OLD_SSHD_DROP_IN='${oldDropIn}'`);
    const result = runBash(`kb_is_changed() { return 1; }\n${variables}\n${section}\necho sshd-ok`, {
      sshd: `exec ${sshd} -f ${config} "$@"`,
      systemctl: `echo "systemctl $*" >>${log}`,
    });
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe("sshd-ok\n");
    expect(fs.existsSync(oldDropIn)).toBe(false);
    expect(fs.readFileSync(log, "utf8")).toBe("systemctl reload ssh\n");
  });

  it("sshd -t rejects a broken drop-in (the check is real)", () => {
    const sshd = requireTool("sshd");
    const dir = tempDir("sshd-bad");
    const config = path.join(dir, "sshd_config");
    fs.writeFileSync(config, `${renderSshdDropIn()}MaxAuthTries many\n`);
    expect(run(sshd, ["-t", "-f", config]).status).not.toBe(0);
  });

  // The whole plan, then shellcheck on its ~120 step scripts: minutes on a loaded 2-core machine.
  jest.setTimeout(300_000);

  it("the verification passes under pipefail every time, whatever the length of the checked outputs", () => {
    // Fakes that print the line a test looks for first, then a long tail: a pipe into grep -q would
    // SIGPIPE the writer (exit 141) and pipefail would fail the test; captured outputs never do.
    const versions = loadVersions();
    const body = renderVerifyScript("redis-01", versions);
    const longTail = 'for i in $(seq 1 5000); do echo "filler$i value"; done';
    const fakes = {
      sshd: `printf '%s\\n' ${sshdEffectiveSettings()
        .map((line) => `'${line}'`)
        .join(" ")}\n${longTail}`,
      ufw: `echo 'Status: active'\n${longTail}`,
      docker: `echo '${versions.docker.engine.replace(/^\d+:/, "").replace(/-.*$/, "")}'`,
      "dpkg-query": `echo -n '${versions.docker.engine}'`,
      swapon: "exit 0",
      timedatectl: 'case "$*" in *Timezone*) echo Europe/Paris ;; *NTP*) echo yes ;; esac',
      sysctl: "echo 65535",
    };
    const tests = ["docker_pinned", "swap_off", "ufw_active", "ssh_hardened", "timezone_paris", "ntp_active", "sysctl_applied"];
    const runs = 20;
    let passing = 0;
    for (let attempt = 0; attempt < runs; attempt++) {
      // dns_fixed reads this machine's /etc/resolv.conf: its result is not what this test is about.
      const stdout = runBash(body, fakes).stdout.split("\n");
      if (tests.every((test) => stdout.includes(`PASS ${test}`))) passing++;
    }
    expect(passing).toBe(runs);
  });

  it("in a container (the real-host tier) swap and the clock are reported as skipped, by name; on a VM all 8 run", () => {
    const versions = loadVersions();
    const body = renderVerifyScript("redis-01", versions);
    const fakes = {
      sshd: `printf '%s\\n' ${sshdEffectiveSettings()
        .map((line) => `'${line}'`)
        .join(" ")}`,
      ufw: "echo 'Status: active'",
      docker: `echo '${versions.docker.engine.replace(/^\d+:/, "").replace(/-.*$/, "")}'`,
      "dpkg-query": `echo -n '${versions.docker.engine}'`,
      // The machine's swap and a clock without NTP, as a container sees them.
      swapon: "echo '/swapfile file 1G 0B -2'",
      timedatectl: 'case "$*" in *Timezone*) echo Europe/Paris ;; *NTP*) echo no ;; esac',
      sysctl: "echo 65535",
    };
    const container = runBash(body, { ...fakes, "systemd-detect-virt": "echo systemd-nspawn" }).stdout.split("\n");
    expect(container).toEqual(
      expect.arrayContaining([
        "SKIP swap_off: this host is a container (systemd-nspawn); swap and the clock are its machine's",
        "SKIP ntp_active: this host is a container (systemd-nspawn); swap and the clock are its machine's",
        "PASS docker_pinned",
        "PASS ssh_hardened",
      ]),
    );
    const vm = runBash(body, fakes);
    expect(vm.status).toBe(1);
    expect(vm.stderr.split("\n")).toEqual(expect.arrayContaining(["FAIL swap_off", "FAIL ntp_active"]));
  });

  it("docker_pinned fails when the installed package or the running daemon is not the pinned one", () => {
    const versions = loadVersions();
    const body = renderVerifyScript("redis-01", versions);
    const verdict = (fakes: Record<string, string>) => runBash(body, fakes).stderr.split("\n").includes("FAIL docker_pinned");
    const release = "27.5.1";
    expect(verdict({ docker: `echo ${release}`, "dpkg-query": `echo -n '${versions.docker.engine}'` })).toBe(false);
    expect(verdict({ docker: "echo 26.1.5", "dpkg-query": `echo -n '${versions.docker.engine}'` })).toBe(true);
    expect(verdict({ docker: `echo ${release}`, "dpkg-query": "echo -n '5:28.0.0-1~ubuntu.24.04~noble'" })).toBe(true);
    expect(verdict({ docker: "exit 1", "dpkg-query": `echo -n '${versions.docker.engine}'` })).toBe(true);
  });

  it("docker_pinned accepts the distribution's docker.io and its repacked release (26.1.5+dfsg1)", () => {
    const versions = loadVersions();
    const distribution = {
      ...versions,
      docker: { source: "distribution" as const, engine: "26.1.5+dfsg1-9+b9", containerd: "1.7.24~ds1-6+b4" },
    };
    const body = renderVerifyScript("redis-01", distribution);
    expect(body).toContain("KB_DOCKER_PACKAGE='docker.io'");
    const result = runBash(body, {
      docker: "echo 26.1.5+dfsg1",
      "dpkg-query": '[ "$3" = docker.io ] || exit 1; echo -n 26.1.5+dfsg1-9+b9',
    });
    expect(result.stdout.split("\n")).toContain("PASS docker_pinned");
  });

  it.each(["prod", "staging"])("shellcheck passes every rendered step script (%s)", async (stack) => {
    const shellcheck = requireTool("shellcheck");
    const { steps } = await runProgram(stack);
    const dir = tempDir(`steps-${stack}`);
    const files = steps.map((step, index) => {
      const file = path.join(dir, `${String(index).padStart(3, "0")}-${step.step}.sh`);
      fs.writeFileSync(file, step.script);
      return file;
    });
    expect(files.length).toBeGreaterThan(0);
    // Every step carries the step runner and helpers (components/lib/remote.ts): ~0.1 s of CPU per script.
    const result = run(shellcheck, ["--severity=warning", "--shell=bash", ...files], { timeout: 240_000 });
    expect(result.stdout).toBe("");
    expect(result.status).toBe(0);
  });

  describe("the Docker section of the base OS step (real bash and apt helpers, fake package tools)", () => {
    const inventory = parseInventory(rawStackConfig("prod"));
    const versions = loadVersions();
    /**
     * Runs the step's Docker section with its variables and the shared apt helpers; package tools,
     * systemctl and rm only log what they are asked (`installed` = packages dpkg reports installed).
     */
    const dockerSection = (docker: typeof versions.docker, installed: readonly string[]) => {
      const script = renderBaseOsScript("redis-01", "redis", inventory, { ...versions, docker }, []);
      const head = script.slice(0, script.indexOf("# A fresh server is still running cloud-init"));
      const section = script.slice(script.indexOf("# 5. Docker pinned"), script.indexOf("# 6. SSH hardening"));
      const log = path.join(tempDir("docker-section"), "log");
      const logged = (name: string) => `echo "${name} $*" >>${log}`;
      const result = runBash(
        [
          head,
          // The step preamble's helpers: daemon.json is new in this run, the files go nowhere.
          'kb_write() { cat >/dev/null; echo "write $1" >>' + log + "; }",
          'kb_is_changed() { [ "$1" = /etc/docker/daemon.json ]; }',
          `kb_apt_key() { ${logged("key")}; }`,
          section,
        ].join("\n"),
        {
          "apt-get": logged("apt-get"),
          "apt-mark": logged("apt-mark"),
          systemctl: `${logged("systemctl")}; exit 0`,
          rm: logged("rm"),
          "dpkg-query": `case " ${installed.join(" ")} " in *" \${*: -1} "*) echo -n 'install ok installed' ;; *) exit 1 ;; esac`,
        },
      );
      return { result, log: fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n") : [] };
    };
    const options = "-o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -y -qq";

    it("docker-ce: Docker's repository with its checked key, the three pinned packages held, the distribution's removed", () => {
      const { result, log } = dockerSection(versions.docker, ["docker.io", "runc"]);
      expect(result.stderr).toBe("");
      expect(result.status).toBe(0);
      const { engine, containerd } = versions.docker;
      expect(log).toEqual([
        "key https://download.docker.com/linux/ubuntu/gpg 9DC858229FC7DD38854AE2D88D81803C0EBFCD88 /etc/apt/keyrings/docker.gpg",
        "rm -f /etc/apt/keyrings/docker.asc",
        "write /etc/apt/sources.list.d/docker.list",
        `apt-get ${options} remove docker.io runc`,
        `apt-get ${options} update`,
        "apt-mark unhold docker-ce containerd.io docker-ce-cli",
        `apt-get ${options} install --allow-downgrades docker-ce=${engine} containerd.io=${containerd} docker-ce-cli=${engine}`,
        "apt-mark hold docker-ce containerd.io docker-ce-cli",
        "systemctl enable docker",
        // daemon.json changed on a running Docker: reload first (live-restore on), then restart.
        "systemctl is-active --quiet docker",
        "systemctl reload docker",
        "systemctl restart docker",
      ]);
    });

    it("distribution: the OS's docker.io and containerd pinned and held, Docker's repository and packages removed", () => {
      const docker = { source: "distribution" as const, engine: "27.5.1-0ubuntu3~24.04.2", containerd: "1.7.27-0ubuntu1~24.04.1" };
      const { result, log } = dockerSection(docker, ["docker-ce", "docker-ce-cli", "containerd.io"]);
      expect(result.stderr).toBe("");
      expect(result.status).toBe(0);
      expect(log).toEqual([
        "rm -f /etc/apt/sources.list.d/docker.list /etc/apt/keyrings/docker.gpg /etc/apt/keyrings/docker.asc",
        `apt-get ${options} remove docker-ce docker-ce-cli containerd.io`,
        `apt-get ${options} update`,
        "apt-mark unhold docker.io containerd",
        `apt-get ${options} install --allow-downgrades docker.io=${docker.engine} containerd=${docker.containerd}`,
        "apt-mark hold docker.io containerd",
        "systemctl enable docker",
        "systemctl is-active --quiet docker",
        "systemctl reload docker",
        "systemctl restart docker",
      ]);
    });
  });
});

describe("the base OS verification's wait for the platform's containers (scripts/base-os/containers-running.sh)", () => {
  const gate = fs.readFileSync(path.join(__dirname, "../../scripts/base-os/containers-running.sh"), "utf8");
  /** `docker ps --all --filter label=keybuzz.spec --format …` answering `listing` (Names State Status). */
  const docker = (listing: string) =>
    `[ "$1 $2 $3" = "ps --all --filter" ] && [ "$4" = label=keybuzz.spec ] || exit 3\nprintf '%s' '${listing}'`;
  const down = (listing: string) => runBash(`${gate}\nkb_platform_containers_down`, { docker: docker(listing) });

  it("is satisfied by running containers, healthy or without a health check, and by a host without any", () => {
    expect(down("redis running Up 3 minutes (healthy)\nsentinel running Up 3 minutes\n").stdout).toBe("");
    expect(down("").stdout).toBe("");
    expect(runBash(`${gate}\nkb_platform_containers_up`, { docker: docker("redis running Up 2 hours (healthy)\n") }).status).toBe(0);
  });

  it("names each container that is stopped, restarting, unhealthy or still starting", () => {
    const result = down(
      [
        "redis exited Exited (137) 5 seconds ago",
        "sentinel restarting Restarting (1) 2 seconds ago",
        "haproxy running Up 40 seconds (health: starting)",
        "pgbouncer running Up 2 minutes (unhealthy)",
        "node-exporter running Up 2 minutes",
      ].join("\n"),
    );
    expect(result.stdout.trim().split("\n")).toEqual([
      "redis: exited",
      "sentinel: restarting",
      "haproxy: health: starting",
      "pgbouncer: unhealthy",
    ]);
    expect(runBash(`${gate}\nkb_platform_containers_up`, { docker: docker("redis exited Exited (0) 1 second ago\n") }).status).toBe(1);
  });

  it("counts a Docker that does not answer as not back", () => {
    expect(runBash(`${gate}\nkb_platform_containers_down`, { docker: "exit 1" }).stdout).toBe("docker: not answering\n");
  });
});

// The UFW section of the step with a fake ufw that records its rules, read back with UFW's own
// rule order (the first rule matching a packet decides): an exporter port answers the Kubernetes
// nodes and pods only, although the private network is otherwise open in full.
describe("the base OS step's UFW rules, in the order the step adds them", () => {
  const inventory = parseInventory(rawStackConfig("prod"));
  const jobs = deployedScrapeJobs(inventory.servers, parseExportersSettings(undefined));

  /** The `ufw allow|deny ...` calls of the step's UFW section on `host`, in order. */
  function ufwCalls(host: string, group: Parameters<typeof renderBaseOsScript>[1]): string[] {
    const script = renderBaseOsScript(host, group, inventory, loadVersions(), exporterPortsOf(host, jobs));
    const preamble = script.slice(0, script.indexOf("\n# Base OS hardening"));
    const section = script.slice(script.indexOf("# 7. UFW"), script.indexOf("# 8. DNS"));
    const log = path.join(tempDir("ufw-section"), "ufw.log");
    const result = runBash(`${preamble}\nkb_write() { cat >/dev/null; }\n${section}`, { ufw: `echo "$*" >>${log}` });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    return fs
      .readFileSync(log, "utf8")
      .split("\n")
      .filter((line) => /^(allow|deny) /.test(line));
  }

  const inCidr = (address: string, cidr: string) => {
    const [base, bits] = cidr.split("/");
    const value = (ip: string) => ip.split(".").reduce((sum, octet) => sum * 256 + Number(octet), 0);
    const size = 2 ** (32 - Number(bits));
    return Math.floor(value(address) / size) === Math.floor(value(base) / size);
  };

  /** UFW's verdict for a TCP connection from `source` to `port`: the first matching rule's action, else the default deny. */
  function verdict(calls: readonly string[], source: string, port: number): string {
    for (const call of calls) {
      const match = /^(allow|deny)(?: from (\S+))?(?: to any port (\S+) proto tcp)?$/.exec(call) ?? /^(allow|deny) (\d+)\/tcp$/.exec(call);
      if (!match) continue;
      const [, action, from, rulePort] = match;
      if (from && !inCidr(source, from)) continue;
      if (rulePort && rulePort !== String(port)) continue;
      return action;
    }
    return "deny";
  }

  it("redis-01's exporter ports answer the Kubernetes nodes and pods, not the other servers; its service ports stay open", () => {
    const calls = ufwCalls("redis-01", "redis");
    const [worker] = serversOf(inventory, "k8s-worker");
    const [master] = serversOf(inventory, "k8s-master");
    const peer = serversOf(inventory, "redis")[1];
    const app = serversOf(inventory, "haproxy")[0];
    const pod = inventory.kubernetes.podCidr.replace(/0\/\d+$/, "17");
    for (const port of [9100, 9121, 9122]) {
      expect([worker, master].map((server) => verdict(calls, server.privateIp, port))).toEqual(["allow", "allow"]);
      expect(verdict(calls, pod, port)).toBe("allow");
      expect([peer, app].map((server) => verdict(calls, server.privateIp, port))).toEqual(["deny", "deny"]);
    }
    expect(verdict(calls, peer.privateIp, 6379)).toBe("allow");
    expect(verdict(calls, app.privateIp, 26379)).toBe("allow");
    // The rest of the private network stays open (Calico's IPIP, the clusters' own ports).
    expect(verdict(calls, peer.privateIp, 16379)).toBe("allow");
  });

  it("db-master-01 keeps Patroni's REST API open to HAProxy (a scrape port that is also the service's)", () => {
    const calls = ufwCalls("db-master-01", "postgres");
    const app = serversOf(inventory, "haproxy")[0];
    expect(verdict(calls, app.privateIp, 8008)).toBe("allow");
    expect(verdict(calls, app.privateIp, 9100)).toBe("deny");
  });

  it("proxysql-01's REST API (Prometheus metrics, no authentication) answers the Kubernetes nodes only", () => {
    const calls = ufwCalls("proxysql-01", "proxysql");
    const [worker] = serversOf(inventory, "k8s-worker");
    const maria = serversOf(inventory, "mariadb")[0];
    expect(verdict(calls, worker.privateIp, 6070)).toBe("allow");
    expect(verdict(calls, maria.privateIp, 6070)).toBe("deny");
    expect(verdict(calls, maria.privateIp, 3306)).toBe("allow");
  });
});
