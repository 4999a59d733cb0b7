// Runs a rendering of the chart against a real PostgreSQL with the real binary: the migration
// hook's command and settings, exactly as rendered, migrate the installation's schema; then the
// KEDA trigger's query, exactly as rendered, must return one non-negative integer. The
// database URL is the one thing replaced (the test cluster's instead of the chart's host).
// The schema is dropped afterwards. Prints "ok - …" or "not ok - …"; exits 1 on failure.
//
//   node check_live.cjs --modules <node_modules> --syncpod <binary> --database-url <url> <rendered.yaml>
"use strict";

const fs = require("fs");
const path = require("path");
const { spawnSync } = require("child_process");

const args = {};
const rest = [];
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i];
  if (arg.startsWith("--")) args[arg.slice(2)] = process.argv[++i];
  else rest.push(arg);
}
const YAML = require(path.join(path.resolve(args.modules), "yaml"));
const objects = YAML.parseAllDocuments(fs.readFileSync(rest[0], "utf8"))
  .map((doc) => doc.toJS())
  .filter((o) => o !== null);

const name = "the rendered migration creates the table the rendered KEDA query reads";
function run(command, argv, env) {
  const result = spawnSync(command, argv, { env, encoding: "utf8", timeout: 60000 });
  if (result.error) throw new Error(`${command}: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${command} ${argv.join(" ")} exited ${result.status}: ${(result.stderr || "").trim()}`);
  return result.stdout;
}

let schema = null;
const baseEnv = { PATH: process.env.PATH, HOME: process.env.HOME || "/tmp" };
try {
  const job = objects.find((o) => o.kind === "Job" && o.metadata.name.endsWith("-migrate"));
  const scaledJob = objects.find((o) => o.kind === "ScaledJob");
  if (!job || !scaledJob) throw new Error("the rendering has no migration Job or no ScaledJob");
  const container = job.spec.template.spec.containers[0];
  const env = { ...baseEnv };
  for (const e of container.env) if (e.value !== undefined) env[e.name] = e.value;
  schema = env.SYNCPOD_SCHEMA;
  env.SYNCPOD_DATABASE_URL = args["database-url"];
  // The image's entry point is the binary; the Job gives its arguments.
  run(args.syncpod, container.args, env);
  const query = scaledJob.spec.triggers[0].metadata.query;
  const out = run("psql", ["-XAt", "-v", "ON_ERROR_STOP=1", "-d", args["database-url"], "-c", query], baseEnv);
  const rows = out.trim().split("\n");
  if (rows.length !== 1 || !/^\d+$/.test(rows[0])) throw new Error(`${query} returned ${JSON.stringify(out)}, not one integer`);
  console.log(`ok - ${name}`);
} catch (error) {
  console.log(`not ok - ${name}: ${error.message}`);
  process.exitCode = 1;
} finally {
  if (schema && /^[a-z_][a-z0-9_]*$/.test(schema)) {
    spawnSync("psql", ["-XAtq", "-d", args["database-url"], "-c", `DROP SCHEMA IF EXISTS "${schema}" CASCADE`], { env: baseEnv });
  }
}
