import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import { parseModuleSettings } from "../../config";
import { parseMonitoringSettings, renderAlertRuleGroups, renderRuleFile } from "../../components/observability/monitoring";

const defaults = parseMonitoringSettings(undefined);
const context = { postgresSynchronousMode: true, proxysqlWriterHostgroup: 10 };
const alertNames = (groups: ReturnType<typeof renderAlertRuleGroups>) => groups.flatMap((group) => group.rules.map((rule) => rule.alert));

describe("keybuzz:monitoring settings", () => {
  it("a bad threshold is a config error naming its key, found in the config pass", () => {
    const { problems } = parseModuleSettings({ monitoring: { diskFreePercent: 150 } });
    expect(problems).toEqual([expect.stringMatching(/^keybuzz:monitoring\.diskFreePercent: /)]);
  });

  it("an unknown key is refused", () => {
    expect(() => parseMonitoringSettings({ diskFree: 5 })).toThrow(/keybuzz:monitoring/);
  });

  it("the critical certificate threshold must be below the warning one", () => {
    expect(() => parseMonitoringSettings({ certificateWarningDays: 7, certificateCriticalDays: 7 })).toThrow(
      /keybuzz:monitoring\.certificateCriticalDays: 7 must be below certificateWarningDays \(7\)/,
    );
  });

  it("thresholds reach the rule expressions", () => {
    const groups = renderAlertRuleGroups(parseMonitoringSettings({ redisMemoryPercent: 75 }), context);
    const redisMemory = groups.flatMap((group) => group.rules).find((rule) => rule.alert === "RedisMemoryNearMax");
    expect(redisMemory?.expr).toContain("* 100 > 75");
  });
});

describe("alert rules", () => {
  it("cover every group issue 16 lists, each rule with a meaning and a first response", () => {
    const groups = renderAlertRuleGroups(defaults, context);
    expect(groups.map((group) => group.name)).toEqual([
      "keybuzz-hosts",
      "keybuzz-postgres",
      "keybuzz-pgbouncer",
      "keybuzz-etcd",
      "keybuzz-redis",
      "keybuzz-rabbitmq",
      "keybuzz-galera",
      "keybuzz-proxysql",
      "keybuzz-minio",
      "keybuzz-haproxy",
      "keybuzz-backends",
      "keybuzz-certificates",
      "keybuzz-exporters",
    ]);
    for (const rule of groups.flatMap((group) => group.rules)) {
      expect(rule.annotations.meaning.length).toBeGreaterThan(20);
      expect(rule.annotations.response.length).toBeGreaterThan(10);
    }
  });

  it("without synchronous mode there is no synchronous-standby alert", () => {
    expect(alertNames(renderAlertRuleGroups(defaults, context))).toContain("PostgresSyncStandbyMissing");
    expect(alertNames(renderAlertRuleGroups(defaults, { ...context, postgresSynchronousMode: false }))).not.toContain(
      "PostgresSyncStandbyMissing",
    );
  });

  it("the ProxySQL writer alert watches the configured writer hostgroup", () => {
    const rules = renderAlertRuleGroups(defaults, { ...context, proxysqlWriterHostgroup: 42 }).flatMap((group) => group.rules);
    expect(rules.find((rule) => rule.alert === "ProxySqlWriterOffline")?.expr).toContain('hostgroup="42"');
  });

  it("the rule file is the groups as YAML, alert names unique", () => {
    const groups = renderAlertRuleGroups(defaults, context);
    expect(yaml.load(renderRuleFile(groups))).toEqual({ groups: JSON.parse(JSON.stringify(groups)) });
    const names = alertNames(groups);
    expect(new Set(names).size).toBe(names.length);
  });
});

describe("docs/monitoring.md", () => {
  it("lists every alert with its severity and first response", () => {
    const docs = fs.readFileSync(path.join(__dirname, "..", "..", "docs", "monitoring.md"), "utf8");
    for (const rule of renderAlertRuleGroups(defaults, context).flatMap((group) => group.rules)) {
      const row = docs.split("\n").find((line) => line.startsWith(`| \`${rule.alert}\` |`));
      expect(row).toBeDefined();
      expect(row).toContain(`| ${rule.labels.severity} |`);
      expect(row).toContain(rule.annotations.response.replace(/\|/g, "\\|"));
    }
  });
});
