// Checks that the chart's README lists every value: each value the chart's values.schema.json
// defines (descending into objects whose properties it lists) must appear in the README as
// `path`. Prints one "ok - …" or "not ok - …" line; exits 1 if a value is missing.
//
//   node check_readme.cjs <values.schema.json> <README.md>
"use strict";

const fs = require("fs");

const [schemaFile, readmeFile] = process.argv.slice(2);
const schema = JSON.parse(fs.readFileSync(schemaFile, "utf8"));
const readme = fs.readFileSync(readmeFile, "utf8");

const values = [];
(function walk(node, prefix) {
  const properties = node.properties || {};
  if (prefix && Object.keys(properties).length === 0) {
    values.push(prefix);
    return;
  }
  for (const [name, child] of Object.entries(properties)) walk(child, prefix ? `${prefix}.${name}` : name);
})(schema, "");

const missing = values.filter((value) => !readme.includes("`" + value + "`"));
if (missing.length) {
  console.log(`not ok - the chart README lists every value: missing ${missing.join(", ")}`);
  process.exitCode = 1;
} else {
  console.log(`ok - the chart README lists every value (${values.length})`);
}
