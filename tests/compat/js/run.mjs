// Runs one scenario against a live server with the real @staticbackend/js client.
//
//   node run.mjs <scenario> <server-url> <public-key> [params-json]
//
// (SB_URL, SB_PK and SB_PARAMS are read when an argument is missing.) Prints ONE JSON line:
// the client's {ok, content} answers, and {status, contentType, body} for the raw requests a
// scenario makes beside the client. Assertions live in pytest, not here.
import "./setup.mjs";
import { Backend } from "@staticbackend/js";

const [scenario, url = process.env.SB_URL, pk = process.env.SB_PK, paramsJson = process.env.SB_PARAMS] =
  process.argv.slice(2);
const params = JSON.parse(paramsJson || "{}");

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
async function raw(method, path, { publicKey = pk, token = "", body } = {}) {
  const headers = {};
  if (publicKey) headers["SB-PUBLIC-KEY"] = publicKey;
  if (token) headers["Authorization"] = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(url + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: resp.status, contentType: resp.headers.get("content-type"), body: await resp.text() };
}

const scenarios = {
  // The globals the realtime methods need are in place.
  async globals() {
    return {
      EventSource: typeof globalThis.EventSource,
      WebSocket: typeof globalThis.WebSocket,
      node: process.version,
    };
  },

  async register_login_me({ email, password }) {
    const bk = client();
    const register = await bk.register(email, password);
    const login = await bk.login(email, password);
    const me = await bk.me(login.content);
    const meFromRegister = await bk.me(register.content);
    const meWithoutToken = await raw("GET", "/me");
    return { register, login, me, meFromRegister, meWithoutToken };
  },

  async duplicate_register({ email, password }) {
    const bk = client();
    const first = await bk.register(email, password);
    const second = await bk.register(email, password);
    const upperCase = await bk.register(email.toUpperCase(), password);
    const rawSecond = await raw("POST", "/register", { body: { email, password } });
    const login = await bk.login(email, password);
    return { first, second, upperCase, rawSecond, login };
  },

  async wrong_password({ email, password }) {
    const bk = client();
    const register = await bk.register(email, password);
    const wrong = await bk.login(email, `not-${password}`);
    const rawWrong = await raw("POST", "/login", { body: { email, password: `not-${password}` } });
    const unknown = await bk.login(`nobody-${email}`, password);
    const rawUnknown = await raw("POST", "/login", { body: { email: `nobody-${email}`, password } });
    const right = await bk.login(email, password);
    return { register, wrong, rawWrong, unknown, rawUnknown, right };
  },

  async account_users({ owner, member, password }) {
    const bk = client();
    const register = await bk.register(owner, password);
    const token = register.content;
    const ownerMe = await bk.me(token);
    const added = await bk.addUser(token, member, password);
    const addedAgain = await bk.addUser(token, member, password);
    const rawAddedAgain = await raw("POST", "/account/users", { token, body: { email: member, password } });
    const listed = await bk.users(token);
    const memberLogin = await bk.login(member, password);
    const memberMe = await bk.me(memberLogin.content);
    // A regular member (role 0) may not remove the owner (role 50).
    const memberRemovesOwner = await bk.removeUser(memberLogin.content, ownerMe.content.userId);
    const removed = await bk.removeUser(token, added.content.id);
    const listedAfter = await bk.users(token);
    const memberLoginAfter = await bk.login(member, password);
    return {
      register,
      ownerMe,
      added,
      addedAgain,
      rawAddedAgain,
      listed,
      memberLogin,
      memberMe,
      memberRemovesOwner,
      removed,
      listedAfter,
      memberLoginAfter,
    };
  },

  // changeEmail, setRole, listAssociations and promoteUser (issue 14 item 6).
  async account_calls({ owner, member, newEmail, password }) {
    const bk = client();
    const ownerToken = (await bk.register(owner, password)).content;
    await bk.addUser(ownerToken, member, password);
    const memberToken = (await bk.login(member, password)).content;
    const ownerMe = await bk.me(ownerToken);
    const setRole = await bk.setRole(ownerToken, member, 10, ownerMe.content.accountId);
    const memberMeAfterRole = await bk.me(memberToken);
    const setRoleAboveOwn = await bk.setRole(ownerToken, member, 60);
    const rawSetRoleAboveOwn = await raw("POST", "/setrole", { token: ownerToken, body: { email: member, role: 60 } });
    const memberSetsOwner = await bk.setRole(memberToken, owner, 0);
    const setOwnRole = await bk.setRole(ownerToken, owner, 40);
    const associations = await bk.listAssociations(memberToken);
    const promote = await bk.promoteUser(memberToken);
    const rawPromote = await raw("POST", "/account/promote", { token: memberToken });
    const changeEmail = await bk.changeEmail(memberToken, newEmail);
    const oldTokenAfterChange = await bk.me(memberToken);
    const newTokenMe = await bk.me(changeEmail.content);
    const loginOldEmail = await bk.login(member, password);
    const loginNewEmail = await bk.login(newEmail, password);
    const changeToTaken = await bk.changeEmail(changeEmail.content, owner);
    const rawChangeToTaken = await raw("POST", "/me/email", { token: changeEmail.content, body: { email: owner } });
    return {
      ownerMe,
      setRole,
      memberMeAfterRole,
      setRoleAboveOwn,
      rawSetRoleAboveOwn,
      memberSetsOwner,
      setOwnRole,
      associations,
      promote,
      rawPromote,
      changeEmail,
      oldTokenAfterChange,
      newTokenMe,
      loginOldEmail,
      loginNewEmail,
      changeToTaken,
      rawChangeToTaken,
    };
  },

  async two_apps({ pkB, email, passwordA, passwordB, onlyA }) {
    const a = client(pk);
    const b = client(pkB);
    const registerA = await a.register(email, passwordA);
    const registerB = await b.register(email, passwordB);
    const meA = await a.me(registerA.content);
    const meB = await b.me(registerB.content);
    const tokenAOnB = await b.me(registerA.content);
    const rawTokenAOnB = await raw("GET", "/me", { publicKey: pkB, token: registerA.content });
    const rawTokenBOnA = await raw("GET", "/me", { publicKey: pk, token: registerB.content });
    const loginAWithPasswordB = await a.login(email, passwordB);
    const loginBWithPasswordB = await b.login(email, passwordB);
    const registerOnlyA = await a.register(onlyA, passwordA);
    const e = encodeURIComponent(onlyA);
    const emailOnA = await raw("GET", `/email?e=${e}`, { publicKey: pk });
    const emailOnB = await raw("GET", `/email?e=${e}`, { publicKey: pkB });
    const loginOnlyAOnB = await b.login(onlyA, passwordA);
    return {
      registerA,
      registerB,
      meA,
      meB,
      tokenAOnB,
      rawTokenAOnB,
      rawTokenBOnA,
      loginAWithPasswordB,
      loginBWithPasswordB,
      registerOnlyA,
      emailOnA,
      emailOnB,
      loginOnlyAOnB,
    };
  },

  // Files: uploadFile (a File in a FormData), the URL it answers, listFiles with sort, storageUsage.
  async files({ email, password, small, big }) {
    const bk = client();
    const token = (await bk.register(email, password)).content;
    const upload = async (text, name, type) => {
      try {
        return { ok: true, content: await bk.uploadFile(token, new File([text], name, { type })) };
      } catch (err) {
        return { ok: false, content: String(err) };
      }
    };
    const first = await upload(small, "notes.txt", "text/plain");
    const second = await upload(big, "big.json", "application/json");
    let download = null;
    if (first.ok) {
      const resp = await fetch(first.content.url);
      download = { status: resp.status, contentType: resp.headers.get("content-type"), body: await resp.text() };
    }
    const listed = await bk.listFiles(token);
    const bySizeDesc = await bk.listFiles(token, { sort: "size", desc: true });
    const paged = await bk.listFiles(token, { page: 2, size: 1 });
    const usage = await bk.storageUsage(token);
    const noToken = await bk.storageUsage("");
    return { first, second, download, listed, bySizeDesc, paged, usage, noToken };
  },
};

async function main() {
  const run = scenarios[scenario];
  if (!run) {
    throw new Error(`unknown scenario ${JSON.stringify(scenario)}; known: ${Object.keys(scenarios).join(", ")}`);
  }
  if (!url || !pk) {
    throw new Error("usage: node run.mjs <scenario> <server-url> <public-key> [params-json]");
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
