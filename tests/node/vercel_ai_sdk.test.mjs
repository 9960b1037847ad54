// The Vercel AI SDK's default OpenAI provider, createOpenAI({ baseURL, apiKey })(model), which
// speaks the Responses API, against a Parley server: generateText and streamText, unchanged.
// Run by tests/local/test_vercel_ai_sdk.py with node's test runner; PARLEY_BASE_URL (the
// .../openai/v1 base URL), PARLEY_API_KEY and NODE_CLIENTS_DIR (where `ai` is installed) come
// from the environment.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import path from "node:path";

const require = createRequire(path.join(process.env.NODE_CLIENTS_DIR, "package.json"));
const load = async (name) => import(pathToFileURL(require.resolve(name)).href);
const { generateText, streamText } = await load("ai");
const { createOpenAI } = await load("@ai-sdk/openai");

const openai = createOpenAI({ baseURL: process.env.PARLEY_BASE_URL, apiKey: process.env.PARLEY_API_KEY });

test("generateText with the default (Responses API) provider", async () => {
  const result = await generateText({ model: openai("echo"), prompt: "Hello from the AI SDK" });
  assert.equal(result.text, "Hello from the AI SDK");
  assert.equal(result.finishReason, "stop");
  assert.ok(result.usage.inputTokens > 0 && result.usage.outputTokens > 0, JSON.stringify(result.usage));
  assert.match(result.response.id, /^resp_/);
});

test("generateText with a system prompt and messages", async () => {
  const result = await generateText({
    model: openai("echo"),
    system: "Be brief.",
    messages: [
      { role: "user", content: "First" },
      { role: "assistant", content: "First" },
      { role: "user", content: "Second question" },
    ],
  });
  assert.equal(result.text, "Second question");
});

test("streamText with the default provider", async () => {
  const result = streamText({ model: openai("echo"), prompt: "Streamed words arrive in order" });
  const parts = [];
  for await (const delta of result.textStream) parts.push(delta);
  assert.ok(parts.length > 1, `expected several deltas, got ${JSON.stringify(parts)}`);
  assert.equal(parts.join(""), "Streamed words arrive in order");
  assert.equal(await result.finishReason, "stop");
  const usage = await result.usage;
  assert.ok(usage.outputTokens > 0, JSON.stringify(usage));
});
