// Console sessions: creation, lookup, idle expiry, eviction, CSRF tokens, the origin check and the cookie.

import assert from "node:assert/strict";
import {
  ConsoleSessions,
  sameOrigin,
  sessionCookie,
  sessionIdOf,
  validCsrf,
} from "../../src/console/session.ts";

Deno.test("sessions: random ids, idle expiry, least recently used evicted first", () => {
  let now = 0;
  const sessions = new ConsoleSessions({ idleMs: 1000, maxSessions: 2, now: () => now });
  const a = sessions.create("acme", "sk-acme-0123456789");
  const b = sessions.create("beta", "sk-beta-0123456789");
  assert.notEqual(a.id, b.id);
  assert.notEqual(a.csrf, a.id);
  assert.ok(a.id.length >= 40);
  now = 500;
  assert.equal(sessions.get(a.id)?.tenant, "acme"); // a is now the most recent
  const c = sessions.create("acme", "sk-acme-0123456789");
  assert.equal(sessions.get(b.id), undefined, "b was the least recently used");
  assert.equal(sessions.size, 2);
  now = 1400;
  assert.equal(sessions.get(c.id)?.tenant, "acme", "900 ms idle: alive");
  now = 2500;
  assert.equal(sessions.get(a.id), undefined, "2000 ms idle: expired");
  assert.equal(sessions.get(c.id), undefined);
  assert.equal(sessions.get(undefined), undefined);
  sessions.delete("no-such-id");
});

Deno.test("sessions: the CSRF token is the session's own", () => {
  const sessions = new ConsoleSessions();
  const a = sessions.create("acme", "sk-acme-0123456789");
  const b = sessions.create("beta", "sk-beta-0123456789");
  assert.equal(validCsrf(a, a.csrf), true);
  assert.equal(validCsrf(a, b.csrf), false);
  assert.equal(validCsrf(a, ""), false);
  assert.equal(validCsrf(a, null), false);
  assert.equal(validCsrf(a, a.csrf.slice(1)), false);
});

Deno.test("sameOrigin: refuses other origins, opaque origins and cross-site fetches", () => {
  const req = (headers: Record<string, string>) =>
    new Request("http://127.0.0.1:8080/console/login", { method: "POST", headers });
  assert.equal(sameOrigin(req({})), true, "no header: a non-browser client");
  assert.equal(sameOrigin(req({ origin: "http://127.0.0.1:8080" })), true);
  assert.equal(sameOrigin(req({ origin: "http://127.0.0.1:9999" })), false);
  assert.equal(sameOrigin(req({ origin: "https://evil.example" })), false);
  assert.equal(sameOrigin(req({ origin: "null" })), false);
  assert.equal(sameOrigin(req({ "sec-fetch-site": "cross-site" })), false);
  assert.equal(sameOrigin(req({ "sec-fetch-site": "same-site" })), false);
  assert.equal(sameOrigin(req({ "sec-fetch-site": "same-origin", origin: "http://127.0.0.1:8080" })), true);
  // behind a proxy the Host header names the public host
  const proxied = new Request("http://10.0.0.5:8080/console/login", {
    method: "POST",
    headers: { host: "console.example", origin: "https://console.example" },
  });
  assert.equal(sameOrigin(proxied), true);
});

Deno.test("sessionCookie: HTTP-only, SameSite=Strict, scoped to /console; cleared with Max-Age=0", () => {
  assert.equal(sessionCookie("abc", false), "wl_console=abc; Path=/console; HttpOnly; SameSite=Strict");
  assert.equal(
    sessionCookie("abc", true),
    "wl_console=abc; Path=/console; HttpOnly; SameSite=Strict; Secure",
  );
  assert.match(sessionCookie(undefined, false), /^wl_console=; .*Max-Age=0$/);
  const req = (cookie: string) => new Request("http://x/console", { headers: { cookie } });
  assert.equal(sessionIdOf(req("a=1; wl_console=xyz; b=2")), "xyz");
  assert.equal(sessionIdOf(req("a=1")), undefined);
  assert.equal(sessionIdOf(req("wl_console=")), undefined);
});
