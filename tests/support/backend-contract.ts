/**
 * The environment variables the KeyBuzz backend reads to reach the platform (issue 19), from its
 * source (github.com/keybuzzio/keybuzz-backend): prisma/schema.prisma (`url = env("DATABASE_URL")`),
 * src/lib/productDb.ts (`PRODUCT_DATABASE_URL`, else `PGHOST`/`PGPORT`/`PGUSER`/`PGPASSWORD`/
 * `PGDATABASE`), src/lib/redis.config.ts (`REDIS_URL`), src/modules/attachments/attachments.routes.ts
 * and src/modules/webhooks/attachmentParser.service.ts (`MINIO_ENDPOINT`, `MINIO_PORT`,
 * `MINIO_ACCESS_KEY`, `MINIO_SECRET_KEY`); `RABBITMQ_URL` for the platform's other applications.
 */
export const BACKEND_VARIABLES = [
  "DATABASE_URL",
  "PRODUCT_DATABASE_URL",
  "PGHOST",
  "PGPORT",
  "PGUSER",
  "PGPASSWORD",
  "PGDATABASE",
  "REDIS_URL",
  "MINIO_ENDPOINT",
  "MINIO_PORT",
  "MINIO_ACCESS_KEY",
  "MINIO_SECRET_KEY",
  "RABBITMQ_URL",
];
