// Runs one database scenario against a live server with the real @staticbackend/js client.
//
//   node db.mjs <scenario> <server-url> <public-key> [params-json]
//
// (SB_URL, SB_PK and SB_PARAMS are read when an argument is missing.) Prints ONE JSON line:
// the client's {ok, content} answers, and {status, contentType, body} for the raw requests a
// scenario makes beside the client (the client hides status codes, and has no call to add a
// function). Assertions live in pytest (test_js_database.py), not here.
//
// The client's database methods (node_modules/@staticbackend/js/dist/module/backend.js):
//   create(token, repo, doc)            POST   /db/<repo>
//   createBulk(token, repo, docs)       POST   /db/<repo>?bulk=1
//   list(token, repo, params)           GET    /db/<repo>[?page=&size=&desc=true]   (size sent only when > 1)
//   getById(token, repo, id)            GET    /db/<repo>/<id>
//   getByIds(token, repo, ids)          POST   /db/<repo>?ids=true
//   query(token, repo, filters, params) POST   /query/<repo>[?page=&size=&desc=true]
//   update(token, repo, id, doc)        PUT    /db/<repo>/<id>
//   updateBulk(token, repo, data)       PUT    /db/<repo>?bulk=1          data = {update, clauses}
//   delete(token, repo, id)             DELETE /db/<repo>/<id>
//   deleteBulk(token, repo, filters)    DELETE /db/<repo>?bulk=1&x=<btoa(JSON)> (not URL-encoded)
//   count(token, repo, filters)         POST   /db/count/<repo>            no body when filters is undefined
//   increase(token, repo, id, field, n) PUT    /inc/<repo>/<id>
//   newId(token)                        GET    /newid
//   search(token, repo, keywords)       POST   /search                     {col, keywords}
import "./setup.mjs";
import { randomUUID } from "node:crypto";
import { Backend } from "@staticbackend/js";

const [scenario, url = process.env.SB_URL, pk = process.env.SB_PK, paramsJson = process.env.SB_PARAMS] =
  process.argv.slice(2);
const params = JSON.parse(paramsJson || "{}");

const DEV_ROOT_ALIAS = "safe-to-use-in-dev-root-token";
const DEV_ADMIN_EMAIL = "admin@dev.com";
const DEV_ADMIN_PASSWORD = "devpw1234";

// The client returns a caught Error as `content`; make it printable.
function plain(result) {
  if (result && result.content instanceof Error) {
    return { ok: result.ok, content: `${result.content.name}: ${result.content.message}` };
  }
  return result;
}

// A Backend whose region is the server URL (a region of 10+ characters is used as the base URL).
function client(publicKey = pk) {
  const bk = new Backend(publicKey, url);
  return new Proxy(bk, {
    get(target, name) {
      const value = target[name];
      if (typeof value !== "function") return value;
      return async (...args) => plain(await value.apply(target, args));
    },
  });
}

// One request outside the client, to see the status code the client hides.
async function raw(method, path, { publicKey = pk, token = "", body, contentType = "application/json" } = {}) {
  const headers = {};
  if (publicKey) headers["SB-PUBLIC-KEY"] = publicKey;
  if (token) headers["Authorization"] = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = contentType;
  const resp = await fetch(url + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: resp.status, contentType: resp.headers.get("content-type"), body: await resp.text() };
}

// A fresh user of its own account: its session token.
async function newUser(bk, email, password) {
  const registered = await bk.register(email, password);
  if (!registered.ok) throw new Error(`register ${email}: ${registered.content}`);
  return registered.content;
}

const ids = (result) => (result.ok && result.content && result.content.results ? result.content.results.map((d) => d.id) : null);

const scenarios = {
  async crud({ email, password, col }) {
    const bk = client();
    const token = await newUser(bk, email, password);
    const body = { title: "buy milk", done: false, n: 1, tags: ["a"], nested: { x: 1.5 } };
    const created = await bk.create(token, col, body);
    const id = created.ok ? created.content.id : "missing";
    const rawCreated = await raw("POST", `/db/${col}`, { token, body: { title: "raw" } });
    const createdNotObject = await bk.create(token, col, [body]);
    const got = await bk.getById(token, col, id);
    const unknownId = randomUUID();
    const byIds = await bk.getByIds(token, col, [id, unknownId]);
    const updated = await bk.update(token, col, id, { done: true, extra: null, nested: { y: 2 } });
    const gotAfterUpdate = await bk.getById(token, col, id);
    const increased = await bk.increase(token, col, id, "n", 4);
    const gotAfterIncrease = await bk.getById(token, col, id);
    const newId = await bk.newId(token);
    const deleted = await bk.delete(token, col, id);
    const deletedAgain = await bk.delete(token, col, id);
    const gotAfterDelete = await bk.getById(token, col, id);
    const rawGotAfterDelete = await raw("GET", `/db/${col}/${id}`, { token });
    const updateAfterDelete = await bk.update(token, col, id, { done: false });
    const getWithoutToken = await bk.getById("", col, id);
    const rawGetWithoutToken = await raw("GET", `/db/${col}/${id}`);
    return {
      created,
      rawCreated,
      createdNotObject,
      got,
      unknownId,
      byIds,
      updated,
      gotAfterUpdate,
      increased,
      gotAfterIncrease,
      newId,
      deleted,
      deletedAgain,
      gotAfterDelete,
      rawGotAfterDelete,
      updateAfterDelete,
      getWithoutToken,
      rawGetWithoutToken,
    };
  },

  async list_paging({ email, password, col, n }) {
    const bk = client();
    const token = await newUser(bk, email, password);
    const docs = Array.from({ length: n }, (_, i) => ({ i }));
    const bulk = await bk.createBulk(token, col, docs);
    const all = await bk.list(token, col);
    const pages = [];
    const descPages = [];
    for (let page = 1; page <= 4; page++) {
      pages.push(await bk.list(token, col, { page, size: 10 }));
      descPages.push(await bk.list(token, col, { page, size: 10, desc: true }));
    }
    // The client sends `size` only when it is above 1: size 1 reaches the server as its default.
    const sizeOne = await bk.list(token, col, { page: 2, size: 1 });
    const neverWritten = await bk.list(token, `${col}never`);
    const bulkWithNonObject = await bk.createBulk(token, col, [{ i: 100 }, "not an object", { i: 101 }]);
    const countAfterBadBulk = await bk.count(token, col);
    // One by one, so each has its own creation time.
    const ordered = [];
    for (let i = 0; i < 4; i++) {
      const one = await bk.create(token, `${col}seq`, { i });
      ordered.push(one.ok ? one.content.id : null);
    }
    const seqAsc = await bk.list(token, `${col}seq`);
    const seqDesc = await bk.list(token, `${col}seq`, { desc: true });
    return {
      bulk,
      all,
      pages,
      descPages,
      sizeOne,
      neverWritten,
      bulkWithNonObject,
      countAfterBadBulk,
      ordered,
      seqAsc,
      seqDesc,
      idsAll: ids(all),
      idsSeqAsc: ids(seqAsc),
      idsSeqDesc: ids(seqDesc),
    };
  },

  async query({ email, password, col, docs }) {
    const bk = client();
    const token = await newUser(bk, email, password);
    const created = await bk.createBulk(token, col, docs);
    const q = (filters, p) => bk.query(token, col, filters, p);
    return {
      created,
      all: await q([]),
      eqBool: await q([["done", "==", true]]),
      eqString: await q([["tag", "==", "y"]]),
      gtNumber: await q([["n", ">", 4]]),
      gtNumericString: await q([["n", ">", "4"]]),
      inList: await q([["tag", "in", ["x", "z"]]]),
      inScalarOnArray: await q([["tags", "in", "green"]]),
      inListOnArray: await q([["tags", "in", ["blue", "green"]]]),
      notIn: await q([["tag", "!in", ["x", "z"]]]),
      anded: await q([
        ["done", "==", true],
        ["n", ">", 4],
      ]),
      nested: await q([["address.city", "==", "Montreal"]]),
      paged: await q([["n", ">", 0]], { page: 2, size: 2 }),
      pagedDesc: await q([["n", ">", 0]], { page: 1, size: 2, desc: true }),
      none: await q([["tag", "==", "nothing-has-this"]]),
      badOperator: await q([["n", "=~", 1]]),
      rawBadOperator: await raw("POST", `/query/${col}`, { token, body: [["n", "=~", 1]] }),
      badClause: await q([["n", "=="]]),
      countAll: await bk.count(token, col),
      countFiltered: await bk.count(token, col, [["done", "==", true]]),
      countNone: await bk.count(token, col, [["tag", "==", "nothing-has-this"]]),
      countNeverWritten: await bk.count(token, `${col}never`),
      queryNeverWritten: await bk.query(token, `${col}never`, []),
    };
  },

  async bulk_writes({ email, password, col, marker }) {
    const bk = client();
    const token = await newUser(bk, email, password);
    const docs = [
      { title: "keep", done: true, tag: marker, n: 1 },
      { title: "keep", done: true, tag: marker, n: 2 },
      { title: "keep", done: false, tag: marker, n: 3 },
      { title: "other", done: true, tag: "other", n: 4 },
    ];
    const created = await bk.createBulk(token, col, docs);
    const updatedBulk = await bk.updateBulk(token, col, {
      update: { archived: true },
      clauses: [
        ["tag", "==", marker],
        ["done", "==", true],
      ],
    });
    const afterUpdate = await bk.query(token, col, [["archived", "==", true]]);
    const updatedNone = await bk.updateBulk(token, col, { update: { x: 1 }, clauses: [["tag", "==", "nobody"]] });
    const badUpdateClause = await bk.updateBulk(token, col, { update: { x: 1 }, clauses: [["tag", "~", 1]] });
    const filters = [["tag", "==", marker]];
    const x = btoa(JSON.stringify(filters));
    const deletedBulk = await bk.deleteBulk(token, col, filters);
    const afterDelete = await bk.list(token, col);
    const deletedAgain = await bk.deleteBulk(token, col, filters);
    const deletedAll = await bk.deleteBulk(token, col, []);
    const countAfter = await bk.count(token, col);
    return {
      created,
      updatedBulk,
      afterUpdate,
      updatedNone,
      badUpdateClause,
      x,
      deletedBulk,
      afterDelete,
      deletedAgain,
      deletedAll,
      countAfter,
    };
  },

  // owner and member share an account; other has its own. Collections: `${col}_700_` (owner only),
  // `${col}` (default 740: account reads, owner writes), `${col}_744_` (everyone reads, owner writes).
  async permissions({ owner, member, other, password, col }) {
    const bk = client();
    const ownerToken = await newUser(bk, owner, password);
    const added = await bk.addUser(ownerToken, member, password);
    const memberLogin = await bk.login(member, password);
    const memberToken = memberLogin.content;
    const otherToken = await newUser(bk, other, password);
    const adminLogin = await bk.login(DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD);
    const adminToken = adminLogin.content;

    const privateCol = `${col}_700_`;
    const accountCol = col;
    const publicCol = `${col}_744_`;
    const secret = await bk.create(ownerToken, privateCol, { secret: "owner only", n: 1 });
    const shared = await bk.create(ownerToken, accountCol, { note: "account", n: 1 });
    const open = await bk.create(ownerToken, publicCol, { note: "everyone", n: 1 });
    const sid = secret.content.id;
    const aid = shared.content.id;
    const oid = open.content.id;
    const everything = [];

    const reads = async (token) => ({
      get: await bk.getById(token, privateCol, sid),
      list: await bk.list(token, privateCol),
      query: await bk.query(token, privateCol, [["n", "==", 1]]),
      count: await bk.count(token, privateCol),
      byIds: await bk.getByIds(token, privateCol, [sid]),
    });
    const writes = async (token) => ({
      update: await bk.update(token, privateCol, sid, { secret: "changed" }),
      updateBulk: await bk.updateBulk(token, privateCol, { update: { secret: "changed" }, clauses: [] }),
      delete: await bk.delete(token, privateCol, sid),
      deleteBulk: await bk.deleteBulk(token, privateCol, []),
    });
    const result = {
      added,
      memberLogin,
      adminLogin,
      secret,
      shared,
      open,
      ownerReads: await reads(ownerToken),
      memberReads: await reads(memberToken),
      otherReads: await reads(otherToken),
      adminReads: await reads(adminToken),
      memberWrites: await writes(memberToken),
      otherWrites: await writes(otherToken),
      rawOtherGet: await raw("GET", `/db/${privateCol}/${sid}`, { token: otherToken }),
      anonymousGet: await bk.getById("", privateCol, sid),
      rawAnonymousGet: await raw("GET", `/db/${privateCol}/${sid}`),
      memberGetsAccountDoc: await bk.getById(memberToken, accountCol, aid),
      memberUpdatesAccountDoc: await bk.update(memberToken, accountCol, aid, { note: "changed" }),
      rawMemberUpdatesAccountDoc: await raw("PUT", `/db/${accountCol}/${aid}`, {
        token: memberToken,
        body: { note: "changed" },
      }),
      memberDeletesAccountDoc: await bk.delete(memberToken, accountCol, aid),
      otherGetsAccountDoc: await bk.getById(otherToken, accountCol, aid),
      otherGetsPublicDoc: await bk.getById(otherToken, publicCol, oid),
      otherUpdatesPublicDoc: await bk.update(otherToken, publicCol, oid, { note: "changed" }),
      otherDeletesPublicDoc: await bk.delete(otherToken, publicCol, oid),
    };
    // After every refused write, the owner still reads the three documents unchanged.
    for (const [c, id] of [
      [privateCol, sid],
      [accountCol, aid],
      [publicCol, oid],
    ]) {
      everything.push(await bk.getById(ownerToken, c, id));
    }
    result.ownerReadsAfter = everything;
    result.ownerUpdates = await bk.update(ownerToken, privateCol, sid, { secret: "owner changed it" });
    result.ownerDeletes = await bk.delete(ownerToken, privateCol, sid);
    return result;
  },

  // Full-text entries are only written by server-side functions (indexDocument), so the
  // scenario adds a web function with the root token and runs it once per document.
  async search({ owner, other, password, col, fnName, rootToken = DEV_ROOT_ALIAS }) {
    const bk = client();
    const ownerToken = await newUser(bk, owner, password);
    const otherToken = await newUser(bk, other, password);
    const privateCol = `${col}_700_`;
    const first = await bk.create(ownerToken, privateCol, { title: "first" });
    const second = await bk.create(ownerToken, privateCol, { title: "second" });
    const texts = {
      [first.content.id]: "adding this to search index",
      [second.content.id]: "Montreal Expos were the best in 95",
    };
    const code = [
      "function handle(body, qs, headers) {",
      "  const r = indexDocument(body.col, body.id, body.text);",
      '  if (!r.ok) { throw new Error("indexDocument failed: " + r.content); }',
      "}",
    ].join("\n");
    const fnAdd = await raw("POST", "/fn/add", { token: rootToken, body: { name: fnName, trigger: "web", code } });
    const fnRuns = [];
    for (const [id, text] of Object.entries(texts)) {
      fnRuns.push(await raw("POST", `/fn/sudoexec/${fnName}`, { token: rootToken, body: { col: privateCol, id, text } }));
    }
    // Runs are recorded in the background once they answered: wait (a little) for both.
    let fnInfo;
    for (let tries = 0; tries < 50; tries++) {
      fnInfo = await raw("GET", `/fn/info/${fnName}`, { token: rootToken });
      if (fnInfo.status !== 200 || JSON.parse(fnInfo.body).history.length >= fnRuns.length) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const s = (token, keywords) => bk.search(token, privateCol, keywords);
    const result = {
      first,
      second,
      fnAdd,
      fnRuns,
      fnInfo,
      both: await s(ownerToken, "adding search"),
      fuzzy: await s(ownerToken, "addng SEARCH"),
      montreal: await s(ownerToken, "montreal"),
      everyKeyword: await s(ownerToken, "adding montreal"),
      nothing: await s(ownerToken, "zzzzzz"),
      otherCollection: await bk.search(ownerToken, `${col}_elsewhere`, "adding"),
      otherUser: await s(otherToken, "adding search"),
    };
    result.deleted = await bk.delete(ownerToken, privateCol, first.content.id);
    result.afterDelete = await s(ownerToken, "adding search");
    const fnDel = await raw("DELETE", `/fn/del/${fnName}`, { token: rootToken });
    result.fnDel = fnDel;
    return result;
  },
};

async function main() {
  const run = scenarios[scenario];
  if (!run) {
    throw new Error(`unknown scenario ${JSON.stringify(scenario)}; known: ${Object.keys(scenarios).join(", ")}`);
  }
  if (!url || !pk) {
    throw new Error("usage: node db.mjs <scenario> <server-url> <public-key> [params-json]");
  }
  const result = await run(params);
  process.stdout.write(JSON.stringify({ scenario, ...result }) + "\n");
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err && err.stack ? err.stack : String(err));
    process.exit(1);
  },
);
