// Every public method of the real @staticbackend/js 1.7.0 client, called in a real Chromium page.
//
// The page (all_methods.html) loads the client's browser bundle (dist/backend.js, global `sb`) and
// this script. pytest (tests/compat/test_js_browser.py) calls `window.allMethods(params)` and, for
// the social login, `window.socialLogin(provider)`. Every call's answer is returned for pytest to
// check; nothing is asserted here. `window.calledMethods()` lists the methods the page called, so
// the test fails if the client gains a method no scenario calls.

const called = new Set();
const proto = sb.Backend.prototype;
const PRIVATE = new Set(["constructor", "rawreq", "req", "listParamsToUrl", "generateId", "timeout"]);
for (const name of Object.getOwnPropertyNames(proto)) {
  const fn = proto[name];
  if (typeof fn !== "function" || PRIVATE.has(name)) continue;
  proto[name] = function (...args) {
    called.add(name);
    return fn.apply(this, args);
  };
}

window.publicMethods = () =>
  Object.getOwnPropertyNames(proto)
    .filter((n) => typeof proto[n] === "function" && !PRIVATE.has(n))
    .sort();
window.calledMethods = () => [...called].sort();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what, probe, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function plain(result) {
  if (result && result.content instanceof Error) return { ok: result.ok, content: String(result.content) };
  return result;
}

// A form like a page would have: a file input holding `file`, plus text inputs.
function formWith(file, fields = {}) {
  const form = document.createElement("form");
  const input = document.createElement("input");
  input.type = "file";
  input.name = "file";
  const transfer = new DataTransfer();
  transfer.items.add(file);
  input.files = transfer.files;
  form.appendChild(input);
  for (const [name, value] of Object.entries(fields)) {
    const text = document.createElement("input");
    text.name = name;
    text.value = value;
    form.appendChild(text);
  }
  document.body.appendChild(form);
  return form;
}

async function pngFile(width, height, name) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#2563eb";
  ctx.fillRect(0, 0, width, height);
  ctx.fillStyle = "#f59e0b";
  ctx.fillRect(0, 0, width / 2, height / 2);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  return new File([blob], name, { type: "image/png" });
}

async function imageSize(url) {
  const img = new Image();
  img.src = url;
  await img.decode();
  return { width: img.naturalWidth, height: img.naturalHeight };
}

function client(p) {
  return new sb.Backend(p.pk, p.server);
}

// Users, accounts, documents, search, functions, files and extras.
window.allMethods = async (p) => {
  const bk = client(p);
  const out = {};
  const c = async (key, promise) => (out[key] = plain(await promise));

  await c("register", bk.register(p.owner, p.password));
  const token = out.register.content;
  await c("login", bk.login(p.owner, p.password));
  await c("me", bk.me(token));
  await c("addUser", bk.addUser(token, p.member, p.password));
  await c("users", bk.users(token));
  const memberToken = plain(await bk.login(p.member, p.password)).content;
  await c("setRole", bk.setRole(token, p.member, 10, out.me.content.accountId));
  await c("listAssociations", bk.listAssociations(memberToken));
  await c("promoteUser", bk.promoteUser(memberToken));
  await c("changeEmail", bk.changeEmail(memberToken, p.memberNewEmail));
  await c("memberMeAfterEmail", bk.me(out.changeEmail.content));
  await c("removeUser", bk.removeUser(token, out.addUser.content.id));
  await c("usersAfterRemove", bk.users(token));

  const repo = p.repo;
  await c("create", bk.create(token, repo, { title: "first", n: 1, tags: ["a"] }));
  const id = out.create.content.id;
  await c("createBulk", bk.createBulk(token, repo, [{ title: "second", n: 2 }, { title: "third", n: 3 }]));
  await c("list", bk.list(token, repo, { page: 1, size: 2, desc: true }));
  await c("getById", bk.getById(token, repo, id));
  await c("getByIds", bk.getByIds(token, repo, [id]));
  await c("query", bk.query(token, repo, [["n", ">=", 2]], { desc: true }));
  await c("update", bk.update(token, repo, id, { title: "first, edited" }));
  await c("updateBulk", bk.updateBulk(token, repo, { update: { flag: true }, clauses: [["n", ">", 1]] }));
  await c("count", bk.count(token, repo, [["flag", "==", true]]));
  await c("increase", bk.increase(token, repo, id, "n", 5));
  await c("afterIncrease", bk.getById(token, repo, id));
  await c("newId", bk.newId(token));
  // The function indexes the document for search (indexing happens only in functions, spec 03 §13).
  await c("execFunction", bk.execFunction(token, p.functionName, { hello: "browser", col: repo, id, text: "first edited note" }));
  await c("search", bk.search(token, repo, "edited note"));
  await c("deleteBulk", bk.deleteBulk(token, repo, [["flag", "==", true]]));
  await c("delete", bk.delete(token, repo, id));
  await c("listAfterDeletes", bk.list(token, repo));

  // files: storeFile (a form), uploadFile (a File), storageUsage, listFiles
  const text = "stored from a form ✓\n";
  await c("storeFile", bk.storeFile(token, formWith(new File([text], "form-notes.txt", { type: "text/plain" }))));
  try {
    out.uploadFile = { ok: true, content: await bk.uploadFile(token, new File(["{}"], "data.json")) };
  } catch (err) {
    out.uploadFile = { ok: false, content: String(err) };
  }
  if (out.storeFile.ok) {
    const resp = await fetch(out.storeFile.content.url);
    out.storedText = await resp.text();
  }
  await c("storageUsage", bk.storageUsage(token));
  await c("listFiles", bk.listFiles(token, { sort: "size", desc: true }));

  // extras: resizeImage (a form with a PNG), convertURLToX (a page of the test's static server)
  await c("resizeImage", bk.resizeImage(token, 100, formWith(await pngFile(400, 200, "wide.png"))));
  if (out.resizeImage.ok) out.resizedSize = await imageSize(out.resizeImage.content.url);
  await c("convertURLToX", bk.convertURLToX(token, { toPDF: true, url: p.renderUrl, fullpage: true }));
  if (out.convertURLToX.ok) {
    const resp = await fetch(out.convertURLToX.content.url);
    const head = new Uint8Array(await resp.arrayBuffer()).slice(0, 5);
    out.convertedHead = String.fromCharCode(...head);
  }
  out.ownerToken = token;
  return out;
};

// Realtime: connect/send over SSE and connectWS/sendWS over WebSocket, between two users.
window.realtime = async (p) => {
  const a = client(p);
  const b = client(p);
  const tokenA = plain(await a.register(p.emailA, p.password)).content;
  const tokenB = plain(await b.register(p.emailB, p.password)).content;
  const inboxA = [];
  const inboxB = [];
  let authA = false;
  let authB = false;
  a.connect(tokenA, () => (authA = true), (m) => inboxA.push(m));
  await waitFor("SSE auth", () => authA);
  a.send("join", p.channel);
  await waitFor("SSE join", () => inboxA.find((m) => m.type === "ok" && m.data === p.channel));

  b.connectWS(tokenB, () => (authB = true), (m) => inboxB.push(m));
  await waitFor("WS init", () => b.wsId);
  // connectWS's init handler calls the SSE `send` (spec 04 §5.2): without an SSE connection on
  // this client, auth is sent by hand over the client's own socket, as tests/functions/tutorial.mjs.
  await sleep(300);
  const manualAuth = !authB;
  if (manualAuth) b.ws.send(JSON.stringify({ sid: b.wsId, token: null, type: "auth", data: tokenB }));
  await waitFor("WS auth", () => authB);
  b.sendWS("join", p.channel);
  await waitFor("WS join", () => inboxB.find((m) => (m.type === "ok" || m.type === "joined") && m.data === p.channel));

  a.send("chan_in", "from SSE", p.channel);
  const atB = await waitFor("SSE message at WS", () => inboxB.find((m) => m.type === "chan_out" && m.data === "from SSE"));
  b.sendWS("chan_in", "from WS", p.channel);
  const atA = await waitFor("WS message at SSE", () => inboxA.find((m) => m.type === "chan_out" && m.data === "from WS"));
  a.sseClient.close();
  b.ws.close();
  return { atA, atB, manualAuth };
};

// socialLogin opens the provider's page in a new window and polls /oauth/get-user until it answers.
window.socialLogin = async (p, provider) => {
  const bk = client(p);
  const user = await bk.socialLogin(provider);
  const me = plain(await bk.me(user.token));
  return { user, me };
};
