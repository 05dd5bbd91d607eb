// Validate AsyncAPI documents with @asyncapi/parser (its Avro schema parser checks the Avro payload schemas).
// Usage: node validate.mjs FILE...   prints one "FILE: valid ..." or "FILE: INVALID ..." line per file on
// stdout (diagnostics on stderr); exit 0 when every file is valid, 1 otherwise, 2 usage error.
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node validate.mjs FILE...");
  process.exit(2);
}
const parser = new Parser();
let failed = 0;
for (const file of files) {
  const text = await readFile(file, "utf8");
  const { document, diagnostics } = await parser.parse(text, { source: file });
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  for (const d of diagnostics) {
    const level = ["error", "warning", "info", "hint"][d.severity] ?? "note";
    console.error(`${file}: ${level}: ${d.code}: ${d.message} at ${(d.path || []).join(".")}`);
  }
  if (!document || errors.length > 0) {
    failed += 1;
    console.log(`${file}: INVALID (${errors.length} errors)`);
    continue;
  }
  console.log(`${file}: valid AsyncAPI ${document.version()} (${document.channels().length} channels, ` +
    `${document.operations().length} operations, ${document.servers().length} servers)`);
}
process.exit(failed > 0 ? 1 : 0);
