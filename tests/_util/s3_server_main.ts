// A real S3-compatible server on loopback for the tests: s3rver (npm) behind a front that checks AWS
// Signature V4 the way S3 does (s3rver itself checks only that the access key id exists), then forwards.
//
//   deno run -A tests/_util/s3_server_main.ts DIR ACCESS_KEY_ID SECRET BUCKET...
//
// Prints `S3 listening on http://127.0.0.1:PORT` when ready; stops on SIGTERM or when stdin closes.

import S3rver from "s3rver";

const [dir, accessKeyId, secret, ...buckets] = Deno.args;
if (!dir || !accessKeyId || !secret) {
  console.error("usage: s3_server_main.ts DIR ACCESS_KEY_ID SECRET BUCKET...");
  Deno.exit(2);
}

// s3rver knows one account, key id S3RVER; the front checks our key and forwards as that account
const backend = new S3rver({
  port: 0,
  address: "127.0.0.1",
  silent: true,
  directory: dir,
  configureBuckets: buckets.map((name) => ({ name })),
});
const { port: backendPort } = await backend.run();

const encoder = new TextEncoder();

function hex(bytes: ArrayBuffer): string {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  return hex(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

async function hmac(key: Uint8Array | string, data: string): Promise<Uint8Array> {
  const raw = typeof key === "string" ? encoder.encode(key) : key;
  const k = await crypto.subtle.importKey(
    "raw",
    raw as Uint8Array<ArrayBuffer>,
    {
      name: "HMAC",
      hash: "SHA-256",
    },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, encoder.encode(data)));
}

/** RFC 3986 encoding, as SigV4 wants it. */
function uriEncode(text: string, keepSlash: boolean): string {
  let out = "";
  for (const byte of encoder.encode(text)) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9_.~-]/.test(c) || (keepSlash && c === "/")) out += c;
    else out += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

function s3Error(status: number, code: string, message: string): Response {
  const xml =
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message>` +
    "</Error>";
  return new Response(xml, { status, headers: { "content-type": "application/xml" } });
}

/** Checks the request's SigV4 signature; returns an error response, or undefined when it is right. */
async function verify(request: Request, body: Uint8Array): Promise<Response | undefined> {
  const auth = request.headers.get("authorization") ?? "";
  const m =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/
      .exec(auth);
  if (!m) return s3Error(403, "AccessDenied", "Access Denied: no AWS4-HMAC-SHA256 authorization");
  const [, keyId, date, region, signedHeaders, signature] = m;
  if (keyId !== accessKeyId) {
    return s3Error(
      403,
      "InvalidAccessKeyId",
      "The AWS Access Key Id you provided does not exist in our records.",
    );
  }
  const amzDate = request.headers.get("x-amz-date") ?? "";
  const payloadHash = request.headers.get("x-amz-content-sha256") ?? "";
  if (payloadHash !== "UNSIGNED-PAYLOAD" && payloadHash !== (await sha256(body))) {
    return s3Error(
      400,
      "XAmzContentSHA256Mismatch",
      "The provided 'x-amz-content-sha256' header does not match",
    );
  }
  const url = new URL(request.url);
  const path = uriEncode(decodeURIComponent(url.pathname), true);
  const query = [...url.searchParams]
    .map(([k, v]) => [uriEncode(k, false), uriEncode(v, false)])
    .sort(([a, x], [b, y]) => a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0)
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  const names = signedHeaders.split(";");
  const headers = names.map((n) => `${n}:${(request.headers.get(n) ?? "").trim().replace(/\s+/g, " ")}\n`)
    .join("");
  const canonical = [request.method, path, query, headers, signedHeaders, payloadHash].join("\n");
  const scope = `${date}/${region}/s3/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, await sha256(canonical)].join("\n");
  let key = await hmac(`AWS4${secret}`, date);
  for (const part of [region, "s3", "aws4_request"]) key = await hmac(key, part);
  const expected = hex((await hmac(key, toSign)).buffer as ArrayBuffer);
  if (expected !== signature) {
    return s3Error(
      403,
      "SignatureDoesNotMatch",
      "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
    );
  }
  return undefined;
}

function xmlEscape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * ListObjectsV2 with a delimiter, done here: s3rver 3.7.1 only finds a common prefix when an object lies
 * directly one level below it (its directory walk prunes deeper folders), so `prefix=p/&delimiter=/` over
 * `p/a/b/c` answers nothing. Lists every key under the prefix from s3rver and groups them as S3 does.
 */
async function listWithDelimiter(url: URL, headers: Headers): Promise<Response> {
  const prefix = url.searchParams.get("prefix") ?? "";
  const delimiter = url.searchParams.get("delimiter")!;
  const contents: string[] = [];
  const prefixes = new Set<string>();
  let token: string | undefined;
  let bucket = "";
  do {
    const query = new URLSearchParams({ "list-type": "2", prefix });
    if (token) query.set("continuation-token", token);
    const page = await fetch(`http://127.0.0.1:${backendPort}${url.pathname}?${query}`, { headers });
    const xml = await page.text();
    if (!page.ok) return new Response(xml, { status: page.status, headers: page.headers });
    bucket = /<Name>([^<]*)<\/Name>/.exec(xml)?.[1] ?? "";
    for (const [block, key] of xml.matchAll(/<Contents><Key>([^<]*)<\/Key>[\s\S]*?<\/Contents>/g)) {
      const plain = key.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
      const at = plain.slice(prefix.length).indexOf(delimiter);
      if (at < 0) contents.push(block);
      else prefixes.add(plain.slice(0, prefix.length + at + delimiter.length));
    }
    token = /<IsTruncated>true<\/IsTruncated>/.test(xml)
      ? /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(xml)?.[1]
      : undefined;
  } while (token);
  const common = [...prefixes].sort().map((p) =>
    `<CommonPrefixes><Prefix>${xmlEscape(p)}</Prefix></CommonPrefixes>`
  );
  const xml =
    `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
    `<Name>${bucket}</Name><Prefix>${xmlEscape(prefix)}</Prefix><KeyCount>${
      contents.length + common.length
    }</KeyCount>` +
    `<MaxKeys>1000000</MaxKeys><Delimiter>${
      xmlEscape(delimiter)
    }</Delimiter><IsTruncated>false</IsTruncated>` +
    `${contents.join("")}${common.join("")}</ListBucketResult>`;
  return new Response(xml, { status: 200, headers: { "content-type": "application/xml" } });
}

const front = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
  const body = new Uint8Array(await request.arrayBuffer());
  const refused = await verify(request, body);
  if (refused) return refused;
  const url = new URL(request.url);
  const headers = new Headers(request.headers);
  headers.delete("host");
  headers.set(
    "authorization",
    headers.get("authorization")!.replace(/Credential=[^/]+\//, "Credential=S3RVER/"),
  );
  if (
    request.method === "GET" && url.searchParams.get("list-type") === "2" && url.searchParams.get("delimiter")
  ) {
    return await listWithDelimiter(url, headers);
  }
  const forwarded = await fetch(`http://127.0.0.1:${backendPort}${url.pathname}${url.search}`, {
    method: request.method,
    headers,
    body: request.method === "GET" || request.method === "HEAD" ? undefined : body,
  });
  return new Response(forwarded.body, { status: forwarded.status, headers: forwarded.headers });
});

console.log(`S3 listening on http://127.0.0.1:${front.addr.port}`);

const stop = async () => {
  await front.shutdown();
  await backend.close();
  Deno.exit(0);
};
Deno.addSignalListener("SIGTERM", stop);
(async () => {
  for await (const _ of Deno.stdin.readable) {
    // wait for the parent to close stdin
  }
  await stop();
})();
