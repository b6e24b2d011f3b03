// What the browser tests share: the parlor server they run against, Chromium's flags and
// polling.
//
// PARLOR_BIN is the server binary (default ../../target/debug/parlor); PARLOR_URL tests a
// server that is already running instead; PARLOR_LOG=1 copies the server's output to
// stderr; PARLOR_WEB_FROM_DISK=1 serves web/ from disk in front of the server (see
// web-proxy.mjs), for trying page changes without rebuilding the binary.

import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startWebProxy } from "./web-proxy.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
export const PARLOR_BIN = path.resolve(process.env.PARLOR_BIN ?? path.join(here, "../../target/debug/parlor"));
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  // Fake camera (a test pattern) and microphone (beeps), and a fake screen for
  // getDisplayMedia, all granted without a prompt.
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  "--allow-loopback-in-peer-connection",
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * Records every Content-Security-Policy violation in the context's pages into `list`, as
 * text. The pages run under the policy the server sends; the tests fail on any violation.
 */
export async function recordCspViolations(context, list) {
  await context.exposeBinding("parlorCspViolation", (_source, text) => list.push(text));
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      window.parlorCspViolation(
        `${e.effectiveDirective} blocked ${e.blockedURI || "inline code"} at ${e.sourceFile}:${e.lineNumber}`,
      );
    });
  });
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Calls `probe` every `interval` ms until `done(value)` holds or `timeout` passes, and
 * returns the last value either way: the caller asserts on it.
 */
export async function poll(probe, done, { timeout = 30_000, interval = 250 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await probe();
    if (done(value) || Date.now() >= deadline) return value;
    await sleep(interval);
  }
}

/**
 * Starts `parlor serve` on free ports and resolves once it prints its URL, with
 * `{url, stop()}`.
 */
export async function startServer({ env = {} } = {}) {
  const server = process.env.PARLOR_URL
    ? { url: new URL(process.env.PARLOR_URL).origin, stop: async () => {} }
    : await spawnServer(env);
  if (!process.env.PARLOR_WEB_FROM_DISK) return server;
  const proxy = await startWebProxy(server.url);
  return {
    url: proxy.url,
    async stop() {
      await proxy.close();
      await server.stop();
    },
  };
}

async function spawnServer(env) {
  const dataDir = await mkdtemp(path.join(tmpdir(), "parlor-browser-"));
  const child = spawn(
    PARLOR_BIN,
    ["serve", "--listen", "127.0.0.1:0", "--media-port", "0", "--data-dir", dataDir],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } },
  );
  let output = "";
  const keep = (stream) => (chunk) => {
    output = (output + chunk).slice(-64 * 1024);
    if (process.env.PARLOR_LOG) stream.write(chunk);
  };
  child.stderr.on("data", keep(process.stderr));

  const url = await new Promise((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(
      () => reject(new Error(`${PARLOR_BIN} printed no http:// URL within 30 s. Output:\n${output}`)),
      30_000,
    );
    child.stdout.on("data", (chunk) => {
      keep(process.stderr)(chunk);
      // eslint-disable-next-line no-control-regex
      stdout += String(chunk).replace(/\x1b\[[0-9;]*m/g, "");
      const match = /http:\/\/[^\s/"'<>]+/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve(match[0]);
      }
    });
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`could not start ${PARLOR_BIN} (set PARLOR_BIN): ${error.message}`));
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${PARLOR_BIN} exited (${code ?? signal}) before listening. Output:\n${output}`));
    });
  });

  return {
    url,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A TCP port free on 127.0.0.1 now, for a local service a test starts. */
export async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}
