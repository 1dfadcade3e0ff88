import { parse as parsePgUrl } from "pg-connection-string";
// ioredis' own URL parser: the one `new Redis(url)` calls (ioredis/built/redis/index.js).
import { parseURL as parseRedisUrl } from "ioredis/built/utils";
import { ConfigError, Inventory, parseInventory } from "../../config";
import { backendConnectionValues, backendEndpoints, BackendPasswords } from "../../components/k8s/addons";
import { rawStackConfig } from "../support/stack-config";
import { BACKEND_VARIABLES } from "../support/backend-contract";

/** Passwords made of the characters a URL reserves (RFC 3986 gen-delims and sub-delims), `%`, space and quotes. */
const RESERVED: BackendPasswords = {
  postgresBackend: "b@ck:end/p?w#1%[]",
  postgresProduct: "pr@d&uct=+$,;'! 2",
  redis: "r:e@d/i?s#%",
  rabbitmq: "r@bbit/%2F:mq?#",
  minioApp: "m!n/i@o:#?%",
};

/** The internal LB of the haproxy group, from the inventory (prod: 10.0.0.10). */
const internalLb = (inventory: Inventory) => inventory.loadBalancers.find((lb) => lb.targetGroup === "haproxy")!.privateIp;

describe.each(["prod", "staging"])("the backend's connection values (%s)", (stack) => {
  const inventory = parseInventory(rawStackConfig(stack));
  const values = backendConnectionValues(backendEndpoints(inventory), RESERVED);

  it("holds every variable the backend reads, none empty", () => {
    for (const name of BACKEND_VARIABLES) expect([name, values[name] ?? ""]).not.toEqual([name, ""]);
  });

  it("gives Prisma kb_backend on keybuzz_backend and node-postgres keybuzz on keybuzz, both through PgBouncer, passwords round-tripping", () => {
    const lb = internalLb(inventory);
    const prisma = parsePgUrl(values.DATABASE_URL);
    expect(prisma).toMatchObject({
      user: "kb_backend",
      password: RESERVED.postgresBackend,
      host: lb,
      port: "6432",
      database: "keybuzz_backend",
    });
    // PgBouncer is the entry without TLS: no sslmode, so node-postgres does not attempt TLS there.
    expect(prisma.ssl).toBeUndefined();
    expect(new URL(values.DATABASE_URL).searchParams.has("pgbouncer")).toBe(false);
    const product = parsePgUrl(values.PRODUCT_DATABASE_URL);
    expect(product).toMatchObject({ user: "keybuzz", password: RESERVED.postgresProduct, host: lb, port: "6432", database: "keybuzz" });
    expect(product.ssl).toBeUndefined();
    // The PG* set names the same database as PRODUCT_DATABASE_URL, the password in clear (not a URL).
    expect({
      host: values.PGHOST,
      port: values.PGPORT,
      user: values.PGUSER,
      password: values.PGPASSWORD,
      database: values.PGDATABASE,
    }).toEqual({
      host: product.host,
      port: product.port,
      user: product.user,
      password: RESERVED.postgresProduct,
      database: product.database,
    });
  });

  it("gives migrations the leader's TLS port", () => {
    const direct = parsePgUrl(values.DIRECT_DATABASE_URL);
    expect(direct).toMatchObject({ user: "kb_backend", password: RESERVED.postgresBackend, host: internalLb(inventory), port: "5432" });
    expect(direct.sslmode).toBe("require");
  });

  it("gives ioredis the Redis LB with the password decoded, as Redis' default user (redis-cli refuses an empty one)", () => {
    const redis = parseRedisUrl(values.REDIS_URL);
    const lb = inventory.loadBalancers.find((candidate) => candidate.services.some((service) => service.listenPort === 6379))!;
    expect(redis).toMatchObject({ host: lb.privateIp, port: "6379", password: RESERVED.redis, username: "default" });
  });

  it("gives the MinIO client the HA S3 endpoint on the internal LB, as the backend strips it, and the application's own key", () => {
    // attachments.routes.ts: MINIO_ENDPOINT?.replace('http://', '').split(':')[0], port MINIO_PORT.
    expect(values.MINIO_ENDPOINT.replace("http://", "").split(":")[0]).toBe(internalLb(inventory));
    expect(values.MINIO_PORT).toBe("9000");
    expect([values.MINIO_ACCESS_KEY, values.MINIO_SECRET_KEY]).toEqual(["keybuzz-backend", RESERVED.minioApp]);
  });

  it("gives AMQP clients the RabbitMQ LB and the default vhost", () => {
    const url = new URL(values.RABBITMQ_URL);
    expect(url.protocol).toBe("amqp:");
    expect([decodeURIComponent(url.username), decodeURIComponent(url.password)]).toEqual(["keybuzz", RESERVED.rabbitmq]);
    expect([url.port, decodeURIComponent(url.pathname.slice(1))]).toEqual(["5672", "/"]);
  });

  it("parses every URL with the WHATWG parser", () => {
    for (const name of Object.keys(values).filter((key) => key.endsWith("_URL"))) expect(() => new URL(values[name])).not.toThrow();
  });
});

describe("the backend's endpoints", () => {
  const inventory = parseInventory(rawStackConfig("prod"));

  it("follow the inventory, not a fixed address", () => {
    const moved = {
      ...inventory,
      loadBalancers: inventory.loadBalancers.map((lb) => (lb.targetGroup === "haproxy" ? { ...lb, privateIp: "10.0.0.11" } : lb)),
    };
    expect(backendEndpoints(moved).postgres).toBe("10.0.0.11");
  });

  it("are a ConfigError naming the key when no load balancer serves PgBouncer's 6432", () => {
    const without = {
      ...inventory,
      loadBalancers: inventory.loadBalancers.map((lb) => ({
        ...lb,
        services: lb.services.filter((service) => service.listenPort !== 6432),
      })),
    };
    expect(() => backendEndpoints(without)).toThrow(ConfigError);
    expect(() => backendEndpoints(without)).toThrow(/keybuzz:loadBalancers: no load balancer serves port 6432 \(PgBouncer\)/);
  });
});
