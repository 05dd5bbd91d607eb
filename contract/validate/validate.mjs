// Validate an AsyncAPI document with @asyncapi/parser; exit 0 when valid, 1 with the diagnostics otherwise.
// Usage: node validate.mjs FILE
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const file = process.argv[2];
if (!file) {
  console.error("usage: node validate.mjs FILE");
  process.exit(2);
}
const text = await readFile(file, "utf8");
const parser = new Parser();
const { document, diagnostics } = await parser.parse(text, { source: file });
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
for (const d of diagnostics) {
  const level = ["error", "warning", "info", "hint"][d.severity] ?? "note";
  console.error(`${file}: ${level}: ${d.code}: ${d.message} at ${(d.path || []).join(".")}`);
}
if (!document || errors.length > 0) {
  console.error(`${file}: INVALID (${errors.length} errors)`);
  process.exit(1);
}
console.log(`${file}: valid AsyncAPI ${document.version()} (${document.channels().length} channels, ` +
  `${document.operations().length} operations, ${document.servers().length} servers)`);
