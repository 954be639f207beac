// Listens on a channel with the real @staticbackend/js client (SSE) and prints what arrived.
//
//   node js_listen.mjs <compat-js-dir> <server-url> <public-key> <session-token> <channel> <seconds>
//
// The client and its EventSource/WebSocket globals come from tests/compat/js (its node_modules).
// Connects, authenticates, joins <channel> once the server acknowledges the token, collects every
// message for <seconds> after the join is acknowledged, then prints ONE JSON line:
// {joined: bool, messages: [...]}. Assertions live in pytest.
import path from "node:path";
import { pathToFileURL } from "node:url";

const [dir, url, pk, token, channel, seconds] = process.argv.slice(2);
await import(pathToFileURL(path.join(dir, "setup.mjs")).href);
const { Backend } = await import(
  pathToFileURL(path.join(dir, "node_modules", "@staticbackend", "js", "dist", "index.js")).href
);

const bk = new Backend(pk, url);
const messages = [];
let joined = false;

function finish() {
  console.log(JSON.stringify({ joined, messages }));
  process.exit(0);
}

bk.connect(
  token,
  () => bk.send("join", channel),
  (payload) => {
    messages.push(payload);
    if (!joined && payload.type === "ok" && payload.data === channel) {
      joined = true;
      console.error("joined");
      setTimeout(finish, Number(seconds) * 1000);
    }
  },
);
// Give up if the join never comes.
setTimeout(finish, (Number(seconds) + 10) * 1000);
