// Serves the web app from web/ on disk and passes every other request (REST, /ws, the chat
// gateway) through to a running parlor: for working on the page without rebuilding the
// binary, which embeds web/ when it is built.
//
//   node web-proxy.mjs http://127.0.0.1:8080 [listen port, default 8090]
//
// The tests use it when PARLOR_WEB_FROM_DISK=1 (see README.md). It serves web/ as
// src/web.rs does: index.html at /, chat.html at /chat, every other file at its path.

import { createServer, request as httpRequest } from "node:http";
import { connect } from "node:net";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const WEB_DIR = path.resolve(here, "../../web");

/** The pages at paths of their own, as src/web.rs routes them; every other file of web/ is
 * served at its path. */
const PAGES = { "/": "index.html", "/chat": "chat.html" };

/** Content types by extension, as src/web.rs sends them. */
const TYPES = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  mjs: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  ico: "image/x-icon",
  woff2: "font/woff2",
  json: "application/json",
};

/** [file in web/, content type] for a request path, or null if web/ does not serve it. */
export function webFile(pathname) {
  const file = PAGES[pathname] ?? decodeURIComponent(pathname).replace(/^\/+/, "");
  const type = TYPES[file.split(".").pop()];
  const full = path.resolve(WEB_DIR, file);
  if (!type || file.endsWith(".d.ts") || !full.startsWith(WEB_DIR + path.sep)) return null;
  return [full, type];
}

const SECURITY_HEADERS = ["content-security-policy", "x-content-type-options", "referrer-policy", "x-frame-options"];

/** The security headers the server sends with `pathname`. */
async function securityHeaders(target, pathname) {
  const res = await fetch(new URL(pathname, target));
  await res.arrayBuffer();
  return Object.fromEntries(SECURITY_HEADERS.filter((h) => res.headers.has(h)).map((h) => [h, res.headers.get(h)]));
}

/**
 * Starts the proxy in front of `upstream` (an http:// origin) on 127.0.0.1:`port` (0 picks
 * one). Resolves with `{url, close()}`.
 */
export async function startWebProxy(upstream, port = 0) {
  const target = new URL(upstream);
  const sockets = new Set();
  const server = createServer(async (req, res) => {
    const pathname = new URL(req.url, "http://x").pathname;
    const route = req.method === "GET" ? webFile(pathname) : null;
    const body = route ? await readFile(route[0]).catch(() => null) : null;
    if (route && body) {
      try {
        // The server's own headers for the path (its Content-Security-Policy above all),
        // so pages from disk run under the policy the binary serves.
        const upstreamHeaders = await securityHeaders(target, pathname);
        res.writeHead(200, { ...upstreamHeaders, "content-type": route[1], "cache-control": "no-cache" });
        res.end(body);
      } catch (error) {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end(String(error));
      }
      return;
    }
    const upstreamReq = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode, upstreamRes.headers);
        upstreamRes.pipe(res);
      },
    );
    upstreamReq.on("error", (error) => {
      res.writeHead(502, { "content-type": "text/plain" });
      res.end(`proxy: ${error.message}`);
    });
    req.pipe(upstreamReq);
  });
  // WebSockets: replay the upgrade request upstream and splice the two sockets.
  server.on("upgrade", (req, socket, head) => {
    const upstreamSocket = connect(Number(target.port), target.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstreamSocket.write(`${lines.join("\r\n")}\r\n\r\n`);
      if (head?.length) upstreamSocket.write(head);
      upstreamSocket.pipe(socket);
      socket.pipe(upstreamSocket);
    });
    for (const s of [socket, upstreamSocket]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    }
    const destroy = () => {
      socket.destroy();
      upstreamSocket.destroy();
    };
    upstreamSocket.on("error", destroy);
    socket.on("error", destroy);
    upstreamSocket.on("close", destroy);
    socket.on("close", destroy);
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const upstream = process.argv[2];
  if (!upstream) {
    console.error("usage: node web-proxy.mjs http://127.0.0.1:PORT [listen port]");
    process.exit(2);
  }
  const proxy = await startWebProxy(upstream, Number(process.argv[3] ?? 8090));
  console.log(`web/ from disk, the rest from ${upstream}: ${proxy.url}`);
}
