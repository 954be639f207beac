// The founding tutorial's client side, with the real @staticbackend/js client.
//
//   node tutorial.mjs <sse|ws> <region> <public-key> <params-json>
//
// <region> is what the tutorial passes to `new Backend(pk, region)`: "dev" (http://localhost:8099)
// or the server URL. Two users register, both connect, both join "lobby", A posts a message, B
// must receive it as chan_out, then B lists "msgs_774_" until the server-side function has
// stored it. Prints ONE JSON line; assertions live in pytest.
//
// WebSocket: the client's connectWS init handler calls the SSE `send` (spec 04 §5.2), which does
// nothing without an SSE connection, so `auth` is never sent and onAuth never fires. When that
// happens (we wait 500 ms after init), this script sends the auth frame itself over the client's own
// socket, exactly as the WebSocket-era client did: {sid, token: null, type: "auth", data: <jwt>}.
// Everything else goes through connectWS/sendWS. The output says whether the fallback was used.
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const jsDir = path.resolve(here, "..", "compat", "js");
const require = createRequire(path.join(jsDir, "package.json"));
globalThis.EventSource ??= require("eventsource");
globalThis.WebSocket ??= require("ws");
const { Backend } = await import(
  pathToFileURL(path.join(jsDir, "node_modules", "@staticbackend", "js", "dist", "index.js")).href
);

const [transport, region, pk, paramsJson] = process.argv.slice(2);
const { emailA, emailB, password, text } = JSON.parse(paramsJson);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what, probe, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function plain(result) {
  if (result && result.content instanceof Error) return { ok: result.ok, content: String(result.content) };
  return result;
}

async function user(email) {
  const bk = new Backend(pk, region);
  const reg = plain(await bk.register(email, password));
  if (!reg.ok) throw new Error(`register ${email}: ${JSON.stringify(reg)}`);
  return { bk, token: reg.content, inbox: [], authed: false, manualAuth: false };
}

function seen(u, type, data) {
  return u.inbox.find((m) => m.type === type && (data === undefined || m.data === data));
}

async function connectSSE(u) {
  u.bk.connect(
    u.token,
    () => (u.authed = true),
    (m) => u.inbox.push(m),
  );
  await waitFor("SSE auth", () => u.authed);
  u.bk.send("join", "lobby");
  await waitFor("SSE join ok", () => seen(u, "ok", "lobby"));
}

async function connectWS(u) {
  u.bk.connectWS(
    u.token,
    () => (u.authed = true),
    (m) => u.inbox.push(m),
  );
  await waitFor("WS init", () => u.bk.wsId);
  await sleep(500);
  if (!u.authed) {
    u.manualAuth = true;
    u.bk.ws.send(JSON.stringify({ sid: u.bk.wsId, token: null, type: "auth", data: u.token }));
  }
  await waitFor("WS auth", () => u.authed);
  u.bk.sendWS("join", "lobby");
  await waitFor("WS join", () => seen(u, "ok", "lobby") || seen(u, "joined", "lobby"));
}

const a = await user(emailA);
const b = await user(emailB);
const connect = transport === "ws" ? connectWS : connectSSE;
await connect(a);
await connect(b);
await sleep(300); // let the joined notifications settle

const posted = JSON.stringify({ from: emailA, body: text });
if (transport === "ws") a.bk.sendWS("chan_in", posted, "lobby");
else a.bk.send("chan_in", posted, "lobby");

const received = await waitFor("chan_out at B", () =>
  b.inbox.find((m) => m.type === "chan_out" && m.channel === "lobby" && m.data === posted),
);
const listed = await waitFor("the stored message", async () => {
  const res = plain(await b.bk.list(b.token, "msgs_774_"));
  if (!res.ok) throw new Error(`list: ${JSON.stringify(res)}`);
  return res.content.results.find((d) => d.body === text) ? res : null;
});

for (const u of [a, b]) {
  if (u.bk.sseClient) u.bk.sseClient.close();
  if (u.bk.ws) u.bk.ws.close();
}
console.log(
  JSON.stringify({
    transport,
    received,
    listed,
    manualAuth: { a: a.manualAuth, b: b.manualAuth },
    tokenAtA: a.bk.wsToken,
  }),
);
process.exit(0);
