// Checks one rendering of the syncpod chart (`helm template` output): every object against the
// Kubernetes, KEDA and Prometheus Operator schemas, then the facts an installation depends on.
// Prints "ok - <check>" or "not ok - <check>: <why>" per check; exits 1 if any failed.
//
//   node check_rendered.cjs --modules <node_modules> --migrations <dir> --label <name>
//                           [--secret <value>] <rendered.yaml>
//
// --secret names a value (the database password given to the chart) that may appear only in
// Secret objects.
"use strict";

const fs = require("fs");
const path = require("path");

const args = { modules: null, migrations: null, label: "", secret: null, file: null };
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i];
  const value = () => {
    if (i + 1 >= process.argv.length) throw new Error(`${arg} needs a value`);
    return process.argv[++i];
  };
  if (arg === "--modules") args.modules = path.resolve(value());
  else if (arg === "--migrations") args.migrations = value();
  else if (arg === "--label") args.label = value();
  else if (arg === "--secret") args.secret = value();
  else if (!args.file) args.file = arg;
  else throw new Error(`unexpected argument ${arg}`);
}
if (!args.modules || !args.migrations || !args.file) {
  throw new Error("usage: check_rendered.cjs --modules DIR --migrations DIR [--label NAME] [--secret VALUE] FILE");
}
const load = (name) => require(path.join(args.modules, name));
const YAML = load("yaml");

let failures = 0;
function check(name, fn) {
  const label = `${name} (${args.label})`;
  try {
    const problem = fn();
    if (problem) throw new Error(problem);
    console.log(`ok - ${label}`);
  } catch (error) {
    failures++;
    console.log(`not ok - ${label}: ${error.message}`);
  }
}

const objects = YAML.parseAllDocuments(fs.readFileSync(args.file, "utf8"))
  .map((doc) => {
    if (doc.errors.length) throw new Error(`${args.file}: ${doc.errors[0].message}`);
    return doc.toJS();
  })
  .filter((object) => object !== null);
const describe = (o) => `${o.kind} ${o.metadata && o.metadata.name}`;
const find = (kind, suffix) =>
  objects.filter((o) => o.kind === kind && (!suffix || o.metadata.name.endsWith(suffix)));
const one = (kind, suffix) => {
  const found = find(kind, suffix);
  if (found.length !== 1) throw new Error(`expected one ${kind} named *${suffix || ""}, found ${found.length}`);
  return found[0];
};

// --- Schemas ---------------------------------------------------------------------------------
// The model class for an apiVersion and kind; the groups that the chart uses and that have
// models. A kind without one is an error: every object must be checked.
function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  let module;
  if (group === "keda.sh") module = `@kubernetes-models/keda/${group}/${version}/${kind}`;
  else if (group === "monitoring.coreos.com")
    module = `@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`;
  else module = group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
  try {
    return load(module)[kind];
  } catch (error) {
    return null;
  }
}

check(`rendered ${objects.length} objects`, () => (objects.length ? null : "nothing was rendered"));
for (const object of objects) {
  check(`schema: ${describe(object)}`, () => {
    const Model = modelFor(object.apiVersion, object.kind);
    if (!Model) return `no schema known for ${object.apiVersion} ${object.kind}`;
    new Model(object).validate();
    return null;
  });
}

// --- Facts -----------------------------------------------------------------------------------
// syncpod's settings: the ConfigMap the workers take their environment from.
let settingsCache = null;
function settingsOf() {
  if (settingsCache) return settingsCache;
  const worker = one("ScaledJob").spec.jobTargetRef.template.spec.containers[0];
  const ref = (worker.envFrom || []).find((e) => e.configMapRef);
  if (!ref) throw new Error("the worker takes no environment from a ConfigMap");
  const found = find("ConfigMap").filter((o) => o.metadata.name === ref.configMapRef.name);
  if (found.length !== 1) throw new Error(`no ConfigMap ${ref.configMapRef.name}`);
  settingsCache = found[0].data || {};
  return settingsCache;
}
const settings = new Proxy({}, { get: (_, name) => settingsOf()[name] });
const seconds = (name) => {
  const match = /^(\d+)s$/.exec(settings[name] || "");
  if (!match) throw new Error(`${name} is ${JSON.stringify(settings[name])}, not whole seconds`);
  return Number(match[1]);
};

// The pods of a workload: [name, pod spec].
function podSpecs() {
  const pods = [];
  for (const o of objects) {
    if (o.kind === "Deployment" || o.kind === "Job") pods.push([describe(o), o.spec.template.spec]);
    if (o.kind === "ScaledJob") pods.push([describe(o), o.spec.jobTargetRef.template.spec]);
  }
  return pods;
}

check("the trigger queries desired_pod_count in the installation's schema", () => {
  // The table and column KEDA reads are the ones the migrations create (and the singleton writes).
  const sql = fs
    .readdirSync(args.migrations)
    .filter((f) => f.endsWith(".sql"))
    .map((f) => fs.readFileSync(path.join(args.migrations, f), "utf8"))
    .join("\n");
  const table = /CREATE TABLE desired_pod_count \(([\s\S]*?)\n\);/.exec(sql);
  if (!table) return "no CREATE TABLE desired_pod_count in the migrations";
  if (!/^\s*count\s+integer\s+NOT NULL/m.test(table[1])) return "desired_pod_count has no non-NULL integer column count";
  const schema = settings.SYNCPOD_SCHEMA;
  if (!/^[a-z_][a-z0-9_]*$/.test(schema || "")) return `SYNCPOD_SCHEMA ${JSON.stringify(schema)} is not a schema name`;
  const triggers = one("ScaledJob").spec.triggers;
  if (triggers.length !== 1 || triggers[0].type !== "postgresql") return "expected exactly one postgresql trigger";
  // Quoted: the schema may be a reserved word (tests/helm/reserved-word-schema.yaml).
  const expected = `SELECT count FROM "${schema}".desired_pod_count`;
  if (triggers[0].metadata.query !== expected) return `query is ${JSON.stringify(triggers[0].metadata.query)}, expected "${expected}"`;
  if (triggers[0].metadata.targetQueryValue !== "1") return "targetQueryValue is not \"1\"";
  return null;
});

check("the trigger reads the database syncpod uses", () => {
  const meta = one("ScaledJob").spec.triggers[0].metadata;
  const url = new URL(settings.SYNCPOD_DATABASE_URL);
  const same = [
    ["host", url.hostname],
    ["port", url.port || "5432"],
    ["userName", decodeURIComponent(url.username)],
    ["dbName", decodeURIComponent(url.pathname.slice(1))],
    ["sslmode", url.searchParams.get("sslmode")],
  ];
  for (const [key, value] of same) {
    if (meta[key] !== value) return `trigger ${key} ${JSON.stringify(meta[key])} differs from the URL's ${JSON.stringify(value)}`;
  }
  const auth = one("TriggerAuthentication");
  const name = one("ScaledJob").spec.triggers[0].authenticationRef.name;
  if (auth.metadata.name !== name) return `authenticationRef ${name} names no TriggerAuthentication`;
  const ref = (auth.spec.secretTargetRef || []).find((r) => r.parameter === "password");
  if (!ref) return "the TriggerAuthentication takes no password from a Secret";
  const worker = one("ScaledJob").spec.jobTargetRef.template.spec.containers[0];
  const pgpassword = (worker.env || []).find((e) => e.name === "PGPASSWORD");
  const podRef = pgpassword && pgpassword.valueFrom && pgpassword.valueFrom.secretKeyRef;
  if (!podRef || podRef.name !== ref.name || podRef.key !== ref.key) return "KEDA and the workers read the password from different Secret keys";
  return null;
});

check("the ScaledJob rolls out gradually and keeps KEDA's defaults the design relies on", () => {
  const spec = one("ScaledJob").spec;
  const want = [
    ["rollout.strategy", spec.rollout && spec.rollout.strategy, "gradual"],
    ["scalingStrategy.strategy", spec.scalingStrategy && spec.scalingStrategy.strategy, "default"],
    ["jobTargetRef.template.spec.restartPolicy", spec.jobTargetRef.template.spec.restartPolicy, "Never"],
  ];
  for (const [name, actual, expected] of want) {
    if (actual !== expected) return `${name} is ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`;
  }
  if (!(spec.jobTargetRef.activeDeadlineSeconds > 0)) return "jobTargetRef.activeDeadlineSeconds is not set";
  if (spec.jobTargetRef.backoffLimit !== 0) return "a failed worker would be restarted by its Job (backoffLimit is not 0)";
  return null;
});

check("the worker's grace period exceeds drain deadline + stop grace + terminating grace", () => {
  const pod = one("ScaledJob").spec.jobTargetRef.template.spec;
  const needed = seconds("SYNCPOD_DRAIN_DEADLINE") + seconds("SYNCPOD_STOP_GRACE") + seconds("SYNCPOD_TERMINATING_GRACE");
  if (!(pod.terminationGracePeriodSeconds > needed)) return `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} <= ${needed}`;
  return null;
});

check("terminating grace covers the scale interval and KEDA's polling interval", () => {
  const polling = one("ScaledJob").spec.pollingInterval;
  if (seconds("SYNCPOD_KEDA_POLLING_INTERVAL") !== polling) return `SYNCPOD_KEDA_POLLING_INTERVAL ${settings.SYNCPOD_KEDA_POLLING_INTERVAL} differs from pollingInterval ${polling}`;
  const needed = seconds("SYNCPOD_SCALE_INTERVAL") + polling;
  if (seconds("SYNCPOD_TERMINATING_GRACE") < needed) return `SYNCPOD_TERMINATING_GRACE ${settings.SYNCPOD_TERMINATING_GRACE} < ${needed}s`;
  return null;
});

check("no secret in a ConfigMap, and the password only in Secrets", () => {
  const url = new URL(settings.SYNCPOD_DATABASE_URL);
  if (url.password) return "SYNCPOD_DATABASE_URL in the ConfigMap holds a password";
  for (const o of find("ConfigMap")) {
    for (const key of Object.keys(o.data || {})) {
      if (/PASSWORD|SECRET|TOKEN/i.test(key)) return `${describe(o)} has a key ${key}`;
    }
  }
  if (args.secret) {
    const encoded = Buffer.from(args.secret).toString("base64");
    const holders = objects.filter((o) => {
      const text = JSON.stringify(o);
      return text.includes(args.secret) || text.includes(encoded);
    });
    const outside = holders.filter((o) => o.kind !== "Secret");
    if (outside.length) return `the password appears in ${outside.map(describe).join(", ")}`;
    if (!holders.length) return "the password given to the chart is in no Secret";
  }
  for (const [name, pod] of podSpecs()) {
    for (const c of pod.containers) {
      for (const e of c.env || []) {
        if (e.value === undefined) continue;
        if (/PASSWORD|SECRET|TOKEN/.test(e.name)) return `${name} container ${c.name} has ${e.name} as a literal value`;
        if (e.name === "SYNCPOD_DATABASE_URL" && new URL(e.value).password)
          return `${name} container ${c.name} has a password in its literal SYNCPOD_DATABASE_URL`;
      }
    }
  }
  return null;
});

check("every container has resources, runs as non-root on a read-only root filesystem", () => {
  for (const [name, pod] of podSpecs()) {
    const podNonRoot = pod.securityContext && pod.securityContext.runAsNonRoot;
    for (const c of [...(pod.initContainers || []), ...pod.containers]) {
      const where = `${name} container ${c.name}`;
      const sc = c.securityContext || {};
      if (!c.resources || !c.resources.requests || !c.resources.limits) return `${where} lacks resource requests or limits`;
      if (sc.readOnlyRootFilesystem !== true) return `${where} has a writable root filesystem`;
      if (!(sc.runAsNonRoot === true || (sc.runAsNonRoot === undefined && podNonRoot === true))) return `${where} may run as root`;
      if (sc.allowPrivilegeEscalation !== false) return `${where} allows privilege escalation`;
      const tmp = (c.volumeMounts || []).find((m) => m.mountPath === "/tmp");
      const volume = tmp && (pod.volumes || []).find((v) => v.name === tmp.name);
      if (!volume || !volume.emptyDir) return `${where} has no emptyDir on /tmp`;
    }
  }
  return null;
});

check("roles, replicas, probes and the migration hook", () => {
  const service = one("Deployment", "-service");
  const singleton = one("Deployment", "-singleton");
  const args0 = (d) => JSON.stringify(d.spec.template.spec.containers[0].args);
  if (args0(service) !== '["serve","--role=service"]') return `service runs ${args0(service)}`;
  if (args0(singleton) !== '["serve","--role=singleton"]') return `singleton runs ${args0(singleton)}`;
  const worker = one("ScaledJob").spec.jobTargetRef.template.spec.containers[0];
  if (JSON.stringify(worker.args) !== '["serve","--role=worker"]') return `worker runs ${JSON.stringify(worker.args)}`;
  if (!(service.spec.replicas >= 2)) return `service has ${service.spec.replicas} replicas`;
  if (!(singleton.spec.replicas >= 1 && singleton.spec.replicas <= 2)) return `singleton has ${singleton.spec.replicas} replicas`;
  const c = service.spec.template.spec.containers[0];
  if (!c.readinessProbe || c.readinessProbe.httpGet.path !== "/readyz") return "service readiness probe is not /readyz";
  if (!c.livenessProbe || c.livenessProbe.httpGet.path !== "/healthz") return "service liveness probe is not /healthz";
  const pdb = one("PodDisruptionBudget");
  const selects = (selector, labels) => Object.entries(selector.matchLabels).every(([k, v]) => labels[k] === v);
  if (!selects(pdb.spec.selector, service.spec.template.metadata.labels)) return "the PodDisruptionBudget does not select the service pods";
  if (!selects({ matchLabels: one("Service").spec.selector }, service.spec.template.metadata.labels)) return "the Service does not select the service pods";
  const jobs = find("Job", "-migrate");
  if (jobs.length) {
    const hook = jobs[0].metadata.annotations["helm.sh/hook"];
    if (hook !== "pre-install,pre-upgrade") return `the migration Job's hook is ${hook}`;
    if (JSON.stringify(jobs[0].spec.template.spec.containers[0].args) !== '["migrate"]') return "the migration Job does not run migrate";
  }
  return null;
});

process.exitCode = failures ? 1 : 0;
