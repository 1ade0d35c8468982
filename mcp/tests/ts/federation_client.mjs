// Drive the gateway with the official TypeScript MCP SDK and check federation.
// usage: node federation_client.mjs URL TARGETS(comma separated) [streamable|sse]
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { CreateMessageRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const [url, targetsArg, transport = "streamable"] = process.argv.slice(2);
const targets = targetsArg.split(",").filter(Boolean);
const name = (t, n) => (t ? `${t}__${n}` : n);
function check(cond, msg) {
  if (!cond) {
    console.error("FAILED:", msg);
    process.exit(1);
  }
}

const client = new Client({ name: "ts-federation", version: "1.0.0" }, { capabilities: { sampling: {} } });
client.setRequestHandler(CreateMessageRequestSchema, async (req) => ({
  role: "assistant",
  content: { type: "text", text: `ts-sampled<${req.params.messages[0].content.text}>` },
  model: "test-model",
  stopReason: "endTurn",
}));
await client.connect(
  transport === "sse" ? new SSEClientTransport(new URL(url)) : new StreamableHTTPClientTransport(new URL(url)),
);

let tools = [];
let cursor;
do {
  const page = await client.listTools(cursor ? { cursor } : {});
  tools = tools.concat(page.tools.map((t) => t.name));
  cursor = page.nextCursor;
} while (cursor);

for (const t of targets) {
  check(tools.includes(name(t, "echo")), `${name(t, "echo")} missing`);
  const r = await client.callTool({ name: name(t, "echo"), arguments: { message: `ts ${t}` } });
  check(r.content[0].text === `Echo: ts ${t}`, JSON.stringify(r));

  const progress = [];
  const lr = await client.callTool(
    { name: name(t, "trigger-long-running-operation"), arguments: { duration: 0.3, steps: 3 } },
    undefined,
    { onprogress: (p) => progress.push(p.progress) },
  );
  check(lr.content[0].text.includes("completed"), JSON.stringify(lr));
  if (transport === "sse") {
    // The SDK's SSE client handles notifications a microtask late, so the final progress of
    // a call can lose the race with its result; it does so against server-everything
    // directly too. Everything before it must arrive, in order.
    check(["[1,2]", "[1,2,3]"].includes(JSON.stringify(progress)), `${t} progress ${JSON.stringify(progress)}`);
  } else {
    check(JSON.stringify(progress) === "[1,2,3]", `${t} progress ${JSON.stringify(progress)}`);
  }

  const sr = await client.callTool({ name: name(t, "trigger-sampling-request"), arguments: { prompt: `ts-${t}`, maxTokens: 5 } });
  check(JSON.stringify(sr.content).includes(`ts-sampled<`), JSON.stringify(sr));

  const pr = await client.getPrompt({ name: name(t, "simple-prompt") });
  check(pr.messages.length > 0, JSON.stringify(pr));
}
const resources = (await client.listResources()).resources;
for (const t of targets) {
  const mine = resources.filter((r) => r.uri.includes(`/${t}/`));
  check(mine.length > 0, `no resources of ${t}`);
  const rr = await client.readResource({ uri: mine[0].uri });
  check(rr.contents.length > 0, JSON.stringify(rr));
}
await client.close();
console.log(JSON.stringify({ ok: true, tools: tools.length, resources: resources.length }));
process.exit(0);
