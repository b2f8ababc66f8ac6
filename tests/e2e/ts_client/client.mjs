// A TypeScript-SDK MCP client (what Claude Code, Gemini CLI and most agent CLIs are built on)
// driving `goldfish serve` over stdio: list the tools, make every call of a plan, check each
// result the way such a client reads it, and write a report.
//
// Usage: node client.mjs PLAN.json REPORT.json
// PLAN.json: {"command": "...", "args": [...], "cwd": "...", "calls": [{tool, arguments, expect, code}]}
// Exit status: 0 when every check held, 1 otherwise (the failures are in the report and on stderr).

import { readFileSync, writeFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";

const CALL_TIMEOUT_MS = 180_000;
const ERROR_KEYS = ["code", "details", "message", "remedy"];

const [planPath, reportPath] = process.argv.slice(2);
const plan = JSON.parse(readFileSync(planPath, "utf8"));
const failures = [];
const report = { sdk: sdkVersion(), tools: [], listBytes: 0, calls: [], failures };

function sdkVersion() {
  const url = new URL("./node_modules/@modelcontextprotocol/sdk/package.json", import.meta.url);
  return JSON.parse(readFileSync(url, "utf8")).version;
}

function fail(call, problem) {
  failures.push({ tool: call.tool, expect: call.expect, problem });
}

function textOf(result) {
  const texts = (result.content ?? []).filter((block) => block.type === "text");
  return texts.length > 0 ? texts[0].text : null;
}

function checkSuccess(call, result) {
  if (result.isError) {
    fail(call, `expected success, got an error: ${textOf(result)?.slice(0, 500)}`);
    return;
  }
  const structured = result.structuredContent;
  if (!structured || structured.success !== true) {
    fail(call, "a success must carry structuredContent with success: true");
    return;
  }
  const text = textOf(result);
  if (text === null || !isDeepStrictEqual(JSON.parse(text), structured)) {
    fail(call, "the text block must hold the same JSON as structuredContent");
  }
}

function checkError(call, result) {
  if (!result.isError) {
    fail(call, `expected error ${call.code}, got a success`);
    return null;
  }
  if (result.structuredContent !== undefined) {
    fail(call, "an error result must not carry structuredContent");
  }
  const text = textOf(result);
  let payload;
  try {
    payload = JSON.parse(text);
  } catch {
    fail(call, `the error text is not JSON: ${String(text).slice(0, 300)}`);
    return null;
  }
  const error = payload?.error;
  if (payload?.success !== false || !error || !isDeepStrictEqual(Object.keys(error).sort(), ERROR_KEYS)) {
    fail(call, `the error text is not {success: false, error: {code, message, details, remedy}}: ${text.slice(0, 300)}`);
    return null;
  }
  if (error.code !== call.code) {
    fail(call, `expected code ${call.code}, got ${error.code}: ${error.message}`);
  }
  if (!error.remedy.trim() || !error.message.trim()) {
    fail(call, "an error needs a message and a remedy");
  }
  return error.code;
}

async function main() {
  const transport = new StdioClientTransport({
    command: plan.command,
    args: plan.args,
    cwd: plan.cwd,
    env: { ...process.env },
    stderr: "inherit",
  });
  const client = new Client({ name: "goldfish-ts-client-test", version: "1.0.0" });
  await client.connect(transport);
  try {
    const listed = await client.listTools();
    report.listBytes = Buffer.byteLength(JSON.stringify(listed), "utf8");
    report.tools = listed.tools.map((tool) => ({
      name: tool.name,
      title: tool.title ?? null,
      hasOutputSchema: tool.outputSchema !== undefined,
      annotations: tool.annotations ?? null,
    }));
    // The SDK's own JSON Schema validator: every published input schema compiles, and admits the
    // arguments of every call that must succeed (the schema is no stricter than the server).
    const ajv = new AjvJsonSchemaValidator();
    const inputValidators = new Map();
    for (const tool of listed.tools) {
      try {
        inputValidators.set(tool.name, ajv.getValidator(tool.inputSchema));
      } catch (error) {
        fail({ tool: tool.name, expect: "schema" }, `the input schema does not compile: ${error.message}`);
      }
    }
    for (const call of plan.calls) {
      const entry = { tool: call.tool, expect: call.expect, isError: null, code: null, protocolError: null };
      report.calls.push(entry);
      const admits = inputValidators.get(call.tool);
      if (call.expect === "success" && admits) {
        const verdict = admits(call.arguments);
        if (!verdict.valid) {
          fail(call, `the published input schema refuses these arguments: ${verdict.errorMessage}`);
        }
      }
      let result;
      try {
        result = await client.callTool({ name: call.tool, arguments: call.arguments }, undefined, {
          timeout: CALL_TIMEOUT_MS,
        });
      } catch (error) {
        // What the TypeScript SDK does with a result it cannot accept (e.g. -32602 for structured
        // content that does not match the output schema): the model would never see the result.
        entry.protocolError = { code: error.code ?? null, message: String(error.message ?? error) };
        fail(call, `protocol error ${entry.protocolError.code}: ${entry.protocolError.message}`);
        continue;
      }
      entry.isError = result.isError === true;
      if (call.expect === "success") {
        checkSuccess(call, result);
      } else {
        entry.code = checkError(call, result);
      }
    }
  } finally {
    await client.close();
  }
}

try {
  await main();
} catch (error) {
  failures.push({ tool: null, expect: null, problem: `client crashed: ${error?.stack ?? error}` });
}
writeFileSync(reportPath, JSON.stringify(report, null, 2));
for (const failure of failures) {
  console.error(`FAIL ${failure.tool} (${failure.expect}): ${failure.problem}`);
}
process.exit(failures.length === 0 ? 0 : 1);
